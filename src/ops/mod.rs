//! Running gatehouse: `/metrics` for Prometheus, `/healthz` and `/readyz` for load
//! balancers and orchestrators.
//!
//! - `/healthz`: the process answers (no checks, no credentials).
//! - `/readyz`: the database answers, the data directory takes a write, the blob store
//!   (files or S3) answers, a token key is loaded, a forwarding gateway's backend
//!   answers; at an edge, it has synced from the main server at least once (the age of
//!   its last sync is shown; an edge that cannot reach the main server keeps serving
//!   what it has, so that alone does not make it unready). 503 with what failed.
//! - `/metrics`: on the main port for global admins and the `metrics_token` bearer;
//!   without credentials on `metrics_listen`.

mod health;
mod scrape;

use crate::db::Database;
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the endpoints look at.
#[derive(Clone)]
pub struct Ops {
    metrics: Option<Metrics>,
    gateway: Gateway,
    registry: Option<crate::store::Registry>,
    syncer: Option<crate::sync::Syncer>,
    db: Database,
    /// SHA-256 of the scrape token: only the digest is kept.
    scrape_token: Option<[u8; 32]>,
    /// Storage per organisation, recomputed at most once a minute.
    storage: Arc<Mutex<Option<StorageSnapshot>>>,
}

/// Bytes per organisation, and when they were counted.
type StorageSnapshot = (Instant, Vec<(String, i64)>);

pub struct OpsParts {
    pub metrics: Option<Metrics>,
    pub gateway: Gateway,
    pub registry: Option<crate::store::Registry>,
    pub syncer: Option<crate::sync::Syncer>,
    pub db: Database,
    pub scrape_token: Option<String>,
}

fn sha256(s: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(s.as_bytes()).into()
}

impl Ops {
    pub fn new(p: OpsParts) -> Self {
        if let Some(m) = &p.metrics {
            m.register_collector(Box::new(crate::metrics::process::ProcessCollector));
        }
        Self {
            metrics: p.metrics,
            gateway: p.gateway,
            registry: p.registry,
            syncer: p.syncer,
            db: p.db,
            scrape_token: p.scrape_token.as_deref().map(sha256),
            storage: Arc::default(),
        }
    }

    /// The routes on the main port: `/metrics` asks for credentials.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_with_credentials))
            .with_state(self.clone())
    }

    /// The routes on `metrics_listen`: no credentials (a monitoring network).
    pub fn open_router(&self) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_open))
            .with_state(self.clone())
    }
}

async fn healthz() -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(serde_json::json!({ "status": "ok" })),
    )
        .into_response()
}

async fn readyz(State(ops): State<Ops>) -> Response {
    let report = health::check(&ops).await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(report.body),
    )
        .into_response()
}

async fn metrics_with_credentials(State(ops): State<Ops>, headers: HeaderMap) -> Response {
    // A garbled header is no credential here: the scrape is refused either way.
    let value = crate::identity::credentials::authorization(&headers).unwrap_or(None);
    let by_token = match (&ops.scrape_token, value.and_then(|v| v.strip_prefix("Bearer "))) {
        // Comparing digests leaks nothing useful through timing about the token itself.
        (Some(expected), Some(presented)) => *expected == sha256(presented),
        _ => false,
    };
    if !by_token {
        let allowed = match ops.gateway.principal_from_header(value).await {
            Ok(Some((_, crate::policy::Principal::User { global_admin: true, .. }))) => true,
            Ok(Some(_)) => {
                return plain(
                    StatusCode::FORBIDDEN,
                    "metrics are for global administrators and the metrics_token",
                );
            }
            _ => false,
        };
        if !allowed {
            let mut r = plain(
                StatusCode::UNAUTHORIZED,
                "credentials required: a global administrator's, or the metrics_token as a bearer token",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"gatehouse metrics\""),
            );
            return r;
        }
    }
    metrics_open(State(ops)).await
}

async fn metrics_open(State(ops): State<Ops>) -> Response {
    let Some(m) = &ops.metrics else {
        return plain(
            StatusCode::NOT_FOUND,
            "metrics are turned off (setting metrics = false)",
        );
    };
    scrape::refresh(&ops, m).await;
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        m.encode(),
    )
        .into_response()
}

fn plain(status: StatusCode, message: &'static str) -> Response {
    (status, format!("{message}\n")).into_response()
}
