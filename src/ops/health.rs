//! The readiness checks behind `/readyz`, each bounded in time.

use super::Ops;
use serde_json::{Map, Value, json};
use std::future::Future;
use std::time::{Duration, Instant};

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Report {
    pub ready: bool,
    pub body: Value,
}

/// Run `probe`; record `{"ok", "ms", "error"?}` under `name`.
async fn run<F>(checks: &mut Map<String, Value>, name: &str, probe: F) -> bool
where
    F: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    let outcome = match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
    };
    let ms = (start.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    let ok = outcome.is_ok();
    let mut entry = json!({ "ok": ok, "ms": ms });
    if let Err(e) = outcome {
        entry["error"] = json!(e);
    }
    checks.insert(name.to_owned(), entry);
    ok
}

pub async fn check(ops: &Ops) -> Report {
    let mut checks = Map::new();
    let mut ready = true;
    ready &= run(&mut checks, "database", async {
        sqlx::query("SELECT 1")
            .execute(&ops.db.read)
            .await
            .map(|_| ())
            .map_err(|e| crate::error::chain(&e))
    })
    .await;
    match &ops.registry {
        Some(reg) => {
            ready &= run(&mut checks, "data_dir", async {
                // A write where uploads are staged: a full or read-only disk shows here.
                let probe = reg.staging().dir().join(format!(".readyz-{}", uuid::Uuid::new_v4()));
                let written = tokio::fs::write(&probe, b"ready").await;
                let _ = tokio::fs::remove_file(&probe).await;
                written.map_err(|e| format!("{}: {e}", reg.staging().dir().display()))
            })
            .await;
            ready &= run(&mut checks, "blob_store", async {
                reg.blob_store()
                    .stat(&crate::oci::Digest::sha256_of(b""))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await;
        }
        None => {
            ready &= run(&mut checks, "backend", async {
                let req = axum::http::Request::get("/v2/")
                    .body(axum::body::Body::empty())
                    .map_err(|e| e.to_string())?;
                ops.gateway
                    .backend()
                    .send(req)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await;
        }
    }
    ready &= run(&mut checks, "token_keys", async {
        let jwks = ops.gateway.jwks();
        match jwks["keys"].as_array() {
            Some(k) if !k.is_empty() => Ok(()),
            _ => Err("no token signing key loaded".to_owned()),
        }
    })
    .await;
    if let Some(s) = &ops.syncer
        && s.edge_username().is_some()
    {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(updated_at) FROM jobs WHERE kind = $1 AND state = 'done'")
                .bind(crate::sync::edge::EDGE_SYNC)
                .fetch_one(&ops.db.read)
                .await
                .ok()
                .flatten();
        let age = last.map(|t| (crate::db::now_ms() - t).max(0) / 1000);
        // Serving what it has while the main server is away is what an edge is for;
        // having nothing yet is not ready.
        let ok = last.is_some();
        checks.insert(
            "edge_sync".to_owned(),
            json!({ "ok": ok, "last_sync_age_seconds": age,
                    "error": if ok { Value::Null } else { json!("not synced from the main server yet") } }),
        );
        ready &= ok;
    }
    Report {
        ready,
        body: json!({ "status": if ready { "ready" } else { "not ready" }, "checks": checks }),
    }
}
