//! Every error a client can see, in one place.
//!
//! `ErrorCode` lists each OCI distribution error code once, with its HTTP status.
//! Handlers return `Result<_, Error>`; module errors (`MetaError`, `BlobError`, parse
//! errors) convert into `Error` through the `From` impls at the bottom of this file, and
//! `IntoResponse` renders the OCI JSON body `{"errors":[{code,message,detail}]}`.
//! Anything unexpected becomes a 500 whose cause is logged once and never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    TagInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    RangeInvalid,
    /// Manifest bodies over the size limit (413); reported with the SIZE_INVALID code.
    ManifestTooLarge,
    PaginationNumberInvalid,
    /// A path under `/v2/` that names no endpoint.
    UnknownRoute,
    /// A token request that is malformed (bad scope, unknown service or grant type).
    InvalidRequest,
    /// The backend registry or the metadata database cannot be reached (503).
    Unavailable,
    /// The disk (or quota) holding blobs, uploads or the database is full (507).
    StorageFull,
    Internal,
}

impl ErrorCode {
    /// (wire code, HTTP status, default message)
    fn table(self) -> (&'static str, StatusCode, &'static str) {
        use ErrorCode::*;
        match self {
            BlobUnknown => ("BLOB_UNKNOWN", StatusCode::NOT_FOUND, "blob unknown to registry"),
            BlobUploadInvalid => ("BLOB_UPLOAD_INVALID", StatusCode::BAD_REQUEST, "blob upload invalid"),
            BlobUploadUnknown => (
                "BLOB_UPLOAD_UNKNOWN",
                StatusCode::NOT_FOUND,
                "blob upload unknown to registry",
            ),
            DigestInvalid => (
                "DIGEST_INVALID",
                StatusCode::BAD_REQUEST,
                "provided digest did not match uploaded content",
            ),
            ManifestBlobUnknown => (
                "MANIFEST_BLOB_UNKNOWN",
                StatusCode::BAD_REQUEST,
                "manifest references a manifest or blob unknown to registry",
            ),
            ManifestInvalid => ("MANIFEST_INVALID", StatusCode::BAD_REQUEST, "manifest invalid"),
            ManifestUnknown => (
                "MANIFEST_UNKNOWN",
                StatusCode::NOT_FOUND,
                "manifest unknown to registry",
            ),
            NameInvalid => ("NAME_INVALID", StatusCode::BAD_REQUEST, "invalid repository name"),
            NameUnknown => (
                "NAME_UNKNOWN",
                StatusCode::NOT_FOUND,
                "repository name not known to registry",
            ),
            SizeInvalid => (
                "SIZE_INVALID",
                StatusCode::BAD_REQUEST,
                "provided length did not match content length",
            ),
            TagInvalid => ("TAG_INVALID", StatusCode::BAD_REQUEST, "manifest tag did not match URI"),
            Unauthorized => ("UNAUTHORIZED", StatusCode::UNAUTHORIZED, "authentication required"),
            Denied => (
                "DENIED",
                StatusCode::FORBIDDEN,
                "requested access to the resource is denied",
            ),
            Unsupported => (
                "UNSUPPORTED",
                StatusCode::METHOD_NOT_ALLOWED,
                "the operation is unsupported",
            ),
            TooManyRequests => ("TOOMANYREQUESTS", StatusCode::TOO_MANY_REQUESTS, "too many requests"),
            RangeInvalid => (
                "RANGE_INVALID",
                StatusCode::RANGE_NOT_SATISFIABLE,
                "invalid content range",
            ),
            ManifestTooLarge => (
                "SIZE_INVALID",
                StatusCode::PAYLOAD_TOO_LARGE,
                "manifest exceeds the size limit",
            ),
            PaginationNumberInvalid => (
                "PAGINATION_NUMBER_INVALID",
                StatusCode::BAD_REQUEST,
                "invalid number of results requested",
            ),
            UnknownRoute => ("UNSUPPORTED", StatusCode::NOT_FOUND, "no such endpoint"),
            InvalidRequest => ("INVALID_REQUEST", StatusCode::BAD_REQUEST, "invalid request"),
            Unavailable => (
                "UNAVAILABLE",
                StatusCode::SERVICE_UNAVAILABLE,
                "the backend registry is unavailable",
            ),
            StorageFull => (
                "STORAGE_FULL",
                StatusCode::INSUFFICIENT_STORAGE,
                "the registry's storage is full: nothing of this request was kept; retry once space is freed",
            ),
            Internal => (
                "INTERNAL_ERROR",
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error",
            ),
        }
    }

    pub fn as_str(self) -> &'static str {
        self.table().0
    }

    pub fn status(self) -> StatusCode {
        self.table().1
    }
}

/// A client-visible failure.
#[derive(Debug)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// Boxed: error values travel in every `Result` of the request path; keep them small.
    pub detail: Option<Box<Value>>,
    /// Extra response headers (e.g. `Range` on a 416, `Content-Range` on a bad range).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// The code with its default message.
    pub fn code(code: ErrorCode) -> Self {
        Self::new(code, code.table().2)
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(Box::new(detail));
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// An unexpected failure: logged here with its cause chain, sent as a bare 500; a
    /// full disk is said as such (507), for clients and for the operator's logs.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        if storage_full(cause) {
            tracing::warn!(error = %chain(cause), "storage full: a write was refused");
            return Self::code(ErrorCode::StorageFull);
        }
        tracing::error!(error = %chain(cause), "internal error");
        Self::code(ErrorCode::Internal)
    }
}

/// Whether `e` or one of its causes is a full disk or quota: the OS's ENOSPC/EDQUOT,
/// SQLite's SQLITE_FULL, PostgreSQL's disk_full (53100).
pub fn storage_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && (matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) || matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)))
        {
            return true;
        }
        if let Some(sqlx::Error::Database(db)) = err.downcast_ref::<sqlx::Error>() {
            // SQLite reports its primary result code 13; PostgreSQL its SQLSTATE.
            if matches!(db.code().as_deref(), Some("13" | "53100")) {
                return true;
            }
        }
        next = err.source();
    }
    false
}

/// An error with its causes, `outer: inner: …` (many errors' Display hides the cause,
/// e.g. reqwest's "error sending request").
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // Many errors repeat their source in their own message: say each thing once.
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = json!({
            "errors": [{
                "code": self.code.as_str(),
                "message": self.message,
                "detail": self.detail.map_or(Value::Null, |d| *d),
            }]
        });
        let mut resp = (self.code.status(), axum::Json(body)).into_response();
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

// === conversions from module errors ===

impl From<crate::oci::name::NameError> for Error {
    fn from(e: crate::oci::name::NameError) -> Self {
        Self::new(ErrorCode::NameInvalid, e.to_string())
    }
}

impl From<crate::oci::name::TagError> for Error {
    fn from(e: crate::oci::name::TagError) -> Self {
        Self::new(ErrorCode::TagInvalid, e.to_string())
    }
}

impl From<crate::oci::digest::DigestError> for Error {
    fn from(e: crate::oci::digest::DigestError) -> Self {
        Self::new(ErrorCode::DigestInvalid, e.to_string())
    }
}

impl From<crate::oci::name::ReferenceError> for Error {
    fn from(e: crate::oci::name::ReferenceError) -> Self {
        match e {
            crate::oci::name::ReferenceError::Digest(d) => d.into(),
            crate::oci::name::ReferenceError::Tag(t) => t.into(),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::internal(&e)
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&e) {
            tracing::warn!(error = %chain(&e), "metadata database unavailable");
            return Self::new(
                ErrorCode::Unavailable,
                "the metadata database is unavailable; retry shortly",
            )
            .with_header(header::RETRY_AFTER, "1");
        }
        Self::internal(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("writing the blob")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_full_disk_is_told_apart_from_other_failures() {
        let enospc = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(storage_full(&enospc));
        assert!(storage_full(&Outer(std::io::Error::from_raw_os_error(libc::EDQUOT))));
        assert!(storage_full(&std::io::Error::from(std::io::ErrorKind::StorageFull)));
        assert!(!storage_full(&std::io::Error::from_raw_os_error(libc::EIO)));
        let e = Error::from(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!((e.code.as_str(), e.code.status().as_u16()), ("STORAGE_FULL", 507));
        assert_eq!(Error::from(std::io::Error::other("x")).code, ErrorCode::Internal);
    }
}
