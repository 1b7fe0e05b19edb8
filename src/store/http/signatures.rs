//! The signature extension: `GET` lists a manifest's simple-signing signatures (an
//! empty list when there are none: clients ask on every pull their policy checks), `PUT`
//! adds one per request.

use super::{Req, respond};
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Digest, RepoName};
use crate::store::Registry;
use crate::store::signatures::{MAX_SIGNATURE_BYTES, Signature, parse_put};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

pub(super) async fn get(reg: &Registry, repo: &RepoName, digest: &str, req: &Req) -> Result<Response> {
    let digest: Digest = digest.parse()?;
    let list: Vec<_> = reg
        .signatures(repo, &digest)
        .await?
        .iter()
        .map(Signature::to_api)
        .collect();
    let resp = axum::Json(serde_json::json!({ "signatures": list })).into_response();
    if req.method == Method::HEAD {
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    Ok(resp)
}

pub(super) async fn put(reg: &Registry, repo: &RepoName, digest: &str, body: Body) -> Result<Response> {
    let digest: Digest = digest.parse()?;
    let bytes = axum::body::to_bytes(body, MAX_SIGNATURE_BYTES + 1).await.map_err(|_| {
        Error::new(
            ErrorCode::InvalidRequest,
            "signature body unreadable or larger than 64 KiB",
        )
    })?;
    let sig = parse_put(&bytes, &digest)?;
    reg.put_signature(repo, &sig).await?;
    Ok(respond(StatusCode::CREATED, &[], Body::empty()))
}
