//! Deleting a repository as Harbor and Pulp do: the normal repository, its versions, the
//! push repositories that feed it, the names distributing it and its README go in one
//! transaction; manifests and blobs nothing else references are left to GC. A
//! content-changed event per name served makes edges empty their copies.

use super::*;

/// What deleting a repository removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeletedRepository {
    pub repository: String,
    /// Push repositories removed with it.
    pub push_repositories: Vec<String>,
    /// Names that served it and no longer exist.
    pub distributions: Vec<String>,
    pub versions: i64,
    pub tags: i64,
    pub manifests: i64,
    /// Post-push copies still queued for it, cancelled.
    pub cancelled_jobs: u64,
}

impl Registry {
    /// Delete normal repository `normal` and the push repositories paired with it (and
    /// `also_push`, the push repository pushes to its public name go to, if it exists).
    /// NAME_UNKNOWN when there is no such normal repository.
    pub async fn delete_repository(&self, normal: &str, also_push: Option<&str>) -> Result<DeletedRepository> {
        let mut tx = self.meta().begin_write().await?;
        let repo_id = normal_repository_id(&mut tx, normal).await?;
        let mut removed = DeletedRepository {
            repository: normal.to_owned(),
            ..Default::default()
        };
        let mut ids = vec![repo_id];
        let pushes = sqlx::query("SELECT id, name FROM repositories WHERE normal_id = $1")
            .bind(repo_id)
            .fetch_all(tx.conn())
            .await?;
        for r in pushes {
            ids.push(r.get(0));
            removed.push_repositories.push(r.get(1));
        }
        if let Some(push) = also_push
            && !removed.push_repositories.iter().any(|p| p == push)
            && let Some(id) = tx.repository_id(push).await?
        {
            ids.push(id);
            removed.push_repositories.push(push.to_owned());
        }
        removed.versions = count(
            &mut tx,
            "SELECT COUNT(*) FROM repository_versions WHERE repository_id = $1",
            repo_id,
        )
        .await?;
        removed.tags = count(&mut tx, "SELECT COUNT(*) FROM tags WHERE repository_id = $1", repo_id).await?;
        removed.manifests = count(
            &mut tx,
            "SELECT COUNT(*) FROM repository_manifests WHERE repository_id = $1",
            repo_id,
        )
        .await?;

        let served = sqlx::query("SELECT name FROM distributions WHERE repository = $1")
            .bind(normal)
            .fetch_all(tx.conn())
            .await?;
        removed.distributions = served.into_iter().map(|r| r.get(0)).collect();
        sqlx::query("DELETE FROM distributions WHERE repository = $1")
            .bind(normal)
            .execute(tx.conn())
            .await?;
        sqlx::query("DELETE FROM repository_readmes WHERE repository = $1")
            .bind(normal)
            .execute(tx.conn())
            .await?;
        removed.cancelled_jobs = cancel_post_push_jobs(&mut tx, repo_id).await?;
        // Push repositories first: they point at the normal one.
        for id in ids.iter().rev() {
            sqlx::query("DELETE FROM repositories WHERE id = $1")
                .bind(id)
                .execute(tx.conn())
                .await?;
        }
        // Version 0 (no content) for each name: an edge that syncs it finds it gone.
        let now = now_ms();
        let mut announced: BTreeSet<&str> = removed.distributions.iter().map(String::as_str).collect();
        announced.insert(normal);
        for name in announced {
            sqlx::query("INSERT INTO content_events (repository, version, created_at) VALUES ($1, 0, $2)")
                .bind(name)
                .bind(now)
                .execute(tx.conn())
                .await?;
        }
        tx.commit().await?;
        self.meta().forget_repository_ids();
        Ok(removed)
    }
}

async fn count(tx: &mut WriteTx, sql: &'static str, repo_id: i64) -> MetaResult<i64> {
    Ok(sqlx::query_scalar(sql).bind(repo_id).fetch_one(tx.conn()).await?)
}

/// Mark the queued post-push copies into `normal_id` done: there is nothing left to copy
/// them into.
async fn cancel_post_push_jobs(tx: &mut WriteTx, normal_id: i64) -> MetaResult<u64> {
    let rows = sqlx::query("SELECT id, payload FROM jobs WHERE kind = $1 AND state = 'queued'")
        .bind(POST_PUSH_JOB)
        .fetch_all(tx.conn())
        .await?;
    let mut cancelled = 0;
    for r in rows {
        let payload: String = r.get(1);
        let targets_it = serde_json::from_str::<PostPushJob>(&payload).is_ok_and(|j| j.normal_id == normal_id);
        if targets_it {
            sqlx::query(
                "UPDATE jobs SET state = 'done', last_error = 'repository deleted', updated_at = $1 WHERE id = $2",
            )
            .bind(now_ms())
            .bind(r.get::<i64, _>(0))
            .execute(tx.conn())
            .await?;
            cancelled += 1;
        }
    }
    Ok(cancelled)
}
