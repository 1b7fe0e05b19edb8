//! The console is a client of the admin API, in process: each action is the API call a
//! user would make, with a one-minute token for the logged-in user, so what the console
//! may do is exactly what the API and its policies allow (no check lives only here).

use super::session::Session;
use crate::gateway::Gateway;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use std::net::SocketAddr;
use tower::ServiceExt as _;

/// An API answer: its status and JSON body (`Null` when there is none).
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The API's own error message (what went wrong, naming the field).
    pub fn message(&self) -> String {
        let e = &self.body["error"];
        match (e["message"].as_str(), e["field"].as_str()) {
            (Some(m), Some(f)) if !m.contains(f) => format!("{f}: {m}"),
            (Some(m), _) => m.to_owned(),
            _ => format!("the request failed ({})", self.status),
        }
    }
}

#[derive(Clone)]
pub struct Api {
    router: Router,
    gw: Gateway,
}

impl Api {
    pub fn new(router: Router, gw: Gateway) -> Self {
        Self { router, gw }
    }

    /// Call the API as `session`'s user; `host` is the browser's `Host` (answers that
    /// name the registry, such as a pull secret's config.json, use it).
    pub async fn call(
        &self,
        session: &Session,
        remote: Option<SocketAddr>,
        host: Option<&header::HeaderValue>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        let failed = |why: &str| Answer {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: serde_json::json!({"error": {"message": why}}),
        };
        let Ok(token) = self.gw.console_token(&session.username, session.user_id) else {
            return failed("cannot issue a token for the console");
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(h) = host {
            req = req.header(header::HOST, h);
        }
        let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
        let Ok(mut req) = req.body(body) else {
            return failed("a malformed request");
        };
        if let Some(addr) = remote {
            // The audit log records the browser's address, as for a direct API call.
            req.extensions_mut().insert(ConnectInfo(addr));
        }
        let Ok(resp) = self.router.clone().oneshot(req).await;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024)
            .await
            .unwrap_or_default();
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }
}
