//! Repositories' READMEs: Markdown text kept beside the content (not versioned with it),
//! edited by those who may push.

use super::Registry;
use super::meta::{MetaError, now_ms};
use crate::error::{Error, ErrorCode, Result};
use serde::Serialize;
use sqlx::Row;

/// The largest README kept.
pub const MAX_README_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Readme {
    pub content: String,
    pub updated_by: String,
    pub updated_at: i64,
}

impl Registry {
    /// The README of normal repository `normal`, if it has one.
    pub async fn readme(&self, normal: &str) -> Result<Option<Readme>> {
        let row = sqlx::query("SELECT content, updated_by, updated_at FROM repository_readmes WHERE repository = $1")
            .bind(normal)
            .fetch_optional(self.meta().reader())
            .await
            .map_err(MetaError::from)?;
        Ok(row.map(|r| Readme {
            content: r.get(0),
            updated_by: r.get(1),
            updated_at: r.get(2),
        }))
    }

    /// Replace the README of `normal` (empty content removes it).
    pub async fn set_readme(&self, normal: &str, content: &str, by: &str) -> Result<()> {
        if content.len() > MAX_README_BYTES {
            return Err(Error::new(ErrorCode::InvalidRequest, "readme: larger than 64 KiB"));
        }
        let mut tx = self.meta().begin_write().await?;
        sqlx::query("DELETE FROM repository_readmes WHERE repository = $1")
            .bind(normal)
            .execute(tx.conn())
            .await
            .map_err(MetaError::from)?;
        if !content.trim().is_empty() {
            sqlx::query(
                "INSERT INTO repository_readmes (repository, content, updated_by, updated_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(normal)
            .bind(content)
            .bind(by)
            .bind(now_ms())
            .execute(tx.conn())
            .await
            .map_err(MetaError::from)?;
        }
        tx.commit().await?;
        Ok(())
    }
}
