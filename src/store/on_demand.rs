//! Blobs an `on_demand` sync recorded but did not fetch: the first pull fetches them
//! from the remote that serves them, streams them to the client while storing them,
//! and serves every later pull locally.
//!
//! The download runs in its own task, so a client that goes away does not waste it.
//! The last chunk is held back until the whole blob is verified: a client never gets a
//! complete response with bytes that do not match the digest (a mismatch ends the
//! response with an error instead, and nothing is stored).

use super::Registry;
use super::blobs::ByteStream;
use crate::error::{Error, ErrorCode, Result};
use crate::oci::Digest;
use crate::oci::digest::Hasher;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use std::io;
use std::ops::Range;
use tokio::io::AsyncWriteExt;

/// Where blobs known only by a remote come from (the sync module).
#[async_trait]
pub trait RemoteBlobSource: Send + Sync + 'static {
    /// The blob's bytes from a remote that serves it, or `None` when none does.
    async fn open(&self, digest: &Digest) -> Result<Option<ByteStream>>;
}

impl Registry {
    /// Size of a blob linked into `repo` that only a remote has yet.
    pub(super) async fn remote_blob_size(&self, repo: &str, digest: &str) -> Result<Option<u64>> {
        if self.inner.remote_blobs.get().is_none() {
            return Ok(None);
        }
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT x.size FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id \
             JOIN remote_blobs x ON x.digest = rb.digest WHERE r.name = $1 AND rb.digest = $2 LIMIT 1",
        )
        .bind(repo)
        .bind(digest)
        .fetch_optional(self.meta().reader())
        .await?;
        Ok(row.map(|r| r.0 as u64))
    }

    /// Fetch a blob a remote serves: the whole stream, stored as it passes (a range is
    /// served once the whole blob is stored).
    pub(super) async fn fetch_on_demand(
        &self,
        digest: &Digest,
        size: u64,
        range: Option<Range<u64>>,
    ) -> Result<Option<ByteStream>> {
        let Some(source) = self.inner.remote_blobs.get() else {
            return Ok(None);
        };
        let Some(remote) = source.open(digest).await? else {
            return Ok(None);
        };
        let remote = super::blobs::capped(remote, size);
        tracing::info!(digest = %digest, "fetching blob from its remote on first pull");
        if let Some(range) = range {
            let id = format!("ondemand-{}", uuid::Uuid::new_v4());
            let _cleanup = super::uploads::RemoveOnDrop(self.staging().path(&id));
            let staged = self
                .staging()
                .stage_whole(&id, digest, remote)
                .await
                .map_err(|e| Error::new(ErrorCode::Unavailable, format!("fetching from the remote: {e}")))?;
            let Some((path, got)) = staged else {
                return Err(mismatch(digest));
            };
            let committed = if got == size {
                self.commit_blob_to(None, digest, got, &path, None).await
            } else {
                Err(mismatch(digest))
            };
            self.staging().remove(&id).await;
            committed?;
            return Ok(Some(self.inner.blobs.read(digest, Some(range)).await?));
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
        let this = self.clone();
        let digest = digest.clone();
        tokio::spawn(async move { this.tee(digest, size, remote, tx).await });
        Ok(Some(
            futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed(),
        ))
    }

    async fn tee(
        &self,
        digest: Digest,
        size: u64,
        mut remote: ByteStream,
        tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    ) {
        let id = format!("ondemand-{}", uuid::Uuid::new_v4());
        let path = self.staging().path(&id);
        let mut client = Some(tx);
        let outcome: io::Result<()> = async {
            let mut file = tokio::fs::File::create(&path).await?;
            let mut hasher = Hasher::new(digest.algorithm());
            let mut held: Option<Bytes> = None;
            let mut got = 0u64;
            while let Some(chunk) = remote.next().await {
                let chunk = chunk?;
                file.write_all(&chunk).await?;
                hasher.update(&chunk);
                got += chunk.len() as u64;
                if let Some(prev) = held.replace(chunk)
                    && let Some(t) = &client
                    && t.send(Ok(prev)).await.is_err()
                {
                    // The client left; the download goes on for the next pull.
                    client = None;
                }
            }
            file.sync_all().await?;
            if got != size || hasher.finish() != digest {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the remote's bytes for {digest} do not match the digest"),
                ));
            }
            self.commit_blob_to(None, &digest, got, &path, None)
                .await
                .map_err(|e| io::Error::other(e.message))?;
            if let (Some(last), Some(t)) = (held, &client) {
                let _ = t.send(Ok(last)).await;
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            tracing::warn!(digest = %digest, error = %e, "on-demand fetch failed; nothing stored");
            if let Some(t) = &client {
                let _ = t.send(Err(e)).await;
            }
        }
        let _ = tokio::fs::remove_file(&path).await;
    }

    /// Let pulls fetch blobs that only a remote has (set once, by the sync service).
    pub fn set_remote_blob_source(&self, source: std::sync::Arc<dyn RemoteBlobSource>) {
        let _ = self.inner.remote_blobs.set(source);
    }
}

fn mismatch(digest: &Digest) -> Error {
    Error::new(
        ErrorCode::Unavailable,
        format!("the remote's bytes for {digest} do not match the digest"),
    )
}
