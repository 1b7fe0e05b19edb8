//! Upload sessions staged in object storage, for replicas: any replica appends to and
//! completes any session. Each chunk (a PATCH's body, or the final PUT's) becomes an
//! object of its own, named `<offset>-<nonce>`; it counts once the session's row
//! records it, which happens only if the session still stands at that offset (so two
//! replicas racing on one session cannot both win, and a chunk that broke off or lost
//! the race is never part of the blob). The digest is computed on the way in by the
//! replica that received the bytes; a session continued on another replica is re-read
//! from its chunks at completion, so it is always checked against the bytes stored.

use super::object_blobs::ObjectBlobStore;
use super::uploads::StageError;
use super::{Registry, Staged, digest_mismatch, range_invalid, stage_error};
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Digest, DigestAlgorithm, Hasher, RepoName};
use crate::store::blobs::ByteStream;
use futures_util::StreamExt;

impl Registry {
    /// Append `body` at the session's size; `range` as in `upload_chunk`.
    pub(super) async fn shared_append(
        &self,
        store: &ObjectBlobStore,
        repo: &RepoName,
        id: &str,
        range: Option<(u64, u64)>,
        body: ByteStream,
    ) -> Result<(u64, Vec<String>)> {
        let row = self.upload_row(repo, id).await?;
        if let Some((start, end)) = range
            && (start != row.size || end < start)
        {
            return Err(range_invalid(row.size, start, end));
        }
        let hasher = self
            .inner
            .session_hashes
            .get(id)
            .filter(|(at, _)| *at == row.size)
            .map(|(_, h)| h)
            .or_else(|| (row.size == 0).then(|| Hasher::new(DigestAlgorithm::Sha256)));
        let name = format!("{:020}-{}", row.size, &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let (n, hasher) = store.put_chunk(id, &name, body, hasher).await.map_err(stage_error)?;
        let size = row.size + n;
        let forget = async || {
            let _ = store.delete_upload_chunk(id, &name).await;
        };
        if let Some((start, end)) = range
            && end.checked_sub(start).and_then(|d| d.checked_add(1)) != Some(n)
        {
            forget().await;
            return Err(Error::new(
                ErrorCode::SizeInvalid,
                format!(
                    "Content-Range {start}-{end} announces {} bytes, the body had {n}",
                    u128::from(end) - u128::from(start) + 1
                ),
            ));
        }
        if n == 0 {
            forget().await;
            return Ok((row.size, row.chunks));
        }
        let mut chunks = row.chunks;
        chunks.push(name);
        if !self.inner.meta.advance_upload(id, row.size, size, &chunks).await? {
            // Another request moved the session on first (or it was discarded).
            if let Some(name) = chunks.pop() {
                let _ = store.delete_upload_chunk(id, &name).await;
            }
            let now = self.upload_row(repo, id).await?.size;
            return Err(range_invalid(now, row.size, size.saturating_sub(1)));
        }
        match hasher {
            Some(h) => self.inner.session_hashes.insert(id.to_owned(), (size, h)),
            None => self.inner.session_hashes.invalidate(id),
        }
        Ok((size, chunks))
    }

    /// Complete a session: the last chunk, the digest check, the blob.
    pub(super) async fn shared_complete(
        &self,
        store: &ObjectBlobStore,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        body: Option<ByteStream>,
    ) -> Result<()> {
        let (size, chunks) = match body {
            Some(body) => self.shared_append(store, repo, id, None, body).await?,
            None => {
                let row = self.upload_row(repo, id).await?;
                (row.size, row.chunks)
            }
        };
        let cached = self
            .inner
            .session_hashes
            .remove(id)
            .filter(|(at, h)| *at == size && h.algorithm() == digest.algorithm())
            .map(|(_, h)| h);
        let actual = match cached {
            Some(h) => h.finish(),
            None => rehash(store.read_chunks(id, &chunks), digest.algorithm()).await?,
        };
        if &actual != digest {
            self.shared_discard(store, id).await?;
            return Err(digest_mismatch(digest, &actual));
        }
        let staged = Staged::Chunks {
            store,
            id,
            names: &chunks,
        };
        self.commit_staged(Some(repo), digest, size, staged, Some(id)).await?;
        if let Err(e) = store.delete_upload(id).await {
            // The purge takes what is left once the session row is gone.
            tracing::warn!(error = %e, upload = id, "removing a completed upload's chunks failed");
        }
        Ok(())
    }

    /// Drop a session and its chunks.
    pub(super) async fn shared_discard(&self, store: &ObjectBlobStore, id: &str) -> Result<()> {
        self.inner.session_hashes.invalidate(id);
        self.inner.meta.delete_upload(id).await?;
        store.delete_upload(id).await?;
        Ok(())
    }
}

/// The digest of `bytes` (a session's chunks read back).
async fn rehash(mut bytes: ByteStream, algorithm: DigestAlgorithm) -> Result<Digest> {
    let mut h = Hasher::new(algorithm);
    while let Some(chunk) = bytes.next().await {
        let chunk =
            chunk.map_err(|e| stage_error(StageError::Store(super::blobs::BlobError::Unavailable(e.to_string()))))?;
        h.update(&chunk);
    }
    Ok(h.finish())
}
