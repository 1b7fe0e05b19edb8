//! Pulling content from other registries into normal repositories: the sync engine
//! (`engine`), its client for the remote side (`upstream`), remotes (`remotes`: what an
//! organisation mirrors, and how), smart proxies seen from the main server (`proxies`:
//! notifying edges after content changes) and from the edge (`edge`: mirroring the
//! main server and its authorization data), and the runner that executes all of it as
//! jobs from the outbox (`runner`). Secrets sent to other registries are sealed at rest
//! (`crate::secrets`).

pub mod edge;
pub mod engine;
pub mod proxies;
pub mod remotes;
mod runner;
pub mod upstream;

use crate::gateway::Gateway;
use crate::secrets::{SecretBox, SecretError};
use crate::store::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

/// What a syncer works with besides the store.
#[derive(Default)]
pub struct SyncerParts {
    /// The gateway of this process: identities, and the keys that sign notifications.
    pub gateway: Option<Gateway>,
    /// Extra CA certificates (PEM) trusted for outgoing TLS: edges, the main server.
    pub extra_ca: Option<Vec<u8>>,
    /// Set when this process is an edge.
    pub edge: Option<edge::EdgeLink>,
    /// Sync bytes, errors and job durations are counted here (none with metrics off).
    pub metrics: Option<crate::metrics::Metrics>,
}

/// The sync service. Cheap to clone.
#[derive(Clone)]
pub struct Syncer {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    secrets: Arc<SecretBox>,
    /// Wakes the runner when a job is queued.
    wake: tokio::sync::Notify,
    gateway: Option<Gateway>,
    /// For edges and the main server (remotes have their own, with their CA).
    http: reqwest::Client,
    /// Content events up to this id have been dispatched to edges.
    dispatched: AtomicI64,
    edge: Option<edge::EdgeLink>,
    metrics: Option<crate::metrics::Metrics>,
    /// The last authorization copy applied (edge), to skip identical ones.
    authz_digest: std::sync::Mutex<Option<String>>,
    /// The newest content event the main server had when it last answered (edge).
    upstream_event: AtomicI64,
    /// Clients of remotes by (remote id, its updated_at).
    upstreams: moka::sync::Cache<(i64, i64), Arc<upstream::Upstream>>,
}

impl Syncer {
    /// A syncer over `registry`, sealing secrets with `secrets`. Pulls of blobs an
    /// on_demand sync left at their remote are fetched through it.
    pub fn new(registry: Registry, secrets: Arc<SecretBox>, parts: SyncerParts) -> Result<Self, SecretError> {
        let http = upstream::http_client(parts.extra_ca.as_deref()).map_err(SecretError::Client)?;
        let this = Self {
            inner: Arc::new(Inner {
                registry,
                secrets,
                wake: tokio::sync::Notify::new(),
                gateway: parts.gateway,
                http,
                dispatched: AtomicI64::new(0),
                edge: parts.edge,
                metrics: parts.metrics,
                authz_digest: std::sync::Mutex::new(None),
                upstream_event: AtomicI64::new(0),
                upstreams: moka::sync::Cache::builder()
                    .max_capacity(1000)
                    .time_to_idle(std::time::Duration::from_secs(600))
                    .build(),
            }),
        };
        this.inner
            .registry
            .set_remote_blob_source(Arc::new(OnDemandSource(Arc::downgrade(&this.inner))));
        Ok(this)
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Wake the runner: a job was queued.
    fn wake(&self) {
        self.inner.wake.notify_one();
    }
}

/// The store's way to the remotes of on_demand syncs (weak: the store must not keep
/// the syncer alive).
struct OnDemandSource(std::sync::Weak<Inner>);

#[async_trait::async_trait]
impl crate::store::on_demand::RemoteBlobSource for OnDemandSource {
    async fn open(&self, digest: &crate::oci::Digest) -> crate::error::Result<Option<crate::store::blobs::ByteStream>> {
        let Some(inner) = self.0.upgrade() else {
            return Ok(None);
        };
        Syncer { inner }.open_remote_blob(digest).await
    }
}
