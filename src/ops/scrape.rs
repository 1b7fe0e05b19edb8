//! Figures read from the database when `/metrics` is scraped: jobs by state, each
//! edge's lag, storage per organisation. Replicas share the database, so every replica
//! reports the same values for these (sum requests, not these, across replicas).

use super::Ops;
use crate::metrics::{EdgeLabels, JobStateLabels, Metrics, OrgLabels};
use sqlx::Row;
use std::time::{Duration, Instant};

/// Storage is a scan of every blob link: at most once per this.
const STORAGE_EVERY: Duration = Duration::from_secs(60);

pub async fn refresh(ops: &Ops, m: &Metrics) {
    if let Err(e) = jobs(ops, m).await {
        tracing::warn!(error = %e, "metrics: reading jobs failed");
    }
    edges(ops, m).await;
    if let Err(e) = storage(ops, m).await {
        tracing::warn!(error = %e, "metrics: reading storage per organisation failed");
    }
}

async fn jobs(ops: &Ops, m: &Metrics) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT kind, state, COUNT(*) FROM jobs WHERE state IN ('queued', 'running', 'failed') GROUP BY kind, state",
    )
    .fetch_all(&ops.db.read)
    .await?;
    m.jobs.clear();
    for r in rows {
        let labels = JobStateLabels {
            kind: r.get(0),
            state: r.get(1),
        };
        m.jobs.get_or_create(&labels).set(r.get(2));
    }
    Ok(())
}

async fn edges(ops: &Ops, m: &Metrics) {
    let Some(sync) = &ops.syncer else { return };
    let Ok(proxies) = ops.gateway.identities().smart_proxies().await else {
        return;
    };
    m.edge_lag_events.clear();
    m.edge_lag_seconds.clear();
    m.edge_last_sync_seconds.clear();
    for p in proxies {
        let labels = EdgeLabels { edge: p.name.clone() };
        if let Ok(b) = sync.proxy_backlog(&p).await {
            m.edge_lag_events.get_or_create(&labels).set(b.events);
            m.edge_lag_seconds.get_or_create(&labels).set(b.seconds);
        }
        if let Some(t) = p.last_sync_at {
            m.edge_last_sync_seconds.get_or_create(&labels).set(t as f64 / 1000.0);
        }
    }
}

async fn storage(ops: &Ops, m: &Metrics) -> Result<(), sqlx::Error> {
    if ops.registry.is_none() {
        return Ok(());
    }
    let fresh = {
        let cached = ops.storage.lock().unwrap_or_else(|p| p.into_inner());
        cached
            .as_ref()
            .filter(|(at, _)| at.elapsed() < STORAGE_EVERY)
            .map(|(_, v)| v.clone())
    };
    let per_org = match fresh {
        Some(v) => v,
        None => {
            // A blob shared by repositories of one organisation (a push repository and
            // its normal one, or two images on one base) is counted once for it; the
            // database does the counting, so memory does not grow with the registry.
            let org = match ops.db.engine() {
                crate::db::Engine::Postgres => "split_part(r.name, '/', 1)",
                crate::db::Engine::Sqlite => "substr(r.name, 1, instr(r.name || '/', '/') - 1)",
            };
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT org, CAST(SUM(size) AS BIGINT) FROM (SELECT DISTINCT {org} AS org, b.digest, b.size \
                 FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id \
                 JOIN blobs b ON b.digest = rb.digest) per_org GROUP BY org ORDER BY org"
            )))
            .fetch_all(&ops.db.read)
            .await?;
            let v: Vec<(String, i64)> = rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
            *ops.storage.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), v.clone()));
            v
        }
    };
    m.storage_bytes.clear();
    for (org, bytes) in per_org {
        m.storage_bytes.get_or_create(&OrgLabels { org }).set(bytes);
    }
    Ok(())
}
