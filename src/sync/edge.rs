//! Edge mode, the edge's side: it keeps a copy of what it mirrors and of the
//! authorization data needed to serve it, both pulled from the main server.
//!
//! - Content: an `edge_sync` job mirrors repositories from the main server (all it may
//!   see at start and on a full-sync request, or the ones a notification names) with
//!   the sync engine, under the same names, then reports to the main server which
//!   event it has caught up to. Failures retry with backoff, so an edge that could not
//!   reach the main server catches up when it can.
//! - Authorization: every few seconds the main server's users, role bindings and pull
//!   secrets for the mirrored organisations (verifier hashes only) replace the local
//!   copy, and the main server's token keys are trusted; so a revoked pull secret stops
//!   working here within seconds, and pulls go on when the main server is down.

use super::Syncer;
use super::engine::{Progress, SyncError, SyncRequest, TagFilter, sync_repository};
use super::proxies::REPLICATED_TABLES;
use super::upstream::{Endpoint, Upstream, UpstreamError};
use crate::error::chain as error_chain;
use crate::gateway::mapping::{self, RepoPath};
use crate::identity::credentials::Secret;
use crate::identity::proxies::PROXY_USER_PREFIX;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub const EDGE_SYNC: &str = "edge_sync";
/// How often the authorization copy and the main server's keys are refreshed.
pub const AUTHZ_REFRESH: Duration = Duration::from_secs(5);

/// Who this edge is and where its main server is.
#[derive(Clone)]
pub struct EdgeLink {
    pub name: String,
    /// The main server's base URL.
    pub upstream: String,
    pub secret: Secret,
}

impl EdgeLink {
    pub fn username(&self) -> String {
        format!("{PROXY_USER_PREFIX}{}", self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("cannot reach the main server at {0}: {1}")]
    Unreachable(String, String),
    #[error("the main server refused this edge's credential ({0}): check the name and --credential-file")]
    Refused(u16),
    #[error("the main server answered {0}: {1}")]
    Status(u16, String),
    #[error("applying the authorization copy: {0}")]
    Db(#[from] sqlx::Error),
}

impl Syncer {
    fn edge(&self) -> Option<&EdgeLink> {
        self.inner.edge.as_ref()
    }

    /// `smart-proxy/<name>` when this process is an edge.
    pub fn edge_username(&self) -> Option<String> {
        self.edge().map(EdgeLink::username)
    }

    /// GET a JSON document from the main server with this edge's credential.
    async fn upstream_json(&self, path: &str) -> Result<Value, EdgeError> {
        let link = self.edge().ok_or(EdgeError::Status(0, "not an edge".into()))?;
        let url = format!("{}{path}", link.upstream);
        let res = self
            .inner
            .http
            .get(&url)
            .basic_auth(link.username(), Some(link.secret.expose()))
            .send()
            .await
            .map_err(|e| EdgeError::Unreachable(link.upstream.clone(), error_chain(&e)))?;
        let status = res.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(EdgeError::Refused(status.as_u16()));
        }
        if !status.is_success() {
            return Err(EdgeError::Status(status.as_u16(), res.text().await.unwrap_or_default()));
        }
        res.json()
            .await
            .map_err(|e| EdgeError::Unreachable(link.upstream.clone(), error_chain(&e)))
    }

    /// Refresh the authorization copy and the trusted keys from the main server.
    /// Returns whether the copy changed.
    pub async fn refresh_authz(&self) -> Result<bool, EdgeError> {
        let Some(link) = self.edge() else {
            return Ok(false);
        };
        let jwks = self.upstream_json("/.well-known/jwks.json").await?;
        if let Some(gw) = &self.inner.gateway {
            gw.trust_keys(&jwks);
        }
        let snapshot = self
            .upstream_json(&format!("/api/v1/smart-proxies/{}/authz", link.name))
            .await?;
        if let Some(latest) = snapshot["latest_event"].as_i64() {
            self.inner
                .upstream_event
                .store(latest, std::sync::atomic::Ordering::Relaxed);
        }
        let text = snapshot["tables"].to_string();
        let digest = crate::oci::Digest::sha256_of(text.as_bytes()).to_string();
        {
            let last = self.inner.authz_digest.lock().unwrap_or_else(|p| p.into_inner());
            if last.as_deref() == Some(digest.as_str()) {
                return Ok(false);
            }
        }
        self.apply_authz(&snapshot["tables"]).await?;
        *self.inner.authz_digest.lock().unwrap_or_else(|p| p.into_inner()) = Some(digest);
        if let Some(gw) = &self.inner.gateway {
            gw.changed();
        }
        Ok(true)
    }

    /// Replace the local identity tables with the main server's rows, in one
    /// transaction (readers see the old copy or the new one).
    async fn apply_authz(&self, tables: &Value) -> Result<(), sqlx::Error> {
        let mut tx = self.inner.registry.meta().database().begin_write().await?;
        for table in REPLICATED_TABLES.iter().rev() {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await?;
        }
        for table in REPLICATED_TABLES {
            for row in tables[table].as_array().into_iter().flatten() {
                let Some(obj) = row.as_object() else { continue };
                // Column names come from the main server's schema; only plain
                // identifiers go into the statement.
                // NULLs are left out (every nullable column defaults to NULL): an untyped
                // NULL parameter does not fit every column type on PostgreSQL.
                let cols: Vec<&String> = obj
                    .iter()
                    .filter(|(k, v)| {
                        !v.is_null() && !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    })
                    .map(|(k, _)| k)
                    .collect();
                if cols.is_empty() {
                    continue;
                }
                let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    cols.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
                    placeholders.join(", ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for c in &cols {
                    q = match &obj[c.as_str()] {
                        Value::Number(n) => q.bind(n.as_i64()),
                        Value::String(s) => q.bind(s.clone()),
                        other => q.bind(other.to_string()),
                    };
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await
    }

    /// Keep the authorization copy fresh while the process runs.
    pub async fn run_authz_refresh(self) {
        let mut failing = false;
        loop {
            match self.refresh_authz().await {
                Ok(changed) => {
                    if changed || failing {
                        tracing::info!("authorization data refreshed from the main server");
                    }
                    failing = false;
                }
                Err(e) => {
                    // Keep serving with the last copy; say so once per outage.
                    if !failing {
                        tracing::warn!(error = %e, "cannot refresh authorization data; serving with the last copy");
                    }
                    failing = true;
                }
            }
            tokio::time::sleep(AUTHZ_REFRESH).await;
        }
    }

    /// Queue a sync from the main server of `repositories` (public names), or of all
    /// it may see; `upto_event` is what the main server will be told when it is done.
    pub async fn enqueue_edge_sync(
        &self,
        repositories: Option<Vec<String>>,
        upto_event: Option<i64>,
    ) -> Result<i64, sqlx::Error> {
        let repositories = repositories.map(|r| r.into_iter().collect());
        self.enqueue_sync_request(EDGE_SYNC, None, repositories, upto_event)
            .await
    }

    /// Mirror the named repositories (or everything visible) from the main server.
    pub(super) async fn edge_sync(&self, payload: &Value, progress: &Arc<Progress>) -> Result<Value, SyncError> {
        let link = self
            .edge()
            .ok_or_else(|| SyncError::Invalid("this server is not an edge".into()))?;
        let upstream = Upstream::new(
            self.inner.http.clone(),
            Endpoint {
                url: link.upstream.clone(),
                username: Some(link.username()),
                password: Some(link.secret.expose().to_owned()),
            },
        );
        // A sync without an event (at start) reports the newest event the main server
        // had announced before it began: everything up to there is in it.
        let upto = payload["upto_event"]
            .as_i64()
            .or_else(|| Some(self.inner.upstream_event.load(std::sync::atomic::Ordering::Relaxed)).filter(|e| *e > 0));
        let result = self.edge_sync_with(&upstream, payload, progress).await;
        let report = match &result {
            Ok(_) => json!({ "synced_event": upto, "error": null }),
            Err(e) => json!({ "synced_event": null, "error": e.to_string() }),
        };
        let url = format!("{}/api/v1/smart-proxies/{}/status", link.upstream, link.name);
        let sent = self
            .inner
            .http
            .post(&url)
            .basic_auth(link.username(), Some(link.secret.expose()))
            .json(&report)
            .send()
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %error_chain(&e), "reporting the sync to the main server failed");
        }
        result
    }

    async fn edge_sync_with(
        &self,
        upstream: &Upstream,
        payload: &Value,
        progress: &Arc<Progress>,
    ) -> Result<Value, SyncError> {
        let full = payload["repositories"].is_null();
        let repos: Vec<String> = match payload["repositories"].as_array() {
            Some(list) => list.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            None => upstream.catalog().await?,
        };
        let registry = &self.inner.registry;
        let mut versions = serde_json::Map::new();
        let mut mirrored = std::collections::BTreeSet::new();
        for repo in &repos {
            let Ok(path) = RepoPath::parse(repo) else {
                continue;
            };
            let local = path.backend_name();
            mirrored.insert(local.clone());
            match &self.inner.gateway {
                // Through the gateway, so that it serves the repository at once.
                Some(gw) => gw.ensure_push_pair(&path, Some(&local)).await?,
                None => {
                    registry
                        .ensure_push_pair(&mapping::push_repository(&local), &local)
                        .await?
                }
            }
            let filter = TagFilter::default();
            let req = SyncRequest {
                upstream,
                upstream_repo: repo,
                normal: &local,
                filter: &filter,
                mirror: true,
                on_demand: None,
                signed_only: false,
                lookaside: None,
                reason: format!("sync from {}", upstream.url()),
            };
            match sync_repository(registry, &req, progress).await {
                Ok(outcome) => {
                    versions.insert(repo.clone(), json!(outcome.version));
                }
                // Gone from the main server: gone here too.
                Err(SyncError::Upstream(UpstreamError::NotFound { .. })) => {
                    versions.insert(repo.clone(), json!(self.empty_local(&local).await?));
                }
                Err(e) => return Err(e),
            }
        }
        if full {
            // What the main server no longer lists for this edge (removed, or no longer
            // mirrored) is emptied here, as a version like any other change.
            for local in registry.catalog(None, None).await? {
                if local.split('/').count() == 3 && !mirrored.contains(&local) {
                    versions.insert(local.clone(), json!(self.empty_local(&local).await?));
                }
            }
        }
        Ok(json!({ "repositories": repos.len(), "versions": versions }))
    }

    /// Empty a mirrored repository (its versions stay).
    async fn empty_local(&self, local: &str) -> Result<Option<i64>, SyncError> {
        let empty = crate::store::versions::SyncedContent {
            mirror: true,
            ..Default::default()
        };
        match self
            .inner
            .registry
            .apply_sync(local, &empty, "no longer on the main server")
            .await
        {
            Ok(v) => Ok(v),
            // Never synced here: nothing to empty.
            Err(e) if e.code == crate::error::ErrorCode::NameUnknown => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
