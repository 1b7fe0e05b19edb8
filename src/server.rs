//! Router assembly, the per-request log line, and serving with graceful shutdown.

use crate::store::{Registry, http};
use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use std::future::Future;
use std::time::Instant;
use tokio::net::TcpListener;

/// The application: the store's `/v2/` API with request logging.
pub fn app(registry: Registry) -> Router {
    http::router(registry).layer(middleware::from_fn(log_request))
}

/// One line per request: method, path, status, response bytes, milliseconds.
/// The query string is left out on purpose: it may carry credentials in later layers.
async fn log_request(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let bytes = resp
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .or_else(|| axum::body::HttpBody::size_hint(resp.body()).exact());
    tracing::info!(
        target: "gatehouse::request",
        %method,
        path,
        status = resp.status().as_u16(),
        bytes = bytes.unwrap_or(0),
        ms = start.elapsed().as_secs_f64() * 1000.0,
    );
    resp
}

/// Serve `app` on `listener` until `shutdown` resolves, then drain open requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
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
