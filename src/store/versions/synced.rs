//! What a sync found on a remote becoming a version of a normal repository.

use super::*;

/// What a sync found on a remote, ready to become a version (`Registry::apply_sync`).
#[derive(Debug, Default)]
pub struct SyncedContent {
    /// (content, media type), children before their index.
    pub manifests: Vec<(Vec<u8>, String)>,
    pub tags: Vec<(String, String)>,
    /// Manifests kept without a tag (referrers: signatures, SBOMs).
    pub untagged: Vec<String>,
    pub mirror: bool,
    /// Blobs may be absent locally when a remote serves them (`remote_blobs`).
    pub on_demand: bool,
    /// The remote's simple-signing signatures of what it serves; `None` when it has no
    /// signature API (the repository then keeps the signatures it has).
    pub signatures: Option<Vec<crate::store::signatures::Signature>>,
}

pub(super) async fn remote_blob_known(tx: &mut WriteTx, digest: &str) -> MetaResult<bool> {
    let row = sqlx::query("SELECT 1 FROM remote_blobs WHERE digest = $1 LIMIT 1")
        .bind(digest)
        .fetch_optional(tx.conn())
        .await?;
    Ok(row.is_some())
}

impl Registry {
    /// Make a normal repository's content what a sync found, as one new version (`None`
    /// when nothing changed): `manifests` are recorded first (children before their
    /// index; their blobs must be stored, or known to a remote when `on_demand`), then
    /// the content becomes `tags` (tag, digest) and `untagged` manifests with their
    /// closures and blobs. `mirror`: exactly that; otherwise added to what is there
    /// (a tag that moved upstream moves here too).
    pub async fn apply_sync(&self, normal: &str, found: &SyncedContent, reason: &str) -> Result<Option<i64>> {
        let mut tx = self.meta().begin_write().await?;
        let repo_id = normal_repository_id(&mut tx, normal).await?;
        for (content, media_type) in &found.manifests {
            record_manifest_with(&mut tx, content, media_type, found.on_demand).await?;
        }
        let mut tags: BTreeMap<String, String> = BTreeMap::new();
        let mut roots: BTreeSet<String> = found.untagged.iter().cloned().collect();
        let current = current_rows(&mut tx, repo_id).await?;
        // Signatures (digest, manifest): the remote's, plus those the repository has
        // unless a mirror takes exactly the remote's; kept where their manifest is.
        let mut signatures: BTreeSet<(String, String)> = BTreeSet::new();
        if !found.mirror || found.signatures.is_none() {
            signatures.extend(
                current
                    .iter()
                    .filter(|r| r.0 == "signature")
                    .map(|r| (r.1.clone(), r.2.clone())),
            );
        }
        for sig in found.signatures.iter().flatten() {
            crate::store::signatures::record(&mut tx, sig).await?;
            signatures.insert((sig.digest.clone(), sig.manifest_digest.clone()));
        }
        if !found.mirror {
            for (kind, key, digest) in current {
                match kind.as_str() {
                    "tag" => {
                        tags.insert(key, digest);
                    }
                    "manifest" => {
                        roots.insert(digest);
                    }
                    _ => {}
                }
            }
        }
        for (tag, digest) in &found.tags {
            tags.insert(tag.clone(), digest.clone());
        }
        roots.extend(tags.values().cloned());
        let mut manifests = BTreeSet::new();
        for root in &roots {
            if !manifests.contains(root) {
                manifests.extend(closure(&mut tx, root).await?);
            }
        }
        let mut blobs = BTreeSet::new();
        for m in &manifests {
            let rows = sqlx::query("SELECT blob_digest FROM manifest_blobs WHERE manifest_digest = $1")
                .bind(m)
                .fetch_all(tx.conn())
                .await?;
            blobs.extend(rows.into_iter().map(|r| r.get::<String, _>(0)));
        }
        let signatures: Vec<(String, String, String)> = signatures
            .into_iter()
            .filter(|(_, m)| manifests.contains(m))
            .map(|(d, m)| ("signature".to_owned(), d, m))
            .collect();
        let target: Vec<(String, String, String)> = tags
            .into_iter()
            .map(|(t, d)| ("tag".to_owned(), t, d))
            .chain(manifests.into_iter().map(|m| ("manifest".to_owned(), m.clone(), m)))
            .chain(blobs.into_iter().map(|b| ("blob".to_owned(), b.clone(), b)))
            .chain(signatures)
            .collect();
        let created = set_content(&mut tx, repo_id, normal, target, reason, self.version_retention()).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Record that `remote` serves these (digest, size) blobs, for on-demand fetching.
    pub async fn remember_remote_blobs(&self, remote: i64, blobs: &[(String, u64)]) -> Result<()> {
        if blobs.is_empty() {
            return Ok(());
        }
        let mut tx = self.meta().begin_write().await?;
        for (digest, size) in blobs {
            sqlx::query(
                "INSERT INTO remote_blobs (digest, remote_id, size) VALUES ($1, $2, $3) \
                 ON CONFLICT (digest, remote_id) DO UPDATE SET size = excluded.size",
            )
            .bind(digest)
            .bind(remote)
            .bind(*size as i64)
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
