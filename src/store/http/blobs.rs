//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use super::{Req, respond};
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Digest, RepoName};
use crate::store::Registry;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use std::ops::Range;

pub(super) async fn get(reg: &Registry, repo: &RepoName, digest: &str, req: &Req) -> Result<Response> {
    let digest: Digest = digest.parse()?;
    let size = reg.blob_size(repo, &digest).await?;
    if req.method == Method::GET
        && let Some(url) = reg.blob_redirect(repo, &digest).await?
    {
        let headers = [("location", url), ("docker-content-digest", digest.to_string())];
        return Ok(respond(StatusCode::TEMPORARY_REDIRECT, &headers, Body::empty()));
    }
    let range = match req.header("range") {
        Some(r) => parse_range(r, size)?,
        None => None,
    };
    let d = digest.to_string();
    let mut headers = vec![
        ("content-type", "application/octet-stream".to_owned()),
        ("docker-content-digest", d.clone()),
        ("accept-ranges", "bytes".to_owned()),
        ("etag", format!("\"{d}\"")),
        // Content-addressed: the bytes behind this URL never change.
        ("cache-control", "max-age=31536000".to_owned()),
    ];
    let status = match &range {
        Some(r) => {
            headers.push(("content-range", format!("bytes {}-{}/{size}", r.start, r.end - 1)));
            headers.push(("content-length", (r.end - r.start).to_string()));
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            headers.push(("content-length", size.to_string()));
            StatusCode::OK
        }
    };
    let body = if req.method == Method::HEAD || size == 0 {
        Body::empty()
    } else {
        Body::from_stream(reg.read_blob(&digest, size, range).await?)
    };
    Ok(respond(status, &headers, body))
}

pub(super) async fn delete(reg: &Registry, repo: &RepoName, digest: &str) -> Result<Response> {
    let digest: Digest = digest.parse()?;
    reg.delete_blob(repo, &digest).await?;
    Ok(respond(
        StatusCode::ACCEPTED,
        &[("content-length", "0".to_owned())],
        Body::empty(),
    ))
}

/// The blob's part a `Range` header asks for; an unsatisfiable range is a 416.
fn parse_range(header: &str, size: u64) -> Result<Option<Range<u64>>> {
    crate::oci::range::byte_range(header, size).map_err(|e| {
        Error::new(ErrorCode::RangeInvalid, e.to_string())
            .with_header(axum::http::header::CONTENT_RANGE, &format!("bytes */{size}"))
    })
}
