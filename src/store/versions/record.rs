//! Recording a change of a normal repository as its next version: what changed (a
//! `Delta`), the version's row and summary, its content rows, the "content changed"
//! event edges follow, and pruning past the retention.

use super::{Counts, Summary};
use crate::store::meta::{Arg, Batch, Done, MetaResult, WriteTx, now_ms};
use serde_json::json;
use sqlx::Row;

/// What one change did to a normal repository's content.
#[derive(Default)]
pub(super) struct Delta {
    /// (kind, key, digest)
    pub(super) added: Vec<(&'static str, String, String)>,
    pub(super) removed: Vec<(&'static str, String, String)>,
}

impl Delta {
    pub(super) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    fn counts(rows: &[(&'static str, String, String)]) -> Counts {
        let n = |k: &str| rows.iter().filter(|r| r.0 == k).count() as i64;
        Counts {
            tags: n("tag"),
            manifests: n("manifest"),
            blobs: n("blob"),
            signatures: n("signature"),
        }
    }
}

/// The latest version of a repository and what it held: where the next version starts.
pub(super) struct Latest {
    number: i64,
    present: Counts,
}

/// Add to `batch` the read `Latest::from` understands.
pub(super) fn read_latest(batch: &mut Batch, repo_id: i64) -> usize {
    batch.add(
        "SELECT r.latest_version, v.summary FROM repositories r \
         LEFT JOIN repository_versions v ON v.repository_id = r.id AND v.number = r.latest_version WHERE r.id = $1",
        vec![repo_id.into()],
    )
}

impl Latest {
    pub(super) fn from(done: &Done) -> MetaResult<Self> {
        let row = done.rows.first().ok_or(sqlx::Error::RowNotFound)?;
        Ok(Self {
            number: row.get(0),
            present: row
                .get::<Option<&str>, _>(1)
                .and_then(|s| serde_json::from_str::<Summary>(s).ok())
                .map(|s| s.present)
                .unwrap_or_default(),
        })
    }
}

/// Record `delta` as the normal repository's next version (nothing when it is empty),
/// with a "content changed" event for edge syncs. `latest`: the latest version when
/// the caller read it already (in the same transaction).
pub(super) async fn record_version(
    tx: &mut WriteTx,
    latest: Option<Latest>,
    repo_id: i64,
    name: &str,
    reason: &str,
    delta: &Delta,
    keep: u64,
) -> MetaResult<Option<i64>> {
    if delta.is_empty() {
        return Ok(None);
    }
    let latest = match latest {
        Some(l) => l,
        None => {
            let mut batch = Batch::default();
            let read = read_latest(&mut batch, repo_id);
            Latest::from(&batch.run(tx).await?[read])?
        }
    };
    let (latest, previous) = (latest.number, latest.present);
    let next = latest + 1;
    // Everything below needs no answer: one batch.
    let mut batch = Batch::default();
    for (kind, key, digest) in &delta.removed {
        batch.add(
            "UPDATE version_content SET removed_in = $1 \
             WHERE repository_id = $2 AND kind = $3 AND key = $4 AND digest = $5 AND removed_in IS NULL",
            vec![next.into(), repo_id.into(), (*kind).into(), key.into(), digest.into()],
        );
    }
    // Many rows at once: an image of 50 layers is one statement, not 50.
    for chunk in delta.added.chunks(200) {
        let mut sql = String::from("INSERT INTO version_content (repository_id, kind, key, digest, added_in) VALUES ");
        let mut args: Vec<Arg> = vec![repo_id.into(), next.into()];
        for (i, (kind, key, digest)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let p = 3 + i * 3;
            sql.push_str(&format!("($1, ${p}, ${}, ${}, $2)", p + 1, p + 2));
            args.extend([(*kind).into(), key.into(), digest.into()]);
        }
        batch.add(sql, args);
    }
    let (added, removed) = (Delta::counts(&delta.added), Delta::counts(&delta.removed));
    let summary = Summary {
        added,
        removed,
        present: Counts {
            tags: previous.tags + added.tags - removed.tags,
            manifests: previous.manifests + added.manifests - removed.manifests,
            blobs: previous.blobs + added.blobs - removed.blobs,
            signatures: previous.signatures + added.signatures - removed.signatures,
        },
    };
    let now = now_ms();
    batch.add(
        "INSERT INTO repository_versions (repository_id, number, created_at, reason, summary) VALUES ($1, $2, $3, $4, $5)",
        vec![repo_id.into(), next.into(), now.into(), reason.into(), json!(summary).to_string().into()],
    );
    batch.add(
        "UPDATE repositories SET latest_version = $1 WHERE id = $2",
        vec![next.into(), repo_id.into()],
    );
    batch.add(
        "INSERT INTO content_events (repository, version, created_at) VALUES ($1, $2, $3)",
        vec![name.into(), next.into(), now.into()],
    );
    if keep > 0 && next > keep as i64 {
        prune_versions(&mut batch, repo_id, next - keep as i64 + 1);
    }
    batch.run(tx).await?;
    Ok(Some(next))
}

/// Drop versions older than `oldest_kept`, and the content rows no kept version has
/// (a row is in version N when added_in <= N < removed_in).
fn prune_versions(batch: &mut Batch, repo_id: i64, oldest_kept: i64) {
    batch.add(
        "DELETE FROM repository_versions WHERE repository_id = $1 AND number < $2",
        vec![repo_id.into(), oldest_kept.into()],
    );
    batch.add(
        "DELETE FROM version_content WHERE repository_id = $1 AND removed_in IS NOT NULL AND removed_in <= $2",
        vec![repo_id.into(), oldest_kept.into()],
    );
}
