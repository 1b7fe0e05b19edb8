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

/// A single `bytes=` range against a blob of `size` bytes. Several ranges are answered
/// with the whole blob (allowed by RFC 9110); an unsatisfiable range is a 416.
fn parse_range(header: &str, size: u64) -> Result<Option<Range<u64>>> {
    let unsatisfiable = || {
        Error::new(
            ErrorCode::RangeInvalid,
            format!("range {header:?} is not satisfiable for {size} bytes"),
        )
        .with_header(axum::http::header::CONTENT_RANGE, &format!("bytes */{size}"))
    };
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let suffix: u64 = end.parse().map_err(|_| unsatisfiable())?;
        if suffix == 0 {
            return Err(unsatisfiable());
        }
        size.saturating_sub(suffix)..size
    } else {
        let s: u64 = start.parse().map_err(|_| unsatisfiable())?;
        let e: u64 = if end.is_empty() {
            size.saturating_sub(1)
        } else {
            end.parse().map_err(|_| unsatisfiable())?
        };
        if s >= size || e < s {
            return Err(unsatisfiable());
        }
        s..e.min(size - 1) + 1
    };
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some(90..100));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some(90..100));
        assert_eq!(parse_range("bytes=50-500", 100).unwrap(), Some(50..100));
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=9-3", 100).is_err());
        assert!(parse_range("bytes=x-3", 100).is_err());
    }
}
