//! Upload staging: the bytes of blobs being pushed, before their digest is verified.
//!
//! A session is a row in `uploads` plus a file `<data>/uploads/<id>`. Chunks append to
//! the file while a SHA-256 state runs alongside, so completing an upload costs no
//! re-read; the state lives in memory only, and a session continued after a restart (or
//! with another digest algorithm) re-reads its file instead. A chunk that fails half-way
//! (the client went away) is cut off again, so a session only ever holds whole chunks.
//! Monolithic uploads (`POST ?digest=`) stage into a file with no session row at all.
//! A session's file is created by its first write. File work runs on the blocking pool,
//! one hop per step (open and position; hash and write a batch; sync), not per syscall.

use crate::oci::{Digest, DigestAlgorithm, Hasher};
use crate::store::blobs::ByteStream;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    /// Staging in object storage failed.
    #[error("upload staging: {0}")]
    Store(#[from] crate::store::blobs::BlobError),
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

    /// Lock a session for the duration of one request.
    pub async fn lock(&self, id: &str) -> SessionGuard<'_> {
        let slot = self.slot(id);
        let guard = slot.clone().lock_owned().await;
        SessionGuard {
            staging: self,
            id: id.to_owned(),
            state: guard,
            written: None,
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
        let file = blocking({
            let path = path.clone();
            move || File::create(path)
        })
        .await?;
        let outcome = match copy_hashing(body, file, Hasher::new(expected.algorithm())).await {
            Ok((size, file, hasher)) => {
                if &hasher.finish() == expected {
                    blocking(move || file.sync_all()).await?;
                    Some((path.clone(), size))
                } else {
                    None
                }
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e);
            }
        };
        if outcome.is_none() {
            let _ = tokio::fs::remove_file(&path).await;
        }
        Ok(outcome)
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
    /// The file as this request's last `append` left it (exactly the session's bytes),
    /// so that `finish` in the same request neither reopens nor truncates it.
    written: Option<File>,
}

impl SessionGuard<'_> {
    /// Append `body` at `offset` (the session's committed size). Returns the new size.
    /// On failure the file is cut back to `offset`.
    pub async fn append(&mut self, offset: u64, body: ByteStream) -> Result<u64, StageError> {
        let path = self.path();
        let cached = self.state.take().filter(|s| s.offset == offset);
        self.written = None;
        let (file, hasher) = blocking({
            let path = path.clone();
            move || -> io::Result<(File, Hasher)> {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)?;
                // Discard anything past the committed size (left by a chunk that failed);
                // truncating to the same size would still dirty the inode, so check first.
                if file.metadata()?.len() != offset {
                    file.set_len(offset)?;
                }
                file.seek(io::SeekFrom::Start(offset))?;
                let hasher = match cached {
                    Some(s) => s.hasher,
                    None => rehash(&path, offset, DigestAlgorithm::Sha256)?,
                };
                Ok((file, hasher))
            }
        })
        .await?;
        match copy_hashing(body, file, hasher).await {
            Ok((n, file, hasher)) => {
                let size = offset + n;
                *self.state = Some(HashState { offset: size, hasher });
                self.written = Some(file);
                Ok(size)
            }
            Err(e) => {
                self.rollback(offset).await?;
                Err(e)
            }
        }
    }

    /// Digest of the session's first `size` bytes with `algorithm`, after an fsync of the
    /// file so that the bytes are durable before they are committed as a blob.
    pub async fn finish(&mut self, size: u64, algorithm: DigestAlgorithm) -> Result<Digest, StageError> {
        let path = self.path();
        let cached = self
            .state
            .take()
            .filter(|s| s.offset == size && s.hasher.algorithm() == algorithm);
        let written = self.written.take().filter(|_| cached.is_some());
        let digest = blocking(move || -> io::Result<Digest> {
            let file = match written {
                Some(f) => f,
                None => {
                    let f = OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(&path)?;
                    f.set_len(size)?;
                    f
                }
            };
            file.sync_all()?;
            let hasher = match cached {
                Some(s) => s.hasher,
                None => rehash(&path, size, algorithm)?,
            };
            Ok(hasher.finish())
        })
        .await?;
        Ok(digest)
    }

    /// Cut the session back to `offset` bytes (undo a chunk that failed, or that was
    /// accepted in full but turned out not to match its announced range).
    pub async fn rollback(&mut self, offset: u64) -> Result<(), StageError> {
        let path = self.path();
        *self.state = None;
        self.written = None;
        blocking(move || match OpenOptions::new().write(true).open(path) {
            Ok(f) => f.set_len(offset),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await?;
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

/// Run blocking file work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io::Error::other)?
}

/// Stream `body` onto `file` at its current position, hashing it on the way. Each batch
/// is hashed and written on the blocking pool while the next batch is received from the
/// network, so the async workers never hash or wait on the disk. Returns the bytes
/// written, the file and the updated hasher.
async fn copy_hashing(mut body: ByteStream, file: File, hasher: Hasher) -> Result<(u64, File, Hasher), StageError> {
    type Step = tokio::task::JoinHandle<io::Result<(File, Hasher, Vec<u8>)>>;
    async fn settle(step: Step) -> io::Result<(File, Hasher, Vec<u8>)> {
        step.await.map_err(io::Error::other)?
    }

    let mut idle = Some((file, hasher));
    let mut pending: Option<Step> = None;
    // Buffers grow with the data: a 4 KiB blob costs a 4 KiB buffer, not a batch.
    let mut buf = Vec::new();
    let mut spare = Vec::new();
    let mut total = 0u64;
    loop {
        let done = match body.next().await {
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
            h.update(&data);
            let at = f.stream_position()?;
            f.write_all(&data)?;
            if data.len() >= WRITE_BATCH {
                start_writeback(&f, at, data.len() as u64);
            }
            Ok((f, h, data))
        }));
        if done {
            break;
        }
    }
    match pending {
        Some(step) => {
            let (f, h, _) = settle(step).await?;
            Ok((total, f, h))
        }
        None => Err(StageError::Io(io::Error::other(
            "upload writer finished without a write",
        ))),
    }
}

/// Ask the kernel to start writing the batch just written (`len` bytes at `at`) to disk
/// now, without waiting, so that the fsync at the end of an upload finds little left to
/// do and the disk works while the bytes are still arriving. Only the new range: asking
/// for the whole file would re-walk everything already written on every batch.
#[cfg(target_os = "linux")]
fn start_writeback(f: &File, at: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor we own for the duration of the call;
    // its failure only means the final fsync does all the work.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), at as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_f: &File, _at: u64, _len: u64) {}

/// Hash the first `len` bytes of a staged file (blocking).
fn rehash(path: &Path, len: u64, algorithm: DigestAlgorithm) -> io::Result<Hasher> {
    let mut hasher = Hasher::new(algorithm);
    if len == 0 {
        return Ok(hasher);
    }
    let mut file = File::open(path)?.take(len);
    let mut buf = vec![0u8; (len as usize).min(WRITE_BATCH)];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher)
}

/// Removes a staged file when dropped: a download abandoned half-way (its future
/// dropped) leaves nothing behind.
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
