//! Router assembly, the per-request log line, request ids and counters, and serving (TLS or, when explicitly
//! asked for, plain HTTP) with graceful shutdown.

use crate::metrics::{Metrics, RequestLabels, RouteLabels, RouteOnly};
use crate::store::{Registry, http};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The bare store (`gatehouse store`): its `/v2/` API, no authentication, with
/// request logging and request ids.
pub fn store_app(registry: Registry) -> Router {
    with_request_log(http::router(registry), None)
}

/// Around every request: a request id (the client's `X-Request-Id` when it is sane,
/// else a new one) passed on to the backend and echoed in the response, the log line,
/// and, with `metrics`, the request counters.
pub fn with_request_log(router: Router, metrics: Option<Metrics>) -> Router {
    router.layer(middleware::from_fn_with_state(metrics, log_request))
}

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id of a request, for handlers that pass it on.
#[derive(Clone, Debug)]
pub struct RequestId(pub HeaderValue);

/// A client's id is kept when it is short and plain (it ends up in logs).
fn sane_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
}

/// One line per request: id, method, path, status, response bytes, milliseconds.
/// The query string is left out on purpose: it may carry credentials in later layers.
async fn log_request(State(metrics): State<Option<Metrics>>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = match req.headers().get(&REQUEST_ID) {
        Some(v) if sane_request_id(v) => v.clone(),
        _ => HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("-")),
    };
    req.headers_mut().insert(REQUEST_ID, id.clone());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = crate::metrics::route_class(&path);
    let method_label = crate::metrics::method_label(&method);
    if let Some(m) = &metrics {
        m.requests_in_flight.inc();
        // Only a body that streams is wrapped to be counted as it goes.
        if !http_body::Body::is_end_stream(req.body()) {
            let counter = m.received_bytes.get_or_create(&RouteOnly { route }).clone();
            req = req.map(|b| Body::new(Counted { inner: b, counter }));
        }
    }
    let mut resp = next.run(req).await;
    let bytes = resp
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .or_else(|| axum::body::HttpBody::size_hint(resp.body()).exact());
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    if let Some(m) = &metrics {
        m.requests_in_flight.dec();
        m.requests
            .get_or_create(&RequestLabels {
                route,
                method: method_label,
                status,
            })
            .inc();
        m.request_seconds
            .get_or_create(&RouteLabels {
                route,
                method: method_label,
            })
            .observe(elapsed.as_secs_f64());
        let counter = m.sent_bytes.get_or_create(&RouteOnly { route });
        match http_body::Body::size_hint(resp.body()).exact() {
            // A body already whole (a manifest, JSON): counted now, not wrapped.
            Some(n) => {
                counter.inc_by(n);
            }
            None => {
                let counter = counter.clone();
                resp = resp.map(|b| Body::new(Counted { inner: b, counter }));
            }
        }
    }
    tracing::info!(
        target: "gatehouse::request",
        request_id = id.to_str().unwrap_or("-"),
        %method,
        path,
        status,
        bytes = bytes.unwrap_or(0),
        ms = elapsed.as_micros() as f64 / 1000.0,
    );
    resp.headers_mut().insert(REQUEST_ID, id);
    resp
}

/// A body that adds the bytes of each frame to a counter as they stream through, so
/// that a large blob is counted as it goes, without being held.
struct Counted {
    inner: Body,
    counter: prometheus_client::metrics::counter::Counter,
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.counter.inc_by(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// How long open connections may take to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Limits on slow clients.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// A client that connects and never completes the TLS handshake is cut off.
    pub handshake_timeout: Duration,
    /// A client that never finishes sending a request head is cut off (slowloris), and
    /// so is an idle keep-alive connection that sends no new request for this long.
    /// Bodies are not limited: a slow push of a large layer is legitimate.
    pub header_read_timeout: Duration,
    /// Connections served at once; one more is answered 503 with `Retry-After` and
    /// closed, so that memory and file descriptors stay bounded.
    pub max_connections: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_connections: 8192,
        }
    }
}

/// How long a connection past `max_connections` may take to send its request.
const OVER_CAPACITY_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// What a connection past `max_connections` is told before it is closed.
async fn over_capacity(
    _req: axum::http::Request<hyper::body::Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let mut resp = crate::error::Error::new(
        crate::error::ErrorCode::Unavailable,
        "the server has as many connections open as it serves (max_connections); retry shortly",
    )
    .into_response();
    let headers = resp.headers_mut();
    headers.insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    headers.insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    Ok(resp)
}

/// Serve `app` on `listener` (over TLS when `tls` is given, else plain HTTP) until
/// `shutdown` resolves, then drain open connections (for at most `DRAIN_TIMEOUT`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Responses are written whole; don't let Nagle hold back their last segment.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        // Handlers learn the peer address (for the audit log) from this extension.
        let service = hyper_util::service::TowerToHyperService::new(app.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let watcher = graceful.watcher();
        let permit = permits.clone().try_acquire_owned().ok();
        if permit.is_none() {
            tracing::warn!(%peer, max_connections = limits.max_connections, "too many connections: answering 503");
        }
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                return serve_admitted(tcp, service, permit, limits, watcher, peer).await;
            };
            match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => serve_admitted(stream, service, permit, limits, watcher, peer).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
    Ok(())
}

/// The connection served when it holds a permit, else told to come back (503).
async fn serve_admitted<I, S>(
    io: I,
    service: S,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    limits: ConnLimits,
    watcher: hyper_util::server::graceful::Watcher,
    peer: std::net::SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = axum::body::Body> + Send,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match permit {
        Some(_held_until_the_connection_ends) => serve_connection(io, service, limits, watcher, peer).await,
        // Past the limit a connection gets its 503 for the request it sends now, not a
        // full idle allowance: idle sockets over the limit are let go within seconds.
        None => {
            let limits = ConnLimits {
                header_read_timeout: limits.header_read_timeout.min(OVER_CAPACITY_READ_TIMEOUT),
                ..limits
            };
            serve_connection(io, hyper::service::service_fn(over_capacity), limits, watcher, peer).await
        }
    }
}

/// HTTP/1.1 on one accepted (and, for TLS, handshaken) connection.
async fn serve_connection<I, S>(
    io: I,
    service: S,
    limits: ConnLimits,
    watcher: hyper_util::server::graceful::Watcher,
    peer: std::net::SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = axum::body::Body> + Send,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
