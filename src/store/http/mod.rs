//! The store's `/v2/` HTTP API (OCI Distribution Specification v1.1). One dispatcher
//! turns `(route, method)` into a handler call; handlers validate their inputs, call the
//! `Registry` service and set success statuses and headers. Errors render in `error.rs`.

mod blobs;
mod listing;
mod manifests;
mod signatures;
mod uploads;

use crate::error::{Error, ErrorCode, Result};
use crate::oci::{OciRoute, RepoName, SIGNATURES_HEADER, parse_path};
use crate::store::Registry;
use crate::store::blobs::ByteStream;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures_util::{StreamExt, TryStreamExt};

pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";
pub use manifests::VERSION_HEADER;

/// The store's router: every `/v2` path, and the signature extension, go through
/// `dispatch`.
pub fn router(registry: Registry) -> Router {
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .route("/extensions/v2/{*rest}", any(dispatch))
        .with_state(registry)
}

/// A request as the handlers see it.
pub(crate) struct Req {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Vec<(String, String)>,
}

impl Req {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn query_all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.query
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn body_stream(body: Body) -> ByteStream {
        body.into_data_stream().map_err(std::io::Error::other).boxed()
    }
}

async fn dispatch(State(reg): State<Registry>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let query = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let req = Req { method, headers, query };
    let mut resp = match parse_path(uri.path()) {
        Some(route) => route_request(&reg, route, req, body)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        None => Error::code(ErrorCode::UnknownRoute).into_response(),
    };
    resp.headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    resp.headers_mut()
        .insert(SIGNATURES_HEADER, HeaderValue::from_static("1"));
    resp
}

async fn route_request(reg: &Registry, route: OciRoute, req: Req, body: Body) -> Result<Response> {
    use OciRoute::*;
    let m = req.method.clone();
    match (route, m) {
        (Base, Method::GET | Method::HEAD) => Ok(axum::Json(serde_json::json!({})).into_response()),
        (Catalog, Method::GET) => listing::catalog(reg, &req).await,
        (Tags { name }, Method::GET) => listing::tags(reg, &repo(&name)?, &req).await,
        (Referrers { name, digest }, Method::GET) => listing::referrers(reg, &repo(&name)?, &digest, &req).await,
        (Manifest { name, reference }, Method::GET | Method::HEAD) => {
            manifests::get(reg, &repo(&name)?, &reference, &req).await
        }
        (Manifest { name, reference }, Method::PUT) => manifests::put(reg, &repo(&name)?, &reference, &req, body).await,
        (Manifest { name, reference }, Method::DELETE) => manifests::delete(reg, &repo(&name)?, &reference).await,
        (Blob { name, digest }, Method::GET | Method::HEAD) => blobs::get(reg, &repo(&name)?, &digest, &req).await,
        (Blob { name, digest }, Method::DELETE) => blobs::delete(reg, &repo(&name)?, &digest).await,
        (UploadStart { name }, Method::POST) => uploads::start(reg, &repo(&name)?, &req, body).await,
        (Upload { name, id }, Method::GET) => uploads::status(reg, &repo(&name)?, &id).await,
        (Upload { name, id }, Method::PATCH) => uploads::patch(reg, &repo(&name)?, &id, &req, body).await,
        (Upload { name, id }, Method::PUT) => uploads::put(reg, &repo(&name)?, &id, &req, body).await,
        (Upload { name, id }, Method::DELETE) => uploads::cancel(reg, &repo(&name)?, &id).await,
        (Signatures { name, digest }, Method::GET | Method::HEAD) => {
            signatures::get(reg, &repo(&name)?, &digest, &req).await
        }
        (Signatures { name, digest }, Method::PUT) => signatures::put(reg, &repo(&name)?, &digest, body).await,
        (_, method) => Err(Error::new(
            ErrorCode::Unsupported,
            format!("method {method} is not supported on this endpoint"),
        )),
    }
}

fn repo(name: &str) -> Result<RepoName> {
    Ok(name.parse()?)
}

/// Shorthand for building responses with a status and a list of headers.
pub(crate) fn respond(status: axum::http::StatusCode, headers: &[(&str, String)], body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (axum::http::HeaderName::try_from(*k), HeaderValue::from_str(v)) {
            h.append(name, value);
        }
    }
    resp
}
