//! The web console (`/ui/`): server-rendered pages for org admins and developers, in
//! the same binary, with its styles and script embedded.
//!
//! It is a client of the admin API in process (`api`): every page reads and every form
//! acts through the API call a user would make, with the logged-in user's identity, so
//! the same policies decide. Sessions (`session`) are cookies bound to the password;
//! every form carries the session's CSRF token; responses forbid framing, inline
//! scripts and anything from elsewhere (Content-Security-Policy).

mod admin;
mod api;
mod login;
mod markdown;
mod orgs;
mod repos;
mod session;
mod views;

use crate::audit::Event;
use crate::db::Database;
use crate::gateway::Gateway;
use crate::gateway::mapping::RepoPath;
use crate::identity::credentials::Secret;
use crate::identity::{Account, AccountKind};
use crate::policy::Action;
use api::Api;
use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use serde::Deserialize;
use serde_json::{Value, json};
use session::{COOKIE, Session, Sessions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use views::Viewer;

const LOGIN_COOKIE: &str = "__Host-gatehouse-login";
/// Failed logins allowed per client address and username within `FAILURE_WINDOW`.
const MAX_FAILURES: u32 = 10;
/// Failed logins allowed per client address, whatever the usernames, in that window.
const MAX_FAILURES_PER_ADDRESS: u32 = 100;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Clone)]
struct Console {
    gw: Gateway,
    api: Api,
    sessions: Sessions,
    failures: Arc<moka::sync::Cache<String, u32>>,
}

/// The console's routes; `api` is the admin API router its pages call.
pub fn router(gw: Gateway, api: Router, db: Database) -> Router {
    let console = Console {
        api: Api::new(api, gw.clone()),
        gw,
        sessions: Sessions::new(db),
        failures: Arc::new(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(FAILURE_WINDOW)
                .build(),
        ),
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(orgs::home))
        .route("/ui/login", get(login::login_form).post(login::login))
        .route("/ui/logout", post(login::logout))
        .route("/ui/orgs", post(orgs::create_org))
        .route("/ui/orgs/{org}", get(orgs::org))
        .route("/ui/orgs/{org}/{action}", post(orgs::org_action))
        .route(
            "/ui/repos/{*rest}",
            get(repos::repository).post(repos::repository_action),
        )
        .route("/ui/jobs/{id}", get(orgs::job))
        .route("/ui/admin", get(admin::admin_page))
        .route("/ui/admin/{action}", post(admin::admin_action))
        .route("/ui/static/console.css", get(css))
        .route("/ui/static/console.js", get(js))
        .route("/ui/{*rest}", get(not_found).post(not_found))
        .layer(middleware::from_fn(security_headers))
        .with_state(console)
}

async fn security_headers(req: axum::extract::Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

fn cookie_header(name: &str, value: &str, max_age_secs: i64) -> String {
    format!("{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; Secure; SameSite=Strict")
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("assets/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("assets/console.js"),
    )
        .into_response()
}

/// A logged-in caller.
struct Caller {
    session: Session,
    remote: Option<SocketAddr>,
    host: Option<HeaderValue>,
    /// The user as the policies see them (looked up once per request).
    principal: Option<crate::policy::Principal>,
    global_admin: bool,
}

impl Caller {
    fn viewer(&self) -> Viewer<'_> {
        Viewer {
            username: &self.session.username,
            csrf: &self.session.csrf,
            global_admin: self.global_admin,
        }
    }
}

/// A logged-in caller, or the response that sends them to log in.
impl axum::extract::FromRequestParts<Console> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, c: &Console) -> Result<Self, Response> {
        let token = parts
            .headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| session::cookie(h, COOKIE));
        let found = match token {
            Some(t) => {
                let identities = c.gw.identities().clone();
                c.sessions
                    .find(t, async move |user: &str| {
                        identities.password_tag(user).await.ok().flatten()
                    })
                    .await
            }
            None => Ok(None),
        };
        match found {
            Ok(Some(session)) => {
                let account = Account {
                    id: session.user_id,
                    username: session.username.clone(),
                    kind: AccountKind::User,
                };
                let principal = c.gw.principal_of_account(&account).await.ok().flatten();
                Ok(Caller {
                    global_admin: matches!(
                        principal,
                        Some(crate::policy::Principal::User { global_admin: true, .. })
                    ),
                    principal,
                    session,
                    remote: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ci| ci.0),
                    host: parts.headers.get(header::HOST).cloned(),
                })
            }
            Ok(None) => {
                let next: String = form_urlencoded::byte_serialize(parts.uri.path().as_bytes()).collect();
                Err(Redirect::to(&format!("/ui/login?next={next}")).into_response())
            }
            Err(e) => {
                tracing::error!(error = %e, "console session lookup failed");
                Err(unavailable(None))
            }
        }
    }
}

impl Console {
    async fn call(&self, c: &Caller, method: Method, path: &str, body: Option<&Value>) -> api::Answer {
        self.api
            .call(&c.session, c.remote, c.host.as_ref(), method, path, body)
            .await
    }

    /// GET `path` from the API as the caller: its JSON, or the page saying why not.
    async fn read(&self, c: &Caller, path: &str) -> Result<Value, Response> {
        let answer = self.call(c, Method::GET, path, None).await;
        if answer.ok() {
            Ok(answer.body)
        } else {
            Err(failed(&c.viewer(), &answer))
        }
    }

    /// Whether the caller may manage organisation `org`, by the policies.
    fn may_manage(&self, c: &Caller, org: &str) -> bool {
        let resource = crate::policy::Resource::Org { org: org.to_owned() };
        c.principal
            .as_ref()
            .is_some_and(|p| self.gw.allowed(p, Action::Manage, &resource))
    }

    /// Whether the caller may `action` the repository `path`, by the policies.
    async fn may(&self, c: &Caller, action: Action, path: &RepoPath) -> bool {
        let (Some(principal), Ok(resource)) = (&c.principal, self.gw.resource(path).await) else {
            return false;
        };
        self.gw.allowed(principal, action, &resource)
    }
}

fn unavailable(viewer: Option<&Viewer<'_>>) -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        views::problem(
            viewer,
            "Temporarily unavailable",
            "gatehouse could not reach its database just now.",
            "Try again in a moment; if it persists, tell the registry's operators.",
        ),
    )
}

/// The page for an API answer that was not a success.
fn failed(viewer: &Viewer<'_>, answer: &api::Answer) -> Response {
    let (title, todo) = match answer.status {
        StatusCode::NOT_FOUND => (
            "Not found",
            "Check the name, or ask an organisation administrator for access.",
        ),
        StatusCode::FORBIDDEN => (
            "Not allowed",
            "Your role does not allow this; an organisation administrator can change it.",
        ),
        s if s.is_client_error() => ("That did not work", "Correct it and try again."),
        _ => (
            "Something went wrong",
            "Try again; if it persists, tell the registry's operators.",
        ),
    };
    page(
        answer.status,
        views::problem(Some(viewer), title, &answer.message(), todo),
    )
}

/// The client's address, when the server knows it.
struct ClientAddr(Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

/// A form post must carry the session's CSRF token: the refusal when it does not.
fn refuse_without_csrf(caller: &Caller, presented: &str) -> Option<Response> {
    if session::same_token(&caller.session.csrf, presented) {
        return None;
    }
    Some(page(
        StatusCode::FORBIDDEN,
        views::problem(
            Some(&caller.viewer()),
            "Form expired",
            "This form did not come from your current session, so nothing was done.",
            "Go back, reload the page and try again.",
        ),
    ))
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The fields of the organisation pages' forms (each form sends some).
#[derive(Deserialize)]
struct OrgForm {
    csrf: String,
    label: Option<String>,
    name: Option<String>,
    public: Option<String>,
    username: Option<String>,
    role: Option<String>,
    product: Option<String>,
    push: Option<String>,
    expires_in_days: Option<String>,
    global_admin: Option<String>,
    url: Option<String>,
    upstream_name: Option<String>,
    include_tags: Option<String>,
    exclude_tags: Option<String>,
    mirror: Option<String>,
    policy: Option<String>,
    password: Option<String>,
}

/// Comma-separated patterns, as a list.
fn patterns(v: &Option<String>) -> Vec<String> {
    v.as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `products` may repeat (checkboxes): read from the raw form.
fn form_list(raw: &str, key: &str) -> Vec<String> {
    form_urlencoded::parse(raw.as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// A posted form of the organisation and administration pages, read and checked for the
/// session's CSRF token; the refusal page when it is not one of ours.
fn checked_form(caller: &Caller, raw: &str) -> Result<OrgForm, Box<Response>> {
    let Ok(f) = serde_urlencoded_form(raw) else {
        return Err(Box::new(bad_form(caller)));
    };
    match refuse_without_csrf(caller, &f.csrf) {
        Some(refusal) => Err(Box::new(refusal)),
        None => Ok(f),
    }
}

fn serde_urlencoded_form(raw: &str) -> Result<OrgForm, ()> {
    // Repeated keys (checkboxes) are read separately; the first of each here.
    let mut seen = std::collections::HashSet::new();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
        .filter(|(k, _)| seen.insert(k.to_string()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let value = Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect());
    serde_json::from_value(value).map_err(|_| ())
}

fn bad_form(caller: &Caller) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        views::problem(
            Some(&caller.viewer()),
            "Unreadable form",
            "The form sent was not one of this console's.",
            "Go back, reload the page and try again.",
        ),
    )
}

fn not_found_page(caller: &Caller) -> Response {
    page(
        StatusCode::NOT_FOUND,
        views::problem(
            Some(&caller.viewer()),
            "Not found",
            "There is no such page.",
            "Check the address, or start from your organisations.",
        ),
    )
}

async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        views::problem(
            None,
            "Not found",
            "There is no such page.",
            "Check the address, or start from your organisations.",
        ),
    )
}
