//! Normal repositories as listings show them (the web console, the admin API): one
//! query for a page, whatever the number of tags.

use super::*;

/// A normal repository's summary.
#[derive(Debug, Clone, Serialize)]
pub struct RepositorySummary {
    /// The backend name (`org/product/name`).
    pub name: String,
    pub latest_version: i64,
    pub tags: i64,
    /// Bytes of the blobs its current content holds.
    pub size: i64,
    /// When its latest version was made (ms since the epoch); `None` before any.
    pub changed_at: Option<i64>,
}

/// `%` and `_` taken literally in a LIKE pattern (escape character `\`).
fn like_literal(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

impl Registry {
    /// The normal repositories whose name starts with `prefix` and contains `query`,
    /// by name, after `after` (a page's last name), at most `limit`.
    pub async fn normal_repositories(
        &self,
        prefix: &str,
        query: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepositorySummary>> {
        let pattern = format!("{}%{}%", like_literal(prefix), like_literal(query.unwrap_or_default()));
        let rows = sqlx::query(
            "SELECT r.name, r.latest_version, \
               (SELECT COUNT(*) FROM tags t WHERE t.repository_id = r.id), \
               (SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM repository_blobs rb \
                JOIN blobs b ON b.digest = rb.digest \
                WHERE rb.repository_id = r.id), \
               (SELECT v.created_at FROM repository_versions v WHERE v.repository_id = r.id \
                AND v.number = r.latest_version) \
             FROM repositories r WHERE r.kind = $1 AND r.name LIKE $2 ESCAPE '\\' AND r.name > $4 \
             ORDER BY r.name LIMIT $3",
        )
        .bind(KIND_NORMAL)
        .bind(pattern)
        .bind(i64::from(limit))
        .bind(after.unwrap_or_default())
        .fetch_all(self.meta().reader())
        .await
        .map_err(super::super::meta::MetaError::from)?;
        Ok(rows
            .into_iter()
            .map(|r| RepositorySummary {
                name: r.get(0),
                latest_version: r.get(1),
                tags: r.get(2),
                size: r.get(3),
                changed_at: r.get(4),
            })
            .collect())
    }
}
