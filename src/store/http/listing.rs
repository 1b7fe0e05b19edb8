//! Listings: `GET /v2/<name>/tags/list`, `GET /v2/_catalog` (both paginated with
//! `n`/`last` and a `Link` header) and `GET /v2/<name>/referrers/<digest>`.

use super::{Req, respond};
use crate::error::{Error, ErrorCode, Result};
use crate::oci::media;
use crate::oci::{Digest, RepoName};
use crate::store::Registry;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

/// Names in one page of a listing, whatever the client asks: more come with a `Link`
/// header to the next page (also when the client gave no `n`), so that a repository
/// with a million tags never makes one unbounded answer.
const MAX_PAGE: u32 = 10_000;

fn page_size(req: &Req) -> Result<Option<u32>> {
    match req.query("n") {
        None | Some("") => Ok(Some(MAX_PAGE)),
        Some(n) => n.parse::<u32>().map(|n| Some(n.min(MAX_PAGE))).map_err(|_| {
            Error::new(
                ErrorCode::PaginationNumberInvalid,
                format!("n={n:?} is not a non-negative integer"),
            )
        }),
    }
}

/// Fetch one more than asked to learn whether a next page exists.
fn paginate(mut items: Vec<String>, n: Option<u32>, base: &str) -> (Vec<String>, Option<String>) {
    let Some(n) = n else { return (items, None) };
    if items.len() > n as usize {
        items.truncate(n as usize);
        let last = items.last().cloned().unwrap_or_default();
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("n", &n.to_string())
            .append_pair("last", &last)
            .finish();
        return (items, Some(format!("<{base}?{q}>; rel=\"next\"")));
    }
    (items, None)
}

fn json_response(value: Value, link: Option<String>) -> Response {
    let mut headers = vec![("content-type", "application/json".to_owned())];
    if let Some(l) = link {
        headers.push(("link", l));
    }
    respond(StatusCode::OK, &headers, Body::from(value.to_string()))
}

pub(super) async fn tags(reg: &Registry, repo: &RepoName, req: &Req) -> Result<Response> {
    let n = page_size(req)?;
    if n == Some(0) {
        reg.tags(repo, None, Some(0)).await?;
        return Ok(json_response(json!({ "name": repo.as_str(), "tags": [] }), None));
    }
    let items = reg.tags(repo, req.query("last"), n.map(|n| n + 1)).await?;
    let (items, link) = paginate(items, n, &format!("/v2/{repo}/tags/list"));
    Ok(json_response(json!({ "name": repo.as_str(), "tags": items }), link))
}

pub(super) async fn catalog(reg: &Registry, req: &Req) -> Result<Response> {
    let n = page_size(req)?;
    if n == Some(0) {
        return Ok(json_response(json!({ "repositories": [] }), None));
    }
    let items = reg.catalog(req.query("last"), n.map(|n| n + 1)).await?;
    let (items, link) = paginate(items, n, "/v2/_catalog");
    Ok(json_response(json!({ "repositories": items }), link))
}

pub(super) async fn referrers(reg: &Registry, repo: &RepoName, digest: &str, req: &Req) -> Result<Response> {
    let subject: Digest = digest.parse()?;
    let filter = req.query("artifactType").filter(|t| !t.is_empty());
    let manifests: Vec<Value> = reg
        .referrers(repo, &subject)
        .await?
        .into_iter()
        .filter(|r| filter.is_none() || r.artifact_type.as_deref() == filter)
        .map(|r| {
            let mut d = json!({ "mediaType": r.media_type, "digest": r.digest, "size": r.size });
            if let Some(t) = r.artifact_type {
                d["artifactType"] = Value::String(t);
            }
            if let Some(a) = r.annotations.and_then(|a| serde_json::from_str::<Value>(&a).ok()) {
                d["annotations"] = a;
            }
            d
        })
        .collect();
    let body = json!({ "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": manifests });
    let mut headers = vec![("content-type", media::OCI_INDEX.to_owned())];
    if filter.is_some() {
        headers.push(("oci-filters-applied", "artifactType".to_owned()));
    }
    Ok(respond(StatusCode::OK, &headers, Body::from(body.to_string())))
}
