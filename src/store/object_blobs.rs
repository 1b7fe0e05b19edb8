//! Blobs in S3-compatible object storage (AWS S3, MinIO, Ceph RGW, Garage…) through the
//! `object_store` crate, for replicas that share one store (`--blobs s3://bucket/prefix`).
//!
//! Layout under the prefix, as on the filesystem: `blobs/sha256/ab/abcdef…`, one object
//! per digest, written once. An object appears whole or not at all (a single PUT, or a
//! multipart upload that S3 assembles only on completion), and only after the staged
//! bytes were verified against their digest; the metadata database still decides what
//! is visible.

use super::blobs::{BlobError, BlobStore, ByteStream};
use super::uploads::StageError;
use crate::oci::{Digest, Hasher};
use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncReadExt;

/// Objects up to this size are one PUT; larger ones a multipart upload of parts this big.
pub const PART_SIZE: usize = 8 << 20;
/// Parts of one blob in flight at once: memory per upload is about this many parts
/// (with 8 MiB parts a push stays well under 64 MiB of server memory).
const PART_CONCURRENCY: usize = 2;

/// Where and how to reach the object store (`blobs`, `s3_*` settings).
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// `s3://bucket[/prefix]`
    pub url: String,
    /// `https://host:port` of an S3-compatible server; AWS when absent.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), what most self-hosted servers need.
    pub path_style: bool,
    /// Credentials; when absent, the standard AWS environment variables and metadata.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum S3SetupError {
    #[error("setting {0}: {1}")]
    Setting(&'static str, String),
}

/// `s3://bucket/prefix` → (bucket, prefix).
pub fn parse_s3_url(url: &str) -> Result<(String, String), S3SetupError> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| S3SetupError::Setting("blobs", format!("{url:?}: use s3://bucket[/prefix]")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !valid_bucket {
        return Err(S3SetupError::Setting(
            "blobs",
            format!("{bucket:?} is not a bucket name (3-63 of a-z, 0-9, '-', '.')"),
        ));
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// One CopyObject copies at most this much on S3 and most compatible servers.
const MAX_SERVER_SIDE_COPY: u64 = 5 << 30;

pub struct ObjectBlobStore {
    store: Arc<AmazonS3>,
    /// `<prefix>/blobs`
    root: ObjectPath,
    /// `<prefix>/uploads`: chunks of upload sessions, `<id>/<offset>-<nonce>`.
    uploads: ObjectPath,
    /// What the settings named, for messages.
    url: String,
}

impl ObjectBlobStore {
    /// Build the client; nothing is contacted yet (see `check`).
    pub fn new(s: &S3Settings) -> Result<Self, S3SetupError> {
        let (bucket, prefix) = parse_s3_url(&s.url)?;
        // The client's TLS (reqwest over rustls) needs the process's crypto provider.
        crate::tls::install_crypto_provider();
        // A store that is down makes a request fail within seconds (503 to the client,
        // who retries), not hang for the library's default of three minutes.
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(10),
            backoff: BackoffConfig::default(),
        };
        let client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(300));
        let mut b = AmazonS3Builder::from_env()
            .with_retry(retry)
            .with_client_options(client)
            .with_bucket_name(&bucket)
            .with_virtual_hosted_style_request(!s.path_style);
        if let Some(e) = &s.endpoint {
            // Instance-metadata credentials are AWS's; a self-hosted server needs keys
            // (and asking the metadata address off AWS only times out).
            let env_keys = std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
            if s.access_key_id.is_none() && !env_keys {
                return Err(S3SetupError::Setting(
                    "s3_access_key_id",
                    "required with s3_endpoint (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)".into(),
                ));
            }
            if !(e.starts_with("https://") || e.starts_with("http://")) {
                return Err(S3SetupError::Setting(
                    "s3_endpoint",
                    format!("{e:?}: use https://host[:port]"),
                ));
            }
            b = b
                .with_endpoint(e.trim_end_matches('/'))
                .with_allow_http(e.starts_with("http://"));
        }
        if let Some(r) = &s.region {
            b = b.with_region(r);
        }
        if let Some(k) = &s.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &s.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        let store = b.build().map_err(|e| S3SetupError::Setting("blobs", e.to_string()))?;
        let base = |leaf: &str| {
            if prefix.is_empty() {
                ObjectPath::from(leaf)
            } else {
                ObjectPath::from(prefix.as_str()).join(leaf)
            }
        };
        Ok(Self {
            store: Arc::new(store),
            root: base("blobs"),
            uploads: base("uploads"),
            url: s.url.clone(),
        })
    }

    /// Reach the bucket once at start, so that a wrong endpoint, bucket or credential is
    /// refused with the setting it concerns instead of failing the first push.
    pub async fn check(&self) -> Result<(), S3SetupError> {
        match self.store.list_with_delimiter(Some(&self.root)).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = crate::error::chain(&e);
                // S3 names what is wrong in an XML <Code>; say that rather than the body.
                let code = text
                    .split_once("<Code>")
                    .and_then(|(_, rest)| rest.split_once("</Code>"))
                    .map(|(code, _)| code.to_owned());
                let (setting, why) = match code.as_deref() {
                    Some("NoSuchBucket") => ("blobs", "the bucket does not exist".to_owned()),
                    Some(c @ ("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch")) => {
                        ("s3_access_key_id", format!("the server refused the credentials ({c})"))
                    }
                    Some(c) => ("s3_endpoint", format!("the server answered {c}")),
                    None => ("s3_endpoint", text),
                };
                Err(S3SetupError::Setting(
                    setting,
                    format!("cannot use {}: {why}", self.url),
                ))
            }
        }
    }

    fn path(&self, d: &Digest) -> ObjectPath {
        let hex = d.hex();
        self.root.clone().join(d.algorithm().as_str()).join(&hex[..2]).join(hex)
    }
}

/// Upload sessions staged in the object store, so that any replica can continue one:
/// each chunk is an object of its own, recorded in the session's row once complete.
impl ObjectBlobStore {
    fn chunk_path(&self, id: &str, name: &str) -> ObjectPath {
        self.uploads.clone().join(id).join(name)
    }

    /// Store `body` as chunk `name` of session `id`, hashing it on the way when a running
    /// `hasher` is given. Returns the bytes stored. A body that breaks off leaves no
    /// object (a multipart upload is aborted; a single PUT never starts).
    pub async fn put_chunk(
        &self,
        id: &str,
        name: &str,
        mut body: ByteStream,
        mut hasher: Option<Hasher>,
    ) -> Result<(u64, Option<Hasher>), StageError> {
        let path = self.chunk_path(id, name);
        let mut first = Vec::new();
        let mut total = 0u64;
        // Small chunks (most are: a whole layer in one PATCH is one chunk) are one PUT.
        while first.len() < PART_SIZE {
            match body.next().await {
                Some(Ok(bytes)) => {
                    if let Some(h) = hasher.as_mut() {
                        h.update(&bytes);
                    }
                    total += bytes.len() as u64;
                    first.extend_from_slice(&bytes);
                }
                Some(Err(e)) => return Err(StageError::Body(e)),
                None => {
                    self.store.put(&path, PutPayload::from(first)).await.map_err(io_error)?;
                    return Ok((total, hasher));
                }
            }
        }
        let upload = self.store.put_multipart(&path).await.map_err(io_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        writer.write(&first);
        drop(first);
        let streamed: Result<(), StageError> = async {
            loop {
                writer.wait_for_capacity(PART_CONCURRENCY).await.map_err(io_error)?;
                match body.next().await {
                    Some(Ok(bytes)) => {
                        if let Some(h) = hasher.as_mut() {
                            h.update(&bytes);
                        }
                        total += bytes.len() as u64;
                        writer.put(bytes);
                    }
                    Some(Err(e)) => return Err(StageError::Body(e)),
                    None => return Ok(()),
                }
            }
        }
        .await;
        match streamed {
            Ok(()) => {
                writer.finish().await.map_err(io_error)?;
                Ok((total, hasher))
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// The bytes of session `id`'s chunks `names`, in order.
    pub fn read_chunks(&self, id: &str, names: &[String]) -> ByteStream {
        let store = self.store.clone();
        let paths: Vec<ObjectPath> = names.iter().map(|n| self.chunk_path(id, n)).collect();
        futures_util::stream::iter(paths)
            .then(move |path| {
                let store = store.clone();
                async move {
                    match store.get(&path).await {
                        Ok(got) => got.into_stream().map_err(io::Error::other).boxed(),
                        Err(e) => futures_util::stream::once(async move { Err(io::Error::other(e)) }).boxed(),
                    }
                }
            })
            .flatten()
            .boxed()
    }

    /// Make session `id`'s chunks `names` (`size` bytes, already verified) the blob
    /// `digest`: a single chunk is copied inside the store; several are concatenated
    /// through this process into a multipart upload. The object appears whole or not at
    /// all.
    pub async fn assemble(&self, digest: &Digest, id: &str, names: &[String], size: u64) -> Result<(), BlobError> {
        if self.stat(digest).await?.is_some() {
            return Ok(());
        }
        let target = self.path(digest);
        if let [only] = names
            && size <= MAX_SERVER_SIDE_COPY
        {
            return self
                .store
                .copy(&self.chunk_path(id, only), &target)
                .await
                .map_err(io_error);
        }
        let upload = self.store.put_multipart(&target).await.map_err(io_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut bytes = self.read_chunks(id, names);
        let copied: Result<(), BlobError> = async {
            loop {
                writer.wait_for_capacity(PART_CONCURRENCY).await.map_err(io_error)?;
                match bytes.next().await {
                    Some(Ok(b)) => writer.put(b),
                    Some(Err(e)) => return Err(BlobError::Unavailable(e.to_string())),
                    None => return Ok(()),
                }
            }
        }
        .await;
        match copied {
            Ok(()) => writer.finish().await.map(|_| ()).map_err(io_error),
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Remove one chunk object (it lost a race, or its request failed a check).
    pub async fn delete_upload_chunk(&self, id: &str, name: &str) -> Result<(), BlobError> {
        match self.store.delete(&self.chunk_path(id, name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    /// Remove every object of session `id`: its chunks and any a failed append left.
    pub async fn delete_upload(&self, id: &str) -> Result<(), BlobError> {
        let prefix = self.uploads.clone().join(id);
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await.map_err(io_error)?;
        for meta in objects {
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(())
    }

    /// Sessions with staged objects, each with its newest object's time (for the purge
    /// of chunks whose session is gone).
    pub async fn staged_sessions(&self) -> Result<Vec<(String, SystemTime)>, BlobError> {
        let mut newest: std::collections::BTreeMap<String, SystemTime> = Default::default();
        let mut listing = self.store.list(Some(&self.uploads));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(io_error)?;
            let parts: Vec<_> = meta.location.parts().collect();
            let [.., id, _chunk] = parts.as_slice() else {
                continue;
            };
            let at = SystemTime::from(meta.last_modified);
            let e = newest.entry(id.as_ref().to_owned()).or_insert(at);
            *e = (*e).max(at);
        }
        Ok(newest.into_iter().collect())
    }
}

fn io_error(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        other => BlobError::Unavailable(crate::error::chain(&other)),
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        match self.store.head(&self.path(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream, BlobError> {
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let got = self.store.get_opts(&self.path(digest), opts).await.map_err(io_error)?;
        Ok(got.into_stream().map_err(io::Error::other).boxed())
    }

    async fn put_staged(&self, digest: &Digest, staged: &Path) -> Result<(), BlobError> {
        let target = self.path(digest);
        // Content-addressed: an object of that name already holds these bytes.
        if self.stat(digest).await?.is_some() {
            return Ok(());
        }
        let mut file = tokio::fs::File::open(staged).await?;
        let size = file.metadata().await?.len();
        if size <= PART_SIZE as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf).await?;
            self.store.put(&target, PutPayload::from(buf)).await.map_err(io_error)?;
            return Ok(());
        }
        let upload = self.store.put_multipart(&target).await.map_err(io_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1 << 20];
        let copied: Result<(), BlobError> = async {
            loop {
                writer.wait_for_capacity(PART_CONCURRENCY).await.map_err(io_error)?;
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                writer.write(&buf[..n]);
            }
        }
        .await;
        match copied {
            Ok(()) => {
                writer.finish().await.map_err(io_error)?;
                Ok(())
            }
            Err(e) => {
                // Parts of an abandoned multipart upload cost storage until aborted.
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    async fn delete(&self, digest: &Digest) -> Result<(), BlobError> {
        match self.store.delete(&self.path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    async fn list(&self) -> Result<Vec<(Digest, SystemTime)>, BlobError> {
        let mut out = Vec::new();
        let mut listing = self.store.list(Some(&self.root));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(io_error)?;
            let parts: Vec<_> = meta.location.parts().collect();
            // …/blobs/<alg>/<2 hex>/<hex>; anything else is not ours to judge.
            let [.., alg, _, hex] = parts.as_slice() else {
                continue;
            };
            let Ok(d) = format!("{}:{}", alg.as_ref(), hex.as_ref()).parse::<Digest>() else {
                continue;
            };
            out.push((d, SystemTime::from(meta.last_modified)));
        }
        Ok(out)
    }

    async fn redirect_url(&self, digest: &Digest, ttl: Duration) -> Result<Option<String>, BlobError> {
        let url = self
            .store
            .signed_url(axum::http::Method::GET, &self.path(digest), ttl)
            .await
            .map_err(io_error)?;
        Ok(Some(url.to_string()))
    }
}
