//! The token endpoint of the Docker/OCI token protocol, and the JWKS.
//!
//! `GET /v2/token?service=…&scope=…[&scope=…][&offline_token=true]` with Basic
//! credentials (or none: anonymous), and the OAuth2 form `POST /v2/token` with
//! `grant_type=password` or `refresh_token`. Bad credentials are a 401 (so `podman
//! login` fails at once); a scope the caller may not have is simply left out of the
//! token (the grant is the intersection of what was asked and what policy allows).

use super::Gateway;
use super::mapping::RepoPath;
use super::scope::{Access, parse_scopes};
use super::token::{self, Claims, Expiry};
use crate::audit::Event;
use crate::error::{Error, ErrorCode, Result};
use crate::identity::credentials::{Secret, parse_basic};
use crate::identity::{Account, AccountKind};
use crate::policy::{Action, Principal};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::net::SocketAddr;

/// The form body of a POST is small; anything larger is not a token request.
const MAX_FORM: usize = 64 * 1024;

pub(super) async fn jwks(State(gw): State<Gateway>) -> Response {
    let mut resp = axum::Json(gw.jwks()).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("public, max-age=60"),
    );
    resp
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw).into_owned().collect()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn remote(ext: &axum::http::Extensions) -> Option<SocketAddr> {
    ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// Count a refused token request by its error code.
fn counted(gw: &Gateway, r: Result<Response>) -> Result<Response> {
    if let (Some(m), Err(e)) = (gw.metrics(), &r) {
        m.token_refused(e.code.as_str());
    }
    r
}

pub(super) async fn get_token(
    State(gw): State<Gateway>,
    ext: axum::http::Extensions,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response> {
    let r = get_token_for(&gw, &ext, &uri, &headers).await;
    counted(&gw, r)
}

async fn get_token_for(gw: &Gateway, ext: &axum::http::Extensions, uri: &Uri, headers: &HeaderMap) -> Result<Response> {
    let gw = gw.clone();
    let query = pairs(uri.query().unwrap_or_default().as_bytes());
    check_service(&gw, first(&query, "service"))?;
    let scopes = parse_scopes(query.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.as_str()))?;
    let authorization = crate::identity::credentials::authorization(headers).map_err(malformed_credentials)?;
    let account = match authorization {
        None => None,
        Some(h) => {
            let creds = parse_basic(h).map_err(malformed_credentials)?;
            match creds {
                None => None,
                Some(c) => Some(login(&gw, &c.username, &c.password, remote(ext)).await?),
            }
        }
    };
    let offline = first(&query, "offline_token") == Some("true");
    let mut body = issue(&gw, account.as_ref(), scopes).await?;
    if let Some(obj) = body.as_object_mut() {
        obj.remove("access");
    }
    if offline && let Some(a) = &account {
        body["refresh_token"] = json!(refresh_token(&gw, a)?);
    }
    Ok(no_store(axum::Json(body).into_response()))
}

pub(super) async fn post_token(
    State(gw): State<Gateway>,
    ext: axum::http::Extensions,
    body: Bytes,
) -> Result<Response> {
    let r = post_token_for(&gw, &ext, &body).await;
    counted(&gw, r)
}

async fn post_token_for(gw: &Gateway, ext: &axum::http::Extensions, body: &Bytes) -> Result<Response> {
    let gw = gw.clone();
    if body.len() > MAX_FORM {
        return Err(Error::new(ErrorCode::InvalidRequest, "token request form too large"));
    }
    let form = pairs(body);
    check_service(&gw, first(&form, "service"))?;
    // One space-separated `scope` field (OAuth2), or repeated fields (containers/image).
    let scopes = parse_scopes(form.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.as_str()))?;
    let (account, refresh) = match first(&form, "grant_type") {
        Some("password") => {
            let username = first(&form, "username").unwrap_or_default();
            let password = Secret::new(first(&form, "password").unwrap_or_default());
            let account = login(&gw, username, &password, remote(ext)).await?;
            let refresh = if first(&form, "access_type") == Some("offline") {
                Some(refresh_token(&gw, &account)?)
            } else {
                None
            };
            (account, refresh)
        }
        Some("refresh_token") => {
            let presented = first(&form, "refresh_token").unwrap_or_default();
            let account = redeem_refresh_token(&gw, presented).await?;
            (account, Some(presented.to_owned()))
        }
        other => {
            return Err(Error::new(
                ErrorCode::InvalidRequest,
                format!(
                    "unsupported grant_type {:?}: use password or refresh_token",
                    other.unwrap_or("")
                ),
            ));
        }
    };
    let mut body = issue(&gw, Some(&account), scopes).await?;
    let granted: Vec<String> = serde_json::from_value::<Vec<Access>>(body["access"].take())
        .unwrap_or_default()
        .iter()
        .map(Access::to_scope)
        .collect();
    body["scope"] = json!(granted.join(" "));
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    Ok(no_store(axum::Json(body).into_response()))
}

/// Tokens must not be cached by proxies (RFC 6749 §5.1).
fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    resp
}

fn check_service(gw: &Gateway, service: Option<&str>) -> Result<()> {
    match service {
        Some(s) if s != gw.settings().service => Err(Error::new(
            ErrorCode::InvalidRequest,
            format!(
                "unknown service {s:?}; this token service issues tokens for {:?}",
                gw.settings().service
            ),
        )),
        _ => Ok(()),
    }
}

/// Credentials that cannot be read are a bad request (OAuth2's `invalid_request`), not
/// a failed login: nothing was checked.
fn malformed_credentials(e: crate::identity::credentials::CredentialError) -> Error {
    Error::new(ErrorCode::InvalidRequest, e.to_string())
}

fn bad_credentials() -> Error {
    Error::new(ErrorCode::Unauthorized, "invalid username or password")
        .with_header(header::WWW_AUTHENTICATE, "Basic realm=\"gatehouse\"")
}

async fn login(gw: &Gateway, username: &str, password: &Secret, remote: Option<SocketAddr>) -> Result<Account> {
    match gw.identities().authenticate(username, password).await? {
        Some(a) => Ok(a),
        None => {
            if let Some(m) = gw.metrics() {
                m.login_failed("token");
            }
            // The attempted name is recorded; the password never is.
            gw.audit().record(
                Event::new(username, "unknown", "login", format!("user {username}"))
                    .outcome("failed")
                    .remote(remote),
            );
            Err(bad_credentials())
        }
    }
}

fn refresh_token(gw: &Gateway, account: &Account) -> Result<String> {
    let s = gw.settings();
    let now = token::now_secs();
    let claims = Claims {
        iss: s.issuer.clone(),
        sub: account.username.clone(),
        aud: gw.refresh_audience(),
        exp: now + s.refresh_ttl.as_secs(),
        nbf: now,
        iat: now,
        jti: token::new_jti(),
        access: Vec::new(),
        cid: Some(account.id),
    };
    let token = gw.sign(&claims)?;
    if let Some(m) = gw.metrics() {
        m.token_issued("refresh");
    }
    Ok(token)
}

async fn redeem_refresh_token(gw: &Gateway, presented: &str) -> Result<Account> {
    let claims = gw
        .verify(presented, &gw.refresh_audience(), Expiry::Enforce)
        .map_err(|_| Error::new(ErrorCode::Unauthorized, "invalid or expired refresh token"))?;
    let Some(cid) = claims.cid else {
        return Err(Error::new(ErrorCode::Unauthorized, "invalid refresh token"));
    };
    match gw.identities().principal(&claims.sub, cid).await? {
        Some(p) => Ok(Account {
            id: cid,
            username: claims.sub,
            kind: match p {
                Principal::PullSecret { .. } => AccountKind::PullSecret,
                Principal::SmartProxy { .. } => AccountKind::SmartProxy,
                _ => AccountKind::User,
            },
        }),
        None => Err(Error::new(
            ErrorCode::Unauthorized,
            "the credential of this refresh token was revoked",
        )),
    }
}

/// Sign an access token for what `account` (or anonymous) may have of `scopes`; the
/// JSON body of the answer, with the granted `access` list.
async fn issue(gw: &Gateway, account: Option<&Account>, scopes: Vec<Access>) -> Result<serde_json::Value> {
    let principal = match account {
        None => Principal::Anonymous,
        Some(a) => gw.principal_of_account(a).await?.ok_or_else(bad_credentials)?,
    };
    let mut granted = Vec::new();
    for asked in scopes {
        if let Some(g) = grant(gw, &principal, &asked).await? {
            granted.push(g);
        }
    }
    let s = gw.settings();
    let now = token::now_secs();
    let claims = Claims {
        iss: s.issuer.clone(),
        sub: account.map(|a| a.username.clone()).unwrap_or_default(),
        aud: s.service.clone(),
        exp: now + s.token_ttl.as_secs(),
        nbf: now,
        iat: now,
        jti: token::new_jti(),
        access: granted,
        cid: account.map(|a| a.id),
    };
    let jwt = gw.sign(&claims)?;
    if let Some(m) = gw.metrics() {
        m.token_issued("access");
    }
    let issued_at = time::OffsetDateTime::from_unix_timestamp(now as i64)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    Ok(json!({
        "token": jwt,
        "access_token": jwt,
        "expires_in": s.token_ttl.as_secs().max(60),
        "issued_at": issued_at,
        "access": claims.access,
    }))
}

/// What of `asked` the principal may have: `None` when nothing.
async fn grant(gw: &Gateway, principal: &Principal, asked: &Access) -> Result<Option<Access>> {
    match asked.kind.as_str() {
        // Everyone may list; the listing shows only what they may pull.
        "registry" if asked.name == "catalog" && asked.allows("*") => {
            Ok(Some(Access::new("registry", "catalog", &["*"])))
        }
        "repository" => {
            let Ok(path) = RepoPath::parse(&asked.name) else {
                return Ok(None);
            };
            let resource = gw.resource(&path).await?;
            let mut actions = Vec::new();
            for (name, action) in [
                ("delete", Action::Delete),
                ("pull", Action::Pull),
                ("push", Action::Push),
            ] {
                if asked.allows(name) && gw.allowed(principal, action, &resource) {
                    actions.push(name);
                }
            }
            Ok((!actions.is_empty()).then(|| Access::new("repository", &asked.name, &actions)))
        }
        _ => Ok(None),
    }
}
