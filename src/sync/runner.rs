//! Running long jobs (syncs) from the outbox. Unlike the post-push copy, a sync talks
//! to another server for seconds or minutes, so it cannot run inside a transaction: a
//! runner claims it (state `running` with a lease), renews the lease and reports
//! progress while it works, and marks it done or failed at the end. A runner that dies
//! leaves a lease that runs out; the job is then claimed again and, since a sync only
//! changes the repository in its last step and keeps what it already fetched, the
//! re-run completes it.

use super::Syncer;
use super::edge::EDGE_SYNC;
use super::engine::{Progress, SyncError, SyncRequest, sync_repository};
use super::proxies::NOTIFY_PROXY;
use super::remotes::SyncPolicy;
use crate::db::now_ms;
use crate::store::jobs::insert_job;
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

pub const SYNC_REMOTE: &str = "sync_remote";
/// Job kinds this runner executes.
const KINDS: [&str; 3] = [SYNC_REMOTE, NOTIFY_PROXY, EDGE_SYNC];
/// Retries of edge notifications and edge syncs back off up to this.
const MAX_BACKOFF_MS: i64 = 30_000;
/// How often new content events are looked for (edges are notified within this).
const DISPATCH_EVERY: Duration = Duration::from_millis(200);
/// A claim lasts this long unless renewed (every HEARTBEAT): how long a job of a
/// runner that died waits before another runner takes it over.
const LEASE: Duration = Duration::from_secs(10);
/// How often a running job renews its lease and writes its progress.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Jobs run at once.
const CONCURRENCY: usize = 2;

/// `Syncer::enqueue_sync_request` in the caller's transaction.
pub(super) async fn enqueue_sync_request(
    tx: &mut sqlx::AnyConnection,
    kind: &str,
    proxy: Option<&str>,
    repositories: Option<BTreeSet<String>>,
    upto_event: Option<i64>,
) -> Result<i64, sqlx::Error> {
    // Queued requests of a kind are few (one per proxy at most: they merge), so the
    // payloads are matched here rather than with engine-specific JSON SQL.
    let queued: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, payload FROM jobs WHERE kind = $1 AND state = 'queued' ORDER BY id DESC")
            .bind(kind)
            .fetch_all(&mut *tx)
            .await?;
    let waiting = queued
        .into_iter()
        .find(|(_, payload)| serde_json::from_str::<Value>(payload).is_ok_and(|p| p["proxy"].as_str() == proxy));
    let Some((id, old)) = waiting else {
        let payload = json!({ "proxy": proxy, "repositories": repositories, "upto_event": upto_event });
        return insert_job(tx, kind, &payload.to_string()).await;
    };
    let old: Value = serde_json::from_str(&old).unwrap_or_default();
    let repositories = match (old["repositories"].as_array(), repositories) {
        (Some(list), Some(mut new)) => {
            new.extend(list.iter().filter_map(|v| v.as_str().map(str::to_owned)));
            json!(new)
        }
        _ => Value::Null,
    };
    let upto_event = old["upto_event"].as_i64().max(upto_event);
    let payload = json!({ "proxy": proxy, "repositories": repositories, "upto_event": upto_event });
    sqlx::query("UPDATE jobs SET payload = $1, updated_at = $2 WHERE id = $3")
        .bind(payload.to_string())
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(id)
}

struct Claimed {
    id: i64,
    kind: String,
    payload: String,
}

impl Syncer {
    /// Queue a job unless the same one is already waiting.
    pub(super) async fn enqueue_once(&self, kind: &str, payload: &str) -> Result<i64, sqlx::Error> {
        let mut tx = self.inner.registry.meta().database().begin_write().await?;
        let waiting: Option<i64> =
            sqlx::query_scalar("SELECT id FROM jobs WHERE kind = $1 AND payload = $2 AND state = 'queued' LIMIT 1")
                .bind(kind)
                .bind(payload)
                .fetch_optional(&mut *tx)
                .await?;
        let id = match waiting {
            Some(id) => id,
            None => insert_job(&mut tx, kind, payload).await?,
        };
        tx.commit().await?;
        self.wake();
        Ok(id)
    }

    /// Queue a sync request of `kind` (for edge `proxy` on the main server, none at an
    /// edge): `repositories` (`None`: everything) up to `upto_event`. A request still
    /// waiting is extended instead, so a burst of changes makes one sync.
    pub(super) async fn enqueue_sync_request(
        &self,
        kind: &str,
        proxy: Option<&str>,
        repositories: Option<BTreeSet<String>>,
        upto_event: Option<i64>,
    ) -> Result<i64, sqlx::Error> {
        let mut tx = self.inner.registry.meta().database().begin_write().await?;
        let id = enqueue_sync_request(&mut tx, kind, proxy, repositories, upto_event).await?;
        tx.commit().await?;
        self.wake();
        Ok(id)
    }

    /// Claim the oldest runnable job: queued and due, or running with a lapsed lease.
    /// The outer condition repeats the inner one: when two replicas pick the same job at
    /// once, PostgreSQL re-checks it on the row the first claim wrote, and the second
    /// claim changes nothing (SQLite never runs the two at once).
    async fn claim(&self) -> Result<Option<Claimed>, sqlx::Error> {
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE jobs SET state = 'running', lease_until = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id = (SELECT id FROM jobs WHERE kind IN ($3, $4, $5) \
                         AND ((state = 'queued' AND run_after <= $2) OR (state = 'running' AND lease_until < $2)) \
                         ORDER BY id LIMIT 1) \
             AND ((state = 'queued' AND run_after <= $2) OR (state = 'running' AND lease_until < $2)) \
             RETURNING id, kind, payload",
        )
        .bind(now + LEASE.as_millis() as i64)
        .bind(now)
        .bind(KINDS[0])
        .bind(KINDS[1])
        .bind(KINDS[2])
        .fetch_optional(self.inner.registry.meta().writer())
        .await?;
        Ok(row.map(|r| Claimed {
            id: r.get(0),
            kind: r.get(1),
            payload: r.get(2),
        }))
    }

    /// Run one claimed job to its end, renewing its lease meanwhile.
    async fn run_claimed(&self, job: Claimed) {
        let progress = Arc::new(Progress::default());
        let heartbeat = {
            let this = self.clone();
            let progress = progress.clone();
            let id = job.id;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(HEARTBEAT);
                loop {
                    tick.tick().await;
                    let now = now_ms();
                    let _ = sqlx::query(
                        "UPDATE jobs SET lease_until = $1, progress = $2, updated_at = $3 WHERE id = $4 AND state = 'running'",
                    )
                    .bind(now + LEASE.as_millis() as i64)
                    .bind(progress.snapshot().to_string())
                    .bind(now)
                    .bind(id)
                    .execute(this.inner.registry.meta().writer())
                    .await;
                }
            })
        };
        let started = std::time::Instant::now();
        let result = self.execute(&job, &progress).await;
        heartbeat.abort();
        if let Some(m) = &self.inner.metrics {
            m.job_finished(&job.kind, started.elapsed().as_secs_f64(), result.is_err());
        }
        let now = now_ms();
        let update = match &result {
            Ok(outcome) => {
                let mut p = progress.snapshot();
                p["phase"] = "done".into();
                p["outcome"] = outcome.clone();
                sqlx::query(
                    "UPDATE jobs SET state = 'done', progress = $1, last_error = NULL, lease_until = NULL, \
                     updated_at = $2 WHERE id = $3",
                )
                .bind(p.to_string())
                .bind(now)
                .bind(job.id)
            }
            Err(e) if job.kind != SYNC_REMOTE => {
                // Edges come back: notifications and edge syncs retry, backing off.
                tracing::warn!(job = job.id, kind = %job.kind, error = %e, "job failed; will retry");
                sqlx::query(
                    "UPDATE jobs SET state = 'queued', last_error = $1, lease_until = NULL, updated_at = $2, \
                     run_after = $2 + CASE WHEN attempts >= 6 THEN $3 \
                     ELSE 500 * (CAST(1 AS BIGINT) << CAST(attempts AS INTEGER)) END WHERE id = $4",
                )
                .bind(e.to_string())
                .bind(now)
                .bind(MAX_BACKOFF_MS)
                .bind(job.id)
            }
            Err(e) => {
                tracing::warn!(job = job.id, kind = %job.kind, error = %e, "sync failed");
                // A user's sync fails visibly at once (they fix the remote and sync again).
                sqlx::query(
                    "UPDATE jobs SET state = 'failed', progress = $1, last_error = $2, lease_until = NULL, \
                     updated_at = $3 WHERE id = $4",
                )
                .bind(progress.snapshot().to_string())
                .bind(e.to_string())
                .bind(now)
                .bind(job.id)
            }
        };
        if let Err(e) = update.execute(self.inner.registry.meta().writer()).await {
            tracing::warn!(job = job.id, error = %e, "recording the end of a job failed; it will run again");
        }
    }

    async fn execute(&self, job: &Claimed, progress: &Arc<Progress>) -> Result<Value, SyncError> {
        let payload: Value = serde_json::from_str(&job.payload).unwrap_or_default();
        match job.kind.as_str() {
            SYNC_REMOTE => {
                let id = payload["remote"].as_i64().unwrap_or(-1);
                let remote = self
                    .remote_by_id(id)
                    .await
                    .map_err(|e| SyncError::Invalid(e.to_string()))?
                    .ok_or_else(|| SyncError::Invalid("the remote was deleted".into()))?;
                let upstream = self
                    .upstream_for(&remote)
                    .await
                    .map_err(|e| SyncError::Invalid(e.to_string()))?;
                let filter = remote.filter();
                let result = sync_repository(
                    &self.inner.registry,
                    &SyncRequest {
                        upstream: &upstream,
                        upstream_repo: &remote.upstream_name,
                        normal: &remote.repository,
                        filter: &filter,
                        mirror: remote.mirror,
                        on_demand: (remote.policy == SyncPolicy::OnDemand).then_some(remote.id),
                        signed_only: remote.signed_only,
                        lookaside: remote.sigstore.as_deref(),
                        reason: format!("sync from {}/{}", remote.url, remote.upstream_name),
                    },
                    progress,
                )
                .await;
                if let Some(m) = &self.inner.metrics {
                    let label = crate::metrics::RemoteLabels {
                        remote: format!("{}/{}/{}", remote.org, remote.product, remote.name),
                    };
                    m.sync_bytes.get_or_create(&label).inc_by(progress.bytes_done());
                    if result.is_err() {
                        m.sync_errors.get_or_create(&label).inc();
                    }
                }
                let outcome = result?;
                if let Some(v) = outcome.version {
                    tracing::info!(remote = %remote.name, repository = %remote.repository, version = v, "synced");
                }
                Ok(serde_json::to_value(outcome).unwrap_or_default())
            }
            NOTIFY_PROXY => self.notify_proxy(&payload).await.map_err(SyncError::Invalid),
            EDGE_SYNC => self.edge_sync(&payload, progress).await,
            other => Err(SyncError::Invalid(format!("unknown job kind {other:?}"))),
        }
    }

    /// The runner: claims and runs jobs, a few at once, until the process ends.
    pub async fn run_forever(self) {
        let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        loop {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                match self.claim().await {
                    Ok(Some(job)) => {
                        let this = self.clone();
                        tokio::spawn(async move {
                            this.run_claimed(job).await;
                            drop(permit);
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming a job failed");
                        break;
                    }
                }
            }
            if self.inner.edge.is_none()
                && let Err(e) = self.dispatch_notifications().await
            {
                tracing::warn!(error = %e, "dispatching edge notifications failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(DISPATCH_EVERY) => {}
                _ = self.inner.wake.notified() => {}
            }
        }
    }
}
