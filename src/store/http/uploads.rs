//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic `?digest=`, or
//! cross-repository `?mount=&from=`), and `GET`/`PATCH`/`PUT`/`DELETE` on a session.

use super::{Req, respond};
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Digest, RepoName};
use crate::store::Registry;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;

fn created(repo: &RepoName, digest: &Digest) -> Response {
    respond(
        StatusCode::CREATED,
        &[
            ("location", format!("/v2/{repo}/blobs/{digest}")),
            ("docker-content-digest", digest.to_string()),
            ("content-length", "0".to_owned()),
        ],
        Body::empty(),
    )
}

fn session(status: StatusCode, repo: &RepoName, id: &str, size: u64) -> Response {
    // `Range` is inclusive; an empty session is conventionally reported as 0-0.
    let range = if size == 0 {
        "0-0".to_owned()
    } else {
        format!("0-{}", size - 1)
    };
    respond(
        status,
        &[
            ("location", format!("/v2/{repo}/blobs/uploads/{id}")),
            ("range", range),
            ("docker-upload-uuid", id.to_owned()),
            ("content-length", "0".to_owned()),
        ],
        Body::empty(),
    )
}

pub(super) async fn start(reg: &Registry, repo: &RepoName, req: &Req, body: Body) -> Result<Response> {
    if let Some(mount) = req.query("mount") {
        let digest: Digest = mount.parse()?;
        // Without a valid `from`, or when the blob is not there, fall back to a normal
        // upload session as the spec asks (the client then uploads the bytes).
        if let Some(from) = req.query("from").and_then(|f| f.parse::<RepoName>().ok())
            && reg.mount_blob(repo, &from, &digest).await?
        {
            return Ok(created(repo, &digest));
        }
    } else if let Some(digest) = req.query("digest") {
        let digest: Digest = digest.parse()?;
        reg.upload_whole(repo, &digest, Req::body_stream(body)).await?;
        return Ok(created(repo, &digest));
    }
    let id = reg.start_upload(repo).await?;
    Ok(session(StatusCode::ACCEPTED, repo, &id, 0))
}

pub(super) async fn status(reg: &Registry, repo: &RepoName, id: &str) -> Result<Response> {
    let size = reg.upload_size(repo, id).await?;
    Ok(session(StatusCode::NO_CONTENT, repo, id, size))
}

pub(super) async fn patch(reg: &Registry, repo: &RepoName, id: &str, req: &Req, body: Body) -> Result<Response> {
    let range = req.header("content-range").map(parse_content_range).transpose()?;
    let size = reg.upload_chunk(repo, id, range, Req::body_stream(body)).await?;
    Ok(session(StatusCode::ACCEPTED, repo, id, size))
}

pub(super) async fn put(reg: &Registry, repo: &RepoName, id: &str, req: &Req, body: Body) -> Result<Response> {
    let digest: Digest = req
        .query("digest")
        .ok_or_else(|| {
            Error::new(
                ErrorCode::DigestInvalid,
                "the digest query parameter is required to complete an upload",
            )
        })?
        .parse()?;
    let has_body = req.header("content-length") != Some("0");
    // A last chunk sent with the PUT is checked like a PATCH's: it must continue where
    // the upload stands (416 otherwise), and its length must be the one announced.
    let range = req.header("content-range").map(parse_content_range).transpose()?;
    let body = match (has_body, range) {
        (true, Some(range)) => {
            reg.upload_chunk(repo, id, Some(range), Req::body_stream(body)).await?;
            None
        }
        (true, None) => Some(Req::body_stream(body)),
        (false, _) => None,
    };
    reg.complete_upload(repo, id, &digest, body).await?;
    Ok(created(repo, &digest))
}

pub(super) async fn cancel(reg: &Registry, repo: &RepoName, id: &str) -> Result<Response> {
    reg.cancel_upload(repo, id).await?;
    Ok(respond(
        StatusCode::NO_CONTENT,
        &[("content-length", "0".to_owned())],
        Body::empty(),
    ))
}

fn parse_content_range(v: &str) -> Result<(u64, u64)> {
    crate::oci::range::content_range(v).map_err(|e| Error::new(ErrorCode::BlobUploadInvalid, e.to_string()))
}
