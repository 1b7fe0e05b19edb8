//! The admin REST API (`/api/v1/…`, JSON): users, organisations, products, members,
//! pull secrets and the audit log. It takes the same credentials as the registry
//! (Basic, or a bearer token from `/v2/token`); what a caller may manage is decided by
//! the same policies (`manage` on an organisation; global admins manage everything).
//! Every change is audited. Errors are `{"error":{"code","message","field"?}}`.

mod content;
mod error;
mod openapi;
mod proxies;
mod remotes;
mod repositories;
mod signing;

use crate::audit::Event;
use crate::gateway::{AuthFailure, Gateway};
use crate::identity::credentials::Secret;
use crate::identity::{NewPullSecret, valid_label};
use crate::policy::{Action, Principal, Resource};
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, put};
use axum::{Json, Router};
use base64::Engine;
pub use error::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;

type ApiResult<T = Response> = Result<T, ApiError>;

pub fn router(gw: Gateway, sync: Option<crate::sync::Syncer>, signing: Option<crate::signing::SigningKeys>) -> Router {
    let mut router = Router::new();
    let syncer = sync.clone();
    if signing.is_some() {
        router = router
            .route(
                "/api/v1/orgs/{org}/signing-keys",
                get(signing::list).post(signing::create),
            )
            .route(
                "/api/v1/orgs/{org}/signing-keys/{name}",
                get(signing::show).delete(signing::delete),
            );
    }
    if let Some(sync) = sync {
        router = router
            .route(
                "/api/v1/orgs/{org}/products/{product}/remotes",
                get(remotes::list).post(remotes::create),
            )
            .route(
                "/api/v1/orgs/{org}/products/{product}/remotes/{name}",
                get(remotes::show).patch(remotes::update).delete(remotes::delete),
            )
            .route(
                "/api/v1/orgs/{org}/products/{product}/remotes/{name}/sync",
                axum::routing::post(remotes::sync_now),
            )
            .route("/api/v1/jobs/{id}", get(remotes::show_job))
            .route("/api/v1/smart-proxies", get(proxies::list).post(proxies::create))
            .route(
                "/api/v1/smart-proxies/{name}",
                get(proxies::show).patch(proxies::update).delete(proxies::delete),
            )
            .route(
                "/api/v1/smart-proxies/{name}/sync",
                axum::routing::post(proxies::sync_now),
            )
            .route("/api/v1/smart-proxies/{name}/authz", get(proxies::authz))
            .route(
                "/api/v1/smart-proxies/{name}/status",
                axum::routing::post(proxies::status),
            )
            .layer(axum::Extension(sync));
    }
    router = router
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{username}", delete(delete_user))
        .route("/api/v1/users/{username}/password", put(set_password))
        .route("/api/v1/orgs", get(list_orgs).post(create_org))
        .route("/api/v1/orgs/{org}", get(show_org).patch(update_org))
        .route("/api/v1/orgs/{org}/products", get(list_products).post(create_product))
        .route("/api/v1/orgs/{org}/products/{product}", patch(update_product))
        .route(
            "/api/v1/orgs/{org}/members",
            get(list_members).post(add_member).delete(remove_member),
        )
        .route("/api/v1/orgs/{org}/members/{username}", delete(remove_member_by_path))
        .route(
            "/api/v1/orgs/{org}/pull-secrets",
            get(list_pull_secrets).post(create_pull_secret),
        )
        .route("/api/v1/orgs/{org}/pull-secrets/{name}", delete(revoke_pull_secret))
        .route("/api/v1/orgs/{org}/audit", get(org_audit))
        .route("/api/v1/orgs/{org}/repositories", get(repositories::list))
        .route("/api/v1/audit", get(all_audit))
        .route(
            "/api/v1/repositories/{*rest}",
            get(content::get_repository)
                .post(content::post_repository)
                .delete(content::delete_repository),
        )
        .route("/api/v1/jobs", get(content::list_jobs))
        .route(
            "/api/v1/distributions/{*name}",
            get(content::get_distribution)
                .put(content::put_distribution)
                .delete(content::delete_distribution),
        )
        .route("/api/v1/events", get(content::list_events));
    // Outside every route added above, so that the content API can sign and listings
    // can tell mirrored repositories.
    if let Some(keys) = signing {
        router = router.layer(axum::Extension(keys));
    }
    if let Some(s) = syncer {
        router = router.layer(axum::Extension(s));
    }
    router
        .fallback(|| async { ApiError::not_found("no such API endpoint") })
        .with_state(gw)
}

/// The API an edge serves: its jobs, and notifications from the main server.
pub fn edge_router(gw: Gateway, sync: crate::sync::Syncer) -> Router {
    Router::new()
        .route("/api/v1/edge/sync", axum::routing::post(proxies::edge_notified))
        .route("/api/v1/jobs/{id}", get(remotes::show_job))
        .route("/api/v1/whoami", get(whoami))
        .fallback(|| async { ApiError::not_found("no such API endpoint on an edge") })
        .layer(axum::Extension(sync))
        .with_state(gw)
}

/// The authenticated caller of an admin request.
struct Admin {
    actor: String,
    principal: Principal,
    remote: Option<SocketAddr>,
}

/// The admin API's callers authenticate with the registry's credentials (Basic, or a
/// bearer token from `/v2/token`); every handler takes the caller as an argument.
impl axum::extract::FromRequestParts<Gateway> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, gw: &Gateway) -> ApiResult<Self> {
        let value = crate::identity::credentials::authorization(&parts.headers)
            .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
        match gw.principal_from_header(value).await {
            Ok(Some((actor, principal))) => Ok(Self {
                actor,
                principal,
                remote: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0),
            }),
            Ok(None) => Err(ApiError::unauthorized("credentials required")),
            Err(AuthFailure::Malformed) => Err(ApiError::unauthorized("malformed Authorization header")),
            Err(AuthFailure::BadCredentials) => Err(ApiError::unauthorized("invalid username or password")),
            Err(AuthFailure::InvalidToken) => Err(ApiError::unauthorized("invalid or expired token")),
            Err(AuthFailure::Internal(e)) => Err(ApiError::internal(&e)),
        }
    }
}

impl Admin {
    fn kind(&self) -> &'static str {
        match self.principal {
            Principal::PullSecret { .. } => "pull_secret",
            Principal::SmartProxy { .. } => "smart_proxy",
            Principal::User { .. } => "user",
            Principal::Anonymous => "anonymous",
        }
    }

    fn is_global_admin(&self) -> bool {
        matches!(self.principal, Principal::User { global_admin: true, .. })
    }

    fn require_global_admin(&self) -> ApiResult<()> {
        if self.is_global_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("only a global administrator may do this"))
        }
    }

    /// Manage rights on `org` (org admins and global admins, by policy). An org that
    /// does not exist and one the caller may not manage look the same to non-admins.
    async fn require_manage(&self, gw: &Gateway, org: &str) -> ApiResult<()> {
        let allowed = gw.allowed(&self.principal, Action::Manage, &Resource::Org { org: org.to_owned() });
        if !allowed {
            return Err(ApiError::forbidden(&format!("you may not manage organisation {org:?}")));
        }
        if gw.identities().org(org).await?.is_none() {
            return Err(ApiError::not_found(&format!("no organisation {org:?}")));
        }
        Ok(())
    }

    fn has_binding_in(&self, org: &str) -> bool {
        match &self.principal {
            Principal::User { bindings, .. } => bindings.iter().any(|b| b.org == org),
            Principal::PullSecret { org: o, .. } => o == org,
            Principal::SmartProxy { .. } | Principal::Anonymous => false,
        }
    }

    fn audit(&self, gw: &Gateway, action: &str, org: Option<&str>, target: String) {
        let mut e = Event::new(&self.actor, self.kind(), action, target).remote(self.remote);
        if let Some(org) = org {
            e = e.org(org);
        }
        gw.audit().record(e);
    }
}

fn body<T>(json: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    json.map(|Json(v)| v).map_err(ApiError::from_json_rejection)
}

fn created<T: serde::Serialize>(v: T) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

/// Work queued: the job, and where to follow it.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct QueuedJob {
    job: i64,
    href: String,
}

/// 202 for work queued as job `job`, with where to follow it.
fn accepted_job(job: i64) -> Response {
    let href = format!("/api/v1/jobs/{job}");
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, href.clone())],
        Json(QueuedJob { job, href }),
    )
        .into_response()
}

fn to_json<T: serde::Serialize>(v: T) -> ApiResult {
    Ok(Json(serde_json::to_value(v).map_err(|e| ApiError::internal(&e))?).into_response())
}

/// Who the credentials belong to, and their roles.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct WhoAmI {
    username: String,
    /// `user`, `pull_secret`, `smart_proxy` or `anonymous`.
    kind: &'static str,
    global_admin: bool,
    bindings: Vec<WhoAmIBinding>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct WhoAmIBinding {
    org: String,
    /// `None`: the whole organisation.
    product: Option<String>,
    role: String,
}

#[utoipa::path(get, path = "/api/v1/whoami", tag = "users",
    responses((status = 200, description = "the caller", body = WhoAmI)))]
async fn whoami(a: Admin) -> Json<WhoAmI> {
    let bindings = match &a.principal {
        Principal::User { bindings, .. } => bindings
            .iter()
            .map(|b| WhoAmIBinding {
                org: b.org.clone(),
                product: b.product.clone(),
                role: format!("{:?}", b.role),
            })
            .collect(),
        _ => Vec::new(),
    };
    Json(WhoAmI {
        kind: a.kind(),
        global_admin: a.is_global_admin(),
        username: a.actor,
        bindings,
    })
}

// === users ===

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    global_admin: bool,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, description = "every user (global admins)", body = Vec<crate::identity::User>)))]
async fn list_users(State(gw): State<Gateway>, a: Admin) -> ApiResult {
    a.require_global_admin()?;
    to_json(gw.identities().users().await?)
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, description = "created", body = crate::identity::User)))]
async fn create_user(State(gw): State<Gateway>, a: Admin, json: Result<Json<NewUser>, JsonRejection>) -> ApiResult {
    a.require_global_admin()?;
    let new = body(json)?;
    let user = gw
        .identities()
        .create_user(&new.username, &Secret::new(new.password), new.global_admin)
        .await?;
    a.audit(&gw, "create_user", None, format!("user {}", user.username));
    Ok(created(user))
}

#[utoipa::path(delete, path = "/api/v1/users/{username}", tag = "users",
    params(("username" = String, Path)),
    responses((status = 204, description = "deleted; the user's sessions end")))]
async fn delete_user(State(gw): State<Gateway>, a: Admin, Path(username): Path<String>) -> ApiResult {
    a.require_global_admin()?;
    if username == a.actor {
        return Err(ApiError::invalid("username", "you cannot delete yourself"));
    }
    gw.identities().delete_user(&username).await?;
    gw.changed();
    a.audit(&gw, "delete_user", None, format!("user {username}"));
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

#[utoipa::path(put, path = "/api/v1/users/{username}/password", tag = "users",
    params(("username" = String, Path)), request_body = NewPassword,
    responses((status = 204, description = "changed; the user's sessions end")))]
/// Users change their own password; global admins anyone's. Cached credentials are
/// dropped, so the old password stops working at once.
async fn set_password(
    State(gw): State<Gateway>,
    a: Admin,
    Path(username): Path<String>,
    json: Result<Json<NewPassword>, JsonRejection>,
) -> ApiResult {
    let own = matches!(&a.principal, Principal::User { name, .. } if *name == username);
    if !own {
        a.require_global_admin()?;
    }
    let new = body(json)?;
    gw.identities()
        .set_password(&username, &Secret::new(new.password))
        .await?;
    gw.changed();
    a.audit(&gw, "set_password", None, format!("user {username}"));
    Ok(StatusCode::NO_CONTENT.into_response())
}

// === organisations ===

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    label: String,
    #[serde(default)]
    name: String,
}

#[utoipa::path(get, path = "/api/v1/orgs", tag = "organisations",
    responses((status = 200, description = "the organisations the caller belongs to (all, for global admins)", body = Vec<crate::identity::Org>)))]
async fn list_orgs(State(gw): State<Gateway>, a: Admin) -> ApiResult {
    let orgs = gw.identities().orgs().await?;
    let visible: Vec<_> = orgs
        .into_iter()
        .filter(|o| a.is_global_admin() || a.has_binding_in(&o.label))
        .collect();
    to_json(visible)
}

#[utoipa::path(post, path = "/api/v1/orgs", tag = "organisations", request_body = NewOrg,
    responses((status = 201, description = "created", body = crate::identity::Org)))]
async fn create_org(State(gw): State<Gateway>, a: Admin, json: Result<Json<NewOrg>, JsonRejection>) -> ApiResult {
    a.require_global_admin()?;
    let new = body(json)?;
    let org = gw.identities().create_org(&new.label, &new.name).await?;
    a.audit(&gw, "create_org", Some(&org.label), format!("org {}", org.label));
    Ok(created(org))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}", tag = "organisations", params(("org" = String, Path, description = "organisation label")),
    responses((status = 200, description = "the organisation", body = crate::identity::Org)))]
async fn show_org(State(gw): State<Gateway>, a: Admin, Path(org): Path<String>) -> ApiResult {
    if !(a.is_global_admin() || a.has_binding_in(&org)) {
        return Err(ApiError::not_found(&format!("no organisation {org:?}")));
    }
    match gw.identities().org(&org).await? {
        Some(o) => to_json(o),
        None => Err(ApiError::not_found(&format!("no organisation {org:?}"))),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OrgUpdate {
    naming_pattern: String,
}

#[utoipa::path(patch, path = "/api/v1/orgs/{org}", tag = "organisations", params(("org" = String, Path, description = "organisation label")), request_body = OrgUpdate,
    responses((status = 200, description = "updated", body = crate::identity::Org)))]
/// `PATCH /api/v1/orgs/{org} {"naming_pattern"}`: where later first pushes are copied
/// to and distributed from.
async fn update_org(
    State(gw): State<Gateway>,
    a: Admin,
    Path(org): Path<String>,
    json: Result<Json<OrgUpdate>, JsonRejection>,
) -> ApiResult {
    a.require_manage(&gw, &org).await?;
    let upd = body(json)?;
    let o = gw.identities().set_naming_pattern(&org, &upd.naming_pattern).await?;
    a.audit(
        &gw,
        "set_naming_pattern",
        Some(&org),
        format!("org {org}: {}", upd.naming_pattern),
    );
    to_json(o)
}

// === products ===

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewProduct {
    label: String,
    #[serde(default)]
    public: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ProductUpdate {
    #[serde(default)]
    public: Option<bool>,
    #[serde(default)]
    require_signed_by: Option<Vec<String>>,
    /// A signing key of the organisation; `""` stops signing on push.
    #[serde(default)]
    sign_on_push: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/products", tag = "organisations", params(("org" = String, Path, description = "organisation label")),
    responses((status = 200, description = "the organisation's products", body = Vec<crate::identity::Product>)))]
async fn list_products(State(gw): State<Gateway>, a: Admin, Path(org): Path<String>) -> ApiResult {
    if !(a.is_global_admin() || a.has_binding_in(&org)) {
        return Err(ApiError::not_found(&format!("no organisation {org:?}")));
    }
    to_json(gw.identities().products(&org).await?)
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/products", tag = "organisations", params(("org" = String, Path, description = "organisation label")), request_body = NewProduct,
    responses((status = 201, description = "created", body = crate::identity::Product)))]
async fn create_product(
    State(gw): State<Gateway>,
    a: Admin,
    Path(org): Path<String>,
    json: Result<Json<NewProduct>, JsonRejection>,
) -> ApiResult {
    a.require_manage(&gw, &org).await?;
    let new = body(json)?;
    let p = gw.identities().create_product(&org, &new.label, new.public).await?;
    gw.changed();
    a.audit(&gw, "create_product", Some(&org), format!("{org}/{}", p.label));
    Ok(created(p))
}

#[utoipa::path(patch, path = "/api/v1/orgs/{org}/products/{product}", tag = "organisations",
    params(("org" = String, Path, description = "organisation label"), ("product" = String, Path)), request_body = ProductUpdate,
    responses((status = 200, description = "updated", body = crate::identity::Product)))]
async fn update_product(
    State(gw): State<Gateway>,
    a: Admin,
    Path((org, product)): Path<(String, String)>,
    json: Result<Json<ProductUpdate>, JsonRejection>,
) -> ApiResult {
    a.require_manage(&gw, &org).await?;
    let upd = body(json)?;
    if upd.public.is_none() && upd.require_signed_by.is_none() && upd.sign_on_push.is_none() {
        return Err(ApiError::invalid(
            "public",
            "give public, require_signed_by or sign_on_push",
        ));
    }
    let known = match gw.signing_keys() {
        Some(k) => k.list(&org).await?,
        None => Vec::new(),
    };
    if let Some(keys) = &upd.require_signed_by
        && let Some(missing) = keys.iter().find(|k| !known.iter().any(|s| &s.name == *k))
    {
        return Err(ApiError::invalid(
            "require_signed_by",
            &format!("organisation {org} has no signing key {missing:?}"),
        ));
    }
    if let Some(key) = upd.sign_on_push.as_deref().filter(|k| !k.is_empty())
        && !known.iter().any(|s| s.name == key && s.can_sign)
    {
        return Err(ApiError::invalid(
            "sign_on_push",
            &format!("organisation {org} has no signing key {key:?} that can sign"),
        ));
    }
    let p = gw
        .identities()
        .update_product(
            &org,
            &product,
            upd.public,
            upd.require_signed_by.as_deref(),
            upd.sign_on_push.as_deref(),
        )
        .await?;
    gw.changed();
    a.audit(
        &gw,
        "update_product",
        Some(&org),
        format!(
            "{org}/{product} public={} require_signed_by={:?} sign_on_push={:?}",
            p.public, p.require_signed_by, p.sign_on_push
        ),
    );
    to_json(p)
}

// === members ===

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MemberRequest {
    username: String,
    role: String,
    product: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct MemberFilter {
    role: Option<String>,
    product: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/members", tag = "access", params(("org" = String, Path, description = "organisation label")),
    responses((status = 200, description = "role bindings", body = Vec<crate::identity::Member>)))]
async fn list_members(State(gw): State<Gateway>, a: Admin, Path(org): Path<String>) -> ApiResult {
    a.require_manage(&gw, &org).await?;
    to_json(gw.identities().members(&org).await?)
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/members", tag = "access", params(("org" = String, Path, description = "organisation label")), request_body = MemberRequest,
    responses((status = 201, description = "bound", body = crate::identity::Member)))]
async fn add_member(
    State(gw): State<Gateway>,
    a: Admin,
    Path(org): Path<String>,
    json: Result<Json<MemberRequest>, JsonRejection>,
) -> ApiResult {
    a.require_manage(&gw, &org).await?;
    let m = body(json)?;
    let member = gw
        .identities()
        .add_member(&org, &m.username, &m.role, m.product.as_deref())
        .await?;
    gw.changed();
    a.audit(
        &gw,
        "add_member",
        Some(&org),
        format!(
            "{} as {} on {org}{}",
            m.username,
            member.role,
            product_suffix(&m.product)
        ),
    );
    Ok(created(member))
}

fn product_suffix(p: &Option<String>) -> String {
    p.as_ref().map(|p| format!("/{p}")).unwrap_or_default()
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/members", tag = "access", params(("org" = String, Path, description = "organisation label")), request_body = MemberRequest,
    responses((status = 204, description = "unbound")))]
async fn remove_member(
    State(gw): State<Gateway>,
    a: Admin,
    Path(org): Path<String>,
    json: Result<Json<MemberRequest>, JsonRejection>,
) -> ApiResult {
    a.require_manage(&gw, &org).await?;
    let m = body(json)?;
    remove(&gw, &a, &org, &m.username, Some(&m.role), m.product).await
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/members/{username}", tag = "access",
    params(("org" = String, Path, description = "organisation label"), ("username" = String, Path), MemberFilter),
    responses((status = 204, description = "unbound (every role, unless filtered)")))]
async fn remove_member_by_path(
    State(gw): State<Gateway>,
    a: Admin,
    Path((org, username)): Path<(String, String)>,
    Query(filter): Query<MemberFilter>,
) -> ApiResult {
    a.require_manage(&gw, &org).await?;
    remove(&gw, &a, &org, &username, filter.role.as_deref(), filter.product).await
}

async fn remove(
    gw: &Gateway,
    a: &Admin,
    org: &str,
    username: &str,
    role: Option<&str>,
    product: Option<String>,
) -> ApiResult {
    gw.identities()
        .remove_member(org, username, role, product.as_deref())
        .await?;
    gw.changed();
    a.audit(
        gw,
        "remove_member",
        Some(org),
        format!(
            "{username} as {} on {org}{}",
            role.unwrap_or("any role"),
            product_suffix(&product)
        ),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

// === pull secrets ===

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PullSecretRequest {
    name: String,
    products: Option<Vec<String>>,
    actions: Option<Vec<String>>,
    expires_in_days: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/pull-secrets", tag = "access", params(("org" = String, Path, description = "organisation label")),
    responses((status = 200, description = "pull secrets (never their secrets)", body = Vec<crate::identity::PullSecretInfo>)))]
async fn list_pull_secrets(State(gw): State<Gateway>, a: Admin, Path(org): Path<String>) -> ApiResult {
    a.require_manage(&gw, &org).await?;
    to_json(gw.identities().pull_secrets(&org).await?)
}

#[utoipa::path(post, path = "/api/v1/orgs/{org}/pull-secrets", tag = "access", params(("org" = String, Path, description = "organisation label")), request_body = PullSecretRequest,
    responses((status = 201, description = "created: the secret is in this answer only", body = NewPullSecretAnswer)))]
async fn create_pull_secret(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    a: Admin,
    Path(org): Path<String>,
    json: Result<Json<PullSecretRequest>, JsonRejection>,
) -> ApiResult {
    a.require_manage(&gw, &org).await?;
    let req = body(json)?;
    let actions = req.actions.unwrap_or_else(|| vec!["pull".to_owned()]);
    if let Some(bad) = actions.iter().find(|x| *x != "pull" && *x != "push") {
        return Err(ApiError::invalid(
            "actions",
            &format!("unknown action {bad:?}: use pull and push"),
        ));
    }
    if !actions.iter().any(|x| x == "pull") {
        return Err(ApiError::invalid("actions", "must include pull"));
    }
    if let Some(products) = &req.products
        && let Some(bad) = products.iter().find(|p| !valid_label(p))
    {
        return Err(ApiError::invalid(
            "products",
            &format!("{bad:?} is not a product label"),
        ));
    }
    let made = gw
        .identities()
        .create_pull_secret(NewPullSecret {
            org: org.clone(),
            name: req.name,
            products: req.products,
            can_push: actions.iter().any(|x| x == "push"),
            expires_in_days: req.expires_in_days,
            created_by: a.actor.clone(),
        })
        .await?;
    a.audit(
        &gw,
        "create_pull_secret",
        Some(&org),
        format!("pull secret {}", made.username),
    );
    // The registry host as clients reach it: the key of the config.json entry.
    let base = gw.base_url(&headers);
    let host = base.split_once("://").map_or(base.as_str(), |(_, h)| h).to_owned();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let auth = b64(&format!("{}:{}", made.username, made.secret.expose()));
    let config = json!({ "auths": { host: { "auth": auth } } });
    // The same as a Kubernetes image pull Secret (names: lower case, digits and '-').
    let k8s_name = made.username.replace(['_', '.'], "-");
    let k8s = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {k8s_name}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
        b64(&config.to_string())
    );
    Ok(created(NewPullSecretAnswer {
        secret: made.secret.expose().to_owned(),
        username: made.username,
        dockerconfigjson: config,
        kubernetes_secret: k8s,
        pull_secret: made.info,
    }))
}

/// A new pull secret: the only answer that ever holds its secret.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct NewPullSecretAnswer {
    username: String,
    secret: String,
    /// A docker `config.json` with this secret for the registry's host.
    #[schema(value_type = Object)]
    dockerconfigjson: Value,
    /// The same as a Kubernetes `kubernetes.io/dockerconfigjson` Secret (YAML).
    kubernetes_secret: String,
    pull_secret: crate::identity::PullSecretInfo,
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org}/pull-secrets/{name}", tag = "access",
    params(("org" = String, Path, description = "organisation label"), ("name" = String, Path)),
    responses((status = 204, description = "revoked")))]
async fn revoke_pull_secret(
    State(gw): State<Gateway>,
    a: Admin,
    Path((org, name)): Path<(String, String)>,
) -> ApiResult {
    a.require_manage(&gw, &org).await?;
    gw.identities().revoke_pull_secret(&org, &name).await?;
    gw.changed();
    a.audit(
        &gw,
        "revoke_pull_secret",
        Some(&org),
        format!("pull secret {org}-{name}"),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

// === audit ===

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditPage {
    before: Option<i64>,
    limit: Option<u32>,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
}

async fn audit_page(gw: &Gateway, org: Option<&str>, page: AuditPage) -> ApiResult {
    let limit = page.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let filter = crate::audit::Filter {
        org: org.map(str::to_owned),
        actor: nonempty(page.actor),
        action: nonempty(page.action),
        target: nonempty(page.target),
        since: page.since,
        until: page.until,
    };
    let events = gw
        .audit()
        .page(&filter, page.before, limit)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let next = (events.len() as u32 == limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditEvents {
        events,
        next_before: next,
    })
    .into_response())
}

/// A page of audit events, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct AuditEvents {
    events: Vec<crate::audit::Event>,
    /// Pass as `before` for the next page; `None` on the last one.
    next_before: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/orgs/{org}/audit", tag = "audit", params(("org" = String, Path, description = "organisation label"), AuditPage),
    responses((status = 200, description = "newest first", body = AuditEvents)))]
async fn org_audit(
    State(gw): State<Gateway>,
    a: Admin,
    Path(org): Path<String>,
    Query(page): Query<AuditPage>,
) -> ApiResult {
    a.require_manage(&gw, &org).await?;
    audit_page(&gw, Some(&org), page).await
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditPage),
    responses((status = 200, description = "newest first (global admins)", body = AuditEvents)))]
async fn all_audit(State(gw): State<Gateway>, a: Admin, Query(page): Query<AuditPage>) -> ApiResult {
    a.require_global_admin()?;
    audit_page(&gw, None, page).await
}
