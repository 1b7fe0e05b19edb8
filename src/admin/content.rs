//! Content operations on versioned repositories (Pulp's recipes), background jobs and
//! content-changed events:
//! - `GET /api/v1/repositories/{org}/{product}/{name}/versions` (also `{org}/{name}`);
//! - `GET …/versions/{n}`: one version with its tags;
//! - `POST …/rollback {"version": n}`: a new version equal to version n;
//! - `GET /api/v1/jobs?state=&limit=`, `GET /api/v1/events?after=&limit=` (global admins).

use super::{Admin, ApiError, ApiResult};
use crate::gateway::Gateway;
use crate::gateway::mapping::RepoPath;
use crate::policy::Action;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

fn split(rest: &str) -> ApiResult<(RepoPath, Vec<&str>)> {
    let parts: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let at = parts
        .iter()
        .position(|p| *p == "versions" || *p == "rollback")
        .ok_or_else(|| ApiError::not_found("use …/versions, …/versions/{n} or …/rollback"))?;
    let name = parts[..at].join("/");
    let path = RepoPath::parse(&name).map_err(|e| ApiError::invalid("repository", &e.message))?;
    Ok((path, parts[at..].to_vec()))
}

fn registry(gw: &Gateway) -> ApiResult<&crate::store::Registry> {
    gw.versioned().ok_or_else(|| {
        ApiError::not_found("repository versions need the in-process store (this gateway forwards to another registry)")
    })
}

async fn require(gw: &Gateway, a: &Admin, path: &RepoPath, action: Action) -> ApiResult<()> {
    let resource = gw.resource(path).await.map_err(ApiError::from)?;
    if gw.allowed(&a.principal, action, &resource) {
        Ok(())
    } else {
        // Whether it exists is not the caller's business.
        Err(ApiError::not_found(&format!(
            "no repository {} you may {}",
            path.public,
            action.as_str()
        )))
    }
}

pub(super) async fn get_repository(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    Path(rest): Path<String>,
) -> ApiResult {
    let a = Admin::from_request(&gw, &headers, &ext).await?;
    let (path, tail) = split(&rest)?;
    require(&gw, &a, &path, Action::Pull).await?;
    let reg = registry(&gw)?;
    let normal = gw.backend_names(&path).1;
    match tail.as_slice() {
        ["versions"] => {
            let versions = reg.versions(&normal).await?;
            Ok(Json(json!({ "repository": path.public, "versions": versions })).into_response())
        }
        ["versions", n] => {
            let n: i64 = n
                .parse()
                .map_err(|_| ApiError::invalid("version", "must be a number"))?;
            let info = reg
                .versions(&normal)
                .await?
                .into_iter()
                .find(|v| v.number == n)
                .ok_or_else(|| ApiError::not_found(&format!("{} has no version {n}", path.public)))?;
            let tags: serde_json::Map<String, serde_json::Value> = reg
                .version_tags(&normal, n)
                .await?
                .into_iter()
                .map(|(t, d)| (t, json!(d)))
                .collect();
            Ok(Json(json!({ "repository": path.public, "version": info, "tags": tags })).into_response())
        }
        _ => Err(ApiError::not_found("use …/versions or …/versions/{n}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Rollback {
    version: i64,
}

pub(super) async fn post_repository(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    Path(rest): Path<String>,
    json: Result<Json<Rollback>, JsonRejection>,
) -> ApiResult {
    let a = Admin::from_request(&gw, &headers, &ext).await?;
    let (path, tail) = split(&rest)?;
    if tail.as_slice() != ["rollback"] {
        return Err(ApiError::not_found("use …/rollback"));
    }
    require(&gw, &a, &path, Action::Push).await?;
    let req = super::body(json)?;
    if req.version < 1 {
        return Err(ApiError::invalid("version", "versions are numbered from 1"));
    }
    let reg = registry(&gw)?;
    let normal = gw.backend_names(&path).1;
    let version = reg.rollback(&normal, req.version).await?;
    a.audit(
        &gw,
        "rollback",
        Some(&path.org),
        format!("{} to version {} (now version {version})", path.public, req.version),
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({ "repository": path.public, "version": version, "rolled_back_to": req.version })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JobQuery {
    state: Option<String>,
    limit: Option<u32>,
}

pub(super) async fn list_jobs(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    Query(q): Query<JobQuery>,
) -> ApiResult {
    let a = Admin::from_request(&gw, &headers, &ext).await?;
    a.require_global_admin()?;
    if let Some(s) = &q.state
        && !matches!(s.as_str(), "queued" | "done" | "failed")
    {
        return Err(ApiError::invalid("state", "use queued, done or failed"));
    }
    let jobs = registry(&gw)?
        .jobs(q.state.as_deref(), q.limit.unwrap_or(100).clamp(1, 1000))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(json!({ "jobs": jobs })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

pub(super) async fn list_events(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    Query(q): Query<EventQuery>,
) -> ApiResult<Response> {
    let a = Admin::from_request(&gw, &headers, &ext).await?;
    a.require_global_admin()?;
    let events = registry(&gw)?
        .content_events(q.after.unwrap_or(0), q.limit.unwrap_or(100).clamp(1, 1000))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(json!({ "events": events })).into_response())
}
