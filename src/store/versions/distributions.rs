//! Distributions: public names served from a normal repository's latest version or
//! from a pinned one.

use super::*;

/// A public name and where its pulls are served from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Distribution {
    pub name: String,
    /// The normal repository it distributes.
    pub repository: String,
    /// The pinned version; `None` follows the latest.
    pub version: Option<i64>,
    #[serde(skip)]
    pub served_from: String,
    pub updated_at: i64,
}

pub(super) fn distribution_row(r: sqlx::any::AnyRow) -> Distribution {
    Distribution {
        name: r.get(0),
        repository: r.get(1),
        version: r.get(2),
        served_from: r.get(3),
        updated_at: r.get(4),
    }
}

impl Registry {
    /// A public name's distribution, if any.
    pub async fn distribution(&self, name: &str) -> Result<Option<Distribution>> {
        let row =
            sqlx::query("SELECT name, repository, version, served_from, updated_at FROM distributions WHERE name = $1")
                .bind(name)
                .fetch_optional(self.meta().reader())
                .await?;
        Ok(row.map(distribution_row))
    }

    /// Distributions whose names start with `prefix`.
    pub async fn distributions(&self, prefix: &str) -> Result<Vec<Distribution>> {
        let rows = sqlx::query(
            "SELECT name, repository, version, served_from, updated_at FROM distributions \
             WHERE substr(name, 1, length($1)) = $1 ORDER BY name",
        )
        .bind(prefix)
        .fetch_all(self.meta().reader())
        .await?;
        Ok(rows.into_iter().map(distribution_row).collect())
    }

    /// Serve `name` from the normal repository `repository`: its latest version
    /// (`version: None`), or version `n`, whose content is materialised into a hidden
    /// repository so that later versions (and retention) leave it untouched.
    pub async fn set_distribution(&self, name: &str, repository: &str, version: Option<i64>) -> Result<Distribution> {
        let mut tx = self.meta().begin_write().await?;
        let repo_id = normal_repository_id(&mut tx, repository).await?;
        let served_from = match version {
            None => repository.to_owned(),
            Some(n) => {
                let pinned = format!("{name}/pinned");
                let content = version_rows(&mut tx, repo_id, repository, n).await?;
                let pinned_id = tx.ensure_repository(&pinned).await?;
                replace_content(&mut tx, pinned_id, &content).await?;
                pinned
            }
        };
        let now = now_ms();
        sqlx::query(
            "INSERT INTO distributions (name, repository, version, served_from, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name) DO UPDATE SET repository = excluded.repository, \
             version = excluded.version, served_from = excluded.served_from, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(repository)
        .bind(version)
        .bind(&served_from)
        .bind(now)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(Distribution {
            name: name.to_owned(),
            repository: repository.to_owned(),
            version,
            served_from,
            updated_at: now,
        })
    }

    /// Stop serving `name`; whether it was a distribution.
    pub async fn delete_distribution(&self, name: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM distributions WHERE name = $1")
            .bind(name)
            .execute(self.meta().writer())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
