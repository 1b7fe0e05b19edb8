//! Smart proxies (edge sites) as identities: each has a credential, `smart-proxy/<name>`
//! with a `gpx_…` secret shown once at registration and kept as an Argon2id hash, that
//! lets it pull what it mirrors (whole organisations and single products) and read the
//! authorization data it needs to serve pulls on its own.

use super::{IdResult, Identities, IdentityError, check_label, random_secret};
use crate::db::now_ms;
use crate::identity::credentials::Secret;
use serde::Serialize;
use sqlx::Row;

/// The username prefix of smart-proxy credentials ('/' is in no user or pull-secret name).
pub const PROXY_USER_PREFIX: &str = "smart-proxy/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SmartProxy {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub url: String,
    /// Organisations (`acme`) and products (`acme/web`) it mirrors.
    pub mirrors: Vec<String>,
    pub sync_after_push: bool,
    pub username: String,
    pub last_sync_at: Option<i64>,
    pub last_synced_event: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl SmartProxy {
    /// Whether it mirrors the repository `org/product/name` (a backend name).
    pub fn mirrors_repository(&self, name: &str) -> bool {
        let mut parts = name.splitn(3, '/');
        let (Some(org), Some(product)) = (parts.next(), parts.next()) else {
            return false;
        };
        self.mirrors.iter().any(|m| match m.split_once('/') {
            Some((o, p)) => o == org && p == product,
            None => m == org,
        })
    }

    pub fn orgs(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .mirrors
            .iter()
            .map(|m| m.split_once('/').map_or(m.as_str(), |(o, _)| o).to_owned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Split what a proxy mirrors into whole organisations and products.
pub(super) fn split_mirrors(json: &str) -> (Vec<String>, Vec<String>) {
    let all: Vec<String> = serde_json::from_str(json).unwrap_or_default();
    all.into_iter().partition(|m| !m.contains('/'))
}

const COLUMNS: &str = "SELECT id, name, url, orgs, sync_after_push, last_sync_at, last_synced_event, last_error, \
     created_at, updated_at FROM smart_proxies";

fn proxy(r: sqlx::any::AnyRow) -> SmartProxy {
    let name: String = r.get(1);
    SmartProxy {
        id: r.get(0),
        username: format!("{PROXY_USER_PREFIX}{name}"),
        name,
        url: r.get(2),
        mirrors: serde_json::from_str(r.get::<&str, _>(3)).unwrap_or_default(),
        sync_after_push: r.get::<i64, _>(4) != 0,
        last_sync_at: r.get(5),
        last_synced_event: r.get(6),
        last_error: r.get(7),
        created_at: r.get(8),
        updated_at: r.get(9),
    }
}

fn check_url(url: &str) -> IdResult<()> {
    if crate::oci::is_base_url(url) {
        Ok(())
    } else {
        Err(IdentityError::Invalid(
            "url",
            "must be the edge's base URL, https://host[:port]".into(),
        ))
    }
}

impl Identities {
    async fn check_mirrors(&self, mirrors: &[String]) -> IdResult<()> {
        if mirrors.is_empty() {
            return Err(IdentityError::Invalid(
                "orgs",
                "list the organisations (acme) or products (acme/web) it mirrors".into(),
            ));
        }
        for m in mirrors {
            match m.split_once('/') {
                Some((org, product)) => {
                    if self.product(org, product).await?.is_none() {
                        return Err(IdentityError::Invalid("orgs", format!("no product {m}")));
                    }
                }
                None => {
                    if self.org(m).await?.is_none() {
                        return Err(IdentityError::Invalid("orgs", format!("no organisation {m}")));
                    }
                }
            }
        }
        Ok(())
    }

    /// Register a smart proxy; returns it with its credential's secret (shown once).
    pub async fn create_smart_proxy(
        &self,
        name: &str,
        url: &str,
        mirrors: &[String],
        sync_after_push: bool,
    ) -> IdResult<(SmartProxy, Secret)> {
        check_label("name", name)?;
        check_url(url)?;
        self.check_mirrors(mirrors).await?;
        let secret = Secret::new(format!("gpx_{}", random_secret()));
        let hash = self.hash(&secret).await?;
        let now = now_ms();
        let r = sqlx::query(
            "INSERT INTO smart_proxies (name, url, orgs, sync_after_push, credential_hash, credential_id, \
             last_notified_event, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, '', (SELECT COALESCE(MAX(id), 0) FROM content_events), $6, $6)",
        )
        .bind(name)
        .bind(url.trim_end_matches('/'))
        .bind(serde_json::json!(mirrors).to_string())
        .bind(i64::from(sync_after_push))
        .bind(&hash)
        .bind(now)
        .execute(&self.db().write)
        .await;
        match r {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(IdentityError::Conflict(format!("a smart proxy named {name:?} exists")));
            }
            other => {
                other?;
            }
        }
        let p = self
            .smart_proxy(name)
            .await?
            .ok_or_else(|| IdentityError::NotFound(name.to_owned()))?;
        Ok((p, secret))
    }

    pub async fn smart_proxies(&self) -> IdResult<Vec<SmartProxy>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} ORDER BY name")))
            .fetch_all(&self.db().read)
            .await?;
        Ok(rows.into_iter().map(proxy).collect())
    }

    pub async fn smart_proxy(&self, name: &str) -> IdResult<Option<SmartProxy>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} WHERE name = $1")))
            .bind(name)
            .fetch_optional(&self.db().read)
            .await?;
        Ok(row.map(proxy))
    }

    /// Change what a proxy mirrors, its URL, or whether pushes trigger its sync.
    pub async fn update_smart_proxy(
        &self,
        name: &str,
        url: Option<&str>,
        mirrors: Option<&[String]>,
        sync_after_push: Option<bool>,
    ) -> IdResult<SmartProxy> {
        if let Some(u) = url {
            check_url(u)?;
        }
        if let Some(m) = mirrors {
            self.check_mirrors(m).await?;
        }
        let current = self
            .smart_proxy(name)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("no smart proxy {name:?}")))?;
        sqlx::query(
            "UPDATE smart_proxies SET url = $1, orgs = $2, sync_after_push = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(url.unwrap_or(&current.url).trim_end_matches('/'))
        .bind(serde_json::json!(mirrors.unwrap_or(&current.mirrors)).to_string())
        .bind(i64::from(sync_after_push.unwrap_or(current.sync_after_push)))
        .bind(now_ms())
        .bind(current.id)
        .execute(&self.db().write)
        .await?;
        self.invalidate();
        self.smart_proxy(name)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("no smart proxy {name:?}")))
    }

    /// Remove a proxy: its credential stops working on its next request.
    pub async fn delete_smart_proxy(&self, name: &str) -> IdResult<()> {
        let r = sqlx::query("DELETE FROM smart_proxies WHERE name = $1")
            .bind(name)
            .execute(&self.db().write)
            .await?;
        self.invalidate();
        if r.rows_affected() == 0 {
            return Err(IdentityError::NotFound(format!("no smart proxy {name:?}")));
        }
        Ok(())
    }

    /// What an edge reported after a sync: the last event it has, or the error.
    pub async fn record_proxy_sync(&self, name: &str, synced_event: Option<i64>, error: Option<&str>) -> IdResult<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE smart_proxies SET \
             last_sync_at = CASE WHEN $1 IS NULL THEN last_sync_at ELSE $2 END, \
             last_synced_event = CASE WHEN last_synced_event > COALESCE($1, 0) THEN last_synced_event ELSE COALESCE($1, 0) END, \
              last_error = $3, updated_at = $2 \
             WHERE name = $4",
        )
        .bind(synced_event)
        .bind(now)
        .bind(error)
        .bind(name)
        .execute(&self.db().write)
        .await?;
        Ok(())
    }
}
