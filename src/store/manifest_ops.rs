//! The registry's manifest operations: a push (with the post-push copy of a push
//! repository), a fetch, a delete; and the tag, catalog and referrers listings.

use super::meta::{
    Batch, Linked, ManifestRows, NewManifest, Referrer, StoredManifest, WriteTx, add_link_blob, add_link_manifest,
    add_set_tag, linked_found, read_linked_among,
};
use super::{PushedManifest, Registry, digest_mismatch, manifests, name_unknown, signatures, versions};
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{Digest, Reference, RepoName, Tag};
use serde_json::json;

impl Registry {
    // === manifests ===

    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        body: &[u8],
        extra_tags: Vec<Tag>,
    ) -> Result<PushedManifest> {
        self.put_manifest_signed(repo, reference, content_type, body, extra_tags, None)
            .await
    }

    /// `put_manifest`, the post-push copy signing the pushed tags as `sign` says.
    pub async fn put_manifest_signed(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        body: &[u8],
        extra_tags: Vec<Tag>,
        sign: Option<signatures::SignOnPush>,
    ) -> Result<PushedManifest> {
        let parsed = manifests::parse(content_type, body)?;
        let digest = match reference {
            Reference::Digest(want) => {
                let got = Digest::of(want.algorithm(), body);
                if &got != want {
                    return Err(digest_mismatch(want, &got));
                }
                got
            }
            Reference::Tag(_) => Digest::sha256_of(body),
        };
        let mut tags = extra_tags;
        if let Reference::Tag(t) = reference {
            tags.insert(0, t.clone());
        }
        tags.dedup();
        // Read-your-writes: the copy into the normal repository is part of the push,
        // in its transaction. Should the copy fail, the push is made again with the
        // copy left to the job runner (the push itself has nothing wrong).
        match self
            .record_push(repo, &parsed, &digest, body, &tags, sign.clone(), true)
            .await?
        {
            Ok(pushed) => Ok(pushed),
            Err(e) => {
                tracing::warn!(repository = %repo, error = %e, "post-push copy failed; the push lands with the copy queued");
                self.record_push(repo, &parsed, &digest, body, &tags, sign, false)
                    .await?
            }
        }
    }

    /// Record a pushed manifest in one transaction. For a push repository the post-push
    /// copy runs inside it (`copy_inside`; the inner error is the copy's), or is queued
    /// in it and run right after the commit.
    #[allow(clippy::too_many_arguments)]
    async fn record_push(
        &self,
        repo: &RepoName,
        parsed: &manifests::ParsedManifest,
        digest: &Digest,
        body: &[u8],
        tags: &[Tag],
        sign: Option<signatures::SignOnPush>,
        copy_inside: bool,
    ) -> Result<Result<PushedManifest>> {
        let d = digest.to_string();
        let required: Vec<String> = parsed.required_blobs.iter().map(Digest::to_string).collect();
        let foreign: Vec<String> = parsed.foreign_blobs.iter().map(Digest::to_string).collect();
        let all: Vec<String> = required.iter().chain(&foreign).cloned().collect();
        let children: Vec<String> = parsed.children.iter().map(Digest::to_string).collect();

        let mut tx = self.inner.meta.begin_write().await?;
        let repo_id = tx.ensure_repository(repo.as_str()).await?;
        // Every check in one round trip: the repository's normal repository (a push
        // repository's), which references it holds, whether the manifest is recorded.
        let mut checks = Batch::default();
        let normal_read = versions::read_normal_of_push(&mut checks, repo_id);
        let blob_reads = read_linked_among(&mut checks, repo_id, Linked::Blobs, &all);
        let child_reads = read_linked_among(&mut checks, repo_id, Linked::Manifests, &children);
        let exists_read = ManifestRows::read_exists(&mut checks, &d);
        let done = checks.run(&mut tx).await?;
        let normal = versions::normal_found(&done[normal_read]);
        let linked = linked_found(&done, &blob_reads);
        let linked_children = linked_found(&done, &child_reads);
        let recorded = ManifestRows::exists(&done[exists_read]);

        // Every write in one round trip too (with the post-push copy's first statements).
        let mut writes = Batch::default();
        // A push repository also sees what its normal repository holds: a client that
        // found a blob there (and so did not upload it) can still reference it.
        let normal_id = normal.as_ref().map(|n| n.0);
        let missing: Vec<String> = required.iter().filter(|b| !linked.contains(*b)).cloned().collect();
        for b in link_from_normal(&mut tx, repo, normal_id, Linked::Blobs, &missing).await? {
            add_link_blob(&mut writes, repo_id, b);
        }
        let missing: Vec<String> = children
            .iter()
            .filter(|c| !linked_children.contains(*c))
            .cloned()
            .collect();
        for c in link_from_normal(&mut tx, repo, normal_id, Linked::Manifests, &missing).await? {
            add_link_manifest(&mut writes, repo_id, c);
        }
        if !recorded {
            let mut blob_refs = required;
            blob_refs.extend(foreign.into_iter().filter(|b| linked.contains(b)));
            let subject = parsed.subject.as_ref().map(Digest::to_string);
            let row = NewManifest {
                digest: &d,
                media_type: &parsed.media_type,
                artifact_type: parsed.artifact_type.as_deref(),
                subject: subject.as_deref(),
                annotations: parsed.annotations.as_deref(),
                content: body,
                blobs: &blob_refs,
                children: &children,
            };
            ManifestRows::add_manifest(&mut writes, &row);
            ManifestRows::add_references(&mut writes, &row);
        }
        add_link_manifest(&mut writes, repo_id, &d);
        for t in tags {
            add_set_tag(&mut writes, repo_id, t.as_str(), &d);
        }
        let mut pushed = PushedManifest {
            digest: digest.clone(),
            subject: parsed.subject.clone(),
            tags: tags.to_vec(),
            job: None,
            version: None,
        };
        // The hook runs for pushes by tag (an index's children pushed by digest come along
        // with it); a manifest pushed by digest alone stays in the push repository.
        let Some((normal_id, normal_name)) = normal.filter(|_| !tags.is_empty()) else {
            writes.run(&mut tx).await?;
            tx.commit().await?;
            return Ok(Ok(pushed));
        };
        let change = versions::PushChange::Push {
            digest: d.clone(),
            tags: tags.iter().map(|t| t.as_str().to_owned()).collect(),
        };
        if copy_inside {
            let job = versions::PostPushJob {
                push_repository: repo.as_str().to_owned(),
                normal_repository: normal_name,
                normal_id,
                change,
                sign,
            };
            let (id, version) = match self.post_push_in(&mut tx, &job, writes).await {
                Ok(done) => done,
                // Dropping the transaction rolls the push back with the failed copy.
                Err(e) => return Ok(Err(e)),
            };
            crate::fault::point("post_push_before_commit");
            tx.commit().await?;
            if let Some(v) = version {
                tracing::info!(repository = %job.normal_repository, version = v, "new repository version");
            }
            (pushed.job, pushed.version) = (Some(id), version);
        } else {
            writes.run(&mut tx).await?;
            let (id, job) = versions::enqueue_post_push(&mut tx, repo.as_str(), normal_id, change, sign).await?;
            tx.commit().await?;
            crate::fault::point("after_push_commit");
            (pushed.job, pushed.version) = (Some(id), self.run_post_push_now(id, &job).await);
        }
        Ok(Ok(pushed))
    }

    pub async fn get_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<StoredManifest> {
        let found = match reference {
            Reference::Tag(t) => self.inner.meta.manifest_by_tag(repo.as_str(), t.as_str()).await?,
            Reference::Digest(d) => {
                self.inner
                    .meta
                    .manifest_by_digest(repo.as_str(), &d.to_string())
                    .await?
            }
        };
        match found {
            Some(m) => Ok(m),
            None => Err(self.manifest_unknown(repo, reference).await),
        }
    }

    /// Delete a tag (the manifest stays), or a manifest by digest (with its tags).
    pub async fn delete_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        let mut tx = self.inner.meta.begin_write().await?;
        let repo_id = tx
            .repository_id(repo.as_str())
            .await?
            .ok_or_else(|| name_unknown(repo))?;
        let removed = match reference {
            Reference::Tag(t) => tx.delete_tag(repo_id, t.as_str()).await?,
            Reference::Digest(d) => tx.unlink_manifest(repo_id, &d.to_string()).await?,
        };
        if !removed {
            return Err(
                Error::code(ErrorCode::ManifestUnknown).with_detail(json!({ "reference": reference.to_string() }))
            );
        }
        // A deletion in a push repository flows to its normal repository as a version.
        let job = match versions::repository_kind(&mut tx, repo_id).await? {
            (kind, Some(n)) if kind == versions::KIND_PUSH => {
                let change = match reference {
                    Reference::Tag(t) => versions::PushChange::DeleteTag {
                        tag: t.as_str().to_owned(),
                    },
                    Reference::Digest(d) => versions::PushChange::DeleteManifest { digest: d.to_string() },
                };
                Some(versions::enqueue_post_push(&mut tx, repo.as_str(), n, change, None).await?)
            }
            _ => None,
        };
        tx.commit().await?;
        if let Some((id, job)) = job {
            self.run_post_push_now(id, &job).await;
        }
        Ok(())
    }

    async fn manifest_unknown(&self, repo: &RepoName, reference: &Reference) -> Error {
        match self.inner.meta.repository_exists(repo.as_str()).await {
            Ok(false) => name_unknown(repo),
            _ => Error::code(ErrorCode::ManifestUnknown).with_detail(json!({ "reference": reference.to_string() })),
        }
    }

    // === listings ===

    pub async fn tags(&self, repo: &RepoName, last: Option<&str>, limit: Option<u32>) -> Result<Vec<String>> {
        self.inner
            .meta
            .tags(repo.as_str(), last, limit)
            .await?
            .ok_or_else(|| name_unknown(repo))
    }

    pub async fn catalog(&self, last: Option<&str>, limit: Option<u32>) -> Result<Vec<String>> {
        Ok(self.inner.meta.catalog(last, limit).await?)
    }

    pub async fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Referrer>> {
        Ok(self.inner.meta.referrers(repo.as_str(), &subject.to_string()).await?)
    }
}

/// `missing` (references the pushed manifest makes that its repository lacks), when the
/// normal repository `normal` of a push repository holds them all: to be linked into
/// the push repository. Otherwise MANIFEST_BLOB_UNKNOWN naming the first one absent.
async fn link_from_normal<'a>(
    tx: &mut WriteTx,
    repo: &RepoName,
    normal: Option<i64>,
    kind: Linked,
    missing: &'a [String],
) -> Result<&'a [String]> {
    if missing.is_empty() {
        return Ok(missing);
    }
    let held = match normal {
        Some(n) => tx.linked_among(n, kind, missing).await?,
        None => Default::default(),
    };
    match missing.iter().find(|d| !held.contains(*d)) {
        None => Ok(missing),
        Some(d) => {
            let what = match kind {
                Linked::Blobs => "blob",
                Linked::Manifests => "manifest",
            };
            Err(Error::new(
                ErrorCode::ManifestBlobUnknown,
                format!("{what} {d} is not in repository {repo}"),
            )
            .with_detail(json!({ "digest": d })))
        }
    }
}
