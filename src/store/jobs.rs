//! The job runner: executes the outbox (`jobs` rows written in the transaction of the
//! change that caused them) at least once, with retries and backoff.
//!
//! A job runs inside one write transaction that first re-checks that it is still
//! queued; its effects and its `done` mark commit together. Write transactions are
//! serialised, so two runners (the request that caused the job, the background loop,
//! another replica) never both apply it, and a crash at any point leaves the job either
//! undone (it runs again) or done, never half-done. A manifest PUT runs its post-push
//! copy inside its own transaction (recorded as a job already done); only when that
//! copy fails is the job queued instead, run right away (read-your-writes), and the
//! background loop picks up whatever is left (after a crash or a failure, with backoff).

use super::Registry;
use super::meta::{Batch, MetaError, WriteTx, now_ms};
use super::versions::{POST_PUSH_JOB, PostPushJob, apply_change, apply_change_along};
use serde::Serialize;
use sqlx::Row;
use std::time::Duration;

/// After this many failed attempts a job is marked failed and left for an operator.
const MAX_ATTEMPTS: i64 = 10;
/// How often the background loop looks for runnable jobs when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct JobInfo {
    pub id: i64,
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// What a long job (a sync) reports while it runs: counts done and total.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<serde_json::Value>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// "The content of a normal repository changed": what edges follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ContentEvent {
    pub id: i64,
    pub repository: String,
    pub version: i64,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("bad job payload: {0}")]
    Payload(String),
    #[error("{0}")]
    Store(crate::error::Error),
}

impl From<crate::error::Error> for JobError {
    fn from(e: crate::error::Error) -> Self {
        Self::Store(e)
    }
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
    /// Run post-push job `id` now, with its content already at hand (the request that
    /// enqueued it). Errors are recorded on the job, which is retried later, never
    /// returned: the push that caused it has succeeded.
    /// Returns the version it made, if any.
    pub(crate) async fn run_post_push_now(&self, id: i64, job: &PostPushJob) -> Option<i64> {
        match self.post_push(id, job).await {
            Ok(v) => v,
            Err(e) => {
                self.record_failure(id, POST_PUSH_JOB, &e).await;
                None
            }
        }
    }

    async fn execute(&self, id: i64, kind: &str, payload: &str) {
        let result = match kind {
            POST_PUSH_JOB => match serde_json::from_str::<PostPushJob>(payload) {
                Ok(job) => self.post_push(id, &job).await.map(|_| ()),
                Err(e) => Err(JobError::Payload(e.to_string())),
            },
            other => Err(JobError::Payload(format!("unknown job kind {other:?}"))),
        };
        if let Err(e) = result {
            self.record_failure(id, kind, &e).await;
        }
    }

    async fn record_failure(&self, id: i64, kind: &str, e: &JobError) {
        {
            tracing::warn!(job = id, kind, error = %e, "job failed; will retry");
            let now = now_ms();
            let r = sqlx::query(
                "UPDATE jobs SET attempts = attempts + 1, last_error = $1, updated_at = $2, \
                 run_after = $2 + $3 * (CAST(1 AS BIGINT) << CAST(CASE WHEN attempts < 8 THEN attempts ELSE 8 END AS INTEGER)), \
                 state = CASE WHEN attempts + 1 >= $4 THEN 'failed' ELSE state END \
                 WHERE id = $5",
            )
            .bind(e.to_string())
            .bind(now)
            .bind(backoff_ms(0))
            .bind(MAX_ATTEMPTS)
            .bind(id)
            .execute(self.meta().writer())
            .await;
            if let Err(e) = r {
                tracing::warn!(job = id, error = %e, "recording a job failure failed");
            }
        }
    }

    /// The post-push copy inside the push's own transaction `tx`, recorded as a job
    /// already done: push and copy commit together or not at all. Returns the job's id
    /// and the version made; an error means the copy failed, and the caller rolls the
    /// whole push back and makes it again with the job queued instead.
    /// `along`: the push's own writes, sent with the copy's first statements.
    pub(crate) async fn post_push_in(
        &self,
        tx: &mut WriteTx,
        job: &PostPushJob,
        mut along: Batch,
    ) -> Result<(i64, Option<i64>), crate::error::Error> {
        if crate::fault::fails("post_push_inline") {
            return Err(crate::error::Error::new(
                crate::error::ErrorCode::Unavailable,
                "injected failure of the post-push copy",
            ));
        }
        let started = std::time::Instant::now();
        let record = along.add(
            INSERT_JOB,
            vec![
                POST_PUSH_JOB.into(),
                serde_json::json!(job).to_string().into(),
                now_ms().into(),
                "done".into(),
            ],
        );
        let (done, version) = apply_change_along(tx, job, self, along).await?;
        let id = done
            .get(record)
            .and_then(|d| d.rows.first())
            .map(|r| r.get(0))
            .ok_or_else(|| MetaError::from(sqlx::Error::RowNotFound))?;
        if let Some(m) = self.metrics() {
            m.job_finished(POST_PUSH_JOB, started.elapsed().as_secs_f64(), false);
        }
        Ok((id, version))
    }

    /// Copy the pushed change into the normal repository as a new version, and mark the
    /// job done, in one transaction.
    async fn post_push(&self, id: i64, job: &PostPushJob) -> Result<Option<i64>, JobError> {
        let started = std::time::Instant::now();
        let result = self.post_push_once(id, job).await;
        if let Some(m) = self.metrics() {
            m.job_finished(POST_PUSH_JOB, started.elapsed().as_secs_f64(), result.is_err());
        }
        result
    }

    async fn post_push_once(&self, id: i64, job: &PostPushJob) -> Result<Option<i64>, JobError> {
        let mut tx = self.meta().begin_write().await?;
        // Marked done first, in the same transaction: if another runner finished it
        // meanwhile, nothing is updated and this one stops (rolling back).
        let claimed = sqlx::query("UPDATE jobs SET state = 'done', updated_at = $1 WHERE id = $2 AND state = 'queued'")
            .bind(now_ms())
            .bind(id)
            .execute(tx.conn())
            .await?;
        if claimed.rows_affected() == 0 {
            return Ok(None);
        }
        let version = apply_change(&mut tx, job, self).await?;
        crate::fault::point("post_push_before_commit");
        tx.commit().await?;
        if let Some(v) = version {
            tracing::info!(repository = %job.normal_repository, version = v, "new repository version");
        }
        Ok(version)
    }

    /// Run every runnable job once; returns how many there were.
    pub async fn run_pending_jobs(&self) -> usize {
        let rows = sqlx::query(
            "SELECT id, kind, payload FROM jobs WHERE state = 'queued' AND kind = $2 AND run_after <= $1 ORDER BY id LIMIT 64",
        )
        .bind(now_ms())
        .bind(POST_PUSH_JOB)
        .fetch_all(self.meta().reader())
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "listing jobs failed");
                return 0;
            }
        };
        let n = rows.len();
        for r in rows {
            self.execute(r.get(0), r.get(1), r.get(2)).await;
        }
        n
    }

    /// Jobs, newest first, optionally only those in `state`.
    pub async fn jobs(&self, state: Option<&str>, limit: u32) -> Result<Vec<JobInfo>, MetaError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{JOB_COLUMNS} WHERE ($1 IS NULL OR state = $1) ORDER BY id DESC LIMIT $2"
        )))
        .bind(state)
        .bind(i64::from(limit))
        .fetch_all(self.meta().reader())
        .await?;
        Ok(rows.into_iter().map(job_info).collect())
    }

    pub async fn job(&self, id: i64) -> Result<Option<JobInfo>, MetaError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{JOB_COLUMNS} WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.meta().reader())
            .await?;
        Ok(row.map(job_info))
    }

    /// "Content changed" events after `after` (for edge syncs), oldest first.
    pub async fn content_events(&self, after: i64, limit: u32) -> Result<Vec<ContentEvent>, MetaError> {
        let rows = sqlx::query(
            "SELECT id, repository, version, created_at FROM content_events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.meta().reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ContentEvent {
                id: r.get(0),
                repository: r.get(1),
                version: r.get(2),
                created_at: r.get(3),
            })
            .collect())
    }
}

const JOB_COLUMNS: &str =
    "SELECT id, kind, payload, state, attempts, last_error, progress, created_at, updated_at FROM jobs";

fn job_info(r: sqlx::any::AnyRow) -> JobInfo {
    JobInfo {
        id: r.get(0),
        kind: r.get(1),
        payload: serde_json::from_str(r.get::<&str, _>(2)).unwrap_or_default(),
        state: r.get(3),
        attempts: r.get(4),
        last_error: r.get(5),
        progress: r.get::<Option<&str>, _>(6).and_then(|p| serde_json::from_str(p).ok()),
        created_at: r.get(7),
        updated_at: r.get(8),
    }
}

/// Insert a queued job in the caller's transaction; returns its id.
pub(crate) async fn insert_job(conn: &mut sqlx::AnyConnection, kind: &str, payload: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(INSERT_JOB)
        .bind(kind)
        .bind(payload)
        .bind(now_ms())
        .bind("queued")
        .fetch_one(conn)
        .await
}

/// A job row: kind, payload, time, state; answers its id.
const INSERT_JOB: &str = "INSERT INTO jobs (kind, payload, state, attempts, run_after, created_at, updated_at) \
     VALUES ($1, $2, $4, 0, $3, $3, $3) RETURNING id";

/// The background loop: runs whatever is runnable, every second.
pub async fn run_forever(registry: Registry) {
    loop {
        registry.run_pending_jobs().await;
        tokio::time::sleep(POLL).await;
    }
}
