//! Figures read from the database when `/metrics` is scraped: jobs by state, each
//! edge's lag, storage per organisation. Replicas share the database, so every replica
//! reports the same values for these (sum requests, not these, across replicas).

use super::Ops;
use crate::metrics::{EdgeLabels, JobStateLabels, Metrics, OrgLabels};
use sqlx::Row;
use std::collections::{BTreeMap, HashSet};
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
            // its normal one, or two images on one base) is counted once for it.
            let rows = sqlx::query(
                "SELECT DISTINCT r.name, rb.digest, b.size FROM repository_blobs rb \
                 JOIN repositories r ON r.id = rb.repository_id JOIN blobs b ON b.digest = rb.digest",
            )
            .fetch_all(&ops.db.read)
            .await?;
            let mut seen: HashSet<(String, String)> = HashSet::new();
            let mut totals: BTreeMap<String, i64> = BTreeMap::new();
            for r in rows {
                let name: String = r.get(0);
                let org = name.split('/').next().unwrap_or_default().to_owned();
                let digest: String = r.get(1);
                let size: i64 = r.get(2);
                if seen.insert((org.clone(), digest)) {
                    *totals.entry(org).or_default() += size;
                }
            }
            let v: Vec<(String, i64)> = totals.into_iter().collect();
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
