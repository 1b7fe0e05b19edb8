//! Smart proxies, the main server's side: what an edge may read to authorize pulls on
//! its own (`authz_snapshot`), and telling edges to sync. Every content change
//! (post-push version, remote sync, rollback, removal) is a `content_events` row; the
//! dispatcher turns new events into one `notify_proxy` job per subscribed edge, in the
//! transaction that advances the edge's `last_notified_event` (an outbox: nothing is
//! lost or sent twice across crashes). The job calls the edge with a short-lived token
//! signed by this server, retrying with backoff while the edge is down.

use super::Syncer;
use super::runner::enqueue_sync_request;
use crate::identity::proxies::{PROXY_USER_PREFIX, SmartProxy};
use serde_json::{Map, Value, json};
use sqlx::{Column, Row, ValueRef};
use std::collections::BTreeSet;

pub const NOTIFY_PROXY: &str = "notify_proxy";
/// A proxy's backlog is counted over at most this many events (a proxy that never
/// synced must not make its status page scan the whole history).
const BACKLOG_COUNT_LIMIT: i64 = 100_000;

/// The identity tables an edge replicates, in the order they are inserted.
pub const REPLICATED_TABLES: [&str; 6] = [
    "orgs",
    "products",
    "users",
    "role_bindings",
    "pull_secrets",
    "signing_keys",
];

/// `($first, $first+1, …)` for an `IN` list of `n` parameters; `(NULL)`, which matches
/// nothing, for none.
fn placeholders(first: usize, n: usize) -> String {
    if n == 0 {
        return "(NULL)".to_owned();
    }
    let list: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    format!("({})", list.join(", "))
}

/// One row as JSON: integers, text and NULLs (the identity tables hold nothing else).
fn row_json(r: &sqlx::any::AnyRow) -> Map<String, Value> {
    let mut out = Map::new();
    for (i, col) in r.columns().iter().enumerate() {
        let v = match r.try_get_raw(i) {
            Ok(raw) if raw.is_null() => Value::Null,
            Ok(_) => r
                .try_get::<i64, _>(i)
                .map(Value::from)
                .or_else(|_| r.try_get::<String, _>(i).map(Value::from))
                .unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        out.insert(col.name().to_owned(), v);
    }
    out
}

impl Syncer {
    /// The authorization data edge `proxy` needs for what it mirrors: its orgs and
    /// products, the users bound there (with their password verifier hashes) and
    /// global administrators, their role bindings, and the orgs' pull secrets (hashes).
    pub async fn authz_snapshot(&self, proxy: &SmartProxy) -> Result<Value, sqlx::Error> {
        let orgs = proxy.orgs();
        let products: Vec<String> = proxy.mirrors.iter().filter(|m| m.contains('/')).cloned().collect();
        let whole: Vec<String> = proxy.mirrors.iter().filter(|m| !m.contains('/')).cloned().collect();
        let in_orgs = placeholders(1, orgs.len());
        let queries: [(String, Vec<&String>); 6] = [
            (
                format!("SELECT * FROM orgs WHERE label IN {in_orgs}"),
                orgs.iter().collect(),
            ),
            (
                format!(
                    "SELECT * FROM products WHERE org IN {} OR (org || '/' || label) IN {}",
                    placeholders(1, whole.len()),
                    placeholders(1 + whole.len(), products.len())
                ),
                whole.iter().chain(&products).collect(),
            ),
            (
                format!(
                    "SELECT * FROM users WHERE global_admin <> 0 OR id IN \
                     (SELECT user_id FROM role_bindings WHERE org IN {in_orgs})"
                ),
                orgs.iter().collect(),
            ),
            (
                format!("SELECT * FROM role_bindings WHERE org IN {in_orgs}"),
                orgs.iter().collect(),
            ),
            (
                format!("SELECT * FROM pull_secrets WHERE org IN {in_orgs}"),
                orgs.iter().collect(),
            ),
            // Public keys only: an edge checks signatures, it never signs.
            (
                format!(
                    "SELECT id, org, name, kind, fingerprint, public_key, created_at FROM signing_keys \
                     WHERE org IN {in_orgs}"
                ),
                orgs.iter().collect(),
            ),
        ];
        let mut tables = Map::new();
        for (table, (sql, binds)) in REPLICATED_TABLES.iter().zip(queries) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in binds {
                q = q.bind(b);
            }
            let rows = q.fetch_all(self.inner.registry.meta().reader()).await?;
            tables.insert(
                (*table).to_owned(),
                Value::Array(rows.iter().map(|r| Value::Object(row_json(r))).collect()),
            );
        }
        let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM content_events")
            .fetch_one(self.inner.registry.meta().reader())
            .await?;
        Ok(json!({ "tables": tables, "latest_event": latest.unwrap_or(0) }))
    }

    /// Turn new content events into notifications of the edges that mirror them.
    pub(super) async fn dispatch_notifications(&self) -> Result<(), sqlx::Error> {
        let reader = self.inner.registry.meta().reader();
        let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM content_events")
            .fetch_one(reader)
            .await?;
        let latest = latest.unwrap_or(0);
        if latest <= self.inner.dispatched.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let Some(gw) = &self.inner.gateway else {
            return Ok(());
        };
        let mut tx = self.inner.registry.meta().database().begin_write().await?;
        let proxies = gw.identities().smart_proxies().await.unwrap_or_default();
        for proxy in proxies.iter().filter(|p| p.sync_after_push) {
            let from: i64 = sqlx::query_scalar("SELECT last_notified_event FROM smart_proxies WHERE id = $1")
                .bind(proxy.id)
                .fetch_one(&mut *tx)
                .await?;
            if from >= latest {
                continue;
            }
            // The public names the changed repositories are served under.
            let rows = sqlx::query(
                "SELECT DISTINCT COALESCE(d.name, e.repository) FROM content_events e \
                 LEFT JOIN distributions d ON d.repository = e.repository \
                 WHERE e.id > $1 AND e.id <= $2",
            )
            .bind(from)
            .bind(latest)
            .fetch_all(&mut *tx)
            .await?;
            let repos: BTreeSet<String> = rows
                .into_iter()
                .map(|r| r.get::<String, _>(0))
                .filter(|name| proxy.mirrors_repository(name))
                .collect();
            if !repos.is_empty() {
                enqueue_sync_request(&mut tx, NOTIFY_PROXY, Some(&proxy.name), Some(repos), Some(latest)).await?;
            }
            sqlx::query("UPDATE smart_proxies SET last_notified_event = $1 WHERE id = $2")
                .bind(latest)
                .bind(proxy.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.inner
            .dispatched
            .store(latest, std::sync::atomic::Ordering::Relaxed);
        self.wake();
        Ok(())
    }

    /// Ask edge `name` to sync everything it mirrors now.
    pub async fn request_full_sync(&self, name: &str) -> Result<i64, sqlx::Error> {
        let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM content_events")
            .fetch_one(self.inner.registry.meta().reader())
            .await?;
        self.enqueue_sync_request(NOTIFY_PROXY, Some(name), None, Some(latest.unwrap_or(0)))
            .await
    }

    /// Call the edge: `POST <edge>/api/v1/edge/sync` with a token only it accepts.
    pub(super) async fn notify_proxy(&self, payload: &Value) -> Result<Value, String> {
        let name = payload["proxy"].as_str().unwrap_or_default();
        let gw = self.inner.gateway.as_ref().ok_or("no gateway in this process")?;
        let proxy = gw
            .identities()
            .smart_proxy(name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("smart proxy {name} was removed"))?;
        let token = gw
            .edge_notification_token(&format!("{PROXY_USER_PREFIX}{name}"))
            .map_err(|e| e.to_string())?;
        let url = format!("{}/api/v1/edge/sync", proxy.url);
        let body = json!({ "repositories": payload["repositories"], "upto_event": payload["upto_event"] });
        let outcome = async {
            let res = self
                .inner
                .http
                .post(&url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .map_err(|e| format!("cannot reach {url}: {}", crate::error::chain(&e)))?;
            if res.status().is_success() {
                Ok(res.json::<Value>().await.unwrap_or(Value::Null))
            } else {
                let status = res.status();
                Err(format!(
                    "{url} answered {status}: {}",
                    res.text().await.unwrap_or_default()
                ))
            }
        }
        .await;
        if let Err(e) = &outcome {
            let _ = gw.identities().record_proxy_sync(name, None, Some(e)).await;
        }
        outcome
    }

    /// How far `proxy` is behind: how many content events for what it mirrors it has
    /// not reported synced (counted among the next `BACKLOG_COUNT_LIMIT` events), and
    /// how many seconds ago the oldest of them happened (0 when caught up).
    pub async fn proxy_backlog(&self, proxy: &SmartProxy) -> Result<Backlog, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT COALESCE(d.name, e.repository), e.created_at FROM content_events e \
             LEFT JOIN distributions d ON d.repository = e.repository WHERE e.id > $1 ORDER BY e.id LIMIT $2",
        )
        .bind(proxy.last_synced_event)
        .bind(BACKLOG_COUNT_LIMIT)
        .fetch_all(self.inner.registry.meta().reader())
        .await?;
        let mut backlog = Backlog::default();
        for r in rows.iter().filter(|r| proxy.mirrors_repository(r.get::<&str, _>(0))) {
            if backlog.events == 0 {
                let oldest: i64 = r.get(1);
                backlog.seconds = (crate::db::now_ms() - oldest).max(0) / 1000;
            }
            backlog.events += 1;
        }
        Ok(backlog)
    }
}

/// How far an edge is behind the main server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub events: i64,
    /// Age of the oldest change it has not synced.
    pub seconds: i64,
}
