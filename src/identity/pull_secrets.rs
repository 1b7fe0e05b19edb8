//! Pull secrets: robot credentials of one organisation, for all its products or a
//! list, shown once and stored as Argon2id hashes.

use super::*;

impl Identities {
    pub async fn create_pull_secret(&self, new: NewPullSecret) -> IdResult<CreatedPullSecret> {
        check_label("name", &new.name)?;
        self.require_org(&new.org).await?;
        if let Some(products) = &new.products {
            if products.is_empty() {
                return Err(IdentityError::Invalid(
                    "products",
                    "an empty list grants nothing; leave it out for every product of the organisation".into(),
                ));
            }
            for p in products {
                if self.product(&new.org, p).await?.is_none() {
                    return Err(IdentityError::Invalid(
                        "products",
                        format!("no product {}/{p}", new.org),
                    ));
                }
            }
        }
        if new.expires_in_days == Some(0) {
            return Err(IdentityError::Invalid("expires_in_days", "must be at least 1".into()));
        }
        // Org and name are labels, so the name needs no quoting anywhere.
        let username = format!("{}-{}", new.org, new.name);
        validate_account_name(&username).map_err(|e| IdentityError::Invalid("name", e.to_string()))?;
        let secret = Secret::new(format!("gps_{}", random_secret()));
        let hash = self.hash(&secret).await?;
        let now = now_ms();
        let expires_at = new.expires_in_days.map(|d| now + i64::from(d) * 86_400_000);
        let products_json = new.products.as_ref().map(|p| serde_json::json!(p).to_string());
        let mut tx = self.db().begin_write().await?;
        let taken = sqlx::query(
            "SELECT 1 FROM users WHERE username = $1 UNION ALL SELECT 1 FROM pull_secrets WHERE username = $1 \
             UNION ALL SELECT 1 FROM pull_secrets WHERE org = $2 AND name = $3",
        )
        .bind(&username)
        .bind(&new.org)
        .bind(&new.name)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(IdentityError::Conflict(format!(
                "a pull secret or user named {username:?} exists"
            )));
        }
        let id: i64 = sqlx::query(
            "INSERT INTO pull_secrets (username, org, name, secret_hash, products, can_push, expires_at, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(&username)
        .bind(&new.org)
        .bind(&new.name)
        .bind(&hash)
        .bind(&products_json)
        .bind(i64::from(new.can_push))
        .bind(expires_at)
        .bind(&new.created_by)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
        tx.commit().await?;
        let info = PullSecretInfo {
            id,
            username: username.clone(),
            org: new.org,
            name: new.name,
            products: new.products,
            can_push: new.can_push,
            expires_at,
            created_by: new.created_by,
            created_at: now,
            last_used_at: None,
        };
        Ok(CreatedPullSecret { username, secret, info })
    }

    pub async fn pull_secrets(&self, org: &str) -> IdResult<Vec<PullSecretInfo>> {
        self.require_org(org).await?;
        let rows = sqlx::query(
            "SELECT id, username, org, name, products, can_push, expires_at, created_by, created_at, last_used_at \
             FROM pull_secrets WHERE org = $1 ORDER BY name",
        )
        .bind(org)
        .fetch_all(&self.db().read)
        .await?;
        Ok(rows.into_iter().map(records::pull_secret).collect())
    }

    /// Revoke (delete) a pull secret: its tokens stop working on their next request.
    pub async fn revoke_pull_secret(&self, org: &str, name: &str) -> IdResult<()> {
        let r = sqlx::query("DELETE FROM pull_secrets WHERE org = $1 AND name = $2")
            .bind(org)
            .bind(name)
            .execute(&self.db().write)
            .await?;
        self.invalidate();
        if r.rows_affected() == 0 {
            return Err(IdentityError::NotFound(format!("no pull secret {name:?} in {org:?}")));
        }
        Ok(())
    }
}
