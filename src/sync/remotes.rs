//! Remotes: another registry's repository mirrored into a product's repository, with
//! tag filters, mirror or additive mode and the immediate or on_demand policy. The
//! password is sealed (`SecretBox`) and never returned.

use super::Syncer;
use super::engine::TagFilter;
use crate::db::now_ms;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// Blobs are fetched during the sync.
    Immediate,
    /// Manifests are synced; each blob is fetched on its first pull.
    OnDemand,
}

impl SyncPolicy {
    fn as_str(self) -> &'static str {
        match self {
            Self::Immediate => "immediate",
            Self::OnDemand => "on_demand",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "on_demand" {
            Self::OnDemand
        } else {
            Self::Immediate
        }
    }
}

/// A remote as the API shows it: no password, only whether there is one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Remote {
    #[serde(skip)]
    pub id: i64,
    pub org: String,
    pub product: String,
    pub name: String,
    pub url: String,
    pub upstream_name: String,
    /// The local normal repository it syncs into.
    pub repository: String,
    pub include_tags: Vec<String>,
    pub exclude_tags: Vec<String>,
    pub mirror: bool,
    pub policy: SyncPolicy,
    /// Only tags whose manifest the upstream has signatures of (Pulp's `signed_only`).
    pub signed_only: bool,
    /// The upstream's signature lookaside URL (Pulp's `sigstore`), read instead of the
    /// signature extension API.
    pub sigstore: Option<String>,
    pub username: Option<String>,
    pub has_password: bool,
    pub has_ca_certificate: bool,
    pub last_job: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Remote {
    pub fn filter(&self) -> TagFilter {
        TagFilter {
            include: self.include_tags.clone(),
            exclude: self.exclude_tags.clone(),
        }
    }
}

/// The settable fields of a remote (creation: all but the optional ones required).
/// Not `Debug`: it holds the password.
#[derive(Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteFields {
    pub name: Option<String>,
    pub url: Option<String>,
    pub upstream_name: Option<String>,
    pub include_tags: Option<Vec<String>>,
    pub exclude_tags: Option<Vec<String>>,
    pub mirror: Option<bool>,
    pub policy: Option<SyncPolicy>,
    pub signed_only: Option<bool>,
    /// `Some(None)` (JSON null) clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub sigstore: Option<Option<String>>,
    /// `Some(None)` (JSON null) clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub username: Option<Option<String>>,
    /// Write-only: never shown again.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, write_only)]
    pub password: Option<Option<String>>,
    /// PEM certificates to trust for the upstream's TLS.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub ca_certificate: Option<Option<String>>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{field}: {message}")]
    Field { field: &'static str, message: String },
    #[error("a remote named {0} already exists in this product")]
    Exists(String),
    #[error("no remote {0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error("{0}")]
    Store(crate::error::Error),
}

fn field(field: &'static str, message: impl Into<String>) -> RemoteError {
    RemoteError::Field {
        field,
        message: message.into(),
    }
}

/// Check what a caller sent; fields absent from an update keep their value.
fn validate(f: &RemoteFields) -> Result<(), RemoteError> {
    if let Some(url) = &f.url
        && !crate::oci::is_base_url(url)
    {
        return Err(field(
            "url",
            "must be the registry's base URL, https://host[:port] (or http:// for a plain-HTTP registry)",
        ));
    }
    if let Some(Some(url)) = &f.sigstore
        && reqwest::Url::parse(url).map_or(true, |u| {
            !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() || u.query().is_some()
        })
    {
        return Err(field(
            "sigstore",
            "must be the lookaside's base URL, https://host[:port][/path] (or http://)",
        ));
    }
    if let Some(n) = &f.upstream_name
        && n.parse::<crate::oci::RepoName>().is_err()
    {
        return Err(field(
            "upstream_name",
            "not a valid repository name (e.g. library/alpine)",
        ));
    }
    for (name, list) in [("include_tags", &f.include_tags), ("exclude_tags", &f.exclude_tags)] {
        for p in list.iter().flatten() {
            if p.is_empty() || p.len() > 128 || !p.chars().all(|c| c.is_ascii_alphanumeric() || "._-*?".contains(c)) {
                return Err(field(
                    name,
                    format!("{p:?} is not a tag pattern (tag characters, * and ?)"),
                ));
            }
        }
    }
    if let Some(Some(pem)) = &f.ca_certificate
        && reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_or(true, |c| c.is_empty())
    {
        return Err(field("ca_certificate", "not a PEM certificate"));
    }
    if matches!(&f.password, Some(Some(_))) && matches!(&f.username, Some(None) | None) && f.name.is_some() {
        return Err(field("username", "a password needs a username"));
    }
    Ok(())
}

const COLUMNS: &str = "SELECT id, org, product, name, url, upstream_name, repository, include_tags, exclude_tags, \
     mirror, policy, username, CASE WHEN password_sealed IS NULL THEN 0 ELSE 1 END, \
     CASE WHEN ca_certificate IS NULL THEN 0 ELSE 1 END, last_job, created_at, updated_at, signed_only, sigstore \
     FROM remotes";

fn remote(r: sqlx::any::AnyRow) -> Remote {
    let list = |s: &str| serde_json::from_str::<Vec<String>>(s).unwrap_or_default();
    Remote {
        id: r.get(0),
        org: r.get(1),
        product: r.get(2),
        name: r.get(3),
        url: r.get(4),
        upstream_name: r.get(5),
        repository: r.get(6),
        include_tags: list(r.get(7)),
        exclude_tags: list(r.get(8)),
        mirror: r.get::<i64, _>(9) != 0,
        policy: SyncPolicy::parse(r.get(10)),
        username: r.get(11),
        // 0/1 integers: a comparison is an integer on SQLite and a boolean on PostgreSQL.
        has_password: r.get::<i64, _>(12) != 0,
        has_ca_certificate: r.get::<i64, _>(13) != 0,
        last_job: r.get(14),
        created_at: r.get(15),
        updated_at: r.get(16),
        signed_only: r.get::<i64, _>(17) != 0,
        sigstore: r.get(18),
    }
}

impl Syncer {
    /// Create a remote syncing into the normal repository `repository` (which the
    /// caller has created).
    pub async fn create_remote(
        &self,
        org: &str,
        product: &str,
        repository: &str,
        f: &RemoteFields,
    ) -> Result<Remote, RemoteError> {
        let name = f.name.as_deref().ok_or_else(|| field("name", "required"))?;
        if !crate::identity::valid_label(name) {
            return Err(field("name", "lowercase letters, digits, '.', '_' and '-'"));
        }
        let url = f.url.as_deref().ok_or_else(|| field("url", "required"))?;
        let upstream = f
            .upstream_name
            .as_deref()
            .ok_or_else(|| field("upstream_name", "required"))?;
        validate(f)?;
        let sealed = match f.password.clone().flatten() {
            Some(p) => Some(self.inner.secrets.seal(&p)?),
            None => None,
        };
        let now = now_ms();
        let json = |v: &Option<Vec<String>>| serde_json::to_string(&v.clone().unwrap_or_default()).unwrap_or_default();
        let r = sqlx::query(
            "INSERT INTO remotes (org, product, name, url, upstream_name, repository, include_tags, exclude_tags, \
             mirror, policy, username, password_sealed, ca_certificate, created_at, updated_at, signed_only, sigstore) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16)",
        )
        .bind(org)
        .bind(product)
        .bind(name)
        .bind(url.trim_end_matches('/'))
        .bind(upstream)
        .bind(repository)
        .bind(json(&f.include_tags))
        .bind(json(&f.exclude_tags))
        .bind(i64::from(f.mirror.unwrap_or(false)))
        .bind(f.policy.unwrap_or(SyncPolicy::Immediate).as_str())
        .bind(f.username.clone().flatten())
        .bind(sealed)
        .bind(f.ca_certificate.clone().flatten())
        .bind(now)
        .bind(i64::from(f.signed_only.unwrap_or(false)))
        .bind(f.sigstore.clone().flatten().map(|u| u.trim_end_matches('/').to_owned()))
        .execute(self.inner.registry.meta().writer())
        .await;
        match r {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(RemoteError::Exists(name.to_owned())),
            Err(e) => Err(e.into()),
            Ok(_) => self
                .remote(org, product, name)
                .await?
                .ok_or_else(|| RemoteError::NotFound(name.to_owned())),
        }
    }

    pub async fn remote(&self, org: &str, product: &str, name: &str) -> Result<Option<Remote>, RemoteError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COLUMNS} WHERE org = $1 AND product = $2 AND name = $3"
        )))
        .bind(org)
        .bind(product)
        .bind(name)
        .fetch_optional(self.inner.registry.meta().reader())
        .await?;
        Ok(row.map(remote))
    }

    pub(super) async fn remote_by_id(&self, id: i64) -> Result<Option<Remote>, RemoteError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.inner.registry.meta().reader())
            .await?;
        Ok(row.map(remote))
    }

    /// The local repositories of `org` that remotes sync into.
    pub async fn mirrored_repositories(&self, org: &str) -> Result<std::collections::HashSet<String>, RemoteError> {
        let rows = sqlx::query("SELECT repository FROM remotes WHERE org = $1")
            .bind(org)
            .fetch_all(self.inner.registry.meta().reader())
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    pub async fn remotes(&self, org: &str, product: &str) -> Result<Vec<Remote>, RemoteError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COLUMNS} WHERE org = $1 AND product = $2 ORDER BY name"
        )))
        .bind(org)
        .bind(product)
        .fetch_all(self.inner.registry.meta().reader())
        .await?;
        Ok(rows.into_iter().map(remote).collect())
    }

    pub async fn update_remote(
        &self,
        org: &str,
        product: &str,
        name: &str,
        f: &RemoteFields,
    ) -> Result<Remote, RemoteError> {
        if f.name.as_deref().is_some_and(|n| n != name) {
            return Err(field("name", "a remote cannot be renamed"));
        }
        validate(f)?;
        let current = self
            .remote(org, product, name)
            .await?
            .ok_or_else(|| RemoteError::NotFound(name.to_owned()))?;
        let sealed = match &f.password {
            Some(Some(p)) => Some(Some(self.inner.secrets.seal(p)?)),
            Some(None) => Some(None),
            None => None,
        };
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_default();
        sqlx::query(
            "UPDATE remotes SET url = $1, upstream_name = $2, include_tags = $3, exclude_tags = $4, mirror = $5, \
             policy = $6, username = $7, \
             password_sealed = CASE WHEN $8 THEN $9 ELSE password_sealed END, \
             ca_certificate = CASE WHEN $10 THEN $11 ELSE ca_certificate END, updated_at = $12, signed_only = $14, \
             sigstore = $15 WHERE id = $13",
        )
        .bind(f.url.as_deref().unwrap_or(&current.url).trim_end_matches('/'))
        .bind(f.upstream_name.as_deref().unwrap_or(&current.upstream_name))
        .bind(json(f.include_tags.as_ref().unwrap_or(&current.include_tags)))
        .bind(json(f.exclude_tags.as_ref().unwrap_or(&current.exclude_tags)))
        .bind(i64::from(f.mirror.unwrap_or(current.mirror)))
        .bind(f.policy.unwrap_or(current.policy).as_str())
        .bind(f.username.clone().unwrap_or(current.username))
        .bind(sealed.is_some())
        .bind(sealed.flatten())
        .bind(f.ca_certificate.is_some())
        .bind(f.ca_certificate.clone().flatten())
        .bind(now_ms())
        .bind(current.id)
        .bind(i64::from(f.signed_only.unwrap_or(current.signed_only)))
        .bind(match &f.sigstore {
            Some(u) => u.as_ref().map(|u| u.trim_end_matches('/').to_owned()),
            None => current.sigstore.clone(),
        })
        .execute(self.inner.registry.meta().writer())
        .await?;
        self.remote(org, product, name)
            .await?
            .ok_or_else(|| RemoteError::NotFound(name.to_owned()))
    }

    /// Remove a remote (the repository and its versions stay).
    pub async fn delete_remote(&self, org: &str, product: &str, name: &str) -> Result<bool, RemoteError> {
        let r = sqlx::query("DELETE FROM remotes WHERE org = $1 AND product = $2 AND name = $3")
            .bind(org)
            .bind(product)
            .bind(name)
            .execute(self.inner.registry.meta().writer())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Queue a sync of the remote; a sync already waiting to run is reused.
    pub async fn enqueue_remote_sync(&self, remote: &Remote) -> Result<i64, RemoteError> {
        let payload = serde_json::json!({
            "remote": remote.id,
            "org": remote.org,
            "product": remote.product,
            "name": remote.name,
            "repository": remote.repository,
        })
        .to_string();
        let id = self.enqueue_once(super::runner::SYNC_REMOTE, &payload).await?;
        sqlx::query("UPDATE remotes SET last_job = $1 WHERE id = $2")
            .bind(id)
            .bind(remote.id)
            .execute(self.inner.registry.meta().writer())
            .await?;
        Ok(id)
    }

    /// The password of a remote, unsealed for a sync.
    pub(super) async fn remote_secret(&self, id: i64) -> Result<Option<String>, RemoteError> {
        let row = sqlx::query("SELECT password_sealed, ca_certificate FROM remotes WHERE id = $1")
            .bind(id)
            .fetch_optional(self.inner.registry.meta().reader())
            .await?;
        match row.and_then(|r| r.get::<Option<String>, _>(0)) {
            Some(s) => Ok(Some(self.inner.secrets.open(&s)?)),
            None => Ok(None),
        }
    }

    pub(super) async fn remote_ca(&self, id: i64) -> Result<Option<String>, RemoteError> {
        let row = sqlx::query("SELECT ca_certificate FROM remotes WHERE id = $1")
            .bind(id)
            .fetch_optional(self.inner.registry.meta().reader())
            .await?;
        Ok(row.and_then(|r| r.get(0)))
    }
}

impl From<crate::error::Error> for RemoteError {
    fn from(e: crate::error::Error) -> Self {
        Self::Store(e)
    }
}

impl Syncer {
    /// A blob's bytes from a remote an on_demand sync recorded it for.
    pub(super) async fn open_remote_blob(
        &self,
        digest: &crate::oci::Digest,
    ) -> crate::error::Result<Option<crate::store::blobs::ByteStream>> {
        use crate::error::{Error, ErrorCode};
        let d = digest.to_string();
        let ids: Vec<(i64,)> = sqlx::query_as("SELECT remote_id FROM remote_blobs WHERE digest = $1")
            .bind(&d)
            .fetch_all(self.inner.registry.meta().reader())
            .await?;
        let mut last = None;
        for (id,) in ids {
            let unavailable = |e: String| Error::new(ErrorCode::Unavailable, e);
            let Some(remote) = self.remote_by_id(id).await.map_err(|e| unavailable(e.to_string()))? else {
                continue;
            };
            let upstream = self
                .upstream_for(&remote)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            match upstream.blob(&remote.upstream_name, &d).await {
                Ok((_, stream)) => return Ok(Some(stream)),
                Err(e) => {
                    tracing::warn!(remote = %remote.name, digest = %d, error = %e, "on-demand fetch failed");
                    last = Some(e.to_string());
                }
            }
        }
        match last {
            Some(e) => Err(Error::new(
                ErrorCode::Unavailable,
                format!("the blob is not stored here yet and its remote failed: {e}"),
            )),
            None => Ok(None),
        }
    }

    /// A client for a remote, with its credentials and CA; kept for minutes, so that
    /// on-demand pulls reuse its connections and tokens (a change to the remote makes
    /// a new one).
    pub(super) async fn upstream_for(&self, remote: &Remote) -> Result<Arc<super::upstream::Upstream>, RemoteError> {
        let key = (remote.id, remote.updated_at);
        if let Some(up) = self.inner.upstreams.get(&key) {
            return Ok(up);
        }
        let up = Arc::new(self.new_upstream(remote).await?);
        self.inner.upstreams.insert(key, up.clone());
        Ok(up)
    }

    async fn new_upstream(&self, remote: &Remote) -> Result<super::upstream::Upstream, RemoteError> {
        let password = self.remote_secret(remote.id).await?;
        let ca = self.remote_ca(remote.id).await?;
        let http =
            super::upstream::http_client(ca.as_deref().map(str::as_bytes)).map_err(|e| field("ca_certificate", e))?;
        Ok(super::upstream::Upstream::new(
            http,
            super::upstream::Endpoint {
                url: remote.url.clone(),
                username: remote.username.clone(),
                password,
            },
        ))
    }
}
