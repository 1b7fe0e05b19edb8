//! Syncing one remote repository into a local normal repository.
//!
//! List the remote's tags, keep those the filter selects, resolve each to a digest (a
//! HEAD), fetch only the manifests the store lacks (children of indexes and referrers
//! too), then the blobs it lacks, each verified against its digest and size, with a
//! bounded number of downloads at once. Everything fetched is committed to the store
//! unlinked, so an interrupted sync loses nothing it already fetched and a re-run
//! continues from there; the repository changes only in the last step, one
//! transaction that records a new version when anything differs.

use super::upstream::{FetchedManifest, Upstream, UpstreamError};
use crate::oci::Digest;
use crate::store::Registry;
use crate::store::signatures::Signature;
use crate::store::sigstore::{attachment_tag, signed_by_tag};
use crate::store::versions::SyncedContent;
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Manifests fetched at once.
const MANIFEST_CONCURRENCY: usize = 8;
/// Tags resolved (HEAD requests) at once: tiny requests, latency-bound.
const HEAD_CONCURRENCY: usize = 32;
/// A sync refuses a repository with more manifests than this (a hostile remote could
/// otherwise make it walk an endless graph).
const MAX_MANIFESTS: usize = 100_000;
/// Blobs downloaded at once.
const BLOB_CONCURRENCY: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("{0}")]
    Store(crate::error::Error),
    #[error("the tag filter (include {include:?}, exclude {exclude:?}) matches none of the remote's {count} tags")]
    FilterMatchesNothing {
        include: Vec<String>,
        exclude: Vec<String>,
        count: usize,
    },
    #[error("blob {digest} is {actual} bytes, but the manifest says {expected}")]
    BlobSize { digest: String, expected: u64, actual: u64 },
    #[error("{0}")]
    Invalid(String),
}

impl From<crate::store::meta::MetaError> for SyncError {
    fn from(e: crate::store::meta::MetaError) -> Self {
        Self::Store(e.into())
    }
}

/// Which tags a sync takes: any `include` pattern (all when empty) and no `exclude`
/// pattern; `*` matches any run of characters, `?` one character.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl TagFilter {
    pub fn matches(&self, tag: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| wildcard(p, tag)))
            && !self.exclude.iter().any(|p| wildcard(p, tag))
    }
}

fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Greedy match with backtracking to the last `*`: linear in practice.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// What to sync, from where, into which repository.
pub struct SyncRequest<'a> {
    pub upstream: &'a Upstream,
    pub upstream_repo: &'a str,
    pub normal: &'a str,
    pub filter: &'a TagFilter,
    pub mirror: bool,
    /// `Some(remote id)`: record the blobs as served by that remote instead of
    /// fetching them (the `on_demand` policy).
    pub on_demand: Option<i64>,
    /// Only tags whose manifest the upstream has signatures of.
    pub signed_only: bool,
    /// The upstream's signature lookaside URL, read instead of the extension API.
    pub lookaside: Option<&'a str>,
    pub reason: String,
}

/// Counters a running sync updates and its job reports.
#[derive(Default)]
pub struct Progress {
    phase: Mutex<&'static str>,
    tags: AtomicU64,
    manifests_done: AtomicU64,
    manifests_total: AtomicU64,
    blobs_done: AtomicU64,
    blobs_total: AtomicU64,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
}

impl Progress {
    /// Blob bytes fetched so far.
    pub fn bytes_done(&self) -> u64 {
        self.bytes_done.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn phase(&self, p: &'static str) {
        if let Ok(mut g) = self.phase.lock() {
            *g = p;
        }
    }

    pub fn snapshot(&self) -> Value {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "phase": self.phase.lock().map(|p| *p).unwrap_or("running"),
            "tags": n(&self.tags),
            "manifests": { "done": n(&self.manifests_done), "total": n(&self.manifests_total) },
            "blobs": { "done": n(&self.blobs_done), "total": n(&self.blobs_total) },
            "bytes": { "done": n(&self.bytes_done), "total": n(&self.bytes_total) },
        })
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncOutcome {
    /// The version it made; `None` when the repository already had it all.
    pub version: Option<i64>,
    pub tags: usize,
    pub manifests_fetched: usize,
    pub blobs_fetched: usize,
    pub bytes_fetched: u64,
}

pub async fn sync_repository(
    registry: &Registry,
    req: &SyncRequest<'_>,
    progress: &Arc<Progress>,
) -> Result<SyncOutcome, SyncError> {
    let up = req.upstream;
    let repo = req.upstream_repo;
    progress.phase("listing tags");
    let started = std::time::Instant::now();
    let all = up.tags(repo).await?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        tags = all.len(),
        "sync: tags listed"
    );
    let mut selected: Vec<String> = all.iter().filter(|t| req.filter.matches(t)).cloned().collect();
    selected.sort();
    if selected.is_empty() && !all.is_empty() {
        return Err(SyncError::FilterMatchesNothing {
            include: req.filter.include.clone(),
            exclude: req.filter.exclude.clone(),
            count: all.len(),
        });
    }
    progress.tags.store(selected.len() as u64, Ordering::Relaxed);

    progress.phase("resolving tags");
    // A tag deleted between the listing and its HEAD is simply gone.
    let heads: Vec<(String, Option<Option<String>>)> = stream::iter(selected)
        .map(|tag| async move {
            match up.head_manifest(repo, &tag).await {
                Ok(d) => Ok((tag, Some(d))),
                Err(UpstreamError::NotFound { .. }) => Ok((tag, None)),
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(HEAD_CONCURRENCY)
        .try_collect()
        .await?;
    let mut tags: BTreeMap<String, String> = BTreeMap::new();
    let mut fetched: Vec<FetchedManifest> = Vec::new();
    let mut round: Vec<String> = Vec::new();
    for (tag, head) in heads {
        match head {
            Some(Some(digest)) => {
                round.push(digest.clone());
                tags.insert(tag, digest);
            }
            // No digest header: the manifest itself says.
            Some(None) => {
                let m = up.manifest(repo, &tag).await?;
                tags.insert(tag, m.digest.clone());
                round.push(m.digest.clone());
            }
            None => {}
        }
    }

    tracing::debug!(ms = started.elapsed().as_millis() as u64, "sync: tags resolved");
    progress.phase("fetching signatures");
    let signatures = match req.lookaside {
        Some(base) => Some(fetch_lookaside(up, base, repo, &tags).await?),
        None => fetch_signatures(up, repo, &tags).await?,
    };
    // Sigstore attachments of the selected manifests come along whatever the filter.
    let upstream_tags: HashSet<&str> = all.iter().map(String::as_str).collect();
    let attached: HashSet<String> = tags
        .values()
        .filter(|d| upstream_tags.contains(attachment_tag(d).as_str()))
        .cloned()
        .collect();
    if req.signed_only {
        if signatures.is_none() && attached.is_empty() {
            return Err(SyncError::Invalid(
                "signed_only: the remote offers no signatures (no signature extension, lookaside or sigstore \
                 attachment), so nothing would be kept"
                    .into(),
            ));
        }
        let mut signed: HashSet<&str> = attached.iter().map(String::as_str).collect();
        signed.extend(signatures.iter().flatten().map(|s| s.manifest_digest.as_str()));
        // An attachment the filter chose is kept only with what it signs.
        let keep: HashSet<String> = tags
            .iter()
            .filter(|(t, d)| match signed_by_tag(t) {
                Some(target) => signed.contains(target.as_str()) && tags.values().any(|v| *v == target),
                None => signed.contains(d.as_str()),
            })
            .map(|(t, _)| t.clone())
            .collect();
        tags.retain(|t, _| keep.contains(t));
        let kept: HashSet<&String> = tags.values().collect();
        round.retain(|d| kept.contains(d));
    }
    let wanted: Vec<String> = tags
        .values()
        .filter(|d| attached.contains(*d))
        .map(|d| attachment_tag(d))
        .filter(|t| !tags.contains_key(t))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let attachments: Vec<(String, Option<String>)> = stream::iter(wanted)
        .map(|tag| async move {
            match up.head_manifest(repo, &tag).await {
                Ok(Some(d)) => Ok((tag, Some(d))),
                Ok(None) => up.manifest(repo, &tag).await.map(|m| (tag, Some(m.digest))),
                Err(UpstreamError::NotFound { .. }) => Ok((tag, None)),
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(HEAD_CONCURRENCY)
        .try_collect()
        .await?;
    for (tag, digest) in attachments {
        if let Some(d) = digest {
            round.push(d.clone());
            tags.insert(tag, d);
        }
    }
    progress.phase("fetching manifests");
    let mut seen: HashSet<String> = HashSet::new();
    let mut untagged: Vec<String> = Vec::new();
    let mut blobs: BTreeMap<String, u64> = BTreeMap::new();
    let mut referrers_api = true;
    while !round.is_empty() {
        if seen.len() > MAX_MANIFESTS {
            return Err(SyncError::Invalid(format!(
                "the remote repository has more than {MAX_MANIFESTS} manifests in reach of the selected tags"
            )));
        }
        let mut need = Vec::new();
        for d in round.drain(..) {
            if seen.insert(d.clone()) && !registry.manifest_known(&d).await? {
                need.push(d);
            }
        }
        progress.manifests_total.fetch_add(need.len() as u64, Ordering::Relaxed);
        let got: Vec<FetchedManifest> = stream::iter(need)
            .map(|d| async move {
                let m = up.manifest(repo, &d).await;
                progress.manifests_done.fetch_add(1, Ordering::Relaxed);
                m
            })
            .buffer_unordered(MANIFEST_CONCURRENCY)
            .try_collect()
            .await?;
        let mut next = Vec::new();
        for m in &got {
            let parsed = crate::store::manifests::parse(Some(&m.media_type), &m.content)
                .map_err(|e| SyncError::Invalid(format!("manifest {} from the remote: {}", m.digest, e.message)))?;
            next.extend(parsed.children.iter().map(ToString::to_string));
            let sizes = descriptor_sizes(&m.content);
            for b in &parsed.required_blobs {
                let b = b.to_string();
                let size = sizes.get(&b).copied().unwrap_or(0);
                blobs.insert(b, size);
            }
        }
        if referrers_api {
            let digests: Vec<String> = got.iter().map(|m| m.digest.clone()).collect();
            let lists: Vec<Option<Value>> = stream::iter(digests)
                .map(|d| async move { up.referrers(repo, &d).await })
                .buffer_unordered(MANIFEST_CONCURRENCY)
                .try_collect()
                .await?;
            if lists.iter().any(Option::is_none) {
                referrers_api = false;
            }
            for list in lists.into_iter().flatten() {
                for r in list["manifests"].as_array().into_iter().flatten() {
                    if let Some(d) = r["digest"].as_str() {
                        untagged.push(d.to_owned());
                        next.push(d.to_owned());
                    }
                }
            }
        }
        fetched.extend(got);
        round = next;
    }

    tracing::debug!(ms = started.elapsed().as_millis() as u64, "sync: manifests fetched");
    let mut missing = Vec::new();
    for (digest, size) in &blobs {
        if !registry.meta().blob_is_live(digest).await? {
            missing.push((digest.clone(), *size));
        }
    }
    let mut outcome = SyncOutcome {
        tags: tags.len(),
        manifests_fetched: fetched.len(),
        ..SyncOutcome::default()
    };
    match req.on_demand {
        Some(remote) => registry.remember_remote_blobs(remote, &missing).await?,
        None => {
            progress.phase("fetching blobs");
            progress.blobs_total.store(missing.len() as u64, Ordering::Relaxed);
            progress
                .bytes_total
                .store(missing.iter().map(|m| m.1).sum(), Ordering::Relaxed);
            stream::iter(missing.clone())
                .map(|(digest, size)| async move { fetch_blob(registry, up, repo, &digest, size, progress).await })
                .buffer_unordered(BLOB_CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await?;
            outcome.blobs_fetched = missing.len();
            outcome.bytes_fetched = progress.bytes_done.load(Ordering::Relaxed);
        }
    }

    tracing::debug!(ms = started.elapsed().as_millis() as u64, "sync: blobs fetched");
    crate::fault::point("sync_before_version");
    progress.phase("recording version");
    // Nothing new and every tag where it was: no transaction at all.
    let signatures_known = match &signatures {
        Some(sigs) => registry.signatures_present(req.normal, sigs).await?,
        None => true,
    };
    if fetched.is_empty() && untagged.is_empty() && signatures_known {
        let current = registry.tag_map(req.normal).await?;
        let unchanged = if req.mirror {
            current == tags
        } else {
            tags.iter().all(|(t, d)| current.get(t) == Some(d))
        };
        if unchanged {
            return Ok(outcome);
        }
    }
    // Parents were found before their children: record children first.
    let content = SyncedContent {
        manifests: fetched.into_iter().rev().map(|m| (m.content, m.media_type)).collect(),
        tags: tags.into_iter().collect(),
        untagged,
        mirror: req.mirror,
        on_demand: req.on_demand.is_some(),
        signatures,
    };
    outcome.version = registry.apply_sync(req.normal, &content, &req.reason).await?;
    Ok(outcome)
}

/// The simple-signing signatures of the tagged manifests, through the remote's
/// signature extension; `None` when it has none (one request tells).
async fn fetch_signatures(
    up: &Upstream,
    repo: &str,
    tags: &BTreeMap<String, String>,
) -> Result<Option<Vec<Signature>>, SyncError> {
    let digests: BTreeSet<String> = tags.values().cloned().collect();
    let mut digests = digests.into_iter();
    let Some(first) = digests.next() else {
        return Ok(None);
    };
    let Some(mut all) = up.signatures(repo, &first).await? else {
        return Ok(None);
    };
    let rest: Vec<Option<Vec<Signature>>> = stream::iter(digests)
        .map(|d| async move { up.signatures(repo, &d).await })
        .buffer_unordered(HEAD_CONCURRENCY)
        .try_collect()
        .await?;
    all.extend(rest.into_iter().flatten().flatten());
    Ok(Some(all))
}

/// The signatures of the tagged manifests at the remote's lookaside.
async fn fetch_lookaside(
    up: &Upstream,
    base: &str,
    repo: &str,
    tags: &BTreeMap<String, String>,
) -> Result<Vec<Signature>, SyncError> {
    let digests: BTreeSet<String> = tags.values().cloned().collect();
    let lists: Vec<Vec<Signature>> = stream::iter(digests)
        .map(|d| async move { up.lookaside_signatures(base, repo, &d).await })
        .buffer_unordered(HEAD_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(lists.into_iter().flatten().collect())
}

/// Download one blob into the store: staged while hashed, verified, committed unlinked
/// (a manifest links it when the version is recorded).
async fn fetch_blob(
    registry: &Registry,
    up: &Upstream,
    repo: &str,
    digest: &str,
    expected_size: u64,
    progress: &Arc<Progress>,
) -> Result<(), SyncError> {
    let parsed: Digest = digest
        .parse()
        .map_err(|e| SyncError::Invalid(format!("blob digest {digest}: {e}")))?;
    let (_, body) = up.blob(repo, digest).await?;
    let progress_ = progress.clone();
    let counted = crate::store::blobs::capped(body, expected_size)
        .inspect_ok(move |chunk| {
            progress_.bytes_done.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        })
        .boxed();
    let staging_id = format!("sync-{}", uuid::Uuid::new_v4());
    let staging = registry.staging();
    // When another download fails, this one is dropped mid-way: its file goes too.
    let _cleanup = crate::store::uploads::RemoveOnDrop(staging.path(&staging_id));
    let staged = staging
        .stage_whole(&staging_id, &parsed, counted)
        .await
        .map_err(|e| SyncError::Invalid(format!("blob {digest}: {e}")))?;
    let Some((path, size)) = staged else {
        return Err(UpstreamError::DigestMismatch {
            what: format!("blob {digest}"),
            expected: digest.to_owned(),
            actual: "different bytes".into(),
        }
        .into());
    };
    let result = if size != expected_size {
        Err(SyncError::BlobSize {
            digest: digest.to_owned(),
            expected: expected_size,
            actual: size,
        })
    } else {
        registry
            .commit_blob_to(None, &parsed, size, &path, None)
            .await
            .map_err(SyncError::from)
    };
    staging.remove(&staging_id).await;
    progress.blobs_done.fetch_add(1, Ordering::Relaxed);
    result
}

/// digest -> size of every descriptor in a manifest document (config, layers).
fn descriptor_sizes(content: &[u8]) -> BTreeMap<String, u64> {
    let doc: Value = serde_json::from_slice(content).unwrap_or_default();
    let mut out = BTreeMap::new();
    let descriptors = doc["config"]
        .as_object()
        .map(|_| &doc["config"])
        .into_iter()
        .chain(doc["layers"].as_array().into_iter().flatten())
        .chain(doc["blobs"].as_array().into_iter().flatten());
    for d in descriptors {
        if let (Some(digest), Some(size)) = (d["digest"].as_str(), d["size"].as_u64()) {
            out.insert(digest.to_owned(), size);
        }
    }
    out
}

impl From<crate::error::Error> for SyncError {
    fn from(e: crate::error::Error) -> Self {
        Self::Store(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_shell_globs() {
        assert!(wildcard("3.*", "3.19"));
        assert!(wildcard("*-rc*", "3.20-rc1"));
        assert!(!wildcard("3.*", "latest"));
        assert!(wildcard("v?", "v1"));
        assert!(!wildcard("v?", "v10"));
        assert!(wildcard("*", ""));
        assert!(wildcard("a*b*c", "axxbyyc"));
        assert!(!wildcard("a*b*c", "axxbyy"));
    }

    #[test]
    fn filters_include_then_exclude() {
        let f = TagFilter {
            include: vec!["3.*".into()],
            exclude: vec!["*-rc*".into()],
        };
        assert!(f.matches("3.19"));
        assert!(!f.matches("3.20-rc1"));
        assert!(!f.matches("edge"));
        assert!(TagFilter::default().matches("anything"));
    }
}
