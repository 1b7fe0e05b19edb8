//! Role bindings: who holds which role on an organisation or one of its products.

use super::*;

impl Identities {
    pub async fn add_member(&self, org: &str, username: &str, role: &str, product: Option<&str>) -> IdResult<Member> {
        let parsed = parse_role(role).ok_or_else(|| {
            IdentityError::Invalid(
                "role",
                format!("unknown role {role:?}: use org_admin, pusher or viewer"),
            )
        })?;
        self.require_org(org).await?;
        if let Some(p) = product {
            check_label("product", p)?;
            if self.product(org, p).await?.is_none() {
                return Err(IdentityError::NotFound(format!("no product {org}/{p}")));
            }
            if parsed == Role::OrgAdmin {
                return Err(IdentityError::Invalid(
                    "role",
                    "org_admin is bound to the whole organisation, not to a product".into(),
                ));
            }
        }
        let user_id: i64 = sqlx::query("SELECT id FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.db().read)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("no user {username:?}")))?
            .get(0);
        let now = now_ms();
        sqlx::query(
            "INSERT INTO role_bindings (user_id, org, product, role, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(org)
        .bind(product.unwrap_or(""))
        .bind(role_str(parsed))
        .bind(now)
        .execute(&self.db().write)
        .await?;
        self.invalidate();
        Ok(Member {
            username: username.to_owned(),
            role: role_str(parsed).to_owned(),
            product: product.map(str::to_owned),
            created_at: now,
        })
    }

    pub async fn remove_member(
        &self,
        org: &str,
        username: &str,
        role: Option<&str>,
        product: Option<&str>,
    ) -> IdResult<u64> {
        let r = sqlx::query(
            "DELETE FROM role_bindings WHERE org = $1 AND product = $2 \
             AND user_id = (SELECT id FROM users WHERE username = $3) AND ($4 = '' OR role = $4)",
        )
        .bind(org)
        .bind(product.unwrap_or(""))
        .bind(username)
        .bind(role.unwrap_or(""))
        .execute(&self.db().write)
        .await?;
        self.invalidate();
        if r.rows_affected() == 0 {
            return Err(IdentityError::NotFound(format!(
                "{username:?} has no such role in {org:?}"
            )));
        }
        Ok(r.rows_affected())
    }

    pub async fn members(&self, org: &str) -> IdResult<Vec<Member>> {
        self.require_org(org).await?;
        let rows = sqlx::query(
            "SELECT u.username, b.role, b.product, b.created_at FROM role_bindings b \
             JOIN users u ON u.id = b.user_id WHERE b.org = $1 ORDER BY u.username, b.product, b.role",
        )
        .bind(org)
        .fetch_all(&self.db().read)
        .await?;
        Ok(rows.into_iter().map(records::member).collect())
    }
}
