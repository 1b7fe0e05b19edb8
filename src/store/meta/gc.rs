//! Garbage collection's SQL (see `store::gc` for the protocol): candidates are read
//! without the write lock, then each is dropped or claimed under it by a statement that
//! checks the same condition again.

use super::{MetaResult, MetaStore, WriteTx};
use sqlx::Row;

impl MetaStore {
    /// Up to `limit` blob links that look unused (see `WriteTx::drop_blob_link_if_unused`).
    pub async fn unused_blob_links(&self, cutoff_ms: i64, limit: i64) -> MetaResult<Vec<(i64, String)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT repository_id, digest FROM repository_blobs WHERE {UNUSED_BLOB_LINK} LIMIT $2"
        )))
        .bind(cutoff_ms)
        .bind(limit)
        .fetch_all(&self.db.read)
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Up to `limit` manifests that look unlinked.
    pub async fn unlinked_manifests(&self, cutoff_ms: i64, limit: i64) -> MetaResult<Vec<String>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT digest FROM manifests WHERE {UNLINKED_MANIFEST} LIMIT $2"
        )))
        .bind(cutoff_ms)
        .bind(limit)
        .fetch_all(&self.db.read)
        .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Up to `limit` live blobs that look unreferenced.
    pub async fn unreferenced_blobs(&self, cutoff_ms: i64, limit: i64) -> MetaResult<Vec<String>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT digest FROM blobs WHERE {UNREFERENCED_BLOB} LIMIT $2"
        )))
        .bind(cutoff_ms)
        .bind(limit)
        .fetch_all(&self.db.read)
        .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Blob rows claimed by garbage collection (invisible, bytes possibly gone).
    /// Blobs claimed for deletion, with their sizes.
    pub async fn deleting_blobs(&self, limit: i64) -> MetaResult<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT digest, size FROM blobs WHERE state = 'deleting' LIMIT $1")
            .bind(limit)
            .fetch_all(&self.db.read)
            .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

impl WriteTx {
    /// Drop the blob link if it is older than `cutoff_ms` and no manifest of its
    /// repository uses it (checked here, under the write lock).
    pub async fn drop_blob_link_if_unused(
        &mut self,
        repository_id: i64,
        digest: &str,
        cutoff_ms: i64,
    ) -> MetaResult<bool> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM repository_blobs WHERE repository_id = $2 AND digest = $3 AND {UNUSED_BLOB_LINK}"
        )))
        .bind(cutoff_ms)
        .bind(repository_id)
        .bind(digest)
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Drop the manifest if it is older than `cutoff_ms` and no repository or version
    /// holds it.
    pub async fn drop_manifest_if_unlinked(&mut self, digest: &str, cutoff_ms: i64) -> MetaResult<bool> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM manifests WHERE digest = $2 AND {UNLINKED_MANIFEST}"
        )))
        .bind(cutoff_ms)
        .bind(digest)
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Claim the blob for deletion if it is live, older than `cutoff_ms` and nothing
    /// references it.
    pub async fn claim_blob_if_unreferenced(&mut self, digest: &str, cutoff_ms: i64) -> MetaResult<bool> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE blobs SET state = 'deleting' WHERE digest = $2 AND {UNREFERENCED_BLOB}"
        )))
        .bind(cutoff_ms)
        .bind(digest)
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Whether the blob row is still claimed for deletion (not revived by an upload).
    pub async fn blob_is_deleting(&mut self, digest: &str) -> MetaResult<bool> {
        let row = sqlx::query("SELECT 1 FROM blobs WHERE digest = $1 AND state = 'deleting'")
            .bind(digest)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.is_some())
    }

    pub async fn blob_row_exists(&mut self, digest: &str) -> MetaResult<bool> {
        let row = sqlx::query("SELECT 1 FROM blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.is_some())
    }

    pub async fn delete_blob_row(&mut self, digest: &str) -> MetaResult<()> {
        sqlx::query("DELETE FROM blobs WHERE digest = $1")
            .bind(digest)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

/// Garbage, as SQL conditions on their table's row (`$1`: the grace cutoff in ms). The
/// same text selects candidates and re-checks each under the write lock.
const UNUSED_BLOB_LINK: &str = "repository_blobs.linked_at < $1 AND NOT EXISTS ( \
    SELECT 1 FROM repository_manifests rm JOIN manifest_blobs mb ON mb.manifest_digest = rm.digest \
    WHERE rm.repository_id = repository_blobs.repository_id AND mb.blob_digest = repository_blobs.digest)";
const UNLINKED_MANIFEST: &str = "manifests.created_at < $1 \
    AND NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.digest = manifests.digest) \
    AND NOT EXISTS (SELECT 1 FROM version_content vc WHERE vc.digest = manifests.digest)";
const UNREFERENCED_BLOB: &str = "blobs.state = 'live' AND blobs.created_at < $1 \
    AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = blobs.digest) \
    AND NOT EXISTS (SELECT 1 FROM manifest_blobs mb WHERE mb.blob_digest = blobs.digest) \
    AND NOT EXISTS (SELECT 1 FROM version_content vc WHERE vc.digest = blobs.digest)";
