//! Upload staging: the bytes of blobs being pushed, before their digest is verified.
//!
//! A session is a row in `uploads` plus a file `<data>/uploads/<id>`. Chunks append to
//! the file while a SHA-256 state runs alongside, so completing an upload costs no
//! re-read; the state lives in memory only, and a session continued after a restart (or
//! with another digest algorithm) re-reads its file instead. A chunk that fails half-way
//! (the client went away) is cut off again, so a session only ever holds whole chunks.
//! Monolithic uploads (`POST ?digest=`) stage into a file with no session row at all.

use crate::oci::{Digest, DigestAlgorithm, Hasher};
use crate::store::blobs::ByteStream;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// The running hash of a session's bytes `[0, offset)`.
#[derive(Clone)]
struct HashState {
    offset: u64,
    hasher: Hasher,
}

/// Per-session lock and cached hash state. The lock serialises requests on one session
/// so that two concurrent PATCHes cannot interleave their bytes.
type SessionSlot = Arc<tokio::sync::Mutex<Option<HashState>>>;

pub struct Staging {
    dir: PathBuf,
    sessions: Mutex<HashMap<String, SessionSlot>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("upload body: {0}")]
    Body(io::Error),
    #[error("upload staging I/O: {0}")]
    Io(#[from] io::Error),
}

impl Staging {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn slot(&self, id: &str) -> SessionSlot {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_owned()).or_default().clone()
    }

    fn forget(&self, id: &str) {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }

    pub async fn create(&self, id: &str) -> io::Result<()> {
        tokio::fs::File::create(self.path(id)).await.map(drop)
    }

    /// Lock a session for the duration of one request.
    pub async fn lock(&self, id: &str) -> SessionGuard<'_> {
        let slot = self.slot(id);
        let guard = slot.clone().lock_owned().await;
        SessionGuard {
            staging: self,
            id: id.to_owned(),
            state: guard,
        }
    }

    /// Stage a complete blob uploaded in one request, verifying it against `expected`.
    /// Returns the staged file and its size, or `Ok(None)` when the digest differs (the
    /// staged bytes are already removed then).
    pub async fn stage_whole(
        &self,
        id: &str,
        expected: &Digest,
        body: ByteStream,
    ) -> Result<Option<(PathBuf, u64)>, StageError> {
        let path = self.path(id);
        let mut file = tokio::fs::File::create(&path).await?;
        let mut hasher = Hasher::new(expected.algorithm());
        let written = copy_hashing(body, &mut file, &mut hasher).await;
        let size = match written {
            Ok(n) => n,
            Err(e) => {
                drop(file);
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e);
            }
        };
        if &hasher.finish() != expected {
            drop(file);
            let _ = tokio::fs::remove_file(&path).await;
            return Ok(None);
        }
        file.sync_all().await?;
        Ok(Some((path, size)))
    }

    pub async fn remove(&self, id: &str) {
        self.forget(id);
        let _ = tokio::fs::remove_file(self.path(id)).await;
    }
}

/// One request's hold on an upload session.
pub struct SessionGuard<'a> {
    staging: &'a Staging,
    id: String,
    state: tokio::sync::OwnedMutexGuard<Option<HashState>>,
}

impl SessionGuard<'_> {
    /// Append `body` at `offset` (the session's committed size). Returns the new size.
    /// On failure the file is cut back to `offset`.
    pub async fn append(&mut self, offset: u64, body: ByteStream) -> Result<u64, StageError> {
        let path = self.staging.path(&self.id);
        let mut file = tokio::fs::OpenOptions::new().write(true).open(&path).await?;
        // Discard anything past the committed size (left by a chunk that failed before).
        file.set_len(offset).await?;
        file.seek(io::SeekFrom::Start(offset)).await?;
        let mut state = match self.state.take() {
            Some(s) if s.offset == offset => s,
            _ => HashState {
                offset,
                hasher: rehash(&path, offset, DigestAlgorithm::Sha256).await?,
            },
        };
        match copy_hashing(body, &mut file, &mut state.hasher).await {
            Ok(n) => {
                file.flush().await?;
                state.offset += n;
                let size = state.offset;
                *self.state = Some(state);
                Ok(size)
            }
            Err(e) => {
                file.set_len(offset).await?;
                Err(e)
            }
        }
    }

    /// Digest of the session's first `size` bytes with `algorithm`, after an fsync of the
    /// file so that the bytes are durable before they are committed as a blob.
    pub async fn finish(&mut self, size: u64, algorithm: DigestAlgorithm) -> Result<Digest, StageError> {
        let path = self.staging.path(&self.id);
        let file = tokio::fs::OpenOptions::new().write(true).open(&path).await?;
        file.set_len(size).await?;
        file.sync_all().await?;
        let digest = match self.state.take() {
            Some(s) if s.offset == size && s.hasher.algorithm() == algorithm => s.hasher.finish(),
            _ => rehash(&path, size, algorithm).await?.finish(),
        };
        Ok(digest)
    }

    /// Cut the session back to `offset` bytes (undo a chunk that was accepted in full
    /// but turned out not to match its announced range).
    pub async fn rollback(&mut self, offset: u64) -> Result<(), StageError> {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(self.staging.path(&self.id))
            .await?;
        file.set_len(offset).await?;
        *self.state = None;
        Ok(())
    }

    pub fn path(&self) -> PathBuf {
        self.staging.path(&self.id)
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        // Free the slot unless a hash state is cached for the next chunk or another
        // request is waiting on it (the map and this guard hold the only references).
        if self.state.is_none() {
            let mut map = self.staging.sessions.lock().unwrap_or_else(|p| p.into_inner());
            if map.get(&self.id).is_some_and(|slot| Arc::strong_count(slot) <= 2) {
                map.remove(&self.id);
            }
        }
    }
}

/// Bytes gathered from the request body before one hash-and-write step.
const WRITE_BATCH: usize = 1 << 20;

/// Stream `body` onto the end of `file`, hashing it on the way. Each batch is hashed and
/// written on the blocking pool while the next batch is received from the network, so
/// the async workers never hash or wait on the disk. Returns the bytes written.
async fn copy_hashing(
    mut body: ByteStream,
    file: &mut tokio::fs::File,
    hasher: &mut Hasher,
) -> Result<u64, StageError> {
    type Step = tokio::task::JoinHandle<io::Result<(std::fs::File, Hasher, Vec<u8>)>>;
    async fn settle(step: Step) -> io::Result<(std::fs::File, Hasher, Vec<u8>)> {
        step.await.map_err(io::Error::other)?
    }

    file.flush().await?;
    let std_file = file.try_clone().await?.into_std().await;
    let mut idle = Some((std_file, hasher.clone()));
    let mut pending: Option<Step> = None;
    let mut buf = Vec::with_capacity(WRITE_BATCH);
    let mut spare = Vec::with_capacity(WRITE_BATCH);
    let mut total = 0u64;
    loop {
        let next = body.next().await;
        let done = match next {
            Some(Ok(chunk)) => {
                total += chunk.len() as u64;
                buf.extend_from_slice(&chunk);
                if buf.len() < WRITE_BATCH {
                    continue;
                }
                false
            }
            Some(Err(e)) => {
                if let Some(step) = pending {
                    let _ = settle(step).await;
                }
                return Err(StageError::Body(e));
            }
            None => true,
        };
        if let Some(step) = pending.take() {
            let (f, h, mut used) = settle(step).await?;
            used.clear();
            spare = used;
            idle = Some((f, h));
        }
        let Some((mut f, mut h)) = idle.take() else {
            return Err(StageError::Io(io::Error::other("upload writer lost its file")));
        };
        let data = std::mem::replace(&mut buf, std::mem::take(&mut spare));
        pending = Some(tokio::task::spawn_blocking(move || {
            use std::io::Write;
            h.update(&data);
            f.write_all(&data)?;
            start_writeback(&f);
            Ok((f, h, data))
        }));
        if done {
            break;
        }
    }
    if let Some(step) = pending {
        let (_, h, _) = settle(step).await?;
        *hasher = h;
    }
    Ok(total)
}

/// Ask the kernel to start writing dirty pages of `f` to disk now, without waiting, so
/// that the fsync at the end of an upload finds little left to do and the disk works
/// while the bytes are still arriving.
#[cfg(target_os = "linux")]
fn start_writeback(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor we own for the duration of the call;
    // its failure only means the final fsync does all the work.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_f: &std::fs::File) {}

/// Hash the first `len` bytes of a staged file.
async fn rehash(path: &Path, len: u64, algorithm: DigestAlgorithm) -> io::Result<Hasher> {
    let mut hasher = Hasher::new(algorithm);
    let mut file = tokio::fs::File::open(path).await?.take(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher)
}
