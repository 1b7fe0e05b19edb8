//! Online garbage collection: safe to run while pushes are in progress.
//!
//! Protocol (the database is the record; bytes follow it):
//! 1. Upload sessions idle for longer than the grace period are discarded, with their
//!    staged files; stray staging files without a session go too once idle for an hour.
//! 2. In one write transaction: blob links older than the grace period that no manifest
//!    of their repository uses are dropped, manifests no repository links are dropped,
//!    and every live blob that is now unreferenced and older than the grace period is
//!    *claimed* (`state = 'deleting'`, which makes it invisible).
//! 3. Claimed blobs are deleted in batches, each inside a write transaction that first
//!    re-checks the claim: an upload of the same digest revives the row inside its own
//!    write transaction, so bytes a client has just pushed are never removed. A crash
//!    here leaves claimed rows (invisible) whose deletion the next run finishes.
//! 4. Blob files with no row at all (left by a crash between placement and commit) and
//!    older than the grace period are removed, again under the write lock.

use crate::oci::Digest;
use crate::store::Registry;
use crate::store::blobs::BlobError;
use crate::store::meta::{MetaError, MetaStore, WriteTx, now_ms};
use futures_util::future::BoxFuture;
use std::future::Future;
use std::time::{Duration, SystemTime};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub uploads_removed: u64,
    pub blob_links_dropped: u64,
    pub manifests_dropped: u64,
    pub blobs_deleted: u64,
    /// Bytes of the blobs deleted.
    pub bytes_freed: u64,
    pub orphan_files_removed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("staging directory: {0}")]
    Io(#[from] std::io::Error),
}

const BATCH: i64 = 256;
/// Candidates read at a time while marking.
const CANDIDATES: i64 = 4096;

/// Step 1 alone: discard upload sessions idle longer than `grace` and stray staging
/// files. The server runs this periodically (`upload_purge_interval`), as Distribution
/// purges uploads; blob collection stays an explicit `gatehouse gc`. Returns how many
/// sessions and files were removed.
pub async fn purge_uploads(reg: &Registry, grace: Duration) -> Result<u64, GcError> {
    let cutoff_ms = now_ms() - grace.as_millis() as i64;
    let meta = reg.meta();
    let mut removed = 0;
    for id in meta.stale_uploads(cutoff_ms).await? {
        meta.delete_upload(&id).await?;
        reg.staging().remove(&id).await;
        if let Some(store) = reg.shared_staging() {
            store.delete_upload(&id).await?;
        }
        removed += 1;
    }
    let stray_cutoff = SystemTime::now()
        .checked_sub(grace.max(STRAY_STAGING_MIN_AGE))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    // Chunks in object storage whose session is gone (completed or discarded by a
    // replica that crashed before removing them).
    if let Some(store) = reg.shared_staging() {
        for (id, newest) in store.staged_sessions().await? {
            if newest < stray_cutoff && meta.upload(&id).await?.is_none() {
                store.delete_upload(&id).await?;
                removed += 1;
            }
        }
    }
    let mut entries = tokio::fs::read_dir(reg.staging().dir()).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        // A file can vanish between listing and stat: its upload just completed.
        let Ok(modified) = entry.metadata().await.and_then(|m| m.modified()) else {
            continue;
        };
        if modified < stray_cutoff && meta.upload(&name).await?.is_none() {
            let _ = tokio::fs::remove_file(entry.path()).await;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Staging files without a session row belong to single-request uploads in flight
/// (their file's mtime advances as bytes arrive) or to a crash. However small the
/// configured grace period, such a file is left alone until it has been idle this long.
const STRAY_STAGING_MIN_AGE: Duration = Duration::from_secs(3600);

/// One marking step: candidates are found by reading (`candidates`, no lock however
/// large the tables), then each is dropped or claimed by `act` in a short write
/// transaction that checks its condition again, `BATCH` at a time, until none is found.
/// Returns how many `act` dropped or claimed.
async fn mark<C, Found>(
    meta: &MetaStore,
    candidates: impl Fn() -> Found,
    act: impl for<'a> Fn(&'a mut WriteTx, &'a C) -> BoxFuture<'a, Result<bool, MetaError>>,
) -> Result<u64, GcError>
where
    Found: Future<Output = Result<Vec<C>, MetaError>>,
{
    let mut marked = 0;
    loop {
        let found = candidates().await?;
        if found.is_empty() {
            return Ok(marked);
        }
        for chunk in found.chunks(BATCH as usize) {
            let mut tx = meta.begin_write().await?;
            for c in chunk {
                marked += u64::from(act(&mut tx, c).await?);
            }
            tx.commit().await?;
        }
    }
}

pub async fn collect(reg: &Registry, grace: Duration) -> Result<GcReport, GcError> {
    let started = std::time::Instant::now();
    let cutoff_ms = now_ms() - grace.as_millis() as i64;
    let cutoff_time = SystemTime::now().checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH);
    let meta = reg.meta();
    let mut report = GcReport {
        uploads_removed: purge_uploads(reg, grace).await?,
        ..GcReport::default()
    };

    // Marking: candidates are found by reading, which takes no lock however large the
    // tables; each is dropped or claimed in a short write transaction that checks its
    // condition again, so pushes wait for one batch at most, never for a whole scan.
    // The steps keep their order (links, manifests, signatures, blobs), each finished
    // before the next looks.
    report.blob_links_dropped = mark(
        meta,
        || meta.unused_blob_links(cutoff_ms, CANDIDATES),
        |tx, (repository_id, digest)| Box::pin(tx.drop_blob_link_if_unused(*repository_id, digest, cutoff_ms)),
    )
    .await?;
    report.manifests_dropped = mark(
        meta,
        || meta.unlinked_manifests(cutoff_ms, CANDIDATES),
        |tx, digest| Box::pin(tx.drop_manifest_if_unlinked(digest, cutoff_ms)),
    )
    .await?;
    let mut tx = meta.begin_write().await?;
    super::signatures::drop_unreferenced(&mut tx, cutoff_ms).await?;
    tx.commit().await?;
    mark(
        meta,
        || meta.unreferenced_blobs(cutoff_ms, CANDIDATES),
        |tx, digest| Box::pin(tx.claim_blob_if_unreferenced(digest, cutoff_ms)),
    )
    .await?;

    loop {
        let batch = meta.deleting_blobs(BATCH).await?;
        if batch.is_empty() {
            break;
        }
        let mut tx = meta.begin_write().await?;
        for (d, size) in &batch {
            if tx.blob_is_deleting(d).await? {
                if let Ok(digest) = d.parse::<Digest>() {
                    reg.blob_store().delete(&digest).await?;
                }
                tx.delete_blob_row(d).await?;
                report.blobs_deleted += 1;
                report.bytes_freed += u64::try_from(*size).unwrap_or(0);
            }
        }
        tx.commit().await?;
    }

    let files = reg.blob_store().list().await?;
    for chunk in files.chunks(BATCH as usize) {
        let mut tx = meta.begin_write().await?;
        for (digest, modified) in chunk {
            if *modified < cutoff_time && !tx.blob_row_exists(&digest.to_string()).await? {
                reg.blob_store().delete(digest).await?;
                report.orphan_files_removed += 1;
            }
        }
        tx.commit().await?;
    }
    tracing::info!(?report, "garbage collection finished");
    if let Some(m) = reg.metrics() {
        m.gc_runs.inc();
        m.gc_seconds.set(started.elapsed().as_secs_f64());
        m.gc_freed_bytes.inc_by(report.bytes_freed);
    }
    Ok(report)
}

/// Discard idle uploads every `every` (`upload_purge_interval`), as Distribution does.
pub async fn purge_uploads_every(reg: Registry, every: Duration, grace: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match purge_uploads(&reg, grace).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "purged abandoned uploads"),
            Err(e) => tracing::warn!(error = %e, "purging abandoned uploads failed"),
        }
    }
}

/// Collect garbage every `every` (`gc_interval`), as `gatehouse gc` does; the first
/// run is one interval after the start.
pub async fn collect_every(reg: Registry, every: Duration, grace: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = collect(&reg, grace).await {
            tracing::warn!(error = %e, "scheduled garbage collection failed; the next one retries");
        }
    }
}
