//! The gateway at an edge site. Pulls are served here, authorized with the copy of the
//! main server's authorization data; what the edge cannot decide alone goes to the
//! main server:
//! - token requests are passed to the main server's token service first, so clients
//!   get its tokens (valid here and there, which is what lets a push through the edge
//!   reach the main server); only when the main server cannot be reached does the edge
//!   issue tokens itself, from its copy (pulls keep working during an outage);
//! - writes (uploads, manifest PUTs, deletes) are forwarded to the main server as they
//!   are: content is never stored only at the edge, and comes back through the sync.

use super::Gateway;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use tower::ServiceExt;

/// Token request bodies are small forms; larger ones are refused before forwarding.
const MAX_TOKEN_BODY: usize = 64 * 1024;

/// After the main server could not be reached, token requests are answered locally
/// for this long without trying it again (a host that drops packets would otherwise
/// cost every login the whole connect timeout).
const UNREACHABLE_FOR_SECS: u64 = 5;

/// The main server, seen from an edge.
pub struct UpstreamLink {
    /// Its base URL, `https://main.example:5000`.
    pub url: String,
    pub http: reqwest::Client,
    /// Until when (Unix seconds) it is taken as unreachable.
    down_until: std::sync::atomic::AtomicU64,
}

impl UpstreamLink {
    pub fn new(url: String, http: reqwest::Client) -> Self {
        Self {
            url,
            http,
            down_until: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn seems_down(&self) -> bool {
        self.down_until.load(std::sync::atomic::Ordering::Relaxed) > super::token::now_secs()
    }

    fn mark_down(&self) {
        self.down_until.store(
            super::token::now_secs() + UNREACHABLE_FOR_SECS,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and Host are not forwarded.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "te" | "trailer" | "upgrade" | "host"
    )
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !hop_by_hop(k) {
            to.append(k.clone(), v.clone());
        }
    }
}

/// Send a request to the main server as it came, streaming both bodies; a `Location`
/// on the main server is made relative, so the client keeps talking to the edge.
pub(super) async fn forward(link: &UpstreamLink, req: Request) -> Result<Response, reqwest::Error> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = link.http.request(parts.method.clone(), format!("{}{path}", link.url));
    if parts.method != axum::http::Method::GET && parts.method != axum::http::Method::HEAD {
        out = out.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    out = out.headers(headers);
    let res = out.send().await?;
    let mut resp = Response::builder().status(res.status().as_u16());
    if let Some(h) = resp.headers_mut() {
        copy_headers(res.headers(), h);
        // Upload sessions live on the main server but are reached through the edge,
        // whatever public URL the main server calls itself.
        if let Some(loc) = h.get(header::LOCATION).and_then(|v| v.to_str().ok())
            && let Ok(url) = reqwest::Url::parse(loc)
            && url.path().starts_with("/v2/")
        {
            let relative = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            if let Ok(v) = relative.parse() {
                h.insert(header::LOCATION, v);
            }
        }
    }
    let body = Body::from_stream(res.bytes_stream().map_err(std::io::Error::other));
    Ok(resp
        .body(body)
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response()))
}

/// A GET or HEAD of a manifest or blob the edge does not have, asked of the main server
/// with the client's credentials: its answer when it has the content, else `None`.
pub(super) async fn read_through(
    link: &UpstreamLink,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Option<Response> {
    if link.seems_down() {
        return None;
    }
    let mut req = Request::new(Body::empty());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    match forward(link, req).await {
        Ok(resp) if resp.status().is_success() => Some(resp),
        Ok(_) => None,
        Err(e) => {
            if e.is_connect() || e.is_timeout() {
                link.mark_down();
            }
            None
        }
    }
}

/// `/v2/token` at an edge: the main server's answer when it can be reached, else a
/// token issued here from the authorization copy.
pub(super) async fn token(State(gw): State<Gateway>, req: Request) -> Response {
    let Some(link) = gw.inner.upstream.as_ref() else {
        return local_token(gw, req).await;
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_TOKEN_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "token request too large").into_response();
    };
    // Pushes need the main server's tokens: their requests always try it.
    let text = format!(
        "{} {}",
        parts.uri.query().unwrap_or_default(),
        String::from_utf8_lossy(&bytes)
    );
    let for_writes = text.contains("push") || text.contains("delete") || text.contains("%2A") || text.contains('*');
    if link.seems_down() && !for_writes {
        return local_token(gw, Request::from_parts(parts, Body::from(bytes))).await;
    }
    let copy = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
    match forward(link, copy).await {
        Ok(resp) => resp,
        Err(e) if e.is_connect() || e.is_timeout() => {
            link.mark_down();
            tracing::debug!(error = %e, "main server unreachable; issuing the token here");
            local_token(gw, Request::from_parts(parts, Body::from(bytes))).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "token request to the main server failed; issuing the token here");
            local_token(gw, Request::from_parts(parts, Body::from(bytes))).await
        }
    }
}

async fn local_token(gw: Gateway, req: Request) -> Response {
    let local = axum::Router::new()
        .route(
            "/v2/token",
            axum::routing::get(super::token_service::get_token).post(super::token_service::post_token),
        )
        .with_state(gw);
    match local.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}
