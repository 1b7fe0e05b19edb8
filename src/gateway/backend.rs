//! Where the gateway forwards registry requests: the store in the same process (the
//! embedded default: no network hop), or any OCI registry over HTTP (a `gatehouse
//! store` on a private network, Distribution, ...). Bodies stream both ways.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::ServiceExt;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend unreachable: {0}")]
    Unreachable(String),
    #[error("invalid backend URL {0:?}: {1}")]
    BadUrl(String, String),
}

#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// Send a request whose URI is a path and query (`/v2/...`); the backend adds its
    /// own scheme and authority.
    async fn send(&self, req: Request<Body>) -> Result<Response<Body>, BackendError>;

    /// Whether the backend keeps simple-signing signatures (the signature extension):
    /// the store in this process does; a registry over HTTP may be one that does not.
    fn supports_signatures(&self) -> bool {
        false
    }
}

/// The store's router, called directly.
pub struct InProcess {
    router: Router,
}

impl InProcess {
    pub fn new(router: Router) -> Self {
        Self { router }
    }
}

#[async_trait::async_trait]
impl Backend for InProcess {
    fn supports_signatures(&self) -> bool {
        true
    }

    async fn send(&self, req: Request<Body>) -> Result<Response<Body>, BackendError> {
        match self.router.clone().oneshot(req).await {
            Ok(resp) => Ok(resp),
            Err(never) => match never {},
        }
    }
}

/// A registry reached over plain HTTP (a private network; TLS to the backend is for a
/// later release).
pub struct Http {
    base: String,
    authority: axum::http::uri::Authority,
    client: Client<HttpConnector, Body>,
}

impl Http {
    pub fn new(url: &str) -> Result<Self, BackendError> {
        let bad = |why: &str| BackendError::BadUrl(url.to_owned(), why.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// backends are supported"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .build(connector);
        Ok(Self {
            base: format!("http://{authority}"),
            authority,
            client,
        })
    }
}

#[async_trait::async_trait]
impl Backend for Http {
    async fn send(&self, mut req: Request<Body>) -> Result<Response<Body>, BackendError> {
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = format!("{}{pq}", self.base)
            .parse()
            .map_err(|_| BackendError::Unreachable("bad request URI".into()))?;
        *req.uri_mut() = uri;
        if let Ok(host) = axum::http::HeaderValue::from_str(self.authority.as_str()) {
            req.headers_mut().insert(axum::http::header::HOST, host);
        }
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| BackendError::Unreachable(e.to_string()))?;
        Ok(resp.map(Body::new))
    }
}

/// How the registry path reports it (the OCI error format).
impl From<BackendError> for crate::error::Error {
    fn from(e: BackendError) -> Self {
        tracing::error!(error = %e, "forwarding to the backend failed");
        Self::code(crate::error::ErrorCode::Unavailable)
    }
}
