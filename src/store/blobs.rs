//! Content-addressed blob bytes, behind the `BlobStore` trait so that an object-store
//! backend (S3 through `object_store`) can replace the filesystem without touching the
//! handlers. The metadata database, not this store, decides which blobs exist: a file
//! here without a `blobs` row is invisible and is swept by garbage collection.
//!
//! Filesystem layout under the data directory:
//! ```text
//! blobs/sha256/ab/abcdef…      one file per digest, written once, never modified
//! blobs/sha512/12/1234…
//! ```

use crate::oci::Digest;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// `stream`, failing as soon as it goes past `limit` bytes (a remote that sends more
/// than a descriptor says must not fill the disk).
pub fn capped(stream: ByteStream, limit: u64) -> ByteStream {
    let mut seen = 0u64;
    stream
        .map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len() as u64;
            if seen > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("more than the expected {limit} bytes"),
                ));
            }
            Ok(chunk)
        })
        .boxed()
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob not found in storage")]
    NotFound,
    #[error("blob storage I/O: {0}")]
    Io(#[from] io::Error),
    /// The object store could not be reached or refused the request (answers 503).
    #[error("object storage: {0}")]
    Unavailable(String),
}

/// Read chunk size for streaming blobs out: large enough that per-chunk overhead
/// (a blocking-pool hop per read) is negligible next to the copy itself.
const READ_CHUNK: usize = 1 << 20;

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Size of the stored bytes, or `None` when absent.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError>;

    /// Stream the blob, or the byte `range` of it (already checked against its size).
    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream, BlobError>;

    /// Make `staged` (a complete, verified and fsynced local file) the content of
    /// `digest`, atomically and durably: a reader sees the whole blob or nothing. Leaves
    /// `staged` in place (the caller removes it), so a placement can be repeated.
    async fn put_staged(&self, digest: &Digest, staged: &Path) -> Result<(), BlobError>;

    /// Remove the bytes; removing an absent blob is not an error.
    async fn delete(&self, digest: &Digest) -> Result<(), BlobError>;

    /// Every stored digest with its last modification time (for the orphan sweep).
    async fn list(&self) -> Result<Vec<(Digest, SystemTime)>, BlobError>;

    /// A URL that serves the blob directly for `ttl` (a presigned object-store URL), for
    /// answering blob GETs with a redirect; `None` where the store has no such thing.
    async fn redirect_url(&self, _digest: &Digest, _ttl: std::time::Duration) -> Result<Option<String>, BlobError> {
        Ok(None)
    }
}

/// Blobs as files in a local directory.
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.root.join(d.algorithm().as_str()).join(&hex[..2]).join(hex)
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        match tokio::fs::metadata(self.path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream, BlobError> {
        let mut file = match tokio::fs::File::open(self.path(digest)).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let stream = match range {
            Some(r) => {
                file.seek(io::SeekFrom::Start(r.start)).await?;
                tokio_util::io::ReaderStream::with_capacity(file.take(r.end - r.start), READ_CHUNK).boxed()
            }
            None => tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK).boxed(),
        };
        Ok(stream)
    }

    async fn put_staged(&self, digest: &Digest, staged: &Path) -> Result<(), BlobError> {
        let target = self.path(digest);
        let staged = staged.to_owned();
        // One blocking step: publish under the final name, then make the name durable.
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let dir = target
                .parent()
                .ok_or_else(|| io::Error::other("blob path has no parent"))?;
            // A hard link publishes the complete file under its final name in one step; an
            // existing file of that name already holds the same bytes (content addressing).
            let linked = match std::fs::hard_link(&staged, &target) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && staged.exists() => {
                    std::fs::create_dir_all(dir)?;
                    std::fs::hard_link(&staged, &target)
                }
                other => other,
            };
            match linked {
                Ok(()) => std::fs::File::open(dir)?.sync_all(),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(io::Error::other)??;
        Ok(())
    }

    async fn delete(&self, digest: &Digest) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path(digest)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(&self) -> Result<Vec<(Digest, SystemTime)>, BlobError> {
        let root = self.root.clone();
        let found = tokio::task::spawn_blocking(move || -> io::Result<Vec<(Digest, SystemTime)>> {
            let mut out = Vec::new();
            for alg in ["sha256", "sha512"] {
                let alg_dir = root.join(alg);
                let Ok(prefixes) = std::fs::read_dir(&alg_dir) else {
                    continue;
                };
                for prefix in prefixes.flatten() {
                    let Ok(entries) = std::fs::read_dir(prefix.path()) else {
                        continue;
                    };
                    for entry in entries.flatten() {
                        let name = entry.file_name();
                        // Anything that is not a well-formed digest file is not ours to judge;
                        // a file deleted while we list it is simply not reported.
                        let Ok(d) = format!("{alg}:{}", name.to_string_lossy()).parse::<Digest>() else {
                            continue;
                        };
                        if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                            out.push((d, modified));
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(found)
    }
}

/// How the registry path reports it (the OCI error format).
impl From<BlobError> for crate::error::Error {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound => Self::code(crate::error::ErrorCode::BlobUnknown),
            BlobError::Unavailable(e) => {
                tracing::warn!(error = %e, "blob storage unavailable");
                Self::new(
                    crate::error::ErrorCode::Unavailable,
                    "the blob storage is unavailable; retry shortly",
                )
                .with_header(axum::http::header::RETRY_AFTER, "1")
            }
            other => Self::internal(&other),
        }
    }
}
