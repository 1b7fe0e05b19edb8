//! The registry store: an OCI Distribution registry with content-addressed blobs and a
//! metadata database. `Registry` is the service the HTTP handlers (`store::http`) call;
//! it owns the rules (what must exist before what, what a push commits atomically) and
//! knows nothing of HTTP.
//!
//! Commit points, which make every operation all-or-nothing across crashes:
//! - a blob is visible once its `blobs` row and repository link are committed; its
//!   bytes are fsynced and in place before that transaction commits, and garbage
//!   collection, which deletes bytes only under the same write lock, cannot interleave;
//! - a manifest, its references, its repository link and its tags are one transaction,
//!   in which every referenced blob and child manifest is checked.

pub mod blobs;
pub mod gc;
pub mod http;
pub mod import;
pub mod jobs;
mod manifest_ops;
pub mod manifests;
pub mod meta;
pub mod object_blobs;
pub mod on_demand;
pub mod readmes;
mod shared_uploads;
pub mod signatures;
pub mod sigstore;
pub mod uploads;
pub mod versions;

use crate::db::Database;
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Digest, RepoName, Tag};
use blobs::{BlobStore, ByteStream, FsBlobStore};
use meta::MetaStore;
use serde_json::json;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uploads::{StageError, Staging};

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("metadata database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    meta: MetaStore,
    blobs: Arc<dyn BlobStore>,
    staging: Staging,
    /// How many versions of each normal repository are kept (0: all).
    version_retention: std::sync::atomic::AtomicU64,
    /// Lifetime in ms of the presigned URLs blob GETs redirect to (0: no redirects).
    blob_redirect_ms: std::sync::atomic::AtomicU64,
    /// Fetches blobs an on_demand sync left at their remote.
    remote_blobs: std::sync::OnceLock<Arc<dyn on_demand::RemoteBlobSource>>,
    /// Signs inside the post-push copy, for products that sign on push.
    signer: std::sync::OnceLock<Arc<dyn signatures::ImageSigner>>,
    metrics: std::sync::OnceLock<crate::metrics::Metrics>,
    /// When blobs live in object storage, upload sessions are staged there too, so that
    /// any replica continues any session.
    shared_staging: Option<Arc<object_blobs::ObjectBlobStore>>,
    /// Running digests of shared sessions this process appended to last: (size, state).
    /// A session continued elsewhere is re-read from its chunks instead.
    session_hashes: moka::sync::Cache<String, (u64, crate::oci::Hasher)>,
}

/// Verified bytes about to become a blob.
enum Staged<'a> {
    /// A complete local file.
    File(&'a Path),
    /// The chunks of an upload session staged in object storage.
    Chunks {
        store: &'a object_blobs::ObjectBlobStore,
        id: &'a str,
        names: &'a [String],
    },
}

/// What a manifest PUT recorded.
#[derive(Debug)]
pub struct PushedManifest {
    pub digest: Digest,
    pub subject: Option<Digest>,
    pub tags: Vec<Tag>,
    /// The post-push job, when the repository is a push repository.
    pub job: Option<i64>,
    /// The normal repository's version the copy made, when it has run.
    pub version: Option<i64>,
}

impl Registry {
    /// Open the store in `data_dir` with the embedded defaults: SQLite metadata
    /// (`meta.db`) and blobs as files (`blobs/`), uploads staged in `uploads/`.
    pub async fn open(data_dir: &Path) -> Result<Self, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|e| OpenError::DataDir(data_dir.to_owned(), e))?;
        let db = Database::open_sqlite(&data_dir.join("meta.db")).await?;
        Self::open_with(&db, data_dir)
    }

    /// Open the store on an already open database, with blobs and staging in `data_dir`.
    pub fn open_with(db: &Database, data_dir: &Path) -> Result<Self, OpenError> {
        let blobs = data_dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| OpenError::DataDir(blobs.clone(), e))?;
        Self::open_with_blobs(db, data_dir, Arc::new(FsBlobStore::new(blobs)))
    }

    /// Open the store on an already open database with blobs and upload sessions in
    /// object storage (shared by replicas); single-request uploads stage in `data_dir`.
    pub fn open_with_object_store(
        db: &Database,
        data_dir: &Path,
        store: Arc<object_blobs::ObjectBlobStore>,
    ) -> Result<Self, OpenError> {
        let staging = Self::local_staging(data_dir)?;
        Ok(Self::with_parts(
            MetaStore::new(db),
            store.clone(),
            staging,
            Some(store),
        ))
    }

    /// Open the store on an already open database and blob store; uploads are staged
    /// in `data_dir`.
    pub fn open_with_blobs(db: &Database, data_dir: &Path, blobs: Arc<dyn BlobStore>) -> Result<Self, OpenError> {
        let staging = Self::local_staging(data_dir)?;
        Ok(Self::with_parts(MetaStore::new(db), blobs, staging, None))
    }

    fn local_staging(data_dir: &Path) -> Result<Staging, OpenError> {
        let uploads = data_dir.join("uploads");
        std::fs::create_dir_all(&uploads).map_err(|e| OpenError::DataDir(uploads.clone(), e))?;
        Ok(Staging::new(uploads))
    }

    /// Answer blob GETs with a redirect to a presigned URL living `ttl` (object
    /// storage only); `None` serves the bytes through this process.
    pub fn set_blob_redirect(&self, ttl: Option<std::time::Duration>) {
        let ms = ttl.map_or(0, |t| t.as_millis() as u64);
        self.inner
            .blob_redirect_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Where a GET of a blob stored for `repo` should be redirected, when redirects are
    /// on and the blob store can sign a URL for it. A blob still at its remote
    /// (on_demand) is served here, which fetches it.
    pub async fn blob_redirect(&self, repo: &RepoName, digest: &Digest) -> Result<Option<String>> {
        let ms = self.inner.blob_redirect_ms.load(std::sync::atomic::Ordering::Relaxed);
        if ms == 0 {
            return Ok(None);
        }
        if self
            .inner
            .meta
            .linked_blob_size(repo.as_str(), &digest.to_string())
            .await?
            .is_none()
        {
            return Ok(None);
        }
        Ok(self
            .inner
            .blobs
            .redirect_url(digest, std::time::Duration::from_millis(ms))
            .await?)
    }

    /// A store of these parts; `shared_staging` stages upload sessions in object storage.
    pub fn with_parts(
        meta: MetaStore,
        blobs: Arc<dyn BlobStore>,
        staging: Staging,
        shared_staging: Option<Arc<object_blobs::ObjectBlobStore>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                meta,
                blobs,
                staging,
                version_retention: std::sync::atomic::AtomicU64::new(0),
                blob_redirect_ms: std::sync::atomic::AtomicU64::new(0),
                remote_blobs: std::sync::OnceLock::new(),
                signer: std::sync::OnceLock::new(),
                metrics: std::sync::OnceLock::new(),
                shared_staging,
                session_hashes: moka::sync::Cache::builder()
                    .max_capacity(10_000)
                    .time_to_idle(std::time::Duration::from_secs(3600))
                    .build(),
            }),
        }
    }

    /// Keep only the last `n` versions of each normal repository (0: keep all). Older
    /// ones are dropped as new versions are made; their content becomes collectable.
    pub fn set_version_retention(&self, n: u64) {
        self.inner
            .version_retention
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// What signs the copies of products that sign on push (set once, at start).
    pub fn set_signer(&self, signer: Arc<dyn signatures::ImageSigner>) {
        let _ = self.inner.signer.set(signer);
    }

    /// Where jobs report their durations (set once, at start; none with metrics off).
    pub fn set_metrics(&self, metrics: crate::metrics::Metrics) {
        let _ = self.inner.metrics.set(metrics);
    }

    pub(crate) fn metrics(&self) -> Option<&crate::metrics::Metrics> {
        self.inner.metrics.get()
    }

    pub(crate) fn signer(&self) -> Option<&dyn signatures::ImageSigner> {
        self.inner.signer.get().map(|s| s.as_ref())
    }

    pub(crate) fn version_retention(&self) -> u64 {
        self.inner.version_retention.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn meta(&self) -> &MetaStore {
        &self.inner.meta
    }

    pub fn blob_store(&self) -> &Arc<dyn BlobStore> {
        &self.inner.blobs
    }

    pub fn staging(&self) -> &Staging {
        &self.inner.staging
    }

    /// Where upload sessions are staged when replicas share them (object storage).
    pub fn shared_staging(&self) -> Option<&Arc<object_blobs::ObjectBlobStore>> {
        self.inner.shared_staging.as_ref()
    }

    // === blobs ===

    /// Size of a blob readable in `repo`.
    pub async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        let d = digest.to_string();
        if let Some(size) = self.inner.meta.linked_blob_size(repo.as_str(), &d).await? {
            return Ok(size);
        }
        self.remote_blob_size(repo.as_str(), &d)
            .await?
            .ok_or_else(|| blob_unknown(digest))
    }

    /// The bytes of a blob `blob_size` found (`size` bytes); one a remote still holds is
    /// fetched from it now.
    pub async fn read_blob(&self, digest: &Digest, size: u64, range: Option<Range<u64>>) -> Result<ByteStream> {
        match self.inner.blobs.read(digest, range.clone()).await {
            Err(blobs::BlobError::NotFound) => match self.fetch_on_demand(digest, size, range).await? {
                Some(stream) => Ok(stream),
                None => Err(blob_unknown(digest)),
            },
            other => Ok(other?),
        }
    }

    /// Remove the blob from `repo` (its bytes go when garbage collection finds them unused).
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let mut tx = self.inner.meta.begin_write().await?;
        let repo_id = tx
            .repository_id(repo.as_str())
            .await?
            .ok_or_else(|| name_unknown(repo))?;
        if !tx.unlink_blob(repo_id, &digest.to_string()).await? {
            return Err(blob_unknown(digest));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Link a blob of `from` into `target` without moving bytes. `Ok(false)` when the
    /// blob is not readable in `from` (the caller then starts a normal upload).
    pub async fn mount_blob(&self, target: &RepoName, from: &RepoName, digest: &Digest) -> Result<bool> {
        let d = digest.to_string();
        let mut tx = self.inner.meta.begin_write().await?;
        let Some(from_id) = tx.repository_id(from.as_str()).await? else {
            return Ok(false);
        };
        if tx.linked_blob_size(from_id, &d).await?.is_none() {
            // A push repository's blobs include its normal repository's.
            let normal = match versions::repository_kind(&mut tx, from_id).await? {
                (kind, Some(n)) if kind == versions::KIND_PUSH => Some(n),
                _ => None,
            };
            let in_normal = match normal {
                Some(n) => tx.linked_blob_size(n, &d).await?.is_some(),
                None => false,
            };
            if !in_normal {
                return Ok(false);
            }
        }
        let target_id = tx.ensure_repository(target.as_str()).await?;
        tx.link_blob(target_id, &d).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Make a verified, fsynced staged file the blob `digest` and link it into `repo`;
    /// `finished_upload` is the session this completes, closed in the same transaction.
    ///
    /// The bytes are placed before the write lock is taken, so pushes do not queue behind
    /// each other's disk syncs. Under the lock the placement is re-checked: garbage
    /// collection deletes bytes only under that lock, so what is there now stays until
    /// the row that makes it visible is committed.
    async fn commit_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        staged: &Path,
        finished_upload: Option<&str>,
    ) -> Result<()> {
        self.commit_blob_to(Some(repo), digest, size, staged, finished_upload)
            .await
    }

    /// Commit staged bytes as a live blob, linked into `repo` when given. An unlinked
    /// blob is invisible until a manifest that references it is linked somewhere, and
    /// garbage collection takes it back after the grace period if none ever is.
    pub(crate) async fn commit_blob_to(
        &self,
        repo: Option<&RepoName>,
        digest: &Digest,
        size: u64,
        staged: &Path,
        finished_upload: Option<&str>,
    ) -> Result<()> {
        self.commit_staged(repo, digest, size, Staged::File(staged), finished_upload)
            .await
    }

    /// `commit_blob_to` for bytes staged in a file or in object-store chunks.
    async fn commit_staged(
        &self,
        repo: Option<&RepoName>,
        digest: &Digest,
        size: u64,
        staged: Staged<'_>,
        finished_upload: Option<&str>,
    ) -> Result<()> {
        let d = digest.to_string();
        let blobs = &self.inner.blobs;
        let already_live = self.inner.meta.blob_is_live(&d).await?;
        if !already_live {
            self.place_blob(digest, size, &staged).await?;
        }
        let mut tx = self.inner.meta.begin_write().await?;
        // A blob that was live may have been claimed by garbage collection since; one that
        // was not needs its bytes confirmed, since collection may have swept them.
        let live_now = already_live && tx.blob_is_live(&d).await?;
        let mut writes = meta::Batch::default();
        if !live_now {
            if already_live || blobs.stat(digest).await? != Some(size) {
                self.place_blob(digest, size, &staged).await?;
            }
            meta::add_upsert_live_blob(&mut writes, &d, size);
        }
        if let Some(repo) = repo {
            let repo_id = tx.ensure_repository(repo.as_str()).await?;
            meta::add_link_blob(&mut writes, repo_id, &d);
        }
        if let Some(id) = finished_upload {
            meta::add_delete_upload(&mut writes, id);
        }
        writes.run(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn place_blob(&self, digest: &Digest, size: u64, staged: &Staged<'_>) -> Result<()> {
        let placed = match staged {
            Staged::File(path) => self.inner.blobs.put_staged(digest, path).await,
            Staged::Chunks { store, id, names } => store.assemble(digest, id, names, size).await,
        };
        match placed {
            Err(blobs::BlobError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::new(
                ErrorCode::BlobUploadUnknown,
                "the upload was discarded (idle past the garbage-collection grace period) before it completed",
            )),
            other => Ok(other?),
        }
    }

    // === uploads ===

    pub async fn start_upload(&self, repo: &RepoName) -> Result<String> {
        // Each session holds a row and a staging file until it ends or is purged.
        if self.inner.meta.open_uploads(repo.as_str()).await? >= MAX_OPEN_UPLOADS {
            return Err(Error::new(
                ErrorCode::TooManyRequests,
                format!(
                    "{repo} has {MAX_OPEN_UPLOADS} upload sessions open: finish or cancel some (idle ones are discarded after gc_grace)"
                ),
            )
            .with_header(axum::http::header::RETRY_AFTER, "60"));
        }
        let id = uuid::Uuid::new_v4().to_string();
        self.inner.meta.create_upload(&id, repo.as_str()).await?;
        Ok(id)
    }

    /// Bytes received so far by an upload session of `repo`.
    pub async fn upload_size(&self, repo: &RepoName, id: &str) -> Result<u64> {
        Ok(self.upload_row(repo, id).await?.size)
    }

    async fn upload_row(&self, repo: &RepoName, id: &str) -> Result<meta::UploadRow> {
        // Session ids are UUIDs; checking the shape keeps any other string off the filesystem.
        let unknown = || Error::code(ErrorCode::BlobUploadUnknown).with_detail(json!({ "upload": id }));
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(unknown());
        }
        match self.inner.meta.upload(id).await? {
            Some(row) if row.repository == repo.as_str() => Ok(row),
            _ => Err(unknown()),
        }
    }

    /// Append a chunk. `range` is the request's `Content-Range` (inclusive start and end),
    /// which must continue exactly where the session stands.
    pub async fn upload_chunk(
        &self,
        repo: &RepoName,
        id: &str,
        range: Option<(u64, u64)>,
        body: ByteStream,
    ) -> Result<u64> {
        let mut session = self.inner.staging.lock(id).await;
        if let Some(store) = &self.inner.shared_staging {
            return Ok(self.shared_append(store, repo, id, range, body).await?.0);
        }
        let row = self.upload_row(repo, id).await?;
        if let Some((start, end)) = range
            && (start != row.size || end < start)
        {
            return Err(range_invalid(row.size, start, end));
        }
        let size = session.append(row.size, body).await.map_err(stage_error)?;
        // `end - start + 1` is the announced length; `None` when it does not fit a u64.
        if let Some((start, end)) = range
            && end.checked_sub(start).and_then(|d| d.checked_add(1)) != Some(size - start)
        {
            session.rollback(row.size).await.map_err(stage_error)?;
            return Err(Error::new(
                ErrorCode::SizeInvalid,
                format!(
                    "Content-Range {start}-{end} announces {} bytes, the body had {}",
                    u128::from(end) - u128::from(start) + 1,
                    size - start
                ),
            ));
        }
        self.inner.meta.set_upload_size(id, size).await?;
        Ok(size)
    }

    /// Finish an upload session: append the last chunk, verify the digest, commit.
    pub async fn complete_upload(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        body: Option<ByteStream>,
    ) -> Result<()> {
        let mut session = self.inner.staging.lock(id).await;
        if let Some(store) = &self.inner.shared_staging {
            return self.shared_complete(store, repo, id, digest, body).await;
        }
        let row = self.upload_row(repo, id).await?;
        let size = match body {
            Some(body) => session.append(row.size, body).await.map_err(stage_error)?,
            None => row.size,
        };
        let actual = session.finish(size, digest.algorithm()).await.map_err(stage_error)?;
        let staged = session.path();
        drop(session);
        if &actual != digest {
            self.discard_upload(id).await?;
            return Err(digest_mismatch(digest, &actual));
        }
        self.commit_blob(repo, digest, size, &staged, Some(id)).await?;
        self.inner.staging.remove(id).await;
        Ok(())
    }

    pub async fn cancel_upload(&self, repo: &RepoName, id: &str) -> Result<()> {
        let _session = self.inner.staging.lock(id).await;
        self.upload_row(repo, id).await?;
        drop(_session);
        self.discard_upload(id).await
    }

    async fn discard_upload(&self, id: &str) -> Result<()> {
        if let Some(store) = &self.inner.shared_staging {
            return self.shared_discard(store, id).await;
        }
        self.inner.meta.delete_upload(id).await?;
        self.inner.staging.remove(id).await;
        Ok(())
    }

    /// A whole blob in one request (`POST ?digest=`).
    pub async fn upload_whole(&self, repo: &RepoName, digest: &Digest, body: ByteStream) -> Result<()> {
        let id = format!("whole-{}", uuid::Uuid::new_v4());
        let staged = self
            .inner
            .staging
            .stage_whole(&id, digest, body)
            .await
            .map_err(stage_error)?;
        let Some((path, size)) = staged else {
            return Err(Error::code(ErrorCode::DigestInvalid).with_detail(json!({ "digest": digest.to_string() })));
        };
        let result = self.commit_blob(repo, digest, size, &path, None).await;
        self.inner.staging.remove(&id).await;
        result
    }
}

/// Upload sessions open at once in one repository (a push opens one per layer).
pub const MAX_OPEN_UPLOADS: i64 = 1000;

fn blob_unknown(d: &Digest) -> Error {
    Error::code(ErrorCode::BlobUnknown).with_detail(json!({ "digest": d.to_string() }))
}

fn name_unknown(repo: &RepoName) -> Error {
    Error::code(ErrorCode::NameUnknown).with_detail(json!({ "name": repo.as_str() }))
}

fn digest_mismatch(want: &Digest, got: &Digest) -> Error {
    Error::new(ErrorCode::DigestInvalid, format!("content digest is {got}, not {want}"))
        .with_detail(json!({ "expected": want.to_string(), "actual": got.to_string() }))
}

fn range_invalid(size: u64, start: u64, end: u64) -> Error {
    let have = if size == 0 {
        "0-0".to_owned()
    } else {
        format!("0-{}", size - 1)
    };
    Error::new(
        ErrorCode::RangeInvalid,
        format!("chunk {start}-{end} does not continue the upload, which has {size} bytes"),
    )
    .with_header(axum::http::header::RANGE, &have)
}

fn stage_error(e: StageError) -> Error {
    match e {
        // The client's body broke off: nothing was kept, and the client is usually gone.
        StageError::Body(io) => Error::new(ErrorCode::BlobUploadInvalid, format!("upload body interrupted: {io}")),
        StageError::Io(io) => Error::internal(&io),
        StageError::Store(e) => e.into(),
    }
}
