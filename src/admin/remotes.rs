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
use serde::Serialize;
use utoipa::ToSchema;

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

#[utoipa::path(get, path = "/api/v1/orgs/{org}/products/{product}/remotes", tag = "remotes", params(("org" = String, Path), ("product" = String, Path)),
    responses((status = 200, description = "the product's remotes", body = Remotes)))]
pub(super) async fn list(
    State(gw): State<Gateway>,
    Extension(sync): Extension<Syncer>,
    a: Admin,
    Path((org, product)): Path<(String, String)>,
) -> ApiResult {
    product_in_reach(&gw, &a, &org, &product).await?;
    Ok(Json(Remotes {
        remotes: sync.remotes(&org, &product).await?,
    })
    .into_response())
}

#[derive(Serialize, ToSchema)]
pub(super) struct Remotes {
    remotes: Vec<Remote>,
}

/// A remote with its last sync job.
#[derive(Serialize, ToSchema)]
pub(super) struct RemoteDetail {
    #[serde(flatten)]
    remote: Remote,
    last_sync: Option<crate::store::jobs::JobInfo>,
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/products/{product}/remotes", tag = "remotes", params(("org" = String, Path), ("product" = String, Path)),
    request_body = RemoteFields,
    responses((status = 201, description = "created", body = Remote)))]
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
    Ok(created(remote))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/products/{product}/remotes/{name}", tag = "remotes", params(("org" = String, Path), ("product" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "the remote and its last sync", body = RemoteDetail)))]
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
    to_json(RemoteDetail { remote, last_sync: job })
}

#[utoipa::path(patch, path = "/api/v1/orgs/{org}/products/{product}/remotes/{name}", tag = "remotes", params(("org" = String, Path), ("product" = String, Path), ("name" = String, Path)),
    request_body = RemoteFields,
    responses((status = 200, description = "updated", body = Remote)))]
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

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/products/{product}/remotes/{name}", tag = "remotes", params(("org" = String, Path), ("product" = String, Path), ("name" = String, Path)),
    responses((status = 204, description = "deleted (its repository stays)")))]
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

#[utoipa::path(post, path = "/api/v1/orgs/{org}/products/{product}/remotes/{name}/sync", tag = "remotes", params(("org" = String, Path), ("product" = String, Path), ("name" = String, Path)),
    responses((status = 202, description = "a sync is queued", body = super::QueuedJob)))]
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

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 200, description = "the job: state, progress, error", body = crate::store::jobs::JobInfo)))]
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
