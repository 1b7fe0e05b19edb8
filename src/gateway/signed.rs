//! Products' signing requirements on the pull path. When a product requires signatures
//! (`require_signed_by`), a manifest pull asks which of the required keys signed the
//! manifest, or an index in the repository that lists it (clients sign what they push,
//! an index; its platforms are pulled by digest), and the policies decide with those
//! signers in context.
//!
//! Signature artifacts themselves (cosign attachments, sigstore bundles) are not held
//! to the requirement: clients fetch them to verify, and nobody signs a signature.
//!
//! Verification is cached: a signature and a key never change, so whether one verifies
//! with the other, and which manifest it then names, is kept by their digests. The
//! signers of a manifest are kept a few seconds when there are some, so a signature
//! removed stops counting within that time; a refusal is always recomputed, so a
//! signature just added counts at once.

use super::Gateway;
use crate::error::{Error, ErrorCode};
use crate::oci::{Digest, RepoName};
use crate::policy::{Principal, Resource};
use crate::signing::{SigningKey, StoredSignature};
use moka::sync::Cache;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How long a non-empty signer set is trusted without looking again.
const SIGNERS_TTL: Duration = Duration::from_secs(5);

pub(super) struct Caches {
    /// (signature identity, key fingerprint) → the manifest it validly names, or `None`
    /// when it does not verify with that key.
    verified: Cache<(String, String), Option<String>>,
    /// hash of (backend repository, manifest digest, required keys) → those and the
    /// keys that signed it (compared in full on a hit: no allocation to look up).
    signers: Cache<u64, Arc<Signers>>,
    hasher: std::collections::hash_map::RandomState,
    /// manifest digest → whether it is a signature artifact (content never changes).
    artifacts: Cache<String, bool>,
}

pub(super) struct Signers {
    repo: String,
    digest: String,
    required: Vec<String>,
    signers: Arc<Vec<String>>,
}

impl Default for Caches {
    fn default() -> Self {
        Self {
            verified: Cache::builder().max_capacity(100_000).build(),
            signers: Cache::builder().max_capacity(100_000).time_to_live(SIGNERS_TTL).build(),
            hasher: Default::default(),
            artifacts: Cache::builder().max_capacity(100_000).build(),
        }
    }
}

impl Gateway {
    /// Whether manifest `digest` in backend repository `repo` is a signature artifact
    /// (a cosign attachment, a sigstore bundle): what clients fetch to verify, which
    /// nobody signs in turn.
    async fn is_signature_artifact(&self, repo: &str, digest: &str) -> Result<bool, Error> {
        if let Some(hit) = self.inner.signed.artifacts.get(digest) {
            return Ok(hit);
        }
        let Some(reg) = self.versioned() else {
            return Ok(false);
        };
        let name: RepoName = repo.parse()?;
        let reference: crate::oci::Reference = digest.parse()?;
        let is = match reg.get_manifest(&name, &reference).await {
            Ok(m) => crate::store::sigstore::is_signature_artifact(&m.content),
            Err(_) => false,
        };
        self.inner.signed.artifacts.insert(digest.to_owned(), is);
        Ok(is)
    }

    /// Which of `required` (signing keys of `org`) signed manifest `digest` in backend
    /// repository `repo`, directly or through an index there that lists it.
    async fn signers(
        &self,
        org: &str,
        repo: &str,
        digest: &str,
        required: &[String],
    ) -> Result<Arc<Vec<String>>, Error> {
        let key = std::hash::BuildHasher::hash_one(&self.inner.signed.hasher, (repo, digest, required));
        if let Some(hit) = self.inner.signed.signers.get(&key)
            && hit.repo == repo
            && hit.digest == digest
            && hit.required == required
        {
            return Ok(hit.signers.clone());
        }
        let (Some(keys), Some(reg)) = (self.signing_keys(), self.versioned()) else {
            return Ok(Arc::new(Vec::new()));
        };
        let mut accepted = Vec::new();
        for name in required {
            match keys.get(org, name).await {
                Ok(k) => accepted.push(k),
                Err(crate::signing::SigningError::NotFound(_)) => {}
                Err(e) => return Err(Error::new(ErrorCode::Unavailable, format!("signing keys: {e}"))),
            }
        }
        let name: RepoName = repo.parse()?;
        let mut candidates = vec![digest.to_owned()];
        candidates.extend(reg.indexes_listing(repo, digest).await?);
        let mut found = BTreeSet::new();
        for manifest in &candidates {
            let d: Digest = manifest.parse()?;
            let simple = reg.signatures(&name, &d).await?;
            let sigstore = if accepted.iter().any(|k| k.kind == crate::signing::KIND_SIGSTORE) {
                reg.sigstore_signatures(&name, &d).await?
            } else {
                Vec::new()
            };
            let sigs = simple
                .iter()
                .map(|s| (s.digest.clone(), StoredSignature::Simple(s)))
                .chain(sigstore.iter().map(|s| (s.id(), StoredSignature::Sigstore(s))));
            for (id, sig) in sigs {
                for k in &accepted {
                    if found.contains(&k.name) {
                        continue;
                    }
                    let cache_key = (id.clone(), k.fingerprint.clone());
                    let names = match self.inner.signed.verified.get(&cache_key) {
                        Some(names) => names,
                        None => {
                            let names = verify_off_workers(k, sig).await;
                            self.inner.signed.verified.insert(cache_key, names.clone());
                            names
                        }
                    };
                    if names.as_deref() == Some(manifest.as_str()) {
                        found.insert(k.name.clone());
                    }
                }
            }
        }
        let signers = Arc::new(found.into_iter().collect::<Vec<_>>());
        if !signers.is_empty() {
            let entry = Signers {
                repo: repo.to_owned(),
                digest: digest.to_owned(),
                required: required.to_vec(),
                signers: signers.clone(),
            };
            self.inner.signed.signers.insert(key, Arc::new(entry));
        }
        Ok(signers)
    }
}

/// The manifest `sig` validly names when `key` made it (verification is CPU work: off
/// the async workers).
async fn verify_off_workers(key: &SigningKey, sig: StoredSignature<'_>) -> Option<String> {
    let key = key.clone();
    let owned = match sig {
        StoredSignature::Simple(s) => Owned::Simple(s.clone()),
        StoredSignature::Sigstore(s) => Owned::Sigstore(s.clone()),
    };
    tokio::task::spawn_blocking(move || {
        let sig = match &owned {
            Owned::Simple(s) => StoredSignature::Simple(s),
            Owned::Sigstore(s) => StoredSignature::Sigstore(s),
        };
        crate::signing::claim_of(&key, sig).map(|c| c.manifest_digest)
    })
    .await
    .ok()
    .flatten()
}

enum Owned {
    Simple(crate::store::signatures::Signature),
    Sigstore(crate::store::signatures::SigstoreSignature),
}

/// Refuse a manifest (`digest`, found in backend repository `repo` when `found`) that
/// none of the keys its product requires signed, unless the policies allow it anyway.
pub(super) async fn check_manifest(
    gw: &Gateway,
    principal: &Principal,
    resource: &Resource,
    repo: &str,
    found: bool,
    digest: Option<String>,
) -> Result<(), Error> {
    let Resource::Repository {
        org, require_signed_by, ..
    } = resource
    else {
        return Ok(());
    };
    if require_signed_by.is_empty() || !found {
        return Ok(());
    }
    let accepted = require_signed_by.join(", ");
    let Some(digest) = digest else {
        return Err(Error::new(
            ErrorCode::Denied,
            format!("cannot tell which manifest this is, so not whether an accepted key ({accepted}) signed it"),
        ));
    };
    if gw.is_signature_artifact(repo, &digest).await? {
        return Ok(());
    }
    let signers = gw.signers(org, repo, &digest, require_signed_by).await?;
    if gw.allowed_to_pull_signed(principal, resource, &signers) {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::Denied,
        format!("manifest {digest} is not signed by an accepted key ({accepted})"),
    )
    .with_detail(json!({ "digest": digest, "require_signed_by": require_signed_by })))
}
