//! Remotes of a product (`/api/v1/orgs/{org}/products/{product}/remotes…`) and job
//! detail (`/api/v1/jobs/{id}`):
//! - `GET`/`POST …/remotes`, `GET`/`PATCH`/`DELETE …/remotes/{name}`: what to mirror
//!   (url, upstream_name, include_tags, exclude_tags, mirror, policy, credentials);
//!   the password is write-only;
//! - `POST …/remotes/{name}/sync`: queue a sync; answers 202 with the job;
//! - `GET /api/v1/jobs/{id}`: state, progress (manifests, blobs, bytes done/total) and,
//!   for a failed job, the error in plain words.
//!
//! An organisation's admins manage its remotes and see their jobs.

use super::{Admin, ApiError, ApiResult, accepted_job, body, created, to_json};
use crate::gateway::Gateway;
use crate::gateway::mapping::RepoPath;
use crate::sync::Syncer;
use crate::sync::remotes::{Remote, RemoteError, RemoteFields};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

impl From<RemoteError> for ApiError {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Field { field, message } => ApiError::invalid(field, &message),
            RemoteError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "exists", e.to_string()),
            RemoteError::NotFound(_) => ApiError::not_found(&e.to_string()),
            RemoteError::Store(e) => e.into(),
            other => ApiError::internal(&other),
        }
    }
}

/// The product must exist and the caller must manage its organisation.
async fn product_in_reach(gw: &Gateway, a: &Admin, org: &str, product: &str) -> ApiResult<()> {
    a.require_manage(gw, org).await?;
    if gw.identities().product(org, product).await?.is_none() {
        return Err(ApiError::not_found(&format!("no product {org}/{product}")));
    }
    Ok(())
}

async fn find_remote(sync: &Syncer, org: &str, product: &str, name: &str) -> ApiResult<Remote> {
    sync.remote(org, product, name)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("no remote {name}")))
}

pub(super) async fn list(
    State(gw): State<Gateway>,
    Extension(sync): Extension<Syncer>,
    a: Admin,
    Path((org, product)): Path<(String, String)>,
) -> ApiResult {
    product_in_reach(&gw, &a, &org, &product).await?;
    Ok(Json(json!({ "remotes": sync.remotes(&org, &product).await? })).into_response())
}

pub(super) async fn create(
    State(gw): State<Gateway>,
    Extension(sync): Extension<Syncer>,
    a: Admin,
    Path((org, product)): Path<(String, String)>,
    json: Result<Json<RemoteFields>, JsonRejection>,
) -> ApiResult {
    product_in_reach(&gw, &a, &org, &product).await?;
    let fields = body(json)?;
    let name = fields
        .name
        .clone()
        .ok_or_else(|| ApiError::invalid("name", "required"))?;
    let path =
        RepoPath::parse(&format!("{org}/{product}/{name}")).map_err(|e| ApiError::invalid("name", &e.message))?;
    // The repository it syncs into: the one a push of that name would make.
    let normal = gw.pattern_name(&path).await?;
    let remote = sync.create_remote(&org, &product, &normal, &fields).await?;
    gw.ensure_push_pair(&path, Some(&normal)).await?;
    a.audit(
        &gw,
        "create_remote",
        Some(&org),
        format!("{org}/{product}/{name} <- {}", remote.url),
    );
    Ok(created(json!(remote)))
}

pub(super) async fn show(
    State(gw): State<Gateway>,
    Extension(sync): Extension<Syncer>,
    a: Admin,
    Path((org, product, name)): Path<(String, String, String)>,
) -> ApiResult {
    product_in_reach(&gw, &a, &org, &product).await?;
    let remote = find_remote(&sync, &org, &product, &name).await?;
    let job = match remote.last_job {
        Some(id) => sync.registry().job(id).await.map_err(|e| ApiError::internal(&e))?,
        None => None,
    };
    let mut v = json!(remote);
    v["last_sync"] = json!(job);
    to_json(v)
}

pub(super) async fn update(
    State(gw): State<Gateway>,
    Extension(sync): Extension<Syncer>,
    a: Admin,
    Path((org, product, name)): Path<(String, String, String)>,
    json: Result<Json<RemoteFields>, JsonRejection>,
) -> ApiResult {
    product_in_reach(&gw, &a, &org, &product).await?;
    let fields = body(json)?;
    let remote = sync.update_remote(&org, &product, &name, &fields).await?;
    a.audit(&gw, "update_remote", Some(&org), format!("{org}/{product}/{name}"));
    to_json(remote)
}

pub(super) async fn delete(
    State(gw): State<Gateway>,
    Extension(sync): Extension<Syncer>,
    a: Admin,
    Path((org, product, name)): Path<(String, String, String)>,
) -> ApiResult {
    product_in_reach(&gw, &a, &org, &product).await?;
    if !sync.delete_remote(&org, &product, &name).await? {
        return Err(ApiError::not_found(&format!("no remote {name}")));
    }
    a.audit(&gw, "delete_remote", Some(&org), format!("{org}/{product}/{name}"));
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn sync_now(
    State(gw): State<Gateway>,
    Extension(sync): Extension<Syncer>,
    a: Admin,
    Path((org, product, name)): Path<(String, String, String)>,
) -> ApiResult {
    product_in_reach(&gw, &a, &org, &product).await?;
    let remote = find_remote(&sync, &org, &product, &name).await?;
    let job = sync.enqueue_remote_sync(&remote).await?;
    a.audit(
        &gw,
        "sync_remote",
        Some(&org),
        format!("{org}/{product}/{name} job {job}"),
    );
    Ok(accepted_job(job))
}

pub(super) async fn show_job(
    State(gw): State<Gateway>,
    Extension(sync): Extension<Syncer>,
    a: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let job = sync
        .registry()
        .job(id)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| ApiError::not_found(&format!("no job {id}")))?;
    // Global admins see every job; an org's admins the jobs of their org.
    let org = job.payload["org"].as_str().map(str::to_owned);
    let allowed = match &org {
        _ if a.is_global_admin() => true,
        Some(org) => a.require_manage(&gw, org).await.is_ok(),
        None => false,
    };
    if !allowed {
        return Err(ApiError::not_found(&format!("no job {id}")));
    }
    to_json(job)
}
