//! Importing an image archive into a normal repository as one new version: a `docker
//! save` / `podman save` tarball (docker-archive) or an OCI archive (`skopeo copy …
//! oci-archive:`).
//!
//! The archive streams through: each blob is staged to disk while its SHA-256 is
//! computed, fsynced and committed as an unlinked blob (invisible, and collected after
//! the grace period if nothing ever references it); only the small JSON documents are
//! held in memory. Once the whole archive has been read and checked (OCI blobs against
//! their names, docker layers against the config's `diff_ids`), the manifests and the
//! tags are recorded in one transaction, as one version. A truncated or inconsistent
//! archive is refused with nothing visible.

use super::Registry;
use super::blobs::ByteStream;
use super::versions::ContentOp;
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Digest, Tag};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};

/// JSON documents (index, manifests, configs) are held in memory up to this size each…
const MAX_DOCUMENT: u64 = 4 * 1024 * 1024;
/// …and this much in all.
const MAX_DOCUMENTS_TOTAL: usize = 64 * 1024 * 1024;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::ManifestInvalid, msg)
}

/// What the archive held, as read.
#[derive(Default)]
struct Contents {
    /// Small files (JSON documents) by path.
    documents: HashMap<String, Vec<u8>>,
    /// Every other file, stored as a blob: path -> (digest, size).
    blobs: HashMap<String, (String, u64)>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub version: Option<i64>,
    #[schema(value_type = String)]
    pub format: &'static str,
    pub tags: Vec<String>,
    pub manifests: usize,
    pub blobs: usize,
}

impl Registry {
    /// Import an archive into the normal repository `normal`. `default_tag` names images
    /// the archive leaves unnamed.
    pub async fn import_archive(
        &self,
        normal: &str,
        body: ByteStream,
        default_tag: Option<Tag>,
    ) -> Result<ImportReport> {
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(body));
        let this = self.clone();
        let handle = tokio::runtime::Handle::current();
        let contents = tokio::task::spawn_blocking(move || this.read_archive(reader, &handle))
            .await
            .map_err(|e| Error::internal(&e))??;
        let is_oci = contents.documents.contains_key("index.json") && contents.documents.contains_key("oci-layout");
        let (format, manifests, adds) = if is_oci {
            let (m, a) = self.plan_oci(&contents, default_tag.as_ref()).await?;
            ("oci-archive", m, a)
        } else if contents.documents.contains_key("manifest.json") {
            let (m, a) = self.plan_docker(&contents, default_tag.as_ref()).await?;
            ("docker-archive", m, a)
        } else {
            return Err(bad(
                "not an image archive: neither an OCI layout (oci-layout, index.json) nor a docker-archive (manifest.json)",
            ));
        };
        let tags: Vec<String> = adds
            .iter()
            .flat_map(|op| match op {
                ContentOp::Add { tags, .. } => tags.clone(),
                _ => Vec::new(),
            })
            .collect();
        let version = self
            .modify_with_manifests(normal, &manifests, &adds, &format!("import {format}"))
            .await?;
        Ok(ImportReport {
            version,
            format,
            tags,
            manifests: manifests.len(),
            blobs: contents.blobs.len(),
        })
    }

    /// Read every entry (on a blocking thread): documents into memory, the rest into
    /// committed, unlinked blobs.
    fn read_archive(&self, reader: impl Read, handle: &tokio::runtime::Handle) -> Result<Contents> {
        let mut archive = tar::Archive::new(reader);
        let mut contents = Contents::default();
        let mut kept = 0usize;
        let truncated = |e: std::io::Error| bad(format!("the archive is truncated or malformed: {e}"));
        for entry in archive.entries().map_err(truncated)? {
            let mut entry = entry.map_err(truncated)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry
                .path()
                .map_err(truncated)?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            let size = entry.header().size().map_err(truncated)?;
            // Small files may be documents: JSON by name, or (OCI blobs are named by
            // digest only) by content. They are read whole, stored, and JSON is kept.
            let named_document = path.ends_with(".json") || path == "oci-layout" || path == "repositories";
            if (named_document || path.starts_with("blobs/")) && size <= MAX_DOCUMENT {
                let mut buf = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut buf).map_err(truncated)?;
                if buf.len() as u64 != size {
                    return Err(truncated(std::io::ErrorKind::UnexpectedEof.into()));
                }
                let layout_file = matches!(
                    path.as_str(),
                    "manifest.json" | "index.json" | "oci-layout" | "repositories"
                );
                if !layout_file {
                    let digest = self.store_bytes(&buf, handle)?;
                    check_name(&path, &digest)?;
                    contents.blobs.insert(path.clone(), (digest, size));
                }
                if named_document || buf.first() == Some(&b'{') {
                    kept += buf.len();
                    if kept > MAX_DOCUMENTS_TOTAL {
                        return Err(bad("the archive holds too many JSON documents"));
                    }
                    contents.documents.insert(path, buf);
                }
                continue;
            }
            let (digest, written) = self.store_entry(&mut entry, handle).map_err(|e| match e {
                StoreError::Io(io) => truncated(io),
                StoreError::Commit(e) => e,
            })?;
            if written != size {
                return Err(truncated(std::io::ErrorKind::UnexpectedEof.into()));
            }
            check_name(&path, &digest)?;
            contents.blobs.insert(path, (digest, written));
        }
        Ok(contents)
    }

    fn store_bytes(&self, data: &[u8], handle: &tokio::runtime::Handle) -> Result<String> {
        let mut cursor = std::io::Cursor::new(data);
        self.store_entry(&mut cursor, handle)
            .map(|(d, _)| d)
            .map_err(|e| match e {
                StoreError::Io(io) => Error::internal(&io),
                StoreError::Commit(e) => e,
            })
    }

    /// Stage one entry to disk while hashing it, then commit it as an unlinked blob.
    fn store_entry(&self, entry: &mut impl Read, handle: &tokio::runtime::Handle) -> Result<(String, u64), StoreError> {
        let id = format!("import-{}", uuid::Uuid::new_v4());
        let path = self.staging().path(&id);
        let result = (|| {
            let mut file = std::fs::File::create(&path)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut size = 0u64;
            loop {
                let n = entry.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])?;
                size += n as u64;
            }
            file.sync_all()?;
            Ok::<_, std::io::Error>((format!("sha256:{}", hex::encode(hasher.finalize())), size))
        })();
        let outcome = match result {
            Ok((digest, size)) => {
                let parsed: Digest = match digest.parse() {
                    Ok(d) => d,
                    Err(_) => return Err(StoreError::Commit(bad("bad digest"))),
                };
                handle
                    .block_on(self.commit_blob_to(None, &parsed, size, &path, None))
                    .map(|()| (digest, size))
                    .map_err(StoreError::Commit)
            }
            Err(e) => Err(StoreError::Io(e)),
        };
        let _ = std::fs::remove_file(&path);
        outcome
    }

    /// An OCI archive: the index's manifests (children first), tagged by their
    /// `org.opencontainers.image.ref.name` annotation or `default_tag`.
    async fn plan_oci(
        &self,
        c: &Contents,
        default_tag: Option<&Tag>,
    ) -> Result<(Vec<(Vec<u8>, String)>, Vec<ContentOp>)> {
        let index: Value = serde_json::from_slice(&c.documents["index.json"])
            .map_err(|e| bad(format!("index.json is not valid JSON: {e}")))?;
        let entries = index["manifests"]
            .as_array()
            .ok_or_else(|| bad("index.json lists no manifests"))?;
        let mut manifests = Vec::new();
        let mut adds = Vec::new();
        for d in entries {
            let digest = d["digest"]
                .as_str()
                .ok_or_else(|| bad("index.json: a manifest without a digest"))?;
            let media_type = d["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
            self.collect_oci(c, digest, media_type, &mut manifests, 0)?;
            let name = d["annotations"]["org.opencontainers.image.ref.name"].as_str();
            // A ref name may be a full reference (`host/repo:tag`); keep its tag.
            let tag = name
                .map(|n| n.rsplit_once(':').map_or(n, |(_, t)| t))
                .filter(|t| t.parse::<Tag>().is_ok())
                .map(str::to_owned)
                .or_else(|| default_tag.map(|t| t.as_str().to_owned()));
            adds.push(ContentOp::Add {
                digest: digest.to_owned(),
                tags: tag.into_iter().collect(),
            });
        }
        Ok((manifests, adds))
    }

    fn collect_oci(
        &self,
        c: &Contents,
        digest: &str,
        media_type: &str,
        out: &mut Vec<(Vec<u8>, String)>,
        depth: usize,
    ) -> Result<()> {
        if depth > 8 {
            return Err(bad("indexes nested too deeply"));
        }
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| bad(format!("{digest}: only sha256 archives are supported")))?;
        let content = c
            .documents
            .get(&format!("blobs/sha256/{hex}"))
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::ManifestBlobUnknown,
                    format!("manifest {digest} is missing from the archive"),
                )
            })?;
        let doc: Value = serde_json::from_slice(&content).map_err(|e| bad(format!("manifest {digest}: {e}")))?;
        if let Some(children) = doc["manifests"].as_array() {
            for child in children {
                let cd = child["digest"]
                    .as_str()
                    .ok_or_else(|| bad("an index entry without a digest"))?;
                let mt = child["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
                self.collect_oci(c, cd, mt, out, depth + 1)?;
            }
        }
        let media_type = doc["mediaType"].as_str().unwrap_or(media_type).to_owned();
        out.push((content, media_type));
        Ok(())
    }

    /// A docker-archive: per image, an OCI manifest built from its config and layers
    /// (uncompressed tar layers, checked against the config's `diff_ids`), tagged by its
    /// `RepoTags` or `default_tag`.
    async fn plan_docker(
        &self,
        c: &Contents,
        default_tag: Option<&Tag>,
    ) -> Result<(Vec<(Vec<u8>, String)>, Vec<ContentOp>)> {
        let list: Value = serde_json::from_slice(&c.documents["manifest.json"])
            .map_err(|e| bad(format!("manifest.json is not valid JSON: {e}")))?;
        let images = list.as_array().ok_or_else(|| bad("manifest.json is not a list"))?;
        let mut manifests = Vec::new();
        let mut adds = Vec::new();
        for image in images {
            let config_path = image["Config"]
                .as_str()
                .ok_or_else(|| bad("manifest.json: an image without Config"))?;
            let config = c
                .documents
                .get(config_path)
                .ok_or_else(|| bad(format!("the archive has no {config_path}")))?;
            let config_digest = match c.blobs.get(config_path) {
                Some((d, _)) => d.clone(),
                None => self.store_config(config).await?,
            };
            let config_doc: Value =
                serde_json::from_slice(config).map_err(|e| bad(format!("{config_path} is not valid JSON: {e}")))?;
            let diff_ids: Vec<&str> = config_doc["rootfs"]["diff_ids"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut layers = Vec::new();
            for (i, l) in image["Layers"].as_array().into_iter().flatten().enumerate() {
                let path = l
                    .as_str()
                    .ok_or_else(|| bad("manifest.json: a layer that is not a path"))?;
                let (digest, size) = c
                    .blobs
                    .get(path)
                    .ok_or_else(|| bad(format!("the archive has no layer {path}")))?;
                if diff_ids.get(i).is_some_and(|want| want != digest) {
                    return Err(Error::new(
                        ErrorCode::DigestInvalid,
                        format!("layer {path} is {digest}, but the image config says {}", diff_ids[i]),
                    ));
                }
                layers.push(json!({ "mediaType": OCI_LAYER, "digest": digest, "size": size }));
            }
            if !diff_ids.is_empty() && diff_ids.len() != layers.len() {
                return Err(bad(format!(
                    "the image config lists {} layers, the archive {}",
                    diff_ids.len(),
                    layers.len()
                )));
            }
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len() },
                "layers": layers,
            }))
            .map_err(|e| Error::internal(&e))?;
            let digest = Digest::sha256_of(&manifest).to_string();
            let mut tags: Vec<String> = image["RepoTags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(|r| r.rsplit_once(':').map(|(_, t)| t.to_owned()))
                .filter(|t| t.parse::<Tag>().is_ok())
                .collect();
            if tags.is_empty()
                && let Some(t) = default_tag
            {
                tags.push(t.as_str().to_owned());
            }
            manifests.push((manifest, OCI_MANIFEST.to_owned()));
            adds.push(ContentOp::Add { digest, tags });
        }
        Ok((manifests, adds))
    }

    async fn store_config(&self, config: &[u8]) -> Result<String> {
        let this = self.clone();
        let data = config.to_vec();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || this.store_bytes(&data, &handle))
            .await
            .map_err(|e| Error::internal(&e))?
    }
}

/// OCI layout blobs are named by their digest: the bytes must match it.
fn check_name(path: &str, digest: &str) -> Result<()> {
    match path.strip_prefix("blobs/sha256/") {
        Some(hex) if format!("sha256:{hex}") != digest => Err(Error::new(
            ErrorCode::DigestInvalid,
            format!("{path} does not match its digest (its content is {digest})"),
        )),
        _ => Ok(()),
    }
}

enum StoreError {
    Io(std::io::Error),
    Commit(Error),
}
