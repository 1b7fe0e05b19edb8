//! Upload sessions: one row per session, with the bytes received so far (and, when
//! staged in object storage, the chunk objects holding them).

use super::{MetaResult, MetaStore, UploadRow, now_ms};
use sqlx::Row;

impl MetaStore {
    pub async fn create_upload(&self, id: &str, repo: &str) -> MetaResult<()> {
        let now = now_ms();
        sqlx::query("INSERT INTO uploads (id, repository, size, created_at, updated_at) VALUES ($1, $2, 0, $3, $3)")
            .bind(id)
            .bind(repo)
            .bind(now)
            .execute(&self.db.write)
            .await?;
        Ok(())
    }

    /// Upload sessions open in `repo`.
    pub async fn open_uploads(&self, repo: &str) -> MetaResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM uploads WHERE repository = $1")
            .bind(repo)
            .fetch_one(&self.db.read)
            .await?)
    }

    pub async fn upload(&self, id: &str) -> MetaResult<Option<UploadRow>> {
        // Read through the writer's snapshot-free path would serialise reads behind writes;
        // the read pool sees every committed size, which is all a session needs.
        let row = sqlx::query("SELECT repository, size, chunks FROM uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.read)
            .await?;
        Ok(row.map(|r| UploadRow {
            repository: r.get(0),
            size: r.get::<i64, _>(1) as u64,
            chunks: r
                .get::<Option<String>, _>(2)
                .and_then(|c| serde_json::from_str(&c).ok())
                .unwrap_or_default(),
        }))
    }

    /// Record that a session staged in object storage grew from `from` to `to` bytes with
    /// the chunk objects `chunks`; false when the session is no longer at `from` (another
    /// replica appended first, or it was discarded), and nothing changed.
    pub async fn advance_upload(&self, id: &str, from: u64, to: u64, chunks: &[String]) -> MetaResult<bool> {
        let r = sqlx::query("UPDATE uploads SET size = $1, chunks = $2, updated_at = $3 WHERE id = $4 AND size = $5")
            .bind(to as i64)
            .bind(serde_json::to_string(chunks).unwrap_or_default())
            .bind(now_ms())
            .bind(id)
            .bind(from as i64)
            .execute(&self.db.write)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn set_upload_size(&self, id: &str, size: u64) -> MetaResult<()> {
        sqlx::query("UPDATE uploads SET size = $1, updated_at = $2 WHERE id = $3")
            .bind(size as i64)
            .bind(now_ms())
            .bind(id)
            .execute(&self.db.write)
            .await?;
        Ok(())
    }

    pub async fn delete_upload(&self, id: &str) -> MetaResult<bool> {
        let r = sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&self.db.write)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Upload sessions not touched since `cutoff_ms`.
    pub async fn stale_uploads(&self, cutoff_ms: i64) -> MetaResult<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM uploads WHERE updated_at < $1")
            .bind(cutoff_ms)
            .fetch_all(&self.db.read)
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }
}

/// Add the end of upload session `id` (its blob committed in the same transaction).
pub(crate) fn add_delete_upload(batch: &mut super::Batch, id: &str) {
    batch.add("DELETE FROM uploads WHERE id = $1", vec![id.into()]);
}
