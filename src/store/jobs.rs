//! The job runner: executes the outbox (`jobs` rows written in the transaction of the
//! change that caused them) at least once, with retries and backoff.
//!
//! A job is claimed by taking a lease (a short write transaction), then executed; a
//! handler's effects and the job's `done` mark commit together, so a crash at any point
//! leaves the job either undone (its lease runs out and it runs again) or done, never
//! half-done. The manifest PUT that caused a post-push job runs it right away and waits
//! (read-your-writes); the background loop picks up whatever is left (after a crash, a
//! failure, or while another replica held the lease).

use super::Registry;
use super::meta::{MetaError, now_ms};
use super::versions::{POST_PUSH_JOB, PostPushJob, apply_change};
use serde::Serialize;
use sqlx::Row;
use std::time::Duration;

/// How long a claimed job is reserved for its runner.
const LEASE_MS: i64 = 60_000;
/// After this many failed attempts a job is marked failed and left for an operator.
const MAX_ATTEMPTS: i64 = 10;
/// How often the background loop looks for runnable jobs when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobInfo {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("bad job payload: {0}")]
    Payload(String),
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        Self::Meta(e.into())
    }
}

fn backoff_ms(attempts: i64) -> i64 {
    1000 * (1i64 << attempts.clamp(0, 8))
}

impl Registry {
    /// Run job `id` now if nobody else holds it; if another runner does, wait until it
    /// is no longer queued. Errors are recorded on the job (it is retried later), never
    /// returned: the change that caused the job has succeeded either way.
    pub async fn run_job_now(&self, id: i64) {
        match self.claim(id).await {
            Ok(Some((kind, payload))) => self.execute(id, &kind, &payload).await,
            Ok(None) => {
                // Leased elsewhere: wait (bounded by the lease) for it to finish.
                let deadline = now_ms() + LEASE_MS;
                while now_ms() < deadline {
                    match self.job_state(id).await {
                        Ok(Some((state, lease))) if state == "queued" && lease > now_ms() => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        _ => return,
                    }
                }
            }
            Err(e) => tracing::warn!(job = id, error = %e, "claiming a job failed"),
        }
    }

    async fn job_state(&self, id: i64) -> Result<Option<(String, i64)>, sqlx::Error> {
        let row = sqlx::query("SELECT state, lease_until FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.meta().reader())
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Take the lease of a runnable job: (kind, payload), or `None` if it is not runnable.
    async fn claim(&self, id: i64) -> Result<Option<(String, String)>, JobError> {
        let now = now_ms();
        let mut tx = self.meta().begin_write().await?;
        let row = sqlx::query(
            "UPDATE jobs SET lease_until = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id = $3 AND state = 'queued' AND lease_until < $2 AND run_after <= $2 \
             RETURNING kind, payload",
        )
        .bind(now + LEASE_MS)
        .bind(now)
        .bind(id)
        .fetch_optional(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    async fn execute(&self, id: i64, kind: &str, payload: &str) {
        let result = match kind {
            POST_PUSH_JOB => self.post_push(id, payload).await,
            other => Err(JobError::Payload(format!("unknown job kind {other:?}"))),
        };
        if let Err(e) = result {
            tracing::warn!(job = id, kind, error = %e, "job failed; will retry");
            let now = now_ms();
            let r = sqlx::query(
                "UPDATE jobs SET lease_until = 0, last_error = $1, updated_at = $2, \
                 run_after = $2 + $3 * (1 << MIN(attempts, 8)) / 2, \
                 state = CASE WHEN attempts >= $4 THEN 'failed' ELSE state END \
                 WHERE id = $5",
            )
            .bind(e.to_string())
            .bind(now)
            .bind(backoff_ms(1))
            .bind(MAX_ATTEMPTS)
            .bind(id)
            .execute(self.meta().writer())
            .await;
            if let Err(e) = r {
                tracing::warn!(job = id, error = %e, "recording a job failure failed");
            }
        }
    }

    /// Copy the pushed change into the normal repository as a new version, and mark the
    /// job done, in one transaction.
    async fn post_push(&self, id: i64, payload: &str) -> Result<(), JobError> {
        let job: PostPushJob = serde_json::from_str(payload).map_err(|e| JobError::Payload(e.to_string()))?;
        let mut tx = self.meta().begin_write().await?;
        // Another runner may have finished it meanwhile (leases only avoid wasted work;
        // correctness comes from this check and the single transaction below).
        let state: Option<String> = sqlx::query("SELECT state FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(tx.conn())
            .await?
            .map(|r| r.get(0));
        if state.as_deref() != Some("queued") {
            return Ok(());
        }
        let version = apply_change(&mut tx, &job.normal_repository, &job.change).await?;
        sqlx::query("UPDATE jobs SET state = 'done', updated_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(tx.conn())
            .await?;
        crate::fault::point("post_push_before_commit");
        tx.commit().await?;
        if let Some(v) = version {
            tracing::info!(repository = %job.normal_repository, version = v, "new repository version");
        }
        Ok(())
    }

    /// Run every runnable job once; returns how many ran.
    pub async fn run_pending_jobs(&self) -> usize {
        let now = now_ms();
        let ids: Vec<i64> = match sqlx::query(
            "SELECT id FROM jobs WHERE state = 'queued' AND run_after <= $1 AND lease_until < $1 ORDER BY id LIMIT 64",
        )
        .bind(now)
        .fetch_all(self.meta().reader())
        .await
        {
            Ok(rows) => rows.into_iter().map(|r| r.get(0)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "listing jobs failed");
                return 0;
            }
        };
        let mut ran = 0;
        for id in ids {
            if let Ok(Some((kind, payload))) = self.claim(id).await {
                self.execute(id, &kind, &payload).await;
                ran += 1;
            }
        }
        ran
    }

    /// Jobs, newest first, optionally only those in `state`.
    pub async fn jobs(&self, state: Option<&str>, limit: u32) -> Result<Vec<JobInfo>, MetaError> {
        let rows = sqlx::query(
            "SELECT id, kind, payload, state, attempts, last_error, created_at, updated_at FROM jobs \
             WHERE ($1 IS NULL OR state = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(state)
        .bind(i64::from(limit))
        .fetch_all(self.meta().reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| JobInfo {
                id: r.get(0),
                kind: r.get(1),
                payload: serde_json::from_str(r.get::<&str, _>(2)).unwrap_or_default(),
                state: r.get(3),
                attempts: r.get(4),
                last_error: r.get(5),
                created_at: r.get(6),
                updated_at: r.get(7),
            })
            .collect())
    }

    /// "Content changed" events after `after` (for edge syncs), oldest first.
    pub async fn content_events(&self, after: i64, limit: u32) -> Result<Vec<serde_json::Value>, MetaError> {
        let rows = sqlx::query(
            "SELECT id, repository, version, created_at FROM content_events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.meta().reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.get::<i64, _>(0),
                    "repository": r.get::<String, _>(1),
                    "version": r.get::<i64, _>(2),
                    "created_at": r.get::<i64, _>(3),
                })
            })
            .collect())
    }
}

/// The background loop: runs whatever is runnable, every second. Leases left by a
/// runner that died are released first (running a job twice is harmless, waiting for a
/// dead runner's lease is not).
pub async fn run_forever(registry: Registry) {
    let released = sqlx::query("UPDATE jobs SET lease_until = 0 WHERE state = 'queued' AND lease_until > 0")
        .execute(registry.meta().writer())
        .await;
    match released {
        Ok(r) if r.rows_affected() > 0 => {
            tracing::info!(jobs = r.rows_affected(), "released leases of unfinished jobs")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "releasing job leases failed"),
    }
    loop {
        registry.run_pending_jobs().await;
        tokio::time::sleep(POLL).await;
    }
}
