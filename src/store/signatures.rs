//! Simple-signing ("atomic", GPG) signatures, as containers/image reads and writes them
//! through the registry's signature extension API
//! (`/extensions/v2/<name>/signatures/<digest>`).
//!
//! A signature belongs to the manifest it signs: it is linked into a repository only
//! where that manifest is, leaves with it, and is content of the repository's versions
//! like tags and manifests (`version_content` kind `signature`). A signature put into a
//! push repository reaches its normal repository through the post-push job, as a new
//! version. The bytes are opaque here (an OpenPGP message); clients verify them.

use super::Registry;
use super::meta::{MetaResult, WriteTx, now_ms};
use super::versions::{self, KIND_PUSH, PushChange};
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Digest, RepoName};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

pub use super::sigstore::SigstoreSignature;

/// A signature a signing key made: a simple signing message (GPG), stored through the
/// extension API, or a sigstore signature, stored as an attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MadeSignature {
    Simple(Vec<u8>),
    Sigstore(SigstoreSignature),
}

/// Makes the signatures of products that sign on push, inside the post-push copy (the
/// `signing` module implements it; the store only knows that it signs).
#[async_trait::async_trait]
pub trait ImageSigner: Send + Sync {
    /// A signature by `org`'s key `key` of `manifest_digest` pulled as `reference`.
    async fn sign(
        &self,
        org: &str,
        key: &str,
        manifest_digest: &str,
        reference: &str,
    ) -> std::result::Result<MadeSignature, String>;
}

/// What the post-push copy of a product that signs on push signs with: the
/// organisation's key, and the public name (`registry/org/product/name`) each tag is
/// appended to. The gateway passes it with the manifest PUT (clients cannot: it
/// removes the header from what they send).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOnPush {
    pub org: String,
    pub key: String,
    pub reference: String,
}

impl SignOnPush {
    pub const HEADER: &'static str = "x-gatehouse-sign-on-push";

    pub fn to_header(&self) -> String {
        format!("{} {} {}", self.org, self.key, self.reference)
    }

    pub fn from_header(value: &str) -> Option<Self> {
        let mut parts = value.split_whitespace();
        let (org, key, reference) = (parts.next()?, parts.next()?, parts.next()?);
        parts.next().is_none().then(|| Self {
            org: org.to_owned(),
            key: key.to_owned(),
            reference: reference.to_owned(),
        })
    }
}

/// A signature made here of `manifest_digest`, named as clients name theirs.
pub fn new_signature(manifest_digest: &str, content: Vec<u8>) -> Signature {
    let mut suffix = [0u8; 16];
    // The name only has to be unique among the manifest's signatures; should the
    // system's randomness fail, the content's digest still makes it so.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix).is_err() {
        let d = Digest::sha256_of(&content).to_string();
        suffix.copy_from_slice(&d.as_bytes()[7..23]);
    }
    Signature {
        digest: Digest::sha256_of(&content).to_string(),
        manifest_digest: manifest_digest.to_owned(),
        name: format!("{manifest_digest}@{}", hex::encode(suffix)),
        content,
    }
}

/// Larger bodies are refused: a signature is a few hundred bytes.
pub const MAX_SIGNATURE_BYTES: usize = 64 * 1024;
/// Signatures kept per manifest and repository.
pub const MAX_SIGNATURES_PER_MANIFEST: i64 = 100;

/// A signature as the extension API carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSignature {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "type")]
    pub kind: String,
    /// `<manifest digest>@<32 lowercase hex>`.
    pub name: String,
    /// The signature's bytes, base64.
    pub content: String,
}

/// A stored signature of one manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// sha256 of `content`: the signature's identity here.
    pub digest: String,
    pub manifest_digest: String,
    pub name: String,
    pub content: Vec<u8>,
}

impl Signature {
    pub fn to_api(&self) -> ApiSignature {
        ApiSignature {
            schema_version: 2,
            kind: "atomic".into(),
            name: self.name.clone(),
            content: base64::engine::general_purpose::STANDARD.encode(&self.content),
        }
    }
}

fn invalid(field: &str, why: &str) -> Error {
    Error::new(ErrorCode::InvalidRequest, format!("signature {field}: {why}")).with_detail(json!({ "field": field }))
}

/// Check a PUT body for manifest `manifest`: one signature object of type `atomic`,
/// named after that manifest, with base64 content.
pub fn parse_put(body: &[u8], manifest: &Digest) -> Result<Signature> {
    if body.len() > MAX_SIGNATURE_BYTES {
        return Err(invalid("content", "larger than 64 KiB"));
    }
    let sig: ApiSignature = serde_json::from_slice(body).map_err(|e| {
        Error::new(
            ErrorCode::InvalidRequest,
            format!("not a signature object ({{\"schemaVersion\":2,\"type\":\"atomic\",\"name\",\"content\"}}): {e}"),
        )
    })?;
    if sig.schema_version != 2 {
        return Err(invalid("schemaVersion", "must be 2"));
    }
    if sig.kind != "atomic" {
        return Err(invalid("type", "must be \"atomic\""));
    }
    let manifest = manifest.to_string();
    let suffix = sig
        .name
        .strip_prefix(&manifest)
        .and_then(|rest| rest.strip_prefix('@'))
        .ok_or_else(|| invalid("name", &format!("must be {manifest}@<32 hex digits>")))?;
    if suffix.len() != 32 || !suffix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(invalid("name", &format!("must be {manifest}@<32 hex digits>")));
    }
    let content = base64::engine::general_purpose::STANDARD
        .decode(sig.content.as_bytes())
        .map_err(|e| invalid("content", &format!("not base64: {e}")))?;
    if content.is_empty() {
        return Err(invalid("content", "empty"));
    }
    Ok(Signature {
        digest: Digest::sha256_of(&content).to_string(),
        manifest_digest: manifest,
        name: sig.name,
        content,
    })
}

/// The signatures of `manifest` linked into repository `repo_id`, oldest first.
async fn linked(conn: &mut sqlx::AnyConnection, repo_id: i64, manifest: &str) -> MetaResult<Vec<Signature>> {
    Ok(sqlx::query(
        "SELECT s.digest, s.manifest_digest, s.name, s.content FROM repository_signatures rs \
         JOIN signatures s ON s.digest = rs.digest \
         WHERE rs.repository_id = $1 AND rs.manifest_digest = $2 ORDER BY rs.linked_at, s.digest",
    )
    .bind(repo_id)
    .bind(manifest)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|r| Signature {
        digest: r.get(0),
        manifest_digest: r.get(1),
        name: r.get(2),
        content: r.get(3),
    })
    .collect())
}

/// Record a signature (once) and link it into `repo_id`; whether the link is new.
pub(crate) async fn link(tx: &mut WriteTx, repo_id: i64, sig: &Signature) -> MetaResult<bool> {
    record(tx, sig).await?;
    link_digest(tx, repo_id, &sig.digest, &sig.manifest_digest).await
}

/// Record a signature (once), linked nowhere yet.
pub(crate) async fn record(tx: &mut WriteTx, sig: &Signature) -> MetaResult<()> {
    sqlx::query(
        "INSERT INTO signatures (digest, manifest_digest, name, content, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (digest) DO NOTHING",
    )
    .bind(&sig.digest)
    .bind(&sig.manifest_digest)
    .bind(&sig.name)
    .bind(&sig.content)
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Link the recorded signature `digest` (of `manifest`) into `repo_id`; whether new.
pub(crate) async fn link_digest(tx: &mut WriteTx, repo_id: i64, digest: &str, manifest: &str) -> MetaResult<bool> {
    let r = sqlx::query(
        "INSERT INTO repository_signatures (repository_id, digest, manifest_digest, linked_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (repository_id, digest) DO NOTHING",
    )
    .bind(repo_id)
    .bind(digest)
    .bind(manifest)
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    Ok(r.rows_affected() > 0)
}

/// Link into `to` the signatures `from` has of `manifest`; the digests newly linked.
pub(crate) async fn copy_links(tx: &mut WriteTx, from: i64, to: i64, manifest: &str) -> MetaResult<Vec<String>> {
    let rows = sqlx::query(
        "INSERT INTO repository_signatures (repository_id, digest, manifest_digest, linked_at) \
         SELECT $2, rs.digest, rs.manifest_digest, $4 FROM repository_signatures rs \
         WHERE rs.repository_id = $1 AND rs.manifest_digest = $3 AND NOT EXISTS ( \
           SELECT 1 FROM repository_signatures t WHERE t.repository_id = $2 AND t.digest = rs.digest) \
         RETURNING digest",
    )
    .bind(from)
    .bind(to)
    .bind(manifest)
    .bind(now_ms())
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

/// Unlink every signature of `manifest` from `repo_id`; the digests unlinked.
pub(crate) async fn unlink_all(tx: &mut WriteTx, repo_id: i64, manifest: &str) -> MetaResult<Vec<String>> {
    let rows = sqlx::query(
        "DELETE FROM repository_signatures WHERE repository_id = $1 AND manifest_digest = $2 RETURNING digest",
    )
    .bind(repo_id)
    .bind(manifest)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

/// Drop recorded signatures older than `cutoff_ms` that no repository and no version has.
pub(crate) async fn drop_unreferenced(tx: &mut WriteTx, cutoff_ms: i64) -> MetaResult<u64> {
    let r = sqlx::query(
        "DELETE FROM signatures WHERE created_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM repository_signatures rs WHERE rs.digest = signatures.digest) \
         AND NOT EXISTS (SELECT 1 FROM version_content vc WHERE vc.kind = 'signature' AND vc.key = signatures.digest)",
    )
    .bind(cutoff_ms)
    .execute(tx.conn())
    .await?;
    Ok(r.rows_affected())
}

impl Registry {
    /// The signatures of `manifest` in `repo` (an empty list when it has none, even when
    /// the manifest is not there: clients ask before they know).
    pub async fn signatures(&self, repo: &RepoName, manifest: &Digest) -> Result<Vec<Signature>> {
        let mut conn = self
            .meta()
            .reader()
            .acquire()
            .await
            .map_err(super::meta::MetaError::from)?;
        let repo_id: Option<i64> = sqlx::query("SELECT id FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(super::meta::MetaError::from)?
            .map(|r| r.get(0));
        let Some(repo_id) = repo_id else {
            return Ok(Vec::new());
        };
        Ok(linked(&mut conn, repo_id, &manifest.to_string()).await?)
    }

    /// The indexes in `repo` that list manifest `digest` as a child.
    pub async fn indexes_listing(&self, repo: &str, digest: &str) -> Result<Vec<String>> {
        Ok(sqlx::query(
            "SELECT mc.manifest_digest FROM manifest_children mc \
             JOIN repository_manifests rm ON rm.digest = mc.manifest_digest \
             JOIN repositories r ON r.id = rm.repository_id \
             WHERE r.name = $1 AND mc.child_digest = $2",
        )
        .bind(repo)
        .bind(digest)
        .fetch_all(&self.meta().reader().clone())
        .await
        .map_err(super::meta::MetaError::from)?
        .into_iter()
        .map(|r| r.get(0))
        .collect())
    }

    /// Whether every one of `sigs` is linked into `repo`.
    pub async fn signatures_present(&self, repo: &str, sigs: &[Signature]) -> Result<bool> {
        let pool = self.meta().reader().clone();
        for sig in sigs {
            let row = sqlx::query(
                "SELECT 1 FROM repository_signatures rs JOIN repositories r ON r.id = rs.repository_id \
                 WHERE r.name = $1 AND rs.digest = $2",
            )
            .bind(repo)
            .bind(&sig.digest)
            .fetch_optional(&pool)
            .await
            .map_err(super::meta::MetaError::from)?;
            if row.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Store `sig` for its manifest in `repo`, where that manifest must be. Idempotent
    /// (the same bytes again change nothing). In a push repository the signature reaches
    /// the normal repository as a new version, before this returns.
    pub async fn put_signature(&self, repo: &RepoName, sig: &Signature) -> Result<()> {
        let mut tx = self.meta().begin_write().await?;
        let repo_id = tx.repository_id(repo.as_str()).await?.ok_or_else(|| {
            Error::new(ErrorCode::NameUnknown, format!("no repository {repo}"))
                .with_detail(json!({ "name": repo.as_str() }))
        })?;
        if !tx.manifest_is_linked(repo_id, &sig.manifest_digest).await? {
            return Err(Error::new(
                ErrorCode::ManifestUnknown,
                format!(
                    "manifest {} is not in {repo}: push it before its signature",
                    sig.manifest_digest
                ),
            )
            .with_detail(json!({ "digest": sig.manifest_digest })));
        }
        let count: i64 =
            sqlx::query("SELECT COUNT(*) FROM repository_signatures WHERE repository_id = $1 AND manifest_digest = $2")
                .bind(repo_id)
                .bind(&sig.manifest_digest)
                .fetch_one(tx.conn())
                .await
                .map_err(super::meta::MetaError::from)?
                .get(0);
        if count >= MAX_SIGNATURES_PER_MANIFEST {
            return Err(Error::new(
                ErrorCode::Denied,
                format!("manifest {} has {count} signatures, the most kept", sig.manifest_digest),
            ));
        }
        if !link(&mut tx, repo_id, sig).await? {
            return Ok(());
        }
        let job = match versions::repository_kind(&mut tx, repo_id).await? {
            (kind, Some(normal)) if kind == KIND_PUSH => {
                let change = PushChange::Sign {
                    digest: sig.manifest_digest.clone(),
                };
                Some(versions::enqueue_post_push(&mut tx, repo.as_str(), normal, change, None).await?)
            }
            _ => None,
        };
        tx.commit().await?;
        if let Some((id, job)) = job {
            self.run_post_push_now(id, &job).await;
        }
        Ok(())
    }
}
