//! Understanding a pushed manifest document: which media type it is, which blobs and
//! child manifests it references, its subject and artifact type. Pure functions; the
//! registry service checks the references against the database.

use crate::error::{Error, ErrorCode, Result};
use crate::oci::Digest;
use crate::oci::media::{self, ManifestKind};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde_json::json;
use std::collections::HashMap;

/// Largest manifest accepted (the limit Distribution and the OCI conformance suite use).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct ParsedManifest {
    pub media_type: String,
    pub kind: ManifestKind,
    /// Blobs that must be present in the repository.
    pub required_blobs: Vec<Digest>,
    /// Non-distributable layers: recorded when present, allowed to be absent.
    pub foreign_blobs: Vec<Digest>,
    /// Manifests an index lists; they must be present in the repository.
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    /// JSON object text, kept for referrers listings.
    pub annotations: Option<String>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::ManifestInvalid, msg)
}

fn descriptor_digest(d: &Descriptor) -> Result<Digest> {
    d.digest().to_string().parse().map_err(|e| {
        invalid(format!("descriptor digest {}: {e}", d.digest())).with_detail(json!({"digest": d.digest().to_string()}))
    })
}

fn annotations_json(a: &Option<HashMap<String, String>>) -> Option<String> {
    a.as_ref()
        .filter(|m| !m.is_empty())
        .and_then(|m| serde_json::to_string(m).ok())
}

/// Parse `body` as the manifest type named by `content_type` (or, when the request has
/// none, by the document's own `mediaType` field).
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<ParsedManifest> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
    let declared = doc.get("mediaType").and_then(|v| v.as_str());
    let media_type = match (content_type.map(media::essence).filter(|c| !c.is_empty()), declared) {
        (Some(header), Some(body_type)) if header != body_type => {
            return Err(invalid(format!(
                "Content-Type {header:?} does not match the manifest's mediaType {body_type:?}"
            )));
        }
        (Some(header), _) => header.to_owned(),
        (None, Some(body_type)) => body_type.to_owned(),
        (None, None) => {
            return Err(invalid("manifest has no mediaType and the request no Content-Type"));
        }
    };
    if matches!(
        media_type.as_str(),
        media::DOCKER_SCHEMA1 | media::DOCKER_SCHEMA1_SIGNED
    ) {
        return Err(Error::new(
            ErrorCode::ManifestInvalid,
            "Docker schema 1 manifests are not supported; push schema 2 or OCI",
        ));
    }
    let kind = media::manifest_kind(&media_type).ok_or_else(|| {
        invalid(format!(
            "unsupported manifest media type {media_type:?}; expected one of {}, {}, {}, {}",
            media::OCI_MANIFEST,
            media::OCI_INDEX,
            media::DOCKER_MANIFEST,
            media::DOCKER_MANIFEST_LIST
        ))
    })?;
    match kind {
        ManifestKind::Image => parse_image(media_type, body),
        ManifestKind::Index => parse_index(media_type, body),
    }
}

fn parse_image(media_type: String, body: &[u8]) -> Result<ParsedManifest> {
    let m = ImageManifest::from_reader(body).map_err(|e| invalid(format!("invalid image manifest: {e}")))?;
    if m.schema_version() != 2 {
        return Err(invalid(format!("schemaVersion must be 2, got {}", m.schema_version())));
    }
    let mut required = vec![descriptor_digest(m.config())?];
    let mut foreign = Vec::new();
    for layer in m.layers() {
        let d = descriptor_digest(layer)?;
        if media::is_non_distributable(layer.media_type().as_ref()) {
            foreign.push(d);
        } else {
            required.push(d);
        }
    }
    required.sort();
    required.dedup();
    let artifact_type = m
        .artifact_type()
        .as_ref()
        .map(|t| t.to_string())
        .or_else(|| Some(m.config().media_type().to_string()));
    Ok(ParsedManifest {
        media_type,
        kind: ManifestKind::Image,
        required_blobs: required,
        foreign_blobs: foreign,
        children: Vec::new(),
        subject: m.subject().as_ref().map(descriptor_digest).transpose()?,
        artifact_type,
        annotations: annotations_json(m.annotations()),
    })
}

fn parse_index(media_type: String, body: &[u8]) -> Result<ParsedManifest> {
    let i = ImageIndex::from_reader(body).map_err(|e| invalid(format!("invalid image index: {e}")))?;
    if i.schema_version() != 2 {
        return Err(invalid(format!("schemaVersion must be 2, got {}", i.schema_version())));
    }
    let mut children = i
        .manifests()
        .iter()
        .map(descriptor_digest)
        .collect::<Result<Vec<_>>>()?;
    children.sort();
    children.dedup();
    Ok(ParsedManifest {
        media_type,
        kind: ManifestKind::Index,
        required_blobs: Vec::new(),
        foreign_blobs: Vec::new(),
        children,
        subject: i.subject().as_ref().map(descriptor_digest).transpose()?,
        artifact_type: i.artifact_type().as_ref().map(|t| t.to_string()),
        annotations: annotations_json(i.annotations()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    const L1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CFG}","size":2}},
               "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{L1}","size":0}}]{extra}}}"#,
            media::OCI_MANIFEST
        )
    }

    #[test]
    fn image_manifest_references_config_and_layers() {
        let p = parse(Some(media::OCI_MANIFEST), image("").as_bytes()).unwrap();
        assert_eq!(p.kind, ManifestKind::Image);
        assert_eq!(p.required_blobs.len(), 2);
        assert_eq!(
            p.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn media_type_mismatch_and_garbage_are_invalid() {
        let e = parse(Some(media::OCI_INDEX), image("").as_bytes()).unwrap_err();
        assert_eq!(e.code, ErrorCode::ManifestInvalid);
        let e = parse(Some(media::OCI_MANIFEST), b"{\"schemaVersion\":2,").unwrap_err();
        assert_eq!(e.code, ErrorCode::ManifestInvalid);
        let e = parse(Some("text/plain"), b"{}").unwrap_err();
        assert_eq!(e.code, ErrorCode::ManifestInvalid);
    }

    #[test]
    fn subject_and_annotations_are_kept() {
        let extra = format!(
            r#","subject":{{"mediaType":"{}","digest":"{L1}","size":1}},"annotations":{{"k":"v"}},"artifactType":"application/x-sbom""#,
            media::OCI_MANIFEST
        );
        let p = parse(None, image(&extra).as_bytes()).unwrap();
        assert_eq!(p.subject.unwrap().to_string(), L1);
        assert_eq!(p.artifact_type.as_deref(), Some("application/x-sbom"));
        assert_eq!(p.annotations.as_deref(), Some(r#"{"k":"v"}"#));
    }
}
