//! Changes to a normal repository's content: the post-push copy of a push repository's
//! change (signing the pushed tags when the product signs on push), and the content
//! operations of the API (add, remove, tag, untag, sign, copy signatures), each one new
//! version or nothing.

use super::*;

/// Apply a push repository's change to its normal repository and record a version.
/// Returns the new version number, or `None` when nothing changed (a re-run).
/// Costs work in proportion to the change, not to the repository.
pub(crate) async fn apply_change(tx: &mut WriteTx, job: &PostPushJob, reg: &Registry) -> Result<Option<i64>> {
    Ok(apply_change_along(tx, job, reg, Batch::default()).await?.1)
}

/// `apply_change`, running the caller's statements `along` in its first batch (they
/// come first); returns their results with the version.
pub(crate) async fn apply_change_along(
    tx: &mut WriteTx,
    job: &PostPushJob,
    reg: &Registry,
    mut along: Batch,
) -> Result<(Vec<Done>, Option<i64>)> {
    let normal_id = job.normal_id;
    let mut delta = Delta::default();
    let keep = reg.version_retention();
    let (reason, along) = match &job.change {
        PushChange::Push { digest, tags } => {
            // The copy, with the push repository's signatures of what is copied, and the
            // read of the latest version: one round trip with the caller's statements.
            let k = along.len();
            let plan = plan_add_manifest(&mut along, normal_id, digest, tags, Some(&job.push_repository));
            let read = read_latest(&mut along, normal_id);
            let mut done = along.run(tx).await?;
            plan.record(&done, digest, tags, &mut delta);
            let latest = Latest::from(&done[read])?;
            done.truncate(k);
            let mut reason = if tags.is_empty() {
                format!("push {digest}")
            } else {
                format!("push {}", tags.join(", "))
            };
            if let Some(spec) = &job.sign {
                // Signed in the copy's own transaction: a crash leaves either the copy
                // with its signatures or neither.
                match sign_tags(reg, tx, normal_id, digest, tags, spec, &mut delta).await? {
                    Ok(()) => reason.push_str(&format!(" (signed with {})", spec.key)),
                    Err(why) => {
                        tracing::warn!(repository = %job.normal_repository, key = %spec.key, error = %why, "sign on push failed");
                        reason.push_str(&format!(" (not signed with {}: {why})", spec.key));
                    }
                }
            }
            let version = record_version(
                tx,
                Some(latest),
                normal_id,
                &job.normal_repository,
                &reason,
                &delta,
                keep,
            )
            .await?;
            return Ok((done, version));
        }
        PushChange::DeleteTag { tag } => {
            let along = along.run(tx).await?;
            remove_tag(tx, normal_id, tag, &mut delta).await?;
            (format!("delete tag {tag}"), along)
        }
        PushChange::DeleteManifest { digest } => {
            let along = along.run(tx).await?;
            remove_manifest_and_orphans(tx, normal_id, digest, &mut delta).await?;
            (format!("delete manifest {digest}"), along)
        }
        PushChange::Sign { digest } => {
            let along = along.run(tx).await?;
            // Only where the manifest is: a signature never outlives what it signs.
            if let Some(push_id) = tx.repository_id(&job.push_repository).await?
                && tx.manifest_is_linked(normal_id, digest).await?
            {
                copy_signatures(tx, push_id, normal_id, digest, &mut delta).await?;
            }
            (format!("sign {digest}"), along)
        }
    };
    let version = record_version(tx, None, normal_id, &job.normal_repository, &reason, &delta, keep).await?;
    Ok((along, version))
}

/// Link `digest` with its closure (an index's children) and their blobs into the
/// repository, with the signatures repository `signatures_from` has of them, and point
/// `tags` at it. One batch: a round trip whatever the size of the closure.
pub(super) async fn add_manifest(
    tx: &mut WriteTx,
    repo_id: i64,
    digest: &str,
    tags: &[String],
    signatures_from: Option<&str>,
    delta: &mut Delta,
) -> MetaResult<()> {
    let mut batch = Batch::default();
    let plan = plan_add_manifest(&mut batch, repo_id, digest, tags, signatures_from);
    let done = batch.run(tx).await?;
    plan.record(&done, digest, tags, delta);
    Ok(())
}

/// Where the answers of `add_manifest`'s statements are in their batch.
struct AddManifest {
    manifests: usize,
    blobs: usize,
    signatures: Option<usize>,
    tag_reads: Vec<usize>,
}

/// Add `add_manifest`'s statements to `batch`.
fn plan_add_manifest(
    batch: &mut Batch,
    repo_id: i64,
    digest: &str,
    tags: &[String],
    signatures_from: Option<&str>,
) -> AddManifest {
    let now = now_ms();
    let manifests = batch.add(
        format!(
            "{CLOSURE} INSERT INTO repository_manifests (repository_id, digest, pushed_at) \
             SELECT $2, d, $3 FROM c WHERE true ON CONFLICT (repository_id, digest) DO NOTHING RETURNING digest"
        ),
        vec![digest.into(), repo_id.into(), now.into()],
    );
    // The blobs the repository lacks, learning which they were.
    let blobs = batch.add(
        format!(
            "{CLOSURE} INSERT INTO repository_blobs (repository_id, digest, linked_at) \
             SELECT DISTINCT $2, mb.blob_digest, $3 FROM manifest_blobs mb JOIN c ON mb.manifest_digest = c.d \
             WHERE NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.repository_id = $2 AND rb.digest = mb.blob_digest) \
             RETURNING digest"
        ),
        vec![digest.into(), repo_id.into(), now.into()],
    );
    let signatures = signatures_from.map(|from| {
        batch.add(
            format!(
                "{CLOSURE} INSERT INTO repository_signatures (repository_id, digest, manifest_digest, linked_at) \
                 SELECT $2, rs.digest, rs.manifest_digest, $3 FROM repository_signatures rs JOIN c ON rs.manifest_digest = c.d \
                 WHERE rs.repository_id = (SELECT id FROM repositories WHERE name = $4) AND NOT EXISTS ( \
                   SELECT 1 FROM repository_signatures t WHERE t.repository_id = $2 AND t.digest = rs.digest) \
                 RETURNING digest, manifest_digest"
            ),
            vec![digest.into(), repo_id.into(), now.into(), from.into()],
        )
    });
    // Each tag's current target (read before it is moved), then the move, only when it
    // points elsewhere.
    let tag_reads = tags
        .iter()
        .map(|t| {
            let read = batch.add(
                "SELECT digest FROM tags WHERE repository_id = $1 AND name = $2",
                vec![repo_id.into(), t.into()],
            );
            batch.add(
                "INSERT INTO tags (repository_id, name, digest, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at \
                 WHERE tags.digest <> excluded.digest",
                vec![repo_id.into(), t.into(), digest.into(), now.into()],
            );
            read
        })
        .collect();
    AddManifest {
        manifests,
        blobs,
        signatures,
        tag_reads,
    }
}

impl AddManifest {
    /// What the statements changed, into `delta`.
    fn record(self, done: &[Done], digest: &str, tags: &[String], delta: &mut Delta) {
        for r in &done[self.manifests].rows {
            let m: String = r.get(0);
            delta.added.push(("manifest", m.clone(), m));
        }
        for r in &done[self.blobs].rows {
            let b: String = r.get(0);
            delta.added.push(("blob", b.clone(), b));
        }
        if let Some(s) = self.signatures {
            for r in &done[s].rows {
                delta.added.push(("signature", r.get(0), r.get(1)));
            }
        }
        for (t, read) in tags.iter().zip(self.tag_reads) {
            let old: Option<String> = done[read].rows.first().map(|r| r.get(0));
            match old {
                Some(old) if old == digest => {}
                old => {
                    if let Some(old) = old {
                        delta.removed.push(("tag", t.clone(), old));
                    }
                    delta.added.push(("tag", t.clone(), digest.to_owned()));
                }
            }
        }
    }
}

/// Sign each of `tags` (pointing at `digest`) as `spec` says, into repository `repo_id`.
/// The outer error is the database's; the inner one why nothing could be signed.
pub(super) async fn sign_tags(
    reg: &Registry,
    tx: &mut WriteTx,
    repo_id: i64,
    digest: &str,
    tags: &[String],
    spec: &crate::store::signatures::SignOnPush,
    delta: &mut Delta,
) -> Result<std::result::Result<(), String>> {
    let Some(signer) = reg.signer() else {
        return Ok(Err("no signing service in this process".to_owned()));
    };
    for tag in tags {
        let reference = format!("{}:{tag}", spec.reference);
        let made = match signer.sign(&spec.org, &spec.key, digest, &reference).await {
            Ok(c) => c,
            Err(why) => return Ok(Err(why)),
        };
        add_signature(reg, tx, repo_id, digest, made, delta).await?;
    }
    Ok(Ok(()))
}

/// Store a signature of `manifest` (linked in `repo_id`): a simple signing one linked
/// for the extension API, a sigstore one into the manifest's attachment.
pub(super) async fn add_signature(
    reg: &Registry,
    tx: &mut WriteTx,
    repo_id: i64,
    manifest: &str,
    made: crate::store::signatures::MadeSignature,
    delta: &mut Delta,
) -> Result<()> {
    use crate::store::signatures::MadeSignature;
    match made {
        MadeSignature::Simple(content) => {
            let sig = crate::store::signatures::new_signature(manifest, content);
            if crate::store::signatures::link(tx, repo_id, &sig).await? {
                delta.added.push(("signature", sig.digest, manifest.to_owned()));
            }
        }
        MadeSignature::Sigstore(sig) => {
            let tag = crate::store::sigstore::attachment_tag(manifest);
            let existing = match current_tag(tx, repo_id, &tag).await? {
                Some(d) => sqlx::query("SELECT content FROM manifests WHERE digest = $1")
                    .bind(&d)
                    .fetch_optional(tx.conn())
                    .await?
                    .map(|r| r.get::<Vec<u8>, _>(0)),
                None => None,
            };
            let Some((attachment, config)) = crate::store::sigstore::with_signature(existing.as_deref(), &sig) else {
                return Ok(());
            };
            reg.place_bytes(tx, &sig.payload).await?;
            reg.place_bytes(tx, &config).await?;
            let digest = record_manifest(tx, &attachment, crate::store::sigstore::OCI_MANIFEST).await?;
            add_manifest(tx, repo_id, &digest, &[tag], None, delta).await?;
        }
    }
    Ok(())
}

/// Link into `to` the signatures `from` has of `manifest`, recording them in `delta`.
pub(super) async fn copy_signatures(
    tx: &mut WriteTx,
    from: i64,
    to: i64,
    manifest: &str,
    delta: &mut Delta,
) -> MetaResult<()> {
    for d in crate::store::signatures::copy_links(tx, from, to, manifest).await? {
        delta.added.push(("signature", d, manifest.to_owned()));
    }
    Ok(())
}

/// Remove a tag (only the tag); whether it existed.
pub(super) async fn remove_tag(tx: &mut WriteTx, repo_id: i64, tag: &str, delta: &mut Delta) -> MetaResult<bool> {
    let Some(old) = current_tag(tx, repo_id, tag).await? else {
        return Ok(false);
    };
    tx.delete_tag(repo_id, tag).await?;
    delta.removed.push(("tag", tag.to_owned(), old));
    Ok(true)
}

/// Unlink a manifest and the tags pointing at it (its blobs stay linked, as after a
/// registry DELETE); whether it was linked.
pub(super) async fn unlink_manifest(
    tx: &mut WriteTx,
    repo_id: i64,
    digest: &str,
    delta: &mut Delta,
) -> MetaResult<bool> {
    let tags = sqlx::query("SELECT name FROM tags WHERE repository_id = $1 AND digest = $2")
        .bind(repo_id)
        .bind(digest)
        .fetch_all(tx.conn())
        .await?;
    for r in tags {
        delta.removed.push(("tag", r.get(0), digest.to_owned()));
    }
    for d in crate::store::signatures::unlink_all(tx, repo_id, digest).await? {
        delta.removed.push(("signature", d, digest.to_owned()));
    }
    let unlinked = tx.unlink_manifest(repo_id, digest).await?;
    if unlinked {
        delta.removed.push(("manifest", digest.to_owned(), digest.to_owned()));
        // Its sigstore attachment leaves with it: a signature never outlives what it signs.
        let tag = crate::store::sigstore::attachment_tag(digest);
        if let Some(attachment) = current_tag(tx, repo_id, &tag).await? {
            remove_tag(tx, repo_id, &tag, delta).await?;
            let still_tagged = sqlx::query("SELECT 1 FROM tags WHERE repository_id = $1 AND digest = $2")
                .bind(repo_id)
                .bind(&attachment)
                .fetch_optional(tx.conn())
                .await?;
            if still_tagged.is_none() && tx.unlink_manifest(repo_id, &attachment).await? {
                delta.removed.push(("manifest", attachment.clone(), attachment));
            }
        }
    }
    Ok(unlinked)
}

/// Unlink a manifest, the tags on it, and its blobs that no manifest still in the
/// repository references; whether it was there.
pub(super) async fn remove_manifest_and_orphans(
    tx: &mut WriteTx,
    repo_id: i64,
    digest: &str,
    delta: &mut Delta,
) -> MetaResult<bool> {
    if !unlink_manifest(tx, repo_id, digest, delta).await? {
        return Ok(false);
    }
    let orphans = sqlx::query(
        "DELETE FROM repository_blobs WHERE repository_id = $1 AND digest IN ( \
            SELECT mb.blob_digest FROM manifest_blobs mb WHERE mb.manifest_digest = $2 AND NOT EXISTS ( \
              SELECT 1 FROM repository_manifests rm JOIN manifest_blobs mb2 ON mb2.manifest_digest = rm.digest \
              WHERE rm.repository_id = $1 AND mb2.blob_digest = mb.blob_digest)) RETURNING digest",
    )
    .bind(repo_id)
    .bind(digest)
    .fetch_all(tx.conn())
    .await?;
    for r in orphans {
        let b: String = r.get(0);
        delta.removed.push(("blob", b.clone(), b));
    }
    Ok(true)
}

/// One change to a normal repository's content, through the content API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentOp {
    /// Add a manifest (with its closure and blobs) and point tags at it.
    Add {
        digest: String,
        tags: Vec<String>,
    },
    RemoveTag {
        tag: String,
    },
    /// Remove a manifest, the tags on it, and its blobs that nothing else in the
    /// repository references. Refused while an index in the repository lists it,
    /// unless `force`.
    RemoveManifest {
        digest: String,
        force: bool,
    },
    /// Add a signature of a manifest the repository holds.
    Sign {
        manifest: String,
        signature: crate::store::signatures::MadeSignature,
    },
    /// Bring along the signatures repository `from` has of `digest` and its closure
    /// (after `Add` of the same digest: a copy carries its signatures).
    CopySignatures {
        from: String,
        digest: String,
    },
}

/// Remove a manifest as `ContentOp::RemoveManifest` says.
pub(super) async fn remove_manifest(
    tx: &mut WriteTx,
    repo_id: i64,
    digest: &str,
    force: bool,
    delta: &mut Delta,
) -> Result<()> {
    let parent = sqlx::query(
        "SELECT mc.manifest_digest FROM manifest_children mc JOIN repository_manifests rm \
         ON rm.digest = mc.manifest_digest AND rm.repository_id = $1 WHERE mc.child_digest = $2 LIMIT 1",
    )
    .bind(repo_id)
    .bind(digest)
    .fetch_optional(tx.conn())
    .await?;
    if let Some(p) = parent
        && !force
    {
        let parent: String = p.get(0);
        return Err(Error::new(
            ErrorCode::Denied,
            format!(
                "manifest {digest} is listed by index {parent} in this repository; remove the index first or force"
            ),
        )
        .with_detail(json!({ "digest": digest, "index": parent })));
    }
    if !remove_manifest_and_orphans(tx, repo_id, digest, delta).await? {
        return Err(Error::new(
            ErrorCode::ManifestUnknown,
            format!("manifest {digest} is not in the repository"),
        )
        .with_detail(json!({ "digest": digest })));
    }
    Ok(())
}

impl Registry {
    /// Apply content operations to a normal repository as one new version (`None` when
    /// nothing changed). Any invalid operation refuses the whole set: no version.
    pub async fn modify(&self, normal: &str, ops: &[ContentOp], reason: &str) -> Result<Option<i64>> {
        self.modify_with_manifests(normal, &[], ops, reason).await
    }

    /// `modify`, first recording `manifests` ((content, media type), children before
    /// their index) in the same transaction: an import is one version or nothing.
    pub(crate) async fn modify_with_manifests(
        &self,
        normal: &str,
        manifests: &[(Vec<u8>, String)],
        ops: &[ContentOp],
        reason: &str,
    ) -> Result<Option<i64>> {
        let mut tx = self.meta().begin_write().await?;
        let repo_id = normal_repository_id(&mut tx, normal).await?;
        for (content, media_type) in manifests {
            record_manifest(&mut tx, content, media_type).await?;
        }
        let mut delta = Delta::default();
        for op in ops {
            match op {
                ContentOp::Add { digest, tags } => {
                    let known = sqlx::query("SELECT 1 FROM manifests WHERE digest = $1")
                        .bind(digest)
                        .fetch_optional(tx.conn())
                        .await?;
                    if known.is_none() {
                        return Err(Error::new(ErrorCode::ManifestUnknown, format!("no manifest {digest}"))
                            .with_detail(json!({ "digest": digest })));
                    }
                    add_manifest(&mut tx, repo_id, digest, tags, None, &mut delta).await?;
                }
                ContentOp::RemoveTag { tag } => {
                    if !remove_tag(&mut tx, repo_id, tag, &mut delta).await? {
                        return Err(
                            Error::new(ErrorCode::ManifestUnknown, format!("no tag {tag} in {normal}"))
                                .with_detail(json!({ "tag": tag })),
                        );
                    }
                }
                ContentOp::RemoveManifest { digest, force } => {
                    remove_manifest(&mut tx, repo_id, digest, *force, &mut delta).await?;
                }
                ContentOp::Sign { manifest, signature } => {
                    if !tx.manifest_is_linked(repo_id, manifest).await? {
                        return Err(Error::new(
                            ErrorCode::ManifestUnknown,
                            format!("{normal} has no manifest {manifest}"),
                        )
                        .with_detail(json!({ "digest": manifest })));
                    }
                    add_signature(self, &mut tx, repo_id, manifest, signature.clone(), &mut delta).await?;
                }
                ContentOp::CopySignatures { from, digest } => {
                    if let Some(from_id) = tx.repository_id(from).await? {
                        for m in closure(&mut tx, digest).await? {
                            copy_signatures(&mut tx, from_id, repo_id, &m, &mut delta).await?;
                        }
                    }
                }
            }
        }
        let version = record_version(&mut tx, None, repo_id, normal, reason, &delta, self.version_retention()).await?;
        tx.commit().await?;
        Ok(version)
    }
}
