//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use super::{Req, respond};
use crate::error::{Error, ErrorCode, Result};
use crate::oci::media::{self, ManifestKind};
use crate::oci::{Digest, Reference, RepoName, Tag};
use crate::store::Registry;
use crate::store::manifests::MAX_MANIFEST_BYTES;
use crate::store::meta::StoredManifest;
use crate::store::signatures::SignOnPush;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::json;

pub(super) async fn get(reg: &Registry, repo: &RepoName, reference: &str, req: &Req) -> Result<Response> {
    let reference: Reference = reference.parse()?;
    let mut m = reg.get_manifest(repo, &reference).await?;
    let accepted = accepted_types(req);
    if !accepts(&accepted, &m.media_type) {
        m = negotiate_index(reg, repo, &reference, m, &accepted).await?;
    }
    let headers = [
        ("content-type", m.media_type.clone()),
        ("docker-content-digest", m.digest.clone()),
        ("content-length", m.content.len().to_string()),
        ("etag", format!("\"{}\"", m.digest)),
    ];
    let body = if req.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(m.content)
    };
    Ok(respond(StatusCode::OK, &headers, body))
}

/// Media types named in `Accept` headers (several headers and comma lists alike).
fn accepted_types(req: &Req) -> Vec<String> {
    req.headers
        .get_all("accept")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| media::essence(t).to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

fn accepts(accepted: &[String], media_type: &str) -> bool {
    accepted.is_empty()
        || accepted
            .iter()
            .any(|a| a == media_type || a == "*/*" || a == "application/*")
}

/// A client that cannot read indexes asked for a tag that names one: serve the
/// linux/amd64 image of it, as Distribution does, or say why not.
async fn negotiate_index(
    reg: &Registry,
    repo: &RepoName,
    reference: &Reference,
    index: StoredManifest,
    accepted: &[String],
) -> Result<StoredManifest> {
    if media::manifest_kind(&index.media_type) != Some(ManifestKind::Index) || matches!(reference, Reference::Digest(_))
    {
        // Nothing better to offer: serve what is stored and let the client decide.
        return Ok(index);
    }
    let doc: serde_json::Value = serde_json::from_slice(&index.content).unwrap_or_default();
    let entries = doc
        .get("manifests")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    let pick = entries.iter().find(|e| {
        let p = &e["platform"];
        p["os"] == "linux"
            && p["architecture"] == "amd64"
            && e["mediaType"].as_str().is_some_and(|t| accepts(accepted, t))
    });
    let Some(digest) = pick
        .and_then(|e| e["digest"].as_str())
        .and_then(|d| d.parse::<Digest>().ok())
    else {
        return Err(Error::new(
            ErrorCode::ManifestUnknown,
            format!(
                "{reference} is an index ({}) and the Accept header does not allow it",
                index.media_type
            ),
        )
        .with_detail(json!({ "mediaType": index.media_type })));
    };
    reg.get_manifest(repo, &Reference::Digest(digest)).await
}

/// A manifest body over the limit is still read (and thrown away) up to this much more,
/// so that a client that does not wait for `100 Continue` reads the 413 instead of a
/// broken pipe; past it, the connection is closed.
const DRAIN_LIMIT: u64 = 32 * 1024 * 1024;

async fn drain(mut stream: axum::body::BodyDataStream) {
    use futures_util::StreamExt;
    let mut seen = 0u64;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len() as u64;
        if seen > DRAIN_LIMIT {
            break;
        }
    }
}

/// The whole body, or `None` when it is over the manifest limit (the rest drained).
async fn read_capped(body: Body) -> Result<Option<bytes::Bytes>> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Error::new(ErrorCode::ManifestInvalid, format!("manifest body interrupted: {e}")))?;
        if buf.len() + chunk.len() > MAX_MANIFEST_BYTES {
            drain(stream).await;
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}

/// Response header naming the repository version a push created.
pub const VERSION_HEADER: &str = "gatehouse-repository-version";

pub(super) async fn put(reg: &Registry, repo: &RepoName, reference: &str, req: &Req, body: Body) -> Result<Response> {
    let reference: Reference = reference.parse()?;
    let too_large = || {
        Error::new(
            ErrorCode::ManifestTooLarge,
            format!("manifests are limited to {MAX_MANIFEST_BYTES} bytes"),
        )
    };
    let declared = req.header("content-length").and_then(|l| l.parse::<u64>().ok());
    if declared.is_some_and(|l| l > MAX_MANIFEST_BYTES as u64) {
        // A client waiting for `100 Continue` is answered before it sends anything; one
        // already sending gets the 413 after its body rather than a broken pipe.
        let waits = req
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
        if !waits && declared.is_some_and(|l| l <= MAX_MANIFEST_BYTES as u64 + DRAIN_LIMIT) {
            drain(body.into_data_stream()).await;
        }
        return Err(too_large());
    }
    let extra_tags = req
        .query_all("tag")
        .map(|t| t.parse::<Tag>())
        .collect::<Result<Vec<_>, _>>()?;
    let tag_params = !extra_tags.is_empty();
    let content_type = req.header("content-type").map(str::to_owned);
    let body = read_capped(body).await?.ok_or_else(too_large)?;
    let sign = req.header(SignOnPush::HEADER).and_then(SignOnPush::from_header);
    let pushed = reg
        .put_manifest_signed(repo, &reference, content_type.as_deref(), &body, extra_tags, sign)
        .await?;

    let mut headers = vec![
        ("location", format!("/v2/{repo}/manifests/{}", pushed.digest)),
        ("docker-content-digest", pushed.digest.to_string()),
        ("content-length", "0".to_owned()),
    ];
    if let Some(subject) = &pushed.subject {
        headers.push(("oci-subject", subject.to_string()));
    }
    if tag_params {
        headers.extend(pushed.tags.iter().map(|t| ("oci-tag", t.to_string())));
    }
    if let Some(v) = pushed.version {
        // The version the post-push copy made (push repositories only).
        headers.push((VERSION_HEADER, v.to_string()));
    }
    Ok(respond(StatusCode::CREATED, &headers, Body::empty()))
}

pub(super) async fn delete(reg: &Registry, repo: &RepoName, reference: &str) -> Result<Response> {
    let reference: Reference = reference.parse()?;
    reg.delete_manifest(repo, &reference).await?;
    Ok(respond(
        StatusCode::ACCEPTED,
        &[("content-length", "0".to_owned())],
        Body::empty(),
    ))
}
