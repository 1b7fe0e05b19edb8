//! Content operations on versioned repositories (Pulp's recipes), background jobs and
//! content-changed events:
//! - `GET /api/v1/repositories/{org}/{product}/{name}/versions` (also `{org}/{name}`);
//! - `GET …/versions/{n}`: one version with its tags;
//! - `POST …/rollback {"version": n}`: a new version equal to version n;
//! - `POST …/copy {"from", "tags"?, "digests"?}`: tags or manifests from another
//!   repository, with their closure (an index brings its children) and blobs;
//! - `POST …/remove {"tags"?, "digests"?, "force"?}`: remove tags (only the tags) or
//!   manifests (with the tags on them and their blobs nothing else references; refused
//!   while an index in the repository lists one, unless forced);
//! - `POST …/tag {"digest", "tag"}`, `POST …/untag {"tag"}`;
//! - `POST …/sign {"tags"?, "digests"?, "key", "registry"?}`: simple signing signatures
//!   by one of the organisation's keys, naming the public repository;
//! - `DELETE /api/v1/repositories/{org}/{product}/{name}`: the whole repository.
//!
//! Each operation is one new version, or nothing at all when it is refused.
//! - `GET /api/v1/jobs?state=&limit=`, `GET /api/v1/events?after=&limit=` (global admins).

use super::{Admin, ApiError, ApiResult};
use crate::gateway::Gateway;
use crate::gateway::mapping::RepoPath;
use crate::policy::Action;
use crate::signing::{SigningKeys, StoredSignature};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// A repository in a path: `org/product/name` or `org/name`, several segments.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // only documents the path
pub(super) struct RepoParam {
    /// `org/product/name` or `org/name`, its slashes as they are.
    repository: String,
}

const OPS: &[&str] = &[
    "versions",
    "signatures",
    "manifests",
    "readme",
    "rollback",
    "copy",
    "remove",
    "tag",
    "untag",
    "import",
    "sign",
];

/// A repository path and the operation after it: `…/{op}`, `…/versions/{n}` or
/// `…/manifests/{digest}`. The operation is found from the end, so that repositories
/// may be named like operations (`acme/web/copy/copy`).
fn split(rest: &str) -> ApiResult<(RepoPath, Vec<&str>)> {
    let parts: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let n = parts.len();
    let last_is_op = n >= 3 && OPS.contains(&parts[n - 1]);
    let at = if last_is_op && RepoPath::parse(&parts[..n - 1].join("/")).is_ok() {
        n - 1
    } else if n >= 4 && matches!(parts[n - 2], "versions" | "manifests") {
        n - 2
    } else if last_is_op {
        n - 1
    } else {
        return Err(ApiError::not_found(
            "use …/versions, …/versions/{n}, …/rollback, …/copy, …/remove, …/tag, …/untag or …/sign",
        ));
    };
    let name = parts[..at].join("/");
    let path = RepoPath::parse(&name).map_err(|e| ApiError::invalid("repository", &e.message))?;
    Ok((path, parts[at..].to_vec()))
}

fn registry(gw: &Gateway) -> ApiResult<&crate::store::Registry> {
    gw.versioned().ok_or_else(|| {
        ApiError::not_found("repository versions need the in-process store (this gateway forwards to another registry)")
    })
}

async fn require(gw: &Gateway, a: &Admin, path: &RepoPath, action: Action) -> ApiResult<()> {
    let resource = gw.resource(path).await.map_err(ApiError::from)?;
    if gw.allowed(&a.principal, action, &resource) {
        Ok(())
    } else if action != Action::Pull && gw.allowed(&a.principal, Action::Pull, &resource) {
        // The caller sees the repository: say plainly that this is not theirs to change.
        Err(ApiError::forbidden(&format!(
            "you may pull {} but not {} (your role does not allow it)",
            path.public,
            action.as_str()
        )))
    } else {
        // Whether it exists is not the caller's business.
        Err(ApiError::not_found(&format!(
            "no repository {} you may {}",
            path.public,
            action.as_str()
        )))
    }
}

pub(super) async fn get_repository(
    State(gw): State<Gateway>,
    keys: Option<Extension<SigningKeys>>,
    a: Admin,
    Path(rest): Path<String>,
) -> ApiResult {
    let (path, tail) = split(&rest)?;
    require(&gw, &a, &path, Action::Pull).await?;
    let reg = registry(&gw)?;
    let normal = path.backend_name();
    match tail.as_slice() {
        ["versions"] => versions(reg, &path, &normal).await,
        ["versions", n] => version(reg, &path, &normal, n).await,
        ["signatures"] => signature_status(reg, keys.map(|Extension(k)| k), &path, &normal).await,
        ["manifests", digest] => manifest_detail(reg, &path, &normal, digest).await,
        ["readme"] => readme(reg, &path, &normal).await,
        _ => Err(ApiError::not_found(
            "use …/versions, …/versions/{n}, …/signatures or …/manifests/{digest}",
        )),
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct Versions {
    repository: String,
    /// Newest first.
    versions: Vec<crate::store::versions::VersionInfo>,
}

#[utoipa::path(get, path = "/api/v1/repositories/{repository}/versions", tag = "content", params(RepoParam),
    responses((status = 200, description = "the repository's versions", body = Versions)))]
async fn versions(reg: &crate::store::Registry, path: &RepoPath, normal: &str) -> ApiResult {
    let versions = reg.versions(normal).await?;
    Ok(Json(Versions {
        repository: path.public.clone(),
        versions,
    })
    .into_response())
}

#[derive(Serialize, ToSchema)]
pub(super) struct VersionDetail {
    repository: String,
    version: crate::store::versions::VersionInfo,
    /// Tag → manifest digest, as the version has them.
    tags: std::collections::BTreeMap<String, String>,
    diff: crate::store::versions::VersionDiff,
}

#[utoipa::path(get, path = "/api/v1/repositories/{repository}/versions/{number}", tag = "content",
    params(RepoParam, ("number" = i64, Path, description = "a version number, from 1")),
    responses((status = 200, description = "one version: its tags and what it added and removed", body = VersionDetail)))]
async fn version(reg: &crate::store::Registry, path: &RepoPath, normal: &str, n: &str) -> ApiResult {
    let n: i64 = n
        .parse()
        .map_err(|_| ApiError::invalid("version", "must be a number"))?;
    let info = reg
        .versions(normal)
        .await?
        .into_iter()
        .find(|v| v.number == n)
        .ok_or_else(|| ApiError::not_found(&format!("{} has no version {n}", path.public)))?;
    let tags = reg.version_tags(normal, n).await?.into_iter().collect();
    let diff = reg.version_diff(normal, n).await?;
    Ok(Json(VersionDetail {
        repository: path.public.clone(),
        version: info,
        tags,
        diff,
    })
    .into_response())
}

#[derive(Serialize, ToSchema)]
pub(super) struct RepositoryReadme {
    repository: String,
    readme: Option<crate::store::readmes::Readme>,
}

#[utoipa::path(get, path = "/api/v1/repositories/{repository}/readme", tag = "content", params(RepoParam),
    responses((status = 200, description = "the README (`null` when there is none)", body = RepositoryReadme)))]
async fn readme(reg: &crate::store::Registry, path: &RepoPath, normal: &str) -> ApiResult {
    Ok(Json(RepositoryReadme {
        repository: path.public.clone(),
        readme: reg.readme(normal).await?,
    })
    .into_response())
}

#[utoipa::path(delete, path = "/api/v1/repositories/{repository}", tag = "content", params(RepoParam),
    responses((status = 200, description = "deleted, with what it held", body = DeletedRepository)))]
/// `DELETE /api/v1/repositories/{org}/{product}/{name}` (org admins): the repository,
/// its versions, push repositories and distributions; refused while a remote syncs into
/// it (the next sync would bring it back). Manifests and blobs nothing else uses are
/// GC's to free.
pub(super) async fn delete_repository(
    State(gw): State<Gateway>,
    sync: Option<Extension<crate::sync::Syncer>>,
    a: Admin,
    Path(rest): Path<String>,
) -> ApiResult {
    let path = RepoPath::parse(rest.trim_matches('/')).map_err(|e| ApiError::invalid("repository", &e.message))?;
    require(&gw, &a, &path, Action::Delete).await?;
    registry(&gw)?;
    let normal = path.backend_name();
    if let Some(Extension(sync)) = &sync
        && sync.mirrored_repositories(&path.org).await?.contains(&normal)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "mirrored",
            format!(
                "a remote syncs into {}: delete the remote first, or the next sync brings the repository back",
                path.public
            ),
        ));
    }
    let removed = gw.delete_repository(&path).await.map_err(|e| {
        if e.code == crate::error::ErrorCode::NameUnknown {
            ApiError::not_found(&format!("no repository {}", path.public))
        } else {
            e.into()
        }
    })?;
    a.audit(
        &gw,
        "delete_repository",
        Some(&path.org),
        format!(
            "{} ({} versions, {} tags, {} manifests)",
            path.public, removed.versions, removed.tags, removed.manifests
        ),
    );
    Ok(Json(DeletedRepository {
        repository: path.public,
        deleted: DeletedCounts {
            versions: removed.versions,
            tags: removed.tags,
            manifests: removed.manifests,
            distributions: removed.distributions,
        },
    })
    .into_response())
}

#[derive(Serialize, ToSchema)]
pub(super) struct DeletedRepository {
    repository: String,
    deleted: DeletedCounts,
}

#[derive(Serialize, ToSchema)]
pub(super) struct DeletedCounts {
    versions: i64,
    tags: i64,
    manifests: i64,
    /// Names that served it and no longer exist.
    distributions: Vec<String>,
}

/// Configs larger than this are not returned inline.
const MAX_INLINE_CONFIG: u64 = 1024 * 1024;

#[utoipa::path(get, path = "/api/v1/repositories/{repository}/manifests/{digest}", tag = "content",
    params(RepoParam, ("digest" = String, Path)),
    responses((status = 200, description = "a manifest as people inspect it", body = ManifestDetail)))]
/// `GET …/manifests/{digest}`: a manifest of the repository as people inspect it: its
/// media type, size, tags, the manifest itself, an image's config (architecture, OS,
/// history), and an index's platforms.
async fn manifest_detail(reg: &crate::store::Registry, path: &RepoPath, normal: &str, digest: &str) -> ApiResult {
    check_digest(digest)?;
    let name: crate::oci::RepoName = normal
        .parse()
        .map_err(|e: crate::oci::name::NameError| ApiError::invalid("repository", &e.to_string()))?;
    let reference: crate::oci::Reference = digest
        .parse()
        .map_err(|e: crate::oci::name::ReferenceError| ApiError::invalid("digest", &e.to_string()))?;
    let stored = reg.get_manifest(&name, &reference).await.map_err(|e| {
        if e.code == crate::error::ErrorCode::ManifestUnknown {
            ApiError::not_found(&format!("{} has no manifest {digest}", path.public))
        } else {
            e.into()
        }
    })?;
    let manifest: Value = serde_json::from_slice(&stored.content).unwrap_or(Value::Null);
    let tags: Vec<String> = reg
        .tag_map(normal)
        .await?
        .into_iter()
        .filter(|(_, d)| d == digest)
        .map(|(t, _)| t)
        .collect();
    let mut config = Value::Null;
    if let (Some(d), Some(size)) = (
        manifest["config"]["digest"].as_str(),
        manifest["config"]["size"].as_u64(),
    ) && size <= MAX_INLINE_CONFIG
        && let Ok(d) = d.parse::<crate::oci::Digest>()
    {
        use futures_util::TryStreamExt as _;
        if let Ok(stream) = reg.read_blob(&d, size, None).await {
            let bytes: Vec<u8> = stream.map_ok(|b| b.to_vec()).try_concat().await.unwrap_or_default();
            config = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        }
    }
    Ok(Json(ManifestDetail {
        repository: path.public.clone(),
        digest: stored.digest.to_string(),
        media_type: stored.media_type.to_string(),
        size: stored.content.len() as u64,
        tags,
        manifest,
        config,
    })
    .into_response())
}

#[derive(Serialize, ToSchema)]
pub(super) struct ManifestDetail {
    repository: String,
    digest: String,
    media_type: String,
    size: u64,
    tags: Vec<String>,
    /// The manifest or index as stored.
    #[schema(value_type = Object)]
    manifest: Value,
    /// An image's config (up to 1 MiB), else `null`.
    #[schema(value_type = Option<Object>)]
    config: Value,
}

#[utoipa::path(get, path = "/api/v1/repositories/{repository}/signatures", tag = "content", params(RepoParam),
    responses((status = 200, description = "each tag's signatures, checked", body = SignatureStatus)))]
/// `GET …/signatures`: each tag with its signatures, each checked against the
/// organisation's keys (Galaxy NG's signature status): which key made it, for which
/// name, or `valid: false` when none of the keys verifies it.
async fn signature_status(
    reg: &crate::store::Registry,
    keys: Option<SigningKeys>,
    path: &RepoPath,
    normal: &str,
) -> ApiResult {
    let org_keys = match &keys {
        Some(k) => k.list(&path.org).await?,
        None => Vec::new(),
    };
    let name: crate::oci::RepoName = normal
        .parse()
        .map_err(|e: crate::oci::name::NameError| ApiError::invalid("repository", &e.to_string()))?;
    let mut tags = Vec::new();
    for (tag, digest) in reg.tag_map(normal).await? {
        // A sigstore attachment is shown with the manifest it signs, not as an image.
        if crate::store::sigstore::signed_by_tag(&tag).is_some() {
            continue;
        }
        let d: crate::oci::Digest = digest
            .parse()
            .map_err(|e: crate::oci::digest::DigestError| ApiError::internal(&e))?;
        let simple = reg.signatures(&name, &d).await?;
        let sigstore = reg.sigstore_signatures(&name, &d).await?;
        let org_keys = org_keys.clone();
        let manifest = digest.clone();
        // Verifying is CPU work: off the request threads.
        let checked = tokio::task::spawn_blocking(move || {
            let found = simple
                .iter()
                .map(|s| ("atomic", s.name.clone(), StoredSignature::Simple(s)))
                .chain(
                    sigstore
                        .iter()
                        .map(|s| ("sigstore", s.id(), StoredSignature::Sigstore(s))),
                );
            found
                .map(|(kind, id, sig)| {
                    let verified = org_keys.iter().find_map(|k| {
                        crate::signing::claim_of(k, sig)
                            .filter(|c| c.manifest_digest == manifest)
                            .map(|c| (k, c))
                    });
                    match verified {
                        Some((k, claim)) => SignatureCheck {
                            name: id,
                            kind,
                            valid: true,
                            key: Some(k.name.clone()),
                            fingerprint: Some(k.fingerprint.clone()),
                            identity: Some(claim.docker_reference),
                        },
                        None => SignatureCheck {
                            name: id,
                            kind,
                            valid: false,
                            key: None,
                            fingerprint: None,
                            identity: None,
                        },
                    }
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ApiError::internal(&e))?;
        tags.push(TagSignatures {
            tag,
            digest,
            signatures: checked,
        });
    }
    Ok(Json(SignatureStatus {
        repository: path.public.clone(),
        tags,
    })
    .into_response())
}

#[derive(Serialize, ToSchema)]
pub(super) struct SignatureStatus {
    repository: String,
    tags: Vec<TagSignatures>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct TagSignatures {
    tag: String,
    digest: String,
    signatures: Vec<SignatureCheck>,
}

/// One signature of a manifest, checked against the organisation's keys.
#[derive(Serialize, ToSchema)]
pub(super) struct SignatureCheck {
    name: String,
    /// `atomic` (simple signing) or `sigstore`.
    #[serde(rename = "type")]
    kind: &'static str,
    valid: bool,
    /// The key that verifies it; `null` when none does.
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    /// The name it was signed for.
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Rollback {
    version: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Copy {
    from: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    digests: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Remove {
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    digests: Vec<String>,
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TagRequest {
    digest: String,
    tag: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UntagRequest {
    tag: String,
}

#[derive(Deserialize, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SignRequest {
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    digests: Vec<String>,
    /// The organisation's signing key.
    key: String,
    /// The registry host clients pull from (`host[:port]`); by default the `public_url`
    /// setting's, else the host this request was sent to.
    #[serde(default)]
    registry: Option<String>,
}

impl SignRequest {
    fn targets(&self) -> Vec<String> {
        self.tags.iter().chain(&self.digests).cloned().collect()
    }
}

/// The registry host signatures name: what clients put before the repository name.
fn registry_host(gw: &Gateway, headers: &HeaderMap, given: Option<&str>) -> ApiResult<String> {
    let host = match given {
        Some(h) => h.to_owned(),
        None => gw
            .registry_host(headers)
            .ok_or_else(|| ApiError::invalid("registry", "give the registry host clients pull from"))?,
    };
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !ok {
        return Err(ApiError::invalid("registry", "a host name with an optional port"));
    }
    Ok(host)
}

/// One `Sign` operation per tag or digest: a signature by the org's key (simple signing
/// or sigstore, as the key is) for the public name clients pull (never the push
/// repository's).
async fn sign_ops(
    gw: &Gateway,
    keys: &SigningKeys,
    reg: &crate::store::Registry,
    path: &RepoPath,
    headers: &HeaderMap,
    req: SignRequest,
) -> ApiResult<Vec<crate::store::versions::ContentOp>> {
    if req.tags.is_empty() && req.digests.is_empty() {
        return Err(ApiError::invalid("tags", "give tags or digests to sign"));
    }
    // The key must be the repository's organisation's.
    keys.get(&path.org, &req.key).await.map_err(|_| {
        ApiError::invalid(
            "key",
            &format!("organisation {} has no signing key {:?}", path.org, req.key),
        )
    })?;
    let host = registry_host(gw, headers, req.registry.as_deref())?;
    let normal = path.backend_name();
    let mut targets = Vec::new();
    for t in &req.tags {
        check_tag(t)?;
        let d = reg
            .resolve_tag(&normal, t)
            .await?
            .ok_or_else(|| ApiError::not_found(&format!("{} has no tag {t}", path.public)))?;
        targets.push((d, format!("{host}/{}:{t}", path.public)));
    }
    for d in &req.digests {
        check_digest(d)?;
        if !reg.has_manifest(&normal, d).await? {
            return Err(ApiError::not_found(&format!("{} has no manifest {d}", path.public)));
        }
        targets.push((d.clone(), format!("{host}/{}", path.public)));
    }
    let mut ops = Vec::new();
    for (digest, reference) in targets {
        let signature = keys.sign(&path.org, &req.key, &digest, &reference).await?;
        ops.push(crate::store::versions::ContentOp::Sign {
            manifest: digest,
            signature,
        });
    }
    Ok(ops)
}

fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> ApiResult<T> {
    serde_json::from_value(v).map_err(|e| ApiError::invalid("body", &e.to_string()))
}

fn check_tag(tag: &str) -> ApiResult<()> {
    tag.parse::<crate::oci::Tag>()
        .map(|_| ())
        .map_err(|e| ApiError::invalid("tag", &e.to_string()))
}

fn check_digest(d: &str) -> ApiResult<()> {
    d.parse::<crate::oci::Digest>()
        .map(|_| ())
        .map_err(|e| ApiError::invalid("digests", &e.to_string()))
}

/// JSON bodies of content operations are small.
const MAX_JSON: usize = 1024 * 1024;

pub(super) async fn post_repository(
    State(gw): State<Gateway>,
    keys: Option<Extension<SigningKeys>>,
    a: Admin,
    Path(rest): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    raw: axum::body::Body,
) -> ApiResult {
    let (path, tail) = split(&rest)?;
    let op = match tail.as_slice() {
        [op] if !matches!(*op, "versions" | "signatures" | "manifests") => *op,
        _ => {
            return Err(ApiError::not_found(
                "use …/rollback, …/copy, …/remove, …/tag, …/untag, …/sign or …/import",
            ));
        }
    };
    require(&gw, &a, &path, Action::Push).await?;
    let reg = registry(&gw)?;
    if op == "import" {
        return import(&gw, &a, &path, query.get("tag").map(String::as_str), raw).await;
    }
    let bytes = axum::body::to_bytes(raw, MAX_JSON)
        .await
        .map_err(|_| ApiError::invalid("body", "a JSON body of at most 1 MiB"))?;
    let body: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid("body", &format!("not JSON: {e}")))?;
    let normal = path.backend_name();
    let (ops, reason) = match op {
        "readme" => {
            let req = parse(body)
                .map_err(|_| ApiError::invalid("content", "the README's Markdown text (\"\" removes it)"))?;
            return edit_readme(&gw, &a, reg, &path, req).await;
        }
        "rollback" => return rollback(&gw, &a, reg, &path, parse(body)?).await,
        "copy" => copy(&gw, &a, reg, &path, parse(body)?).await?,
        "remove" => remove(&path, parse(body)?)?,
        "sign" => {
            let Some(Extension(keys)) = keys else {
                return Err(ApiError::not_found("signing needs the in-process store"));
            };
            sign(&gw, &keys, reg, &path, &headers, parse(body)?).await?
        }
        "tag" => tag(reg, &path, parse(body)?).await?,
        _ => untag(parse(body)?)?,
    };
    let version = reg.modify(&normal, &ops, &reason).await?;
    a.audit(&gw, op, Some(&path.org), format!("{}: {reason}", path.public));
    let status = if version.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(ContentChange {
            repository: path.public,
            version,
            changed: version.is_some(),
        }),
    )
        .into_response())
}

/// What a content operation did: a new version, or nothing (it changed nothing).
#[derive(Serialize, ToSchema)]
pub(super) struct ContentChange {
    repository: String,
    version: Option<i64>,
    changed: bool,
}

type Ops = (Vec<crate::store::versions::ContentOp>, String);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadmeEdit {
    /// Markdown; `""` removes the README.
    content: String,
}

#[utoipa::path(post, path = "/api/v1/repositories/{repository}/readme", tag = "content", params(RepoParam),
    request_body = ReadmeEdit,
    responses((status = 200, description = "the README as saved", body = RepositoryReadme)))]
async fn edit_readme(
    gw: &Gateway,
    a: &Admin,
    reg: &crate::store::Registry,
    path: &RepoPath,
    req: ReadmeEdit,
) -> ApiResult {
    if req.content.len() > crate::store::readmes::MAX_README_BYTES {
        return Err(ApiError::invalid("content", "larger than 64 KiB"));
    }
    let normal = path.backend_name();
    reg.set_readme(&normal, &req.content, &a.actor).await?;
    a.audit(gw, "edit_readme", Some(&path.org), path.public.clone());
    readme(reg, path, &normal).await
}

#[derive(Serialize, ToSchema)]
pub(super) struct RolledBack {
    repository: String,
    /// The new version.
    version: i64,
    rolled_back_to: i64,
}

#[utoipa::path(post, path = "/api/v1/repositories/{repository}/rollback", tag = "content", params(RepoParam),
    request_body = Rollback,
    responses((status = 201, description = "a new version equal to the one given", body = RolledBack)))]
async fn rollback(gw: &Gateway, a: &Admin, reg: &crate::store::Registry, path: &RepoPath, req: Rollback) -> ApiResult {
    if req.version < 1 {
        return Err(ApiError::invalid("version", "versions are numbered from 1"));
    }
    let version = reg.rollback(&path.backend_name(), req.version).await?;
    a.audit(
        gw,
        "rollback",
        Some(&path.org),
        format!("{} to version {} (now version {version})", path.public, req.version),
    );
    Ok((
        StatusCode::CREATED,
        Json(RolledBack {
            repository: path.public.clone(),
            version,
            rolled_back_to: req.version,
        }),
    )
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/repositories/{repository}/copy", tag = "content", params(RepoParam),
    request_body = Copy,
    responses((status = 201, description = "copied: a new version", body = ContentChange),
              (status = 200, description = "nothing to change", body = ContentChange)))]
async fn copy(gw: &Gateway, a: &Admin, reg: &crate::store::Registry, path: &RepoPath, req: Copy) -> ApiResult<Ops> {
    use crate::store::versions::ContentOp;
    if req.tags.is_empty() && req.digests.is_empty() {
        return Err(ApiError::invalid("tags", "give tags or digests to copy"));
    }
    let src = RepoPath::parse(&req.from).map_err(|e| ApiError::invalid("from", &e.message))?;
    require(gw, a, &src, Action::Pull).await?;
    let src_name = src.backend_name();
    let mut ops = Vec::new();
    for t in &req.tags {
        check_tag(t)?;
        let d = reg
            .resolve_tag(&src_name, t)
            .await?
            .ok_or_else(|| ApiError::not_found(&format!("{} has no tag {t}", src.public)))?;
        ops.push(ContentOp::Add {
            digest: d.clone(),
            tags: vec![t.clone()],
        });
        ops.push(ContentOp::CopySignatures {
            from: src_name.clone(),
            digest: d,
        });
    }
    for d in &req.digests {
        check_digest(d)?;
        if !reg.has_manifest(&src_name, d).await? {
            return Err(ApiError::not_found(&format!("{} has no manifest {d}", src.public)));
        }
        ops.push(ContentOp::Add {
            digest: d.clone(),
            tags: Vec::new(),
        });
        ops.push(ContentOp::CopySignatures {
            from: src_name.clone(),
            digest: d.clone(),
        });
    }
    // The destination may not exist yet: it is created like on a first push.
    gw.identities()
        .ensure_product(&path.org, &path.product)
        .await
        .map_err(ApiError::from)?;
    gw.ensure_push_pair(path, Some(&path.backend_name())).await?;
    Ok((ops, format!("copy from {}", src.public)))
}

#[utoipa::path(post, path = "/api/v1/repositories/{repository}/remove", tag = "content", params(RepoParam),
    request_body = Remove,
    responses((status = 201, description = "removed: a new version", body = ContentChange),
              (status = 200, description = "nothing to change", body = ContentChange)))]
fn remove(_path: &RepoPath, req: Remove) -> ApiResult<Ops> {
    use crate::store::versions::ContentOp;
    if req.tags.is_empty() && req.digests.is_empty() {
        return Err(ApiError::invalid("tags", "give tags or digests to remove"));
    }
    let mut ops = Vec::new();
    for t in &req.tags {
        check_tag(t)?;
        ops.push(ContentOp::RemoveTag { tag: t.clone() });
    }
    for d in &req.digests {
        check_digest(d)?;
        ops.push(ContentOp::RemoveManifest {
            digest: d.clone(),
            force: req.force,
        });
    }
    Ok((ops, "remove".to_owned()))
}

#[utoipa::path(post, path = "/api/v1/repositories/{repository}/sign", tag = "content", params(RepoParam),
    request_body = SignRequest,
    responses((status = 201, description = "signed: a new version with the signatures", body = ContentChange),
              (status = 200, description = "nothing to change", body = ContentChange)))]
async fn sign(
    gw: &Gateway,
    keys: &SigningKeys,
    reg: &crate::store::Registry,
    path: &RepoPath,
    headers: &HeaderMap,
    req: SignRequest,
) -> ApiResult<Ops> {
    let reason = format!("sign {} with {}", req.targets().join(", "), req.key);
    let ops = sign_ops(gw, keys, reg, path, headers, req).await?;
    Ok((ops, reason))
}

#[utoipa::path(post, path = "/api/v1/repositories/{repository}/tag", tag = "content", params(RepoParam),
    request_body = TagRequest,
    responses((status = 201, description = "tagged: a new version", body = ContentChange),
              (status = 200, description = "the tag was there already", body = ContentChange)))]
async fn tag(reg: &crate::store::Registry, path: &RepoPath, req: TagRequest) -> ApiResult<Ops> {
    use crate::store::versions::ContentOp;
    check_tag(&req.tag)?;
    check_digest(&req.digest).map_err(|_| ApiError::invalid("digest", "not a digest"))?;
    if !reg.has_manifest(&path.backend_name(), &req.digest).await? {
        return Err(ApiError::not_found(&format!(
            "{} has no manifest {}",
            path.public, req.digest
        )));
    }
    let reason = format!("tag {} as {}", req.digest, req.tag);
    Ok((
        vec![ContentOp::Add {
            digest: req.digest,
            tags: vec![req.tag],
        }],
        reason,
    ))
}

#[utoipa::path(post, path = "/api/v1/repositories/{repository}/untag", tag = "content", params(RepoParam),
    request_body = UntagRequest,
    responses((status = 201, description = "untagged: a new version", body = ContentChange),
              (status = 200, description = "there was no such tag", body = ContentChange)))]
fn untag(req: UntagRequest) -> ApiResult<Ops> {
    use crate::store::versions::ContentOp;
    check_tag(&req.tag)?;
    let reason = format!("untag {}", req.tag);
    Ok((vec![ContentOp::RemoveTag { tag: req.tag }], reason))
}

#[utoipa::path(post, path = "/api/v1/repositories/{repository}/import", tag = "content",
    params(RepoParam, ("tag" = Option<String>, Query, description = "names the images the archive leaves unnamed")),
    request_body(content = Vec<u8>, content_type = "application/x-tar", description = "a docker-archive or OCI archive tarball"),
    responses((status = 201, description = "imported: a new version", body = Imported),
              (status = 200, description = "nothing new", body = Imported)))]
/// `POST …/import[?tag=T]`: the body is a docker-archive or OCI archive tarball.
async fn import(gw: &Gateway, a: &Admin, path: &RepoPath, tag: Option<&str>, raw: axum::body::Body) -> ApiResult {
    let tag = match tag {
        Some(t) => Some(
            t.parse::<crate::oci::Tag>()
                .map_err(|e| ApiError::invalid("tag", &e.to_string()))?,
        ),
        None => None,
    };
    gw.identities()
        .ensure_product(&path.org, &path.product)
        .await
        .map_err(ApiError::from)?;
    let normal = path.backend_name();
    gw.ensure_push_pair(path, Some(&normal)).await?;
    let reg = registry(gw)?;
    use futures_util::{StreamExt, TryStreamExt};
    let stream = raw.into_data_stream().map_err(std::io::Error::other).boxed();
    let report = reg.import_archive(&normal, stream, tag).await?;
    a.audit(
        gw,
        "import",
        Some(&path.org),
        format!("{}: {} ({} tags)", path.public, report.format, report.tags.len()),
    );
    let status = if report.version.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Imported {
            repository: path.public.clone(),
            import: report,
        }),
    )
        .into_response())
}

#[derive(Serialize, ToSchema)]
pub(super) struct Imported {
    repository: String,
    import: crate::store::import::ImportReport,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct JobQuery {
    state: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, description = "jobs, newest first (global admins)", body = Jobs)))]
pub(super) async fn list_jobs(State(gw): State<Gateway>, a: Admin, Query(q): Query<JobQuery>) -> ApiResult {
    a.require_global_admin()?;
    if let Some(s) = &q.state
        && !matches!(s.as_str(), "queued" | "running" | "done" | "failed")
    {
        return Err(ApiError::invalid("state", "use queued, running, done or failed"));
    }
    let jobs = registry(&gw)?
        .jobs(q.state.as_deref(), q.limit.unwrap_or(100).clamp(1, 1000))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(Jobs { jobs }).into_response())
}

#[derive(Serialize, ToSchema)]
pub(super) struct Jobs {
    jobs: Vec<crate::store::jobs::JobInfo>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ContentEvents {
    events: Vec<crate::store::jobs::ContentEvent>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct EventQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/events", tag = "jobs", params(EventQuery),
    responses((status = 200, description = "content-changed events after `after`, oldest first (global admins)", body = ContentEvents)))]
pub(super) async fn list_events(
    State(gw): State<Gateway>,
    a: Admin,
    Query(q): Query<EventQuery>,
) -> ApiResult<Response> {
    a.require_global_admin()?;
    let events = registry(&gw)?
        .content_events(q.after.unwrap_or(0), q.limit.unwrap_or(100).clamp(1, 1000))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(ContentEvents { events }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DistributionRequest {
    repository: String,
    #[serde(default)]
    version: Option<i64>,
}

fn distribution_name(name: &str) -> ApiResult<RepoPath> {
    RepoPath::parse(name.trim_matches('/')).map_err(|e| ApiError::invalid("name", &e.message))
}

/// A distribution as the API shows it: under its public name.
fn distribution_json(public: &str, d: &crate::store::versions::Distribution) -> crate::store::versions::Distribution {
    crate::store::versions::Distribution {
        name: public.to_owned(),
        ..d.clone()
    }
}

/// `PUT /api/v1/distributions/{name}`: serve `name` from a normal repository's latest
/// version, or from a pinned one.
#[utoipa::path(put, path = "/api/v1/distributions/{name}", tag = "content", params(("name" = String, Path, description = "the public name, `org/product/name` or `org/name`")),
    request_body = DistributionRequest,
    responses((status = 200, description = "the distribution", body = crate::store::versions::Distribution)))]
pub(super) async fn put_distribution(
    State(gw): State<Gateway>,
    a: Admin,
    Path(name): Path<String>,
    raw: axum::body::Body,
) -> ApiResult {
    let path = distribution_name(&name)?;
    let bytes = axum::body::to_bytes(raw, MAX_JSON)
        .await
        .map_err(|_| ApiError::invalid("body", "a JSON body of at most 1 MiB"))?;
    let req: DistributionRequest =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid("body", &e.to_string()))?;
    let source = RepoPath::parse(&req.repository).map_err(|e| ApiError::invalid("repository", &e.message))?;
    require(&gw, &a, &path, Action::Push).await?;
    require(&gw, &a, &source, Action::Pull).await?;
    if let Some(v) = req.version
        && v < 1
    {
        return Err(ApiError::invalid("version", "versions are numbered from 1"));
    }
    gw.identities()
        .ensure_product(&path.org, &path.product)
        .await
        .map_err(ApiError::from)?;
    let d = registry(&gw)?
        .set_distribution(&path.backend_name(), &source.backend_name(), req.version)
        .await?;
    gw.distribution_changed(&path.backend_name());
    a.audit(
        &gw,
        "set_distribution",
        Some(&path.org),
        format!(
            "{} serves {} at {}",
            path.public,
            source.public,
            req.version.map_or("latest".to_owned(), |v| format!("version {v}"))
        ),
    );
    Ok(Json(distribution_json(&path.public, &d)).into_response())
}

#[utoipa::path(get, path = "/api/v1/distributions/{name}", tag = "content", params(("name" = String, Path, description = "the public name, `org/product/name` or `org/name`")),
    responses((status = 200, description = "the distribution", body = crate::store::versions::Distribution)))]
pub(super) async fn get_distribution(State(gw): State<Gateway>, a: Admin, Path(name): Path<String>) -> ApiResult {
    let path = distribution_name(&name)?;
    require(&gw, &a, &path, Action::Pull).await?;
    match registry(&gw)?.distribution(&path.backend_name()).await? {
        Some(d) => Ok(Json(distribution_json(&path.public, &d)).into_response()),
        None => Err(ApiError::not_found(&format!("{} is not a distribution", path.public))),
    }
}

#[utoipa::path(delete, path = "/api/v1/distributions/{name}", tag = "content", params(("name" = String, Path, description = "the public name, `org/product/name` or `org/name`")),
    responses((status = 204, description = "the name no longer serves anything")))]
pub(super) async fn delete_distribution(State(gw): State<Gateway>, a: Admin, Path(name): Path<String>) -> ApiResult {
    let path = distribution_name(&name)?;
    require(&gw, &a, &path, Action::Push).await?;
    if !registry(&gw)?.delete_distribution(&path.backend_name()).await? {
        return Err(ApiError::not_found(&format!("{} is not a distribution", path.public)));
    }
    gw.distribution_changed(&path.backend_name());
    a.audit(&gw, "delete_distribution", Some(&path.org), path.public.clone());
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::split;

    fn parsed(rest: &str) -> (String, Vec<String>) {
        let (path, tail) = split(rest).unwrap();
        (path.public, tail.into_iter().map(str::to_owned).collect())
    }

    #[test]
    fn operations_are_found_from_the_end_so_repositories_may_be_named_like_them() {
        assert_eq!(
            parsed("acme/web/app/versions"),
            ("acme/web/app".into(), vec!["versions".into()])
        );
        assert_eq!(
            parsed("acme/app/versions/3"),
            ("acme/app".into(), vec!["versions".into(), "3".into()])
        );
        assert_eq!(
            parsed("acme/web/copy/copy"),
            ("acme/web/copy".into(), vec!["copy".into()])
        );
        assert_eq!(
            parsed("acme/web/versions/versions"),
            ("acme/web/versions".into(), vec!["versions".into()])
        );
        assert_eq!(
            parsed("acme/web/tag/manifests/sha256:00"),
            ("acme/web/tag".into(), vec!["manifests".into(), "sha256:00".into()])
        );
        assert!(split("acme/web/app").is_err());
    }
}
