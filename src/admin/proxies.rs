//! Smart proxies (edge sites), on the main server:
//! - `GET`/`POST /api/v1/smart-proxies`, `GET`/`PATCH`/`DELETE /api/v1/smart-proxies/{name}`
//!   (global admins): register (the answer carries the edge's credential, shown once),
//!   list, show its state (last sync, events it is behind by, last error), change what
//!   it mirrors or whether pushes trigger its sync, remove;
//! - `POST /api/v1/smart-proxies/{name}/sync`: sync that edge now, fully;
//! - `GET …/{name}/authz`, `POST …/{name}/status`: for the edge itself (its credential).
//!
//! On an edge: `POST /api/v1/edge/sync`, a notification from the main server.

use super::{Admin, ApiError, ApiResult, accepted_job, body, created, to_json};
use crate::gateway::Gateway;
use crate::identity::proxies::{PROXY_USER_PREFIX, SmartProxy};
use crate::policy::Principal;
use crate::sync::Syncer;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewProxy {
    name: String,
    url: String,
    /// Organisations (`acme`) and products (`acme/web`).
    orgs: Vec<String>,
    #[serde(default = "yes")]
    sync_after_push: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProxyUpdate {
    url: Option<String>,
    orgs: Option<Vec<String>>,
    sync_after_push: Option<bool>,
}

async fn find_proxy(gw: &Gateway, name: &str) -> ApiResult<SmartProxy> {
    gw.identities()
        .smart_proxy(name)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("no smart proxy {name}")))
}

/// A proxy as the API shows it: with how far it is behind, in events and in seconds
/// (the age of the oldest change it has not synced).
#[derive(Serialize, ToSchema)]
pub(super) struct ProxyState {
    #[serde(flatten)]
    proxy: SmartProxy,
    behind_by_events: i64,
    behind_by_seconds: i64,
}

async fn state(sync: &Syncer, p: &SmartProxy) -> ApiResult<ProxyState> {
    let behind = sync.proxy_backlog(p).await.map_err(|e| ApiError::internal(&e))?;
    Ok(ProxyState {
        proxy: p.clone(),
        behind_by_events: behind.events,
        behind_by_seconds: behind.seconds,
    })
}

#[derive(Serialize, ToSchema)]
pub(super) struct ProxyList {
    smart_proxies: Vec<ProxyState>,
}

/// A new smart proxy: the only answer that holds its credential's secret.
#[derive(Serialize, ToSchema)]
pub(super) struct NewProxyAnswer {
    #[serde(flatten)]
    state: ProxyState,
    credential: ProxyCredential,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ProxyCredential {
    username: String,
    secret: String,
}

/// What an edge may serve to whom: its organisations' users, roles, pull secrets and
/// policies, as the edge's authorizer reads them.
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub(super) struct AuthzSnapshot(serde_json::Value);

#[utoipa::path(get, path = "/api/v1/smart-proxies", tag = "edges",
    responses((status = 200, description = "every edge and how far behind it is (global admins)", body = ProxyList)))]
pub(super) async fn list(State(gw): State<Gateway>, Extension(sync): Extension<Syncer>, a: Admin) -> ApiResult {
    a.require_global_admin()?;
    let mut out = Vec::new();
    for p in gw.identities().smart_proxies().await? {
        out.push(state(&sync, &p).await?);
    }
    Ok(Json(ProxyList { smart_proxies: out }).into_response())
}

#[utoipa::path(post, path = "/api/v1/smart-proxies", tag = "edges", request_body = NewProxy,
    responses((status = 201, description = "registered: the credential's secret is in this answer only", body = NewProxyAnswer)))]
pub(super) async fn create(
    State(gw): State<Gateway>,
    Extension(sync): Extension<Syncer>,
    a: Admin,
    json: Result<Json<NewProxy>, JsonRejection>,
) -> ApiResult {
    a.require_global_admin()?;
    let new = body(json)?;
    let (p, secret) = gw
        .identities()
        .create_smart_proxy(&new.name, &new.url, &new.orgs, new.sync_after_push)
        .await?;
    a.audit(&gw, "create_smart_proxy", None, format!("{} {}", p.name, p.url));
    // The only time the secret is shown.
    Ok(created(NewProxyAnswer {
        state: state(&sync, &p).await?,
        credential: ProxyCredential {
            username: p.username.clone(),
            secret: secret.expose().to_owned(),
        },
    }))
}

#[utoipa::path(get, path = "/api/v1/smart-proxies/{name}", tag = "edges", params(("name" = String, Path)),
    responses((status = 200, description = "the edge and how far behind it is", body = ProxyState)))]
pub(super) async fn show(
    State(gw): State<Gateway>,
    Extension(sync): Extension<Syncer>,
    a: Admin,
    Path(name): Path<String>,
) -> ApiResult {
    a.require_global_admin()?;
    to_json(state(&sync, &find_proxy(&gw, &name).await?).await?)
}

#[utoipa::path(patch, path = "/api/v1/smart-proxies/{name}", tag = "edges", params(("name" = String, Path)), request_body = ProxyUpdate,
    responses((status = 200, description = "updated", body = ProxyState)))]
pub(super) async fn update(
    State(gw): State<Gateway>,
    Extension(sync): Extension<Syncer>,
    a: Admin,
    Path(name): Path<String>,
    json: Result<Json<ProxyUpdate>, JsonRejection>,
) -> ApiResult {
    a.require_global_admin()?;
    let upd = body(json)?;
    let p = gw
        .identities()
        .update_smart_proxy(&name, upd.url.as_deref(), upd.orgs.as_deref(), upd.sync_after_push)
        .await?;
    gw.changed();
    a.audit(&gw, "update_smart_proxy", None, name);
    to_json(state(&sync, &p).await?)
}

#[utoipa::path(delete, path = "/api/v1/smart-proxies/{name}", tag = "edges", params(("name" = String, Path)),
    responses((status = 204, description = "removed; its credential stops working")))]
pub(super) async fn delete(State(gw): State<Gateway>, a: Admin, Path(name): Path<String>) -> ApiResult {
    a.require_global_admin()?;
    gw.identities().delete_smart_proxy(&name).await?;
    gw.changed();
    a.audit(&gw, "delete_smart_proxy", None, name);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/v1/smart-proxies/{name}/sync", tag = "edges", params(("name" = String, Path)),
    responses((status = 202, description = "a full sync of the edge is queued", body = super::QueuedJob)))]
pub(super) async fn sync_now(
    State(gw): State<Gateway>,
    Extension(sync): Extension<Syncer>,
    a: Admin,
    Path(name): Path<String>,
) -> ApiResult {
    a.require_global_admin()?;
    find_proxy(&gw, &name).await?;
    let job = sync
        .request_full_sync(&name)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    a.audit(&gw, "sync_smart_proxy", None, format!("{name} job {job}"));
    Ok(accepted_job(job))
}

/// Only the edge itself, with its own credential.
fn require_self(a: &Admin, name: &str) -> ApiResult<()> {
    match &a.principal {
        Principal::SmartProxy { name: n, .. } if n.strip_prefix(PROXY_USER_PREFIX) == Some(name) => Ok(()),
        _ => Err(ApiError::forbidden("only the smart proxy itself may read this")),
    }
}

#[utoipa::path(get, path = "/api/v1/smart-proxies/{name}/authz", tag = "edges", params(("name" = String, Path)),
    responses((status = 200, description = "for the edge itself (its credential)", body = AuthzSnapshot)))]
pub(super) async fn authz(
    State(gw): State<Gateway>,
    Extension(sync): Extension<Syncer>,
    a: Admin,
    Path(name): Path<String>,
) -> ApiResult {
    require_self(&a, &name)?;
    let p = find_proxy(&gw, &name).await?;
    let v = sync.authz_snapshot(&p).await.map_err(|e| ApiError::internal(&e))?;
    to_json(AuthzSnapshot(v))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StatusReport {
    synced_event: Option<i64>,
    error: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/smart-proxies/{name}/status", tag = "edges", params(("name" = String, Path)), request_body = StatusReport,
    responses((status = 204, description = "recorded (the edge itself reports its sync)")))]
pub(super) async fn status(
    State(gw): State<Gateway>,
    a: Admin,
    Path(name): Path<String>,
    json: Result<Json<StatusReport>, JsonRejection>,
) -> ApiResult {
    require_self(&a, &name)?;
    let r = body(json)?;
    gw.identities()
        .record_proxy_sync(&name, r.synced_event, r.error.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub(super) struct Notification {
    repositories: Option<Vec<String>>,
    upto_event: Option<i64>,
}

/// At an edge: the main server says what changed; the sync is queued at once.
pub(super) async fn edge_notified(
    State(gw): State<Gateway>,
    Extension(sync): Extension<Syncer>,
    headers: HeaderMap,
    json: Result<Json<Notification>, JsonRejection>,
) -> ApiResult {
    let Some(me) = sync.edge_username() else {
        return Err(ApiError::not_found("this server is not an edge"));
    };
    let token = crate::identity::credentials::authorization(&headers)
        .ok()
        .flatten()
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !gw.verify_edge_notification(token, &me) {
        tracing::warn!("a sync notification without a valid token from the main server was refused");
        return Err(ApiError::unauthorized(
            "a notification must carry the main server's token for this edge",
        ));
    }
    let n = body(json)?;
    let job = sync
        .enqueue_edge_sync(n.repositories, n.upto_event)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok((StatusCode::ACCEPTED, Json(EdgeJob { job })).into_response())
}

#[derive(Serialize)]
struct EdgeJob {
    job: i64,
}
