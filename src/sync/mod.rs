//! Pulling content from other registries into normal repositories: the sync engine
//! (`engine`), its client for the remote side (`upstream`), remotes (`remotes`: what an
//! organisation mirrors, and how), and the runner that executes syncs as jobs from the
//! outbox (`runner`). Secrets sent to other registries are sealed at rest (`secrets`).

pub mod engine;
pub mod remotes;
mod runner;
pub mod secrets;
pub mod upstream;

use crate::store::Registry;
use secrets::{SecretBox, SecretError};
use std::path::Path;
use std::sync::Arc;

/// The sync service. Cheap to clone.
#[derive(Clone)]
pub struct Syncer {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    secrets: SecretBox,
    /// Wakes the runner when a job is queued.
    wake: tokio::sync::Notify,
}

impl Syncer {
    /// A syncer over `registry`, sealing secrets with the key in `data_dir`. Pulls of
    /// blobs an on_demand sync left at their remote are fetched through it.
    pub fn new(registry: Registry, data_dir: &Path) -> Result<Self, SecretError> {
        let this = Self {
            inner: Arc::new(Inner {
                registry,
                secrets: SecretBox::open_or_create(&data_dir.join("secrets.key"))?,
                wake: tokio::sync::Notify::new(),
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
