//! Sigstore signatures stored as attachments, as cosign, podman and skopeo write them
//! (`use-sigstore-attachments`): an OCI image manifest tagged `sha256-<hex>.sig` in the
//! repository of the manifest it signs, each layer a signed payload
//! (`application/vnd.dev.cosign.simplesigning.v1+json`) whose annotation
//! `dev.cosignproject.cosign/signature` holds the base64 signature.
//!
//! Clients write attachments themselves with push rights, like any tag; gatehouse reads
//! them to enforce who signed, and writes them when an org's sigstore key signs.

use super::Registry;
use super::meta::WriteTx;
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Digest, Reference, RepoName};
use serde_json::{Value, json};
use sha2::Digest as _;

pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Payloads larger than this are not read (a signed claim is a few hundred bytes).
const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;
/// Layers of one attachment read when checking signatures.
const MAX_LAYERS: usize = 100;

/// One sigstore signature: the payload and its base64 signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigstoreSignature {
    pub payload: Vec<u8>,
    pub signature: String,
}

impl SigstoreSignature {
    /// An identity for caching what it verifies to.
    pub fn id(&self) -> String {
        let mut h = sha2::Sha256::new();
        h.update(&self.payload);
        h.update([0]);
        h.update(self.signature.as_bytes());
        format!("sigstore:{}", hex::encode(h.finalize()))
    }
}

/// The tag of the attachment signing `manifest_digest` (`sha256-<hex>.sig`).
pub fn attachment_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replacen(':', "-", 1))
}

/// The manifest digest an attachment tag signs, if `tag` is one.
pub fn signed_by_tag(tag: &str) -> Option<String> {
    let hex = tag.strip_prefix("sha256-")?.strip_suffix(".sig")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256:{hex}"))
}

/// The signature layers of an attachment manifest: (payload descriptor digest and size,
/// signature).
pub fn signature_layers(manifest: &[u8]) -> Vec<(String, u64, String)> {
    let Ok(v) = serde_json::from_slice::<Value>(manifest) else {
        return Vec::new();
    };
    v["layers"]
        .as_array()
        .map(|layers| {
            layers
                .iter()
                .take(MAX_LAYERS)
                .filter(|l| l["mediaType"] == PAYLOAD_MEDIA_TYPE)
                .filter_map(|l| {
                    Some((
                        l["digest"].as_str()?.to_owned(),
                        l["size"].as_u64()?,
                        l["annotations"][SIGNATURE_ANNOTATION].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a manifest is a signature artifact: a cosign attachment (every layer a signed
/// payload) or a sigstore bundle (cosign v3, a referrer).
pub fn is_signature_artifact(manifest: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(manifest) else {
        return false;
    };
    let bundle = |t: &Value| {
        t.as_str()
            .is_some_and(|t| t.starts_with("application/vnd.dev.sigstore.bundle"))
    };
    if bundle(&v["artifactType"]) || bundle(&v["config"]["mediaType"]) {
        return true;
    }
    v["layers"]
        .as_array()
        .is_some_and(|l| !l.is_empty() && l.iter().all(|l| l["mediaType"] == PAYLOAD_MEDIA_TYPE))
}

/// A new attachment: `existing`'s signatures plus `sig`. Returns (manifest, config,
/// payload), or `None` when `existing` already carries `sig`.
pub(crate) fn with_signature(existing: Option<&[u8]>, sig: &SigstoreSignature) -> Option<(Vec<u8>, Vec<u8>)> {
    let payload_digest = Digest::sha256_of(&sig.payload).to_string();
    let mut layers: Vec<Value> = existing
        .and_then(|m| serde_json::from_slice::<Value>(m).ok())
        .and_then(|v| v["layers"].as_array().cloned())
        .unwrap_or_default();
    let present = layers.iter().any(|l| {
        l["digest"] == payload_digest.as_str() && l["annotations"][SIGNATURE_ANNOTATION] == sig.signature.as_str()
    });
    if present {
        return None;
    }
    layers.push(json!({
        "mediaType": PAYLOAD_MEDIA_TYPE,
        "size": sig.payload.len(),
        "digest": payload_digest,
        "annotations": { SIGNATURE_ANNOTATION: sig.signature },
    }));
    // The config cosign writes: the layers as the root filesystem.
    let diff_ids: Vec<Value> = layers.iter().map(|l| l["digest"].clone()).collect();
    let config = json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    })
    .to_string()
    .into_bytes();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "size": config.len(),
            "digest": Digest::sha256_of(&config).to_string(),
        },
        "layers": layers,
    })
    .to_string()
    .into_bytes();
    Some((manifest, config))
}

impl Registry {
    /// The sigstore signatures attached to `manifest` in `repo` (none when there is no
    /// attachment, or it cannot be read).
    pub async fn sigstore_signatures(&self, repo: &RepoName, manifest: &Digest) -> Result<Vec<SigstoreSignature>> {
        let tag = attachment_tag(&manifest.to_string());
        let Ok(reference) = tag.parse::<Reference>() else {
            return Ok(Vec::new());
        };
        let stored = match self.get_manifest(repo, &reference).await {
            Ok(m) => m,
            Err(e) if matches!(e.code, ErrorCode::ManifestUnknown | ErrorCode::NameUnknown) => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for (digest, size, signature) in signature_layers(&stored.content) {
            if size > MAX_PAYLOAD_BYTES {
                continue;
            }
            let Ok(d) = digest.parse::<Digest>() else { continue };
            let Ok(payload) = self.read_small_blob(&d, size).await else {
                continue;
            };
            out.push(SigstoreSignature { payload, signature });
        }
        Ok(out)
    }

    async fn read_small_blob(&self, digest: &Digest, size: u64) -> Result<Vec<u8>> {
        use futures_util::TryStreamExt as _;
        let mut stream = self.read_blob(digest, size, None).await?;
        let mut out = Vec::with_capacity(size as usize);
        while let Some(chunk) = stream.try_next().await.map_err(Error::from)? {
            out.extend_from_slice(&chunk);
            if out.len() as u64 > size {
                break;
            }
        }
        if out.len() as u64 != size || Digest::sha256_of(&out) != *digest {
            return Err(Error::new(
                ErrorCode::BlobUnknown,
                format!("blob {digest} does not match its descriptor"),
            ));
        }
        Ok(out)
    }

    /// Make `bytes` a live blob inside the write transaction `tx` (small blobs only:
    /// the bytes are placed while the write lock is held).
    pub(crate) async fn place_bytes(&self, tx: &mut WriteTx, bytes: &[u8]) -> Result<String> {
        let digest = Digest::sha256_of(bytes);
        let d = digest.to_string();
        if !tx.blob_is_live(&d).await? {
            let path = self.staging().dir().join(format!("place-{}", uuid::Uuid::new_v4()));
            let written = async {
                let mut f = tokio::fs::File::create(&path).await?;
                tokio::io::AsyncWriteExt::write_all(&mut f, bytes).await?;
                f.sync_all().await
            }
            .await;
            let placed = match written {
                Ok(()) => self.blob_store().put_staged(&digest, &path).await.map_err(Error::from),
                Err(e) => Err(Error::from(e)),
            };
            let _ = tokio::fs::remove_file(&path).await;
            placed?;
            tx.upsert_live_blob(&d, bytes.len() as u64).await?;
        }
        Ok(d)
    }
}
