//! The writes of a push (blobs live and linked, manifests recorded and linked, tags),
//! each both a `WriteTx` method and a statement to add to a `Batch`, so that a manifest
//! push sends its checks in one round trip and its writes in another, whatever the
//! number of layers, children and tags.

use super::{Arg, Batch, Done, MetaResult, NewManifest, WriteTx, now_ms};
use sqlx::Row;
use std::collections::HashSet;

/// What `linked_among` looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linked {
    Blobs,
    Manifests,
}

/// Digests per `IN (…)` list: far below either engine's limit on parameters.
const IN_CHUNK: usize = 500;

/// Rows per multi-row `INSERT`.
const VALUES_CHUNK: usize = 200;

/// Add the reads of which of `digests` are linked into the repository (blobs: and
/// live); `linked_found` reads the answers.
pub(crate) fn read_linked_among(batch: &mut Batch, repo_id: i64, kind: Linked, digests: &[String]) -> Vec<usize> {
    let select = match kind {
        Linked::Blobs => {
            "SELECT rb.digest FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest AND b.state = 'live' \
             WHERE rb.repository_id = $1 AND rb.digest IN ("
        }
        Linked::Manifests => "SELECT digest FROM repository_manifests WHERE repository_id = $1 AND digest IN (",
    };
    digests
        .chunks(IN_CHUNK)
        .map(|chunk| {
            let mut sql = String::from(select);
            let mut args: Vec<Arg> = vec![repo_id.into()];
            for (i, d) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", i + 2));
                args.push(d.into());
            }
            sql.push(')');
            batch.add(sql, args)
        })
        .collect()
}

/// The digests the reads of `read_linked_among` found.
pub(crate) fn linked_found(done: &[Done], reads: &[usize]) -> HashSet<String> {
    reads
        .iter()
        .flat_map(|&i| done[i].rows.iter().map(|r| r.get::<String, _>(0)))
        .collect()
}

pub(crate) fn add_link_blob(batch: &mut Batch, repo_id: i64, digest: &str) {
    batch.add(
        "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, $3) \
         ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at",
        vec![repo_id.into(), digest.into(), now_ms().into()],
    );
}

pub(crate) fn add_link_manifest(batch: &mut Batch, repo_id: i64, digest: &str) {
    batch.add(
        "INSERT INTO repository_manifests (repository_id, digest, pushed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (repository_id, digest) DO UPDATE SET pushed_at = excluded.pushed_at",
        vec![repo_id.into(), digest.into(), now_ms().into()],
    );
}

pub(crate) fn add_set_tag(batch: &mut Batch, repo_id: i64, tag: &str, digest: &str) {
    batch.add(
        "INSERT INTO tags (repository_id, name, digest, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
        vec![repo_id.into(), tag.into(), digest.into(), now_ms().into()],
    );
}

/// A manifest's rows: the manifest itself, and its references (added only by the
/// push that records it first: the same digest is the same content).
pub(crate) struct ManifestRows;

impl ManifestRows {
    /// Add the read of whether the manifest is recorded; `exists` reads the answer.
    pub(crate) fn read_exists(batch: &mut Batch, digest: &str) -> usize {
        batch.add("SELECT 1 FROM manifests WHERE digest = $1", vec![digest.into()])
    }

    pub(crate) fn exists(done: &Done) -> bool {
        !done.rows.is_empty()
    }

    /// Add the manifest's row (nothing when it is recorded already).
    pub(crate) fn add_manifest(batch: &mut Batch, m: &NewManifest<'_>) {
        batch.add(
            "INSERT INTO manifests (digest, media_type, artifact_type, subject, annotations, size, content, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (digest) DO NOTHING",
            vec![
                m.digest.into(),
                m.media_type.into(),
                m.artifact_type.into(),
                m.subject.into(),
                m.annotations.into(),
                (m.content.len() as i64).into(),
                Arg::Bytes(m.content.to_vec()),
                now_ms().into(),
            ],
        );
    }

    /// Add the rows of the manifest's blobs and children, many per statement.
    pub(crate) fn add_references(batch: &mut Batch, m: &NewManifest<'_>) {
        for (table, column, digests) in [
            ("manifest_blobs", "blob_digest", m.blobs),
            ("manifest_children", "child_digest", m.children),
        ] {
            for chunk in digests.chunks(VALUES_CHUNK) {
                let mut sql = format!("INSERT INTO {table} (manifest_digest, {column}) VALUES ");
                let mut args: Vec<Arg> = vec![m.digest.into()];
                for (i, d) in chunk.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("($1, ${})", i + 2));
                    args.push(d.into());
                }
                sql.push_str(" ON CONFLICT DO NOTHING");
                batch.add(sql, args);
            }
        }
    }
}

impl WriteTx {
    /// Which of `digests` are linked into the repository (blobs: and live).
    pub async fn linked_among(
        &mut self,
        repo_id: i64,
        kind: Linked,
        digests: &[String],
    ) -> MetaResult<HashSet<String>> {
        let mut batch = Batch::default();
        let reads = read_linked_among(&mut batch, repo_id, kind, digests);
        Ok(linked_found(&batch.run(self).await?, &reads))
    }

    /// Record the blob as live (reviving a row garbage collection had claimed).
    pub async fn upsert_live_blob(&mut self, digest: &str, size: u64) -> MetaResult<()> {
        let mut batch = Batch::default();
        add_upsert_live_blob(&mut batch, digest, size);
        batch.run(self).await?;
        Ok(())
    }

    pub async fn link_blob(&mut self, repo_id: i64, digest: &str) -> MetaResult<()> {
        let mut batch = Batch::default();
        add_link_blob(&mut batch, repo_id, digest);
        batch.run(self).await?;
        Ok(())
    }

    /// Record a manifest (idempotent: the same digest is the same content) and its references.
    pub async fn insert_manifest(&mut self, m: &NewManifest<'_>) -> MetaResult<()> {
        let mut batch = Batch::default();
        let exists = ManifestRows::read_exists(&mut batch, m.digest);
        if ManifestRows::exists(&batch.run(self).await?[exists]) {
            return Ok(());
        }
        let mut batch = Batch::default();
        ManifestRows::add_manifest(&mut batch, m);
        ManifestRows::add_references(&mut batch, m);
        batch.run(self).await?;
        Ok(())
    }

    pub async fn link_manifest(&mut self, repo_id: i64, digest: &str) -> MetaResult<()> {
        let mut batch = Batch::default();
        add_link_manifest(&mut batch, repo_id, digest);
        batch.run(self).await?;
        Ok(())
    }

    pub async fn set_tag(&mut self, repo_id: i64, tag: &str, digest: &str) -> MetaResult<()> {
        let mut batch = Batch::default();
        add_set_tag(&mut batch, repo_id, tag, digest);
        batch.run(self).await?;
        Ok(())
    }
}

pub(crate) fn add_upsert_live_blob(batch: &mut Batch, digest: &str, size: u64) {
    batch.add(
        "INSERT INTO blobs (digest, size, state, created_at) VALUES ($1, $2, 'live', $3) \
         ON CONFLICT (digest) DO UPDATE SET state = 'live', size = excluded.size, created_at = excluded.created_at",
        vec![digest.into(), (size as i64).into(), now_ms().into()],
    );
}
