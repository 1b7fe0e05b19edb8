//! Push repositories, normal repositories and their numbered versions (Pulp's model).
//!
//! A push repository receives pushes and keeps only its latest state. Its normal
//! repository changes only through versions: each change (a copy after a push, a
//! deletion, a rollback) updates the normal repository's current content and records it
//! as version N+1 (tags, manifests and blobs by reference, plus a summary of what was
//! added, removed and present), all in one transaction. Versions cost metadata, not bytes.
//!
//! The copy after a push runs in the push's own transaction; should it fail, it is
//! recorded there as a job (the outbox) that `jobs` runs. Running a job twice is
//! harmless: a copy that changes nothing records no version, and the job is marked done
//! in the copy's transaction.
//!
//! Here: the model, recording versions, reading them, rollback. `changes`: what changes
//! a normal repository (the post-push copy, content operations); `distributions`: names
//! served from a version; `synced`: what a sync found becoming a version.

use super::Registry;
use super::meta::{Batch, Done, MetaResult, WriteTx, now_ms};
use crate::error::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet, HashSet};

mod changes;
mod deletion;
mod distributions;
mod listing;
mod record;
mod synced;

pub use changes::ContentOp;
pub(crate) use changes::{apply_change, apply_change_along};
pub use deletion::DeletedRepository;
pub use distributions::Distribution;
pub use listing::RepositorySummary;
use record::{Delta, Latest, read_latest, record_version};
pub use synced::SyncedContent;
use synced::remote_blob_known;

pub const KIND_PUSH: &str = "push";
pub const KIND_NORMAL: &str = "normal";

/// Counts per content kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Counts {
    pub tags: i64,
    pub manifests: i64,
    pub blobs: i64,
    /// Simple-signing signatures (absent from summaries older than them).
    #[serde(default)]
    pub signatures: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    pub added: Counts,
    pub removed: Counts,
    pub present: Counts,
}

/// What one version added and removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VersionDiff {
    pub added: Vec<DiffItem>,
    pub removed: Vec<DiffItem>,
}

/// A tag, manifest, blob or signature a version added or removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DiffItem {
    /// `tag`, `manifest`, `blob` or `signature`.
    pub kind: String,
    /// A tag's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The tag's manifest, the manifest, the blob, or the signature's own digest.
    pub digest: String,
    /// The manifest a signature signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VersionInfo {
    pub number: i64,
    pub created_at: i64,
    pub reason: String,
    pub summary: Summary,
}

/// What a job does to a normal repository after a change in its push repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PushChange {
    /// Copy `digest` (an index with its children) and its blobs, and set `tags` on it.
    Push {
        digest: String,
        tags: Vec<String>,
    },
    DeleteTag {
        tag: String,
    },
    DeleteManifest {
        digest: String,
    },
    /// Bring the push repository's signatures of `digest` along.
    Sign {
        digest: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostPushJob {
    pub push_repository: String,
    pub normal_repository: String,
    /// The normal repository's id (repositories are never renumbered).
    pub normal_id: i64,
    pub change: PushChange,
    /// Sign the pushed tags in the copy (products that sign on push).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<super::signatures::SignOnPush>,
}

pub const POST_PUSH_JOB: &str = "post_push";

/// A repository's kind and, for a push repository, its normal repository's id.
pub(crate) async fn repository_kind(tx: &mut WriteTx, repo_id: i64) -> MetaResult<(String, Option<i64>)> {
    let row = sqlx::query("SELECT kind, normal_id FROM repositories WHERE id = $1")
        .bind(repo_id)
        .fetch_one(tx.conn())
        .await?;
    Ok((row.get(0), row.get(1)))
}

async fn repository_name(tx: &mut WriteTx, repo_id: i64) -> MetaResult<String> {
    Ok(sqlx::query("SELECT name FROM repositories WHERE id = $1")
        .bind(repo_id)
        .fetch_one(tx.conn())
        .await?
        .get(0))
}

/// Record a job in the caller's transaction; returns its id.
pub(crate) async fn enqueue(tx: &mut WriteTx, kind: &str, payload: &serde_json::Value) -> MetaResult<i64> {
    Ok(super::jobs::insert_job(tx.conn(), kind, &payload.to_string()).await?)
}

/// Add the read of a push repository's normal repository; `normal_found` reads the answer.
pub(crate) fn read_normal_of_push(batch: &mut Batch, repo_id: i64) -> usize {
    batch.add(
        "SELECT n.id, n.name FROM repositories r JOIN repositories n ON n.id = r.normal_id \
         WHERE r.id = $1 AND r.kind = $2",
        vec![repo_id.into(), KIND_PUSH.into()],
    )
}

/// A push repository's normal repository, id and name (`None` for any other repository).
pub(crate) fn normal_found(done: &Done) -> Option<(i64, String)> {
    done.rows.first().map(|r| (r.get(0), r.get(1)))
}

/// Enqueue the post-push job for a change in push repository `push` (paired with the
/// normal repository `normal_id`); returns its id and the job.
pub(crate) async fn enqueue_post_push(
    tx: &mut WriteTx,
    push: &str,
    normal_id: i64,
    change: PushChange,
    sign: Option<super::signatures::SignOnPush>,
) -> MetaResult<(i64, PostPushJob)> {
    let job = PostPushJob {
        push_repository: push.to_owned(),
        normal_repository: repository_name(tx, normal_id).await?,
        normal_id,
        change,
        sign,
    };
    Ok((enqueue(tx, POST_PUSH_JOB, &json!(job)).await?, job))
}

/// Every manifest reachable from the manifest `$1` (itself, an index's children,
/// theirs…), as the table `c(d)`: a prefix for a statement working on a closure.
const CLOSURE: &str = "WITH RECURSIVE c(d) AS (SELECT digest FROM manifests WHERE digest = $1 \
     UNION SELECT mc.child_digest FROM manifest_children mc JOIN c ON mc.manifest_digest = c.d)";

/// Every manifest reachable from `digest` (itself, an index's children, …).
async fn closure(tx: &mut WriteTx, digest: &str) -> MetaResult<Vec<String>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{CLOSURE} SELECT d FROM c")))
        .bind(digest)
        .fetch_all(tx.conn())
        .await?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

async fn current_tag(tx: &mut WriteTx, repo_id: i64, tag: &str) -> MetaResult<Option<String>> {
    Ok(
        sqlx::query("SELECT digest FROM tags WHERE repository_id = $1 AND name = $2")
            .bind(repo_id)
            .bind(tag)
            .fetch_optional(tx.conn())
            .await?
            .map(|r| r.get(0)),
    )
}

/// Record a manifest (not linked to any repository yet) after checking that every blob
/// and child manifest it references exists.
async fn record_manifest(tx: &mut WriteTx, content: &[u8], media_type: &str) -> Result<String> {
    record_manifest_with(tx, content, media_type, false).await
}

/// `record_manifest`; with `on_demand`, a blob a remote is known to serve
/// (`remote_blobs`) may be absent locally.
async fn record_manifest_with(tx: &mut WriteTx, content: &[u8], media_type: &str, on_demand: bool) -> Result<String> {
    let parsed = super::manifests::parse(Some(media_type), content)?;
    let digest = crate::oci::Digest::sha256_of(content).to_string();
    let mut blobs = Vec::new();
    for b in &parsed.required_blobs {
        let b = b.to_string();
        let present = tx.blob_is_live(&b).await? || (on_demand && remote_blob_known(tx, &b).await?);
        if !present {
            return Err(
                Error::new(ErrorCode::ManifestBlobUnknown, format!("blob {b} is missing"))
                    .with_detail(json!({ "digest": b })),
            );
        }
        blobs.push(b);
    }
    let children: Vec<String> = parsed.children.iter().map(ToString::to_string).collect();
    for c in &children {
        let known = sqlx::query("SELECT 1 FROM manifests WHERE digest = $1")
            .bind(c)
            .fetch_optional(tx.conn())
            .await?;
        if known.is_none() {
            return Err(
                Error::new(ErrorCode::ManifestBlobUnknown, format!("manifest {c} is missing"))
                    .with_detail(json!({ "digest": c })),
            );
        }
    }
    let subject = parsed.subject.as_ref().map(ToString::to_string);
    tx.insert_manifest(&super::meta::NewManifest {
        digest: &digest,
        media_type: &parsed.media_type,
        artifact_type: parsed.artifact_type.as_deref(),
        subject: subject.as_deref(),
        annotations: parsed.annotations.as_deref(),
        content,
        blobs: &blobs,
        children: &children,
    })
    .await?;
    Ok(digest)
}

/// The content of version `n`: (kind, key, digest) rows.
const VERSION_CONTENT: &str = "SELECT kind, key, digest FROM version_content \
     WHERE repository_id = $1 AND added_in <= $2 AND (removed_in IS NULL OR removed_in > $2)";

/// The id of the normal repository `name`: NAME_UNKNOWN when there is none, refused
/// when the repository is not a normal one.
async fn normal_repository_id(tx: &mut WriteTx, name: &str) -> Result<i64> {
    let repo_id = tx
        .repository_id(name)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::NameUnknown, format!("no repository {name}")))?;
    if repository_kind(tx, repo_id).await?.0 != KIND_NORMAL {
        return Err(not_normal(name));
    }
    Ok(repo_id)
}

/// The content of version `n` of repository `name` (id `repo_id`); MANIFEST_UNKNOWN
/// when there is no such version.
async fn version_rows(tx: &mut WriteTx, repo_id: i64, name: &str, n: i64) -> Result<Vec<(String, String, String)>> {
    let exists = sqlx::query("SELECT 1 FROM repository_versions WHERE repository_id = $1 AND number = $2")
        .bind(repo_id)
        .bind(n)
        .fetch_optional(tx.conn())
        .await?;
    if exists.is_none() {
        return Err(
            Error::new(ErrorCode::ManifestUnknown, format!("{name} has no version {n}"))
                .with_detail(json!({ "version": n })),
        );
    }
    Ok(sqlx::query(VERSION_CONTENT)
        .bind(repo_id)
        .bind(n)
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Make a repository's served content exactly `content` ((kind, key, digest) rows).
async fn replace_content(tx: &mut WriteTx, repo_id: i64, content: &[(String, String, String)]) -> Result<()> {
    let now = now_ms();
    for sql in [
        "DELETE FROM tags WHERE repository_id = $1",
        "DELETE FROM repository_manifests WHERE repository_id = $1",
        "DELETE FROM repository_blobs WHERE repository_id = $1",
        "DELETE FROM repository_signatures WHERE repository_id = $1",
    ] {
        sqlx::query(sql).bind(repo_id).execute(tx.conn()).await?;
    }
    for (k, key, digest) in content {
        if k == "signature" {
            super::signatures::link_digest(tx, repo_id, key, digest).await?;
            continue;
        }
        let q = match k.as_str() {
            "tag" => sqlx::query("INSERT INTO tags (repository_id, name, digest, updated_at) VALUES ($1, $2, $3, $4)")
                .bind(repo_id)
                .bind(key)
                .bind(digest),
            "manifest" => sqlx::query(
                "INSERT INTO repository_manifests (repository_id, digest, pushed_at) VALUES ($1, $2, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(repo_id)
            .bind(key)
            .bind(digest),
            _ => sqlx::query(
                "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(repo_id)
            .bind(key)
            .bind(digest),
        };
        q.bind(now).execute(tx.conn()).await?;
    }
    Ok(())
}

/// The (kind, key, digest) rows of a repository's current content.
async fn current_rows(tx: &mut WriteTx, repo_id: i64) -> MetaResult<Vec<(String, String, String)>> {
    Ok(
        sqlx::query("SELECT kind, key, digest FROM version_content WHERE repository_id = $1 AND removed_in IS NULL")
            .bind(repo_id)
            .fetch_all(tx.conn())
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect(),
    )
}

/// Make the served content exactly `target` and record the difference as the next
/// version (nothing at all when there is none).
async fn set_content(
    tx: &mut WriteTx,
    repo_id: i64,
    normal: &str,
    target: Vec<(String, String, String)>,
    reason: &str,
    keep: u64,
) -> Result<Option<i64>> {
    let current = current_rows(tx, repo_id).await?;
    let kind = |k: &str| -> &'static str {
        match k {
            "tag" => "tag",
            "manifest" => "manifest",
            "signature" => "signature",
            _ => "blob",
        }
    };
    let (in_target, in_current): (HashSet<_>, HashSet<_>) = (target.iter().collect(), current.iter().collect());
    let mut delta = Delta::default();
    for row in current.iter().filter(|r| !in_target.contains(r)) {
        delta.removed.push((kind(&row.0), row.1.clone(), row.2.clone()));
    }
    for row in target.iter().filter(|r| !in_current.contains(r)) {
        delta.added.push((kind(&row.0), row.1.clone(), row.2.clone()));
    }
    if delta.is_empty() {
        return Ok(None);
    }
    replace_content(tx, repo_id, &target).await?;
    Ok(record_version(tx, None, repo_id, normal, reason, &delta, keep).await?)
}

fn not_normal(name: &str) -> Error {
    Error::new(
        ErrorCode::NameUnknown,
        format!("{name} is not a versioned (normal) repository"),
    )
}

impl Registry {
    /// Make `push` a push repository paired with the normal repository `normal`, creating
    /// either as needed. Idempotent; concurrent first pushes create one pair.
    pub async fn ensure_push_pair(&self, push: &str, normal: &str) -> Result<()> {
        let mut tx = self.meta().begin_write().await?;
        let normal_id = tx.ensure_repository(normal).await?;
        let push_id = tx.ensure_repository(push).await?;
        sqlx::query("UPDATE repositories SET kind = $1 WHERE id = $2 AND kind <> $1")
            .bind(KIND_NORMAL)
            .bind(normal_id)
            .execute(tx.conn())
            .await?;
        sqlx::query("UPDATE repositories SET kind = $1, normal_id = $2 WHERE id = $3")
            .bind(KIND_PUSH)
            .bind(normal_id)
            .bind(push_id)
            .execute(tx.conn())
            .await?;
        // The normal repository is distributed under its own name unless that name
        // already serves something else.
        let now = now_ms();
        sqlx::query(
            "INSERT INTO distributions (name, repository, version, served_from, created_at, updated_at) \
             VALUES ($1, $1, NULL, $1, $2, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(normal)
        .bind(now)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Versions of a normal repository, newest first.
    pub async fn versions(&self, normal: &str) -> Result<Vec<VersionInfo>> {
        let row = sqlx::query("SELECT id, kind FROM repositories WHERE name = $1")
            .bind(normal)
            .fetch_optional(self.meta().reader())
            .await?;
        let Some(row) = row else {
            return Err(Error::new(ErrorCode::NameUnknown, format!("no repository {normal}")));
        };
        if row.get::<String, _>(1) != KIND_NORMAL {
            return Err(not_normal(normal));
        }
        let rows = sqlx::query(
            "SELECT number, created_at, reason, summary FROM repository_versions WHERE repository_id = $1 ORDER BY number DESC",
        )
        .bind(row.get::<i64, _>(0))
        .fetch_all(self.meta().reader())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(VersionInfo {
                    number: r.get(0),
                    created_at: r.get(1),
                    reason: r.get(2),
                    summary: serde_json::from_str(r.get::<&str, _>(3)).ok()?,
                })
            })
            .collect())
    }

    /// Tags of one version of a normal repository.
    pub async fn version_tags(&self, normal: &str, number: i64) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT vc.key, vc.digest FROM version_content vc JOIN repositories r ON r.id = vc.repository_id \
             WHERE r.name = $1 AND vc.kind = 'tag' AND vc.added_in <= $2 \
             AND (vc.removed_in IS NULL OR vc.removed_in > $2) ORDER BY vc.key",
        )
        .bind(normal)
        .bind(number)
        .fetch_all(self.meta().reader())
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The digest a tag points to in a repository's current content.
    pub async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = $1 AND t.name = $2",
        )
        .bind(repo)
        .bind(tag)
        .fetch_optional(self.meta().reader())
        .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Whether a manifest is in a repository's current content.
    pub async fn has_manifest(&self, repo: &str, digest: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id \
             WHERE r.name = $1 AND rm.digest = $2",
        )
        .bind(repo)
        .bind(digest)
        .fetch_optional(self.meta().reader())
        .await?;
        Ok(row.is_some())
    }

    /// What version `number` added and removed.
    pub async fn version_diff(&self, normal: &str, number: i64) -> Result<VersionDiff> {
        let rows = sqlx::query(
            "SELECT vc.kind, vc.key, vc.digest, CASE WHEN vc.added_in = $2 THEN 1 ELSE 0 END FROM version_content vc \
             JOIN repositories r ON r.id = vc.repository_id \
             WHERE r.name = $1 AND (vc.added_in = $2 OR vc.removed_in = $2) ORDER BY vc.kind, vc.key",
        )
        .bind(normal)
        .bind(number)
        .fetch_all(self.meta().reader())
        .await?;
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for r in rows {
            let kind: String = r.get(0);
            let item = if kind == "tag" {
                DiffItem {
                    name: Some(r.get(1)),
                    digest: r.get(2),
                    manifest: None,
                    kind,
                }
            } else if kind == "signature" {
                DiffItem {
                    name: None,
                    digest: r.get(1),
                    manifest: Some(r.get(2)),
                    kind,
                }
            } else {
                DiffItem {
                    name: None,
                    digest: r.get(2),
                    manifest: None,
                    kind,
                }
            };
            if r.get::<i64, _>(3) != 0 {
                added.push(item);
            } else {
                removed.push(item);
            }
        }
        Ok(VersionDiff { added, removed })
    }

    /// Make a new version whose content equals version `number`'s. Only for normal
    /// repositories; an unknown version changes nothing.
    pub async fn rollback(&self, normal: &str, number: i64) -> Result<i64> {
        let mut tx = self.meta().begin_write().await?;
        let repo_id = normal_repository_id(&mut tx, normal).await?;
        let target = version_rows(&mut tx, repo_id, normal, number).await?;
        let reason = format!("rollback to version {number}");
        let created = set_content(&mut tx, repo_id, normal, target, &reason, self.version_retention()).await?;
        tx.commit().await?;
        let latest = sqlx::query("SELECT latest_version FROM repositories WHERE name = $1")
            .bind(normal)
            .fetch_one(self.meta().reader())
            .await?
            .get(0);
        Ok(created.unwrap_or(latest))
    }

    /// Whether the store holds the manifest `digest` (in any repository).
    pub async fn manifest_known(&self, digest: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM manifests WHERE digest = $1")
            .bind(digest)
            .fetch_optional(self.meta().reader())
            .await?;
        Ok(row.is_some())
    }

    /// A repository's current tags and the digests they point to.
    pub async fn tag_map(&self, repo: &str) -> Result<BTreeMap<String, String>> {
        let rows = sqlx::query(
            "SELECT t.name, t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = $1",
        )
        .bind(repo)
        .fetch_all(self.meta().reader())
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
