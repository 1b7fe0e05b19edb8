//! Organisations (their naming pattern) and products (public or not, the signing keys
//! they require).

use super::records::{self, Org, Product};
use super::{DEFAULT_NAMING_PATTERN, IdResult, Identities, IdentityError, check_label, expand_naming_pattern};
use crate::db::now_ms;

impl Identities {
    pub async fn create_org(&self, label: &str, name: &str) -> IdResult<Org> {
        check_label("label", label)?;
        let name = if name.trim().is_empty() { label } else { name.trim() };
        let now = now_ms();
        let r = sqlx::query("INSERT INTO orgs (label, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(label)
            .bind(name)
            .bind(now)
            .execute(&self.db().write)
            .await?;
        if r.rows_affected() == 0 {
            return Err(IdentityError::Conflict(format!("organisation {label:?} exists")));
        }
        Ok(Org {
            label: label.to_owned(),
            name: name.to_owned(),
            naming_pattern: DEFAULT_NAMING_PATTERN.to_owned(),
            created_at: now,
        })
    }

    pub async fn orgs(&self) -> IdResult<Vec<Org>> {
        let rows = sqlx::query("SELECT label, name, created_at, naming_pattern FROM orgs ORDER BY label")
            .fetch_all(&self.db().read)
            .await?;
        Ok(rows.into_iter().map(records::org).collect())
    }

    pub async fn org(&self, label: &str) -> IdResult<Option<Org>> {
        let row = sqlx::query("SELECT label, name, created_at, naming_pattern FROM orgs WHERE label = $1")
            .bind(label)
            .fetch_optional(&self.db().read)
            .await?;
        Ok(row.map(records::org))
    }

    /// Set how the organisation's pushed repositories are named; the pattern must keep
    /// each repository apart (`{name}` and `{product}`) and give `org/product/name`
    /// names inside the organisation.
    pub async fn set_naming_pattern(&self, org: &str, pattern: &str) -> IdResult<Org> {
        let ok = pattern.contains("{name}")
            && pattern.contains("{product}")
            && expand_naming_pattern(pattern, org, "product", "name")
                .is_some_and(|n| n.starts_with(&format!("{org}/")));
        if !ok {
            return Err(IdentityError::Invalid(
                "naming_pattern",
                format!(
                    "{pattern:?} must use {{name}} and {{product}} and give {org}/<product>/<name>-shaped names of labels, \
                     e.g. {DEFAULT_NAMING_PATTERN}"
                ),
            ));
        }
        let r = sqlx::query("UPDATE orgs SET naming_pattern = $1 WHERE label = $2")
            .bind(pattern)
            .bind(org)
            .execute(&self.db().write)
            .await?;
        if r.rows_affected() == 0 {
            return Err(IdentityError::NotFound(format!("no organisation {org:?}")));
        }
        self.org(org)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("no organisation {org:?}")))
    }

    pub(super) async fn require_org(&self, label: &str) -> IdResult<()> {
        match self.org(label).await? {
            Some(_) => Ok(()),
            None => Err(IdentityError::NotFound(format!("no organisation {label:?}"))),
        }
    }

    /// Create a product; `Conflict` when it exists.
    pub async fn create_product(&self, org: &str, label: &str, public: bool) -> IdResult<Product> {
        check_label("label", label)?;
        self.require_org(org).await?;
        let now = now_ms();
        let r = sqlx::query(
            "INSERT INTO products (org, label, public, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(label)
        .bind(i64::from(public))
        .bind(now)
        .execute(&self.db().write)
        .await?;
        if r.rows_affected() == 0 {
            return Err(IdentityError::Conflict(format!("product {org}/{label} exists")));
        }
        self.inner.products.invalidate(&(org.to_owned(), label.to_owned()));
        Ok(Product {
            org: org.to_owned(),
            label: label.to_owned(),
            public,
            require_signed_by: Vec::new(),
            sign_on_push: None,
            created_at: now,
        })
    }

    /// The product, creating it (private) when missing: the first push to a new
    /// product. Concurrent first pushes all succeed and create one product.
    pub async fn ensure_product(&self, org: &str, label: &str) -> IdResult<bool> {
        if self.product(org, label).await?.is_some() {
            return Ok(false);
        }
        // Organisations are made by administrators, never by a push.
        self.require_org(org).await?;
        let r = sqlx::query(
            "INSERT INTO products (org, label, public, created_at) VALUES ($1, $2, 0, $3) ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(label)
        .bind(now_ms())
        .execute(&self.db().write)
        .await?;
        self.inner.products.invalidate(&(org.to_owned(), label.to_owned()));
        Ok(r.rows_affected() > 0)
    }

    /// Change a product's settings: `public` (anonymous pull), `require_signed_by`
    /// (the organisation's signing keys of which one must have signed a manifest for it
    /// to be pulled; empty: no requirement), `sign_on_push` (the key pushed tags are
    /// signed with; empty: none). The caller checks that the keys exist.
    pub async fn update_product(
        &self,
        org: &str,
        label: &str,
        public: Option<bool>,
        require_signed_by: Option<&[String]>,
        sign_on_push: Option<&str>,
    ) -> IdResult<Product> {
        let mut tx = self.db().begin_write().await?;
        let exists = sqlx::query("SELECT 1 FROM products WHERE org = $1 AND label = $2")
            .bind(org)
            .bind(label)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(IdentityError::NotFound(format!("no product {org}/{label}")));
        }
        if let Some(public) = public {
            sqlx::query("UPDATE products SET public = $1 WHERE org = $2 AND label = $3")
                .bind(i64::from(public))
                .bind(org)
                .bind(label)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(keys) = require_signed_by {
            let mut keys = keys.to_vec();
            keys.sort();
            keys.dedup();
            let stored = (!keys.is_empty()).then(|| serde_json::json!(keys).to_string());
            sqlx::query("UPDATE products SET require_signed_by = $1 WHERE org = $2 AND label = $3")
                .bind(stored)
                .bind(org)
                .bind(label)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(key) = sign_on_push {
            sqlx::query("UPDATE products SET sign_on_push = $1 WHERE org = $2 AND label = $3")
                .bind((!key.is_empty()).then_some(key))
                .bind(org)
                .bind(label)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.invalidate();
        self.product(org, label)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("no product {org}/{label}")))
    }

    pub async fn product(&self, org: &str, label: &str) -> IdResult<Option<Product>> {
        let key = (org.to_owned(), label.to_owned());
        if let Some(p) = self.inner.products.get(&key) {
            return Ok(p);
        }
        let row = sqlx::query(
            "SELECT org, label, public, created_at, require_signed_by, sign_on_push FROM products WHERE org = $1 AND label = $2",
        )
        .bind(org)
        .bind(label)
        .fetch_optional(&self.db().read)
        .await?;
        let p = row.map(records::product);
        self.inner.products.insert(key, p.clone());
        Ok(p)
    }

    pub async fn products(&self, org: &str) -> IdResult<Vec<Product>> {
        self.require_org(org).await?;
        let rows = sqlx::query(
            "SELECT org, label, public, created_at, require_signed_by, sign_on_push FROM products WHERE org = $1 ORDER BY label",
        )
        .bind(org)
        .fetch_all(&self.db().read)
        .await?;
        Ok(rows.into_iter().map(records::product).collect())
    }
}
