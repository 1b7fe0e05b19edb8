//! The web console (`/ui/`): server-rendered pages for org admins and developers, in
//! the same binary, with its styles and script embedded.
//!
//! It is a client of the admin API in process (`api`): every page reads and every form
//! acts through the API call a user would make, with the logged-in user's identity, so
//! the same policies decide. Sessions (`session`) are cookies bound to the password;
//! every form carries the session's CSRF token; responses forbid framing, inline
//! scripts and anything from elsewhere (Content-Security-Policy).

mod api;
mod markdown;
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
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
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
        .route("/ui/", get(home))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/orgs", post(create_org))
        .route("/ui/orgs/{org}", get(org))
        .route("/ui/orgs/{org}/{action}", post(org_action))
        .route("/ui/repos/{*rest}", get(repository).post(repository_action))
        .route("/ui/jobs/{id}", get(job))
        .route("/ui/admin", get(admin_page))
        .route("/ui/admin/{action}", post(admin_action))
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

impl Console {
    /// The caller's session, or the response that sends them to log in.
    async fn caller(&self, headers: &HeaderMap, uri: &Uri, remote: Option<SocketAddr>) -> Result<Caller, Response> {
        let token = headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|c| session::cookie(c, COOKIE));
        let found = match token {
            Some(t) => {
                let identities = self.gw.identities().clone();
                self.sessions
                    .find(t, async move |user: &str| {
                        identities.password_tag(user).await.ok().flatten()
                    })
                    .await
            }
            None => Ok(None),
        };
        match found {
            Ok(Some(session)) => {
                let mut caller = Caller {
                    session,
                    remote,
                    host: headers.get(header::HOST).cloned(),
                    global_admin: false,
                };
                caller.global_admin = matches!(
                    self.principal(&caller).await,
                    Some(crate::policy::Principal::User { global_admin: true, .. })
                );
                Ok(caller)
            }
            Ok(None) => {
                let next: String = form_urlencoded::byte_serialize(uri.path().as_bytes()).collect();
                Err(Redirect::to(&format!("/ui/login?next={next}")).into_response())
            }
            Err(e) => {
                tracing::error!(error = %e, "console session lookup failed");
                Err(unavailable(None))
            }
        }
    }

    async fn call(&self, c: &Caller, method: Method, path: &str, body: Option<&Value>) -> api::Answer {
        self.api
            .call(&c.session, c.remote, c.host.as_ref(), method, path, body)
            .await
    }

    /// Whether the caller may manage organisation `org`, by the policies.
    async fn may_manage(&self, c: &Caller, org: &str) -> bool {
        let Some(principal) = self.principal(c).await else {
            return false;
        };
        let resource = crate::policy::Resource::Org { org: org.to_owned() };
        self.gw.allowed(&principal, Action::Manage, &resource)
    }

    async fn principal(&self, c: &Caller) -> Option<crate::policy::Principal> {
        let account = Account {
            id: c.session.user_id,
            username: c.session.username.clone(),
            kind: AccountKind::User,
        };
        self.gw.principal_of_account(&account).await.ok().flatten()
    }

    /// Whether the caller may `action` the repository `path`, by the policies.
    async fn may(&self, c: &Caller, action: Action, path: &RepoPath) -> bool {
        let account = Account {
            id: c.session.user_id,
            username: c.session.username.clone(),
            kind: AccountKind::User,
        };
        let (Ok(Some(principal)), Ok(resource)) = (
            self.gw.principal_of_account(&account).await,
            self.gw.resource(path).await,
        ) else {
            return false;
        };
        self.gw.allowed(&principal, action, &resource)
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

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Only the console's own pages: never a redirect elsewhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("//") && !n.contains(['\\', '\r', '\n']) => n.to_owned(),
        _ => "/ui/".to_owned(),
    }
}

async fn login_form(Query(q): Query<NextQuery>) -> Response {
    let csrf = session::random_token();
    let mut resp = page(StatusCode::OK, views::login(None, &csrf, &safe_next(q.next.as_deref())));
    if let Ok(v) = HeaderValue::from_str(&cookie_header(LOGIN_COOKIE, &csrf, 3600)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

async fn login(
    State(c): State<Console>,
    ClientAddr(remote): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let again = |status: StatusCode, why: &str| {
        let csrf = session::random_token();
        let mut resp = page(status, views::login(Some(why), &csrf, &next));
        if let Ok(v) = HeaderValue::from_str(&cookie_header(LOGIN_COOKIE, &csrf, 3600)) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        resp
    };
    let expected = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| session::cookie(h, LOGIN_COOKIE));
    if !expected.is_some_and(|e| session::same_token(e, &f.csrf)) {
        return again(
            StatusCode::FORBIDDEN,
            "This form expired or did not come from this site; log in again.",
        );
    }
    let address = remote.map(|r| r.ip().to_string()).unwrap_or_default();
    let key = format!("{address}|{}", f.username);
    // Trying many usernames from one address is limited too (the `|` cannot be in a name).
    let address_key = format!("{address}|");
    if c.failures.get(&key).unwrap_or(0) >= MAX_FAILURES
        || c.failures.get(&address_key).unwrap_or(0) >= MAX_FAILURES_PER_ADDRESS
    {
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed logins from here. Wait 15 minutes and try again.",
        );
    }
    let account = match c
        .gw
        .identities()
        .authenticate(&f.username, &Secret::new(f.password))
        .await
    {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "console login failed");
            return unavailable(None);
        }
    };
    let tag = match &account {
        Some(a) if a.kind == AccountKind::User => c.gw.identities().password_tag(&a.username).await.ok().flatten(),
        _ => None,
    };
    let (Some(account), Some((id, tag))) = (account, tag) else {
        c.failures.insert(key.clone(), c.failures.get(&key).unwrap_or(0) + 1);
        c.failures
            .insert(address_key.clone(), c.failures.get(&address_key).unwrap_or(0) + 1);
        c.gw.audit().record(
            Event::new(&f.username, "user", "console_login", "console")
                .outcome("denied")
                .remote(remote),
        );
        return again(
            StatusCode::UNAUTHORIZED,
            "Wrong username or password (pull secrets cannot log in here).",
        );
    };
    let token = match c.sessions.open(&account.username, id, &tag).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "opening a console session failed");
            return unavailable(None);
        }
    };
    c.failures.invalidate(&key);
    c.gw.audit()
        .record(Event::new(&account.username, "user", "console_login", "console").remote(remote));
    let mut resp = Redirect::to(&next).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&cookie_header(COOKIE, &token, session::LIFETIME_MS / 1000)) {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cookie_header(LOGIN_COOKIE, "", 0)) {
        h.append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
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

async fn logout(
    State(c): State<Console>,
    ClientAddr(remote): ClientAddr,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<CsrfForm>,
) -> Response {
    let caller = match c.caller(&headers, &uri, remote).await {
        Ok(caller) => caller,
        Err(resp) => return resp,
    };
    if let Some(refusal) = refuse_without_csrf(&caller, &f.csrf) {
        return refusal;
    }
    if let Err(e) = c.sessions.close(&caller.session).await {
        tracing::error!(error = %e, "closing a console session failed");
        return unavailable(Some(&caller.viewer()));
    }
    let mut resp = Redirect::to("/ui/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie_header(COOKIE, "", 0)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn home(State(c): State<Console>, ClientAddr(remote): ClientAddr, headers: HeaderMap, uri: Uri) -> Response {
    let caller = match c.caller(&headers, &uri, remote).await {
        Ok(caller) => caller,
        Err(resp) => return resp,
    };
    render_home(&c, &caller, None, StatusCode::OK).await
}

async fn render_home(c: &Console, caller: &Caller, message: Option<&str>, status: StatusCode) -> Response {
    let answer = c.call(caller, Method::GET, "/api/v1/orgs", None).await;
    if !answer.ok() {
        return failed(&caller.viewer(), &answer);
    }
    let orgs = answer.body.as_array().cloned().unwrap_or_default();
    let can_create = caller.global_admin;
    page(status, views::orgs(&caller.viewer(), &orgs, can_create, message))
}

async fn create_org(
    State(c): State<Console>,
    ClientAddr(remote): ClientAddr,
    headers: HeaderMap,
    uri: Uri,
    raw: String,
) -> Response {
    let caller = match c.caller(&headers, &uri, remote).await {
        Ok(caller) => caller,
        Err(resp) => return resp,
    };
    let Ok(f) = serde_urlencoded_form(&raw) else {
        return bad_form(&caller);
    };
    if let Some(refusal) = refuse_without_csrf(&caller, &f.csrf) {
        return refusal;
    }
    let label = f.label.clone().unwrap_or_default();
    let body = json!({ "label": label, "name": f.name.clone().unwrap_or_default() });
    let answer = c.call(&caller, Method::POST, "/api/v1/orgs", Some(&body)).await;
    if answer.ok() {
        return Redirect::to(&format!("/ui/orgs/{}?tab=products", encode(&label))).into_response();
    }
    if answer.status == StatusCode::FORBIDDEN {
        return failed(&caller.viewer(), &answer);
    }
    render_home(&c, &caller, Some(&answer.message()), answer.status).await
}

#[derive(Deserialize, Default)]
struct OrgQuery {
    q: Option<String>,
    tab: Option<String>,
    done: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<i64>,
    after: Option<String>,
    edit: Option<String>,
}

/// `YYYY-MM-DD` as milliseconds since the epoch at 00:00 UTC.
fn day_ms(s: &str) -> Option<i64> {
    let mut parts = s.trim().splitn(3, '-').map(str::parse::<i32>);
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(d))) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    let date = time::Date::from_calendar_date(y, month, u8::try_from(d).ok()?).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn org(
    State(c): State<Console>,
    ClientAddr(remote): ClientAddr,
    headers: HeaderMap,
    uri: Uri,
    Path(org): Path<String>,
    Query(q): Query<OrgQuery>,
) -> Response {
    let caller = match c.caller(&headers, &uri, remote).await {
        Ok(caller) => caller,
        Err(resp) => return resp,
    };
    // Fixed messages only: nothing a link could make the page say.
    let done = match q.done.as_deref() {
        Some("product") => Some(("Product created.", true)),
        Some("member") => Some(("Member added.", true)),
        Some("member-removed") => Some(("Role removed.", true)),
        Some("revoked") => Some(("Pull secret revoked: it no longer works.", true)),
        Some("remote") => Some(("Remote created. Sync it to fill the repository.", true)),
        Some("remote-saved") => Some(("Remote saved: the next sync uses it.", true)),
        _ => None,
    };
    render_org(&c, &caller, &org, &q, done, StatusCode::OK).await
}

async fn render_org(
    c: &Console,
    caller: &Caller,
    org: &str,
    q: &OrgQuery,
    message: Option<(&str, bool)>,
    status: StatusCode,
) -> Response {
    let can_manage = c.may_manage(caller, org).await;
    let query = q.q.as_deref();
    let tab = match q.tab.as_deref() {
        Some("products") => "products",
        Some("access") if can_manage => "access",
        Some("remotes") if can_manage => "remotes",
        Some("audit") if can_manage => "audit",
        _ => "repositories",
    };
    let query = query.unwrap_or_default();
    let base = format!("/api/v1/orgs/{}", encode(org));
    let get = async |path: String| {
        let a = c.call(caller, Method::GET, &path, None).await;
        if a.ok() {
            Ok(a.body)
        } else {
            Err(failed(&caller.viewer(), &a))
        }
    };
    let list = |v: &Value, key: Option<&str>| -> Vec<Value> {
        let v = match key {
            Some(k) => &v[k],
            None => v,
        };
        v.as_array().cloned().unwrap_or_default()
    };
    let (mut repos, mut products, mut members, mut secrets, mut remotes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut next_page: Option<String> = None;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let (actor, action, target, since, until) = (
        text(&q.actor),
        text(&q.action),
        text(&q.target),
        text(&q.since),
        text(&q.until),
    );
    let mut audit = views::AuditView {
        actor: &actor,
        action: &action,
        target: &target,
        since: &since,
        until: &until,
        ..Default::default()
    };
    let fetched = async {
        match tab {
            "audit" => {
                // Built before any await: the serializer is not Send.
                let query = {
                    let mut p = form_urlencoded::Serializer::new(String::new());
                    p.append_pair("limit", "100");
                    for (k, v) in [("actor", &actor), ("action", &action), ("target", &target)] {
                        if !v.is_empty() {
                            p.append_pair(k, v);
                        }
                    }
                    if let Some(ms) = day_ms(&since) {
                        p.append_pair("since", &ms.to_string());
                    }
                    if let Some(ms) = day_ms(&until) {
                        p.append_pair("until", &(ms + 86_400_000).to_string());
                    }
                    if let Some(b) = q.before {
                        p.append_pair("before", &b.to_string());
                    }
                    p.finish()
                };
                let v = get(format!("{base}/audit?{query}")).await?;
                audit.events = list(&v, Some("events"));
                audit.next_before = v["next_before"].as_i64();
            }
            "repositories" => {
                let after = q
                    .after
                    .as_deref()
                    .map(|a| format!("&after={}", encode(a)))
                    .unwrap_or_default();
                let v = get(format!("{base}/repositories?q={}{after}", encode(query))).await?;
                repos = list(&v, Some("repositories"));
                next_page = v["next"].as_str().map(str::to_owned);
            }
            "products" => products = list(&get(format!("{base}/products")).await?, None),
            "remotes" => {
                products = list(&get(format!("{base}/products")).await?, None);
                for p in &products {
                    let label = p["label"].as_str().unwrap_or_default();
                    let v = get(format!("{base}/products/{}/remotes", encode(label))).await?;
                    remotes.extend(list(&v, Some("remotes")));
                }
            }
            _ => {
                products = list(&get(format!("{base}/products")).await?, None);
                members = list(&get(format!("{base}/members")).await?, None);
                secrets = list(&get(format!("{base}/pull-secrets")).await?, None);
            }
        }
        Ok::<(), Response>(())
    }
    .await;
    if let Err(resp) = fetched {
        return resp;
    }
    let view = views::Org {
        org,
        tab,
        can_manage,
        message,
        query,
        repos: &repos,
        products: &products,
        members: &members,
        pull_secrets: &secrets,
        remotes: &remotes,
        audit: &audit,
        next_page: next_page.as_deref(),
        editing: q.edit.as_deref(),
    };
    page(status, views::org(&caller.viewer(), &view))
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

async fn org_action(
    State(c): State<Console>,
    ClientAddr(remote): ClientAddr,
    headers: HeaderMap,
    uri: Uri,
    Path((org, action)): Path<(String, String)>,
    raw: String,
) -> Response {
    let caller = match c.caller(&headers, &uri, remote).await {
        Ok(caller) => caller,
        Err(resp) => return resp,
    };
    let Ok(f) = serde_urlencoded_form(&raw) else {
        return bad_form(&caller);
    };
    if let Some(refusal) = refuse_without_csrf(&caller, &f.csrf) {
        return refusal;
    }
    let base = format!("/api/v1/orgs/{}", encode(&org));
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let (method, path, body, tab, done) = match action.as_str() {
        "products" => (
            Method::POST,
            format!("{base}/products"),
            Some(json!({ "label": text(&f.label), "public": f.public.is_some() })),
            "products",
            "product",
        ),
        "members" => {
            let mut body = json!({ "username": text(&f.username), "role": text(&f.role) });
            if let Some(p) = f.product.as_deref().filter(|p| !p.is_empty()) {
                body["product"] = json!(p);
            }
            (Method::POST, format!("{base}/members"), Some(body), "access", "member")
        }
        "members-remove" => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("role", &text(&f.role));
            if let Some(p) = f.product.as_deref().filter(|p| !p.is_empty()) {
                q.append_pair("product", p);
            }
            (
                Method::DELETE,
                format!("{base}/members/{}?{}", encode(&text(&f.username)), q.finish()),
                None,
                "access",
                "member-removed",
            )
        }
        "pull-secrets" => {
            let products = form_list(&raw, "products");
            let mut body = json!({
                "name": text(&f.name),
                "actions": if f.push.is_some() { json!(["pull", "push"]) } else { json!(["pull"]) },
            });
            if !products.is_empty() {
                body["products"] = json!(products);
            }
            if let Some(d) = f.expires_in_days.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
                let Ok(n) = d.parse::<u32>() else {
                    let why = "expires_in_days: a whole number of days";
                    let status = StatusCode::BAD_REQUEST;
                    let q = OrgQuery {
                        tab: Some("access".into()),
                        ..Default::default()
                    };
                    return render_org(&c, &caller, &org, &q, Some((why, false)), status).await;
                };
                body["expires_in_days"] = json!(n);
            }
            (
                Method::POST,
                format!("{base}/pull-secrets"),
                Some(body),
                "access",
                "secret",
            )
        }
        "remotes" => {
            let product = text(&f.product);
            let mut body = json!({
                "name": text(&f.name),
                "url": text(&f.url),
                "upstream_name": text(&f.upstream_name),
                "include_tags": patterns(&f.include_tags),
                "exclude_tags": patterns(&f.exclude_tags),
                "mirror": f.mirror.is_some(),
                "policy": f.policy.clone().unwrap_or_else(|| "immediate".into()),
            });
            if let Some(u) = f.username.as_deref().filter(|u| !u.is_empty()) {
                body["username"] = json!(u);
            }
            if let Some(p) = f.password.as_deref().filter(|p| !p.is_empty()) {
                body["password"] = json!(p);
            }
            (
                Method::POST,
                format!("{base}/products/{}/remotes", encode(&product)),
                Some(body),
                "remotes",
                "remote",
            )
        }
        "remotes-edit" => {
            let mut body = json!({
                "url": text(&f.url),
                "upstream_name": text(&f.upstream_name),
                "include_tags": patterns(&f.include_tags),
                "exclude_tags": patterns(&f.exclude_tags),
                "mirror": f.mirror.is_some(),
                "policy": f.policy.clone().unwrap_or_else(|| "immediate".into()),
                "username": f.username.as_deref().filter(|u| !u.is_empty()),
            });
            if let Some(p) = f.password.as_deref().filter(|p| !p.is_empty()) {
                body["password"] = json!(p);
            }
            (
                Method::PATCH,
                format!(
                    "{base}/products/{}/remotes/{}",
                    encode(&text(&f.product)),
                    encode(&text(&f.name))
                ),
                Some(body),
                "remotes",
                "remote-saved",
            )
        }
        "remotes-sync" => (
            Method::POST,
            format!(
                "{base}/products/{}/remotes/{}/sync",
                encode(&text(&f.product)),
                encode(&text(&f.name))
            ),
            None,
            "remotes",
            "job",
        ),
        "pull-secrets-revoke" => (
            Method::DELETE,
            format!("{base}/pull-secrets/{}", encode(&text(&f.name))),
            None,
            "access",
            "revoked",
        ),
        _ => return not_found_page(&caller),
    };
    let answer = c.call(&caller, method, &path, body.as_ref()).await;
    if !answer.ok() {
        if matches!(answer.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
            return failed(&caller.viewer(), &answer);
        }
        let why = answer.message();
        let q = OrgQuery {
            tab: Some(tab.into()),
            ..Default::default()
        };
        return render_org(&c, &caller, &org, &q, Some((&why, false)), answer.status).await;
    }
    if done == "job"
        && let Some(id) = answer.body["job"].as_i64()
    {
        return Redirect::to(&format!("/ui/jobs/{id}")).into_response();
    }
    if done == "secret" {
        let host = c.gw.registry_host(&headers).unwrap_or_default();
        return page(
            StatusCode::CREATED,
            views::new_pull_secret(&caller.viewer(), &org, &answer.body, &host),
        );
    }
    Redirect::to(&format!("/ui/orgs/{}?tab={tab}&done={done}", encode(&org))).into_response()
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

#[derive(Deserialize)]
struct RepoQuery {
    tab: Option<String>,
    done: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
}

fn repo_path(rest: &str) -> Option<RepoPath> {
    RepoPath::parse(rest).ok()
}

async fn repository(
    State(c): State<Console>,
    ClientAddr(remote): ClientAddr,
    headers: HeaderMap,
    uri: Uri,
    Path(rest): Path<String>,
    Query(q): Query<RepoQuery>,
) -> Response {
    let caller = match c.caller(&headers, &uri, remote).await {
        Ok(caller) => caller,
        Err(resp) => return resp,
    };
    if let Some((name, digest)) = rest.split_once("/manifests/") {
        return manifest_page(&c, &caller, &headers, name, digest).await;
    }
    if let Some((name, n)) = rest.split_once("/versions/") {
        return version_page(&c, &caller, name, n).await;
    }
    if let Some(name) = rest.strip_suffix("/compare") {
        return compare_page(&c, &caller, name, q.from, q.to).await;
    }
    let Some(path) = repo_path(&rest) else {
        return not_found_page(&caller);
    };
    // Fixed messages only: nothing a link could make the page say.
    let done = match q.done.as_deref() {
        Some("tag") => Some(("Tag added: a new version records it.", true)),
        Some("readme") => Some(("README saved.", true)),
        Some("sign") => Some(("Signed: a new version holds the signature.", true)),
        Some("rollback") => Some(("Rolled back: a new version has the old content.", true)),
        Some("untag") => Some(("Tag removed: a new version records it.", true)),
        _ => None,
    };
    render_repository(&c, &caller, &headers, &path, q.tab.as_deref(), done, StatusCode::OK).await
}

async fn manifest_page(c: &Console, caller: &Caller, headers: &HeaderMap, name: &str, digest: &str) -> Response {
    let Some(path) = repo_path(name) else {
        return not_found_page(caller);
    };
    let answer = c
        .call(
            caller,
            Method::GET,
            &format!("/api/v1/repositories/{}/manifests/{}", path.public, encode(digest)),
            None,
        )
        .await;
    if !answer.ok() {
        return failed(&caller.viewer(), &answer);
    }
    let host = c.gw.registry_host(headers).unwrap_or_else(|| "REGISTRY".into());
    let can_push = c.may(caller, Action::Push, &path).await;
    page(
        StatusCode::OK,
        views::manifest(&caller.viewer(), &path.public, &host, &answer.body, can_push),
    )
}

async fn version_page(c: &Console, caller: &Caller, name: &str, n: &str) -> Response {
    let (Some(path), Ok(n)) = (repo_path(name), n.parse::<i64>()) else {
        return not_found_page(caller);
    };
    let answer = c
        .call(
            caller,
            Method::GET,
            &format!("/api/v1/repositories/{}/versions/{n}", path.public),
            None,
        )
        .await;
    if !answer.ok() {
        return failed(&caller.viewer(), &answer);
    }
    page(
        StatusCode::OK,
        views::version(&caller.viewer(), &path.public, &answer.body),
    )
}

async fn compare_page(c: &Console, caller: &Caller, name: &str, from: Option<i64>, to: Option<i64>) -> Response {
    let (Some(path), Some(from), Some(to)) = (repo_path(name), from, to) else {
        return not_found_page(caller);
    };
    let mut tags = Vec::new();
    for n in [from, to] {
        let a = c
            .call(
                caller,
                Method::GET,
                &format!("/api/v1/repositories/{}/versions/{n}", path.public),
                None,
            )
            .await;
        if !a.ok() {
            return failed(&caller.viewer(), &a);
        }
        let map: std::collections::BTreeMap<String, String> = a.body["tags"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(t, d)| Some((t.clone(), d.as_str()?.to_owned())))
            .collect();
        tags.push(map);
    }
    let names: std::collections::BTreeSet<&String> = tags[0].keys().chain(tags[1].keys()).collect();
    let changes: Vec<(String, Option<String>, Option<String>)> = names
        .into_iter()
        .filter_map(|t| {
            let (a, b) = (tags[0].get(t).cloned(), tags[1].get(t).cloned());
            (a != b).then(|| (t.clone(), a, b))
        })
        .collect();
    page(
        StatusCode::OK,
        views::compare(&caller.viewer(), &path.public, from, to, &changes),
    )
}

async fn render_repository(
    c: &Console,
    caller: &Caller,
    headers: &HeaderMap,
    path: &RepoPath,
    tab: Option<&str>,
    message: Option<(&str, bool)>,
    status: StatusCode,
) -> Response {
    let tab = match tab {
        Some("versions") => "versions",
        Some("readme") => "readme",
        _ => "images",
    };
    let base = format!("/api/v1/repositories/{}", path.public);
    let (listing, versions) = if tab == "versions" {
        (
            None,
            Some(c.call(caller, Method::GET, &format!("{base}/versions"), None).await),
        )
    } else {
        (
            Some(c.call(caller, Method::GET, &format!("{base}/signatures"), None).await),
            None,
        )
    };
    for a in listing.iter().chain(versions.iter()) {
        if !a.ok() {
            return failed(&caller.viewer(), a);
        }
    }
    let readme = if tab == "versions" {
        String::new()
    } else {
        let a = c.call(caller, Method::GET, &format!("{base}/readme"), None).await;
        a.body["readme"]["content"].as_str().unwrap_or_default().to_owned()
    };
    let tags = listing
        .as_ref()
        .and_then(|a| a.body["tags"].as_array().cloned())
        .unwrap_or_default();
    let versions = versions
        .as_ref()
        .and_then(|a| a.body["versions"].as_array().cloned())
        .unwrap_or_default();
    let host = c.gw.registry_host(headers).unwrap_or_else(|| "REGISTRY".into());
    let can_push = c.may(caller, Action::Push, path).await;
    let can_manage = c.may_manage(caller, &path.org).await;
    let rendered = markdown::render(&readme);
    // Mirrored: the remote that fills it and its last sync (org admins see remotes).
    let (mut remote, mut last_sync) = (None, None);
    if can_manage && tab == "images" {
        let remotes = c
            .call(
                caller,
                Method::GET,
                &format!(
                    "/api/v1/orgs/{}/products/{}/remotes",
                    encode(&path.org),
                    encode(&path.product)
                ),
                None,
            )
            .await;
        remote = remotes.body["remotes"]
            .as_array()
            .and_then(|l| l.iter().find(|r| r["name"] == path.name.as_str()).cloned());
        if let Some(job) = remote.as_ref().and_then(|r| r["last_job"].as_i64()) {
            let j = c.call(caller, Method::GET, &format!("/api/v1/jobs/{job}"), None).await;
            last_sync = j.ok().then_some(j.body);
        }
    }
    // Keys the org's pushers can sign with.
    let mut signing_keys = Vec::new();
    if can_push && tab == "images" {
        let keys = c
            .call(
                caller,
                Method::GET,
                &format!("/api/v1/orgs/{}/signing-keys", encode(&path.org)),
                None,
            )
            .await;
        signing_keys = keys.body["signing_keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| k["can_sign"] == true)
            .filter_map(|k| k["name"].as_str().map(str::to_owned))
            .collect();
    }
    let view = views::Repository {
        can_manage,
        readme: &readme,
        readme_html: &rendered,
        remote: remote.as_ref(),
        last_sync: last_sync.as_ref(),
        signing_keys: &signing_keys,
        public: &path.public,
        host: &host,
        tab,
        can_push,
        message,
        tags: &tags,
        versions: &versions,
    };
    page(status, views::repository(&caller.viewer(), &view))
}

#[derive(Deserialize)]
struct ActionForm {
    csrf: String,
    content: Option<String>,
    key: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
    version: Option<i64>,
}

async fn repository_action(
    State(c): State<Console>,
    ClientAddr(remote): ClientAddr,
    headers: HeaderMap,
    uri: Uri,
    Path(rest): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    let caller = match c.caller(&headers, &uri, remote).await {
        Ok(caller) => caller,
        Err(resp) => return resp,
    };
    if let Some(refusal) = refuse_without_csrf(&caller, &f.csrf) {
        return refusal;
    }
    let Some((name, action)) = rest.rsplit_once('/') else {
        return not_found_page(&caller);
    };
    let Some(path) = repo_path(name) else {
        return not_found_page(&caller);
    };
    let base = format!("/api/v1/repositories/{}", path.public);
    let (call, body, tab) = match (action, &f.tag, f.version) {
        ("untag", Some(tag), _) => ("untag", json!({ "tag": tag }), "images"),
        ("tag", Some(tag), _) => ("tag", json!({ "tag": tag, "digest": f.digest }), "images"),
        ("readme", _, _) => (
            "readme",
            json!({ "content": f.content.clone().unwrap_or_default() }),
            "images",
        ),
        ("sign", Some(tag), _) => ("sign", json!({ "tags": [tag], "key": f.key }), "images"),
        ("rollback", _, Some(v)) => ("rollback", json!({ "version": v }), "versions"),
        _ => return not_found_page(&caller),
    };
    let answer = c
        .call(&caller, Method::POST, &format!("{base}/{call}"), Some(&body))
        .await;
    if answer.ok() {
        return Redirect::to(&format!("/ui/repos/{}?tab={tab}&done={call}", path.public)).into_response();
    }
    if matches!(answer.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
        return failed(&caller.viewer(), &answer);
    }
    let why = answer.message();
    render_repository(
        &c,
        &caller,
        &headers,
        &path,
        Some(tab),
        Some((&why, false)),
        answer.status,
    )
    .await
}

async fn job(
    State(c): State<Console>,
    ClientAddr(remote): ClientAddr,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<i64>,
) -> Response {
    let caller = match c.caller(&headers, &uri, remote).await {
        Ok(caller) => caller,
        Err(resp) => return resp,
    };
    let answer = c.call(&caller, Method::GET, &format!("/api/v1/jobs/{id}"), None).await;
    if !answer.ok() {
        return failed(&caller.viewer(), &answer);
    }
    let org = answer.body["payload"]["org"].as_str().unwrap_or_default();
    let back = if org.is_empty() {
        "/ui/".to_owned()
    } else {
        format!("/ui/orgs/{}?tab=remotes", encode(org))
    };
    page(StatusCode::OK, views::job(&caller.viewer(), &answer.body, &back))
}

#[derive(Deserialize)]
struct AdminQuery {
    tab: Option<String>,
    done: Option<String>,
}

async fn admin_page(
    State(c): State<Console>,
    ClientAddr(remote): ClientAddr,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<AdminQuery>,
) -> Response {
    let caller = match c.caller(&headers, &uri, remote).await {
        Ok(caller) => caller,
        Err(resp) => return resp,
    };
    let done = match q.done.as_deref() {
        Some("user") => Some(("User created.", true)),
        Some("user-deleted") => Some(("User deleted: their sessions and tokens ended.", true)),
        _ => None,
    };
    render_admin(&c, &caller, q.tab.as_deref(), done, StatusCode::OK).await
}

async fn render_admin(
    c: &Console,
    caller: &Caller,
    tab: Option<&str>,
    message: Option<(&str, bool)>,
    status: StatusCode,
) -> Response {
    let tab = if tab == Some("users") { "users" } else { "edges" };
    let (path, key) = match tab {
        "users" => ("/api/v1/users", None),
        _ => ("/api/v1/smart-proxies", Some("smart_proxies")),
    };
    let answer = c.call(caller, Method::GET, path, None).await;
    if !answer.ok() {
        return failed(&caller.viewer(), &answer);
    }
    let items = match key {
        Some(k) => &answer.body[k],
        None => &answer.body,
    }
    .as_array()
    .cloned()
    .unwrap_or_default();
    page(status, views::admin(&caller.viewer(), tab, message, &items))
}

async fn admin_action(
    State(c): State<Console>,
    ClientAddr(remote): ClientAddr,
    headers: HeaderMap,
    uri: Uri,
    Path(action): Path<String>,
    raw: String,
) -> Response {
    let caller = match c.caller(&headers, &uri, remote).await {
        Ok(caller) => caller,
        Err(resp) => return resp,
    };
    let Ok(f) = serde_urlencoded_form(&raw) else {
        return bad_form(&caller);
    };
    if let Some(refusal) = refuse_without_csrf(&caller, &f.csrf) {
        return refusal;
    }
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let (method, path, body, tab, done) = match action.as_str() {
        "users" => (
            Method::POST,
            "/api/v1/users".to_owned(),
            Some(json!({
                "username": text(&f.username),
                "password": text(&f.password),
                "global_admin": f.global_admin.is_some(),
            })),
            "users",
            "user",
        ),
        "users-delete" => (
            Method::DELETE,
            format!("/api/v1/users/{}", encode(&text(&f.username))),
            None,
            "users",
            "user-deleted",
        ),
        "edges-sync" => (
            Method::POST,
            format!("/api/v1/smart-proxies/{}/sync", encode(&text(&f.name))),
            None,
            "edges",
            "job",
        ),
        _ => return not_found_page(&caller),
    };
    let answer = c.call(&caller, method, &path, body.as_ref()).await;
    if !answer.ok() {
        if matches!(answer.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
            return failed(&caller.viewer(), &answer);
        }
        let why = answer.message();
        return render_admin(&c, &caller, Some(tab), Some((&why, false)), answer.status).await;
    }
    if done == "job"
        && let Some(id) = answer.body["job"].as_i64()
    {
        return Redirect::to(&format!("/ui/jobs/{id}")).into_response();
    }
    Redirect::to(&format!("/ui/admin?tab={tab}&done={done}")).into_response()
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
