//! `GET /api/v1/orgs/{org}/repositories?q=&after=&limit=`: the organisation's
//! repositories the caller may pull, by name, with their size, tag count, latest version
//! and whether a remote fills them (the web console's repository list). `next` is the
//! `after` of the following page, when there may be one.

use super::{Admin, ApiError, ApiResult};
use crate::gateway::Gateway;
use crate::gateway::mapping::public_name;
use crate::policy::Action;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 5000;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Part of the name.
    q: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
    /// 1 to 5000 (100 by default).
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct RepositoryPage {
    repositories: Vec<RepositorySummary>,
    /// `after` for the next page, when there may be one.
    next: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct RepositorySummary {
    /// The name clients pull.
    name: String,
    product: String,
    tags: i64,
    /// Bytes of the blobs its current content holds.
    size: i64,
    latest_version: i64,
    /// When its latest version was made (ms since the epoch); `null` before any.
    changed_at: Option<i64>,
    /// Whether a remote fills it.
    mirrored: bool,
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/repositories", tag = "content",
    params(("org" = String, Path), ListQuery),
    responses((status = 200, description = "the repositories the caller may pull", body = RepositoryPage)))]

pub(super) async fn list(
    State(gw): State<Gateway>,
    sync: Option<Extension<crate::sync::Syncer>>,
    a: Admin,
    Path(org): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    if gw.identities().org(&org).await?.is_none() || !(a.is_global_admin() || a.has_binding_in(&org)) {
        return Err(ApiError::not_found(&format!("no organisation {org:?}")));
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::invalid("limit", &format!("1 to {MAX_LIMIT}")));
    }
    if query.q.as_ref().is_some_and(|q| q.len() > 128) {
        return Err(ApiError::invalid("q", "at most 128 characters"));
    }
    let Some(reg) = gw.versioned() else {
        return Ok(Json(RepositoryPage {
            repositories: Vec::new(),
            next: None,
        })
        .into_response());
    };
    let mirrored = match &sync {
        Some(Extension(s)) => s
            .mirrored_repositories(&org)
            .await
            .map_err(|e| ApiError::internal(&e))?,
        None => Default::default(),
    };
    // `after` is a public name; the listing goes by backend names.
    let after = query
        .after
        .as_deref()
        .and_then(|a| crate::gateway::mapping::RepoPath::parse(a).ok());
    let rows = reg
        .normal_repositories(
            &format!("{org}/"),
            query.q.as_deref(),
            after.map(|p| p.backend_name()).as_deref(),
            limit,
        )
        .await?;
    let next = (rows.len() as u32 == limit)
        .then(|| rows.last().and_then(|r| public_name(&r.name)).map(|p| p.public))
        .flatten();
    // One decision per product: rights are granted per product.
    let mut may_pull: HashMap<String, bool> = HashMap::new();
    let mut out = Vec::new();
    for r in rows {
        let Some(path) = public_name(&r.name) else { continue };
        let allowed = match may_pull.get(&path.product) {
            Some(v) => *v,
            None => {
                let resource = gw.resource(&path).await?;
                let v = gw.allowed(&a.principal, Action::Pull, &resource);
                may_pull.insert(path.product.clone(), v);
                v
            }
        };
        if !allowed {
            continue;
        }
        out.push(RepositorySummary {
            mirrored: mirrored.contains(&r.name),
            name: path.public,
            product: path.product,
            tags: r.tags,
            size: r.size,
            latest_version: r.latest_version,
            changed_at: r.changed_at,
        });
    }
    Ok(Json(RepositoryPage {
        repositories: out,
        next,
    })
    .into_response())
}
