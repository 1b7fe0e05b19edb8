//! Rows as the admin API shows them.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    #[serde(skip)]
    pub id: i64,
    pub username: String,
    pub global_admin: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Org {
    pub label: String,
    pub name: String,
    /// How pushed repositories are named and distributed (see `naming`).
    pub naming_pattern: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Product {
    pub org: String,
    pub label: String,
    pub public: bool,
    /// Signing keys of the organisation, one of which must have signed a manifest for
    /// it to be pulled (empty: no requirement).
    pub require_signed_by: Vec<String>,
    /// The organisation's signing key the post-push copy signs pushed tags with.
    pub sign_on_push: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub username: String,
    pub role: String,
    /// `None`: the role holds on the whole organisation.
    pub product: Option<String>,
    pub created_at: i64,
}

/// A pull secret without its secret (which is never stored in clear).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PullSecretInfo {
    #[serde(skip)]
    pub id: i64,
    pub username: String,
    pub org: String,
    pub name: String,
    /// `None`: every product of the organisation.
    pub products: Option<Vec<String>>,
    pub can_push: bool,
    pub expires_at: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

pub(super) fn user(r: AnyRow) -> User {
    User {
        id: r.get(0),
        username: r.get(1),
        global_admin: r.get::<i64, _>(2) != 0,
        created_at: r.get(3),
    }
}

pub(super) fn org(r: AnyRow) -> Org {
    Org {
        label: r.get(0),
        name: r.get(1),
        created_at: r.get(2),
        naming_pattern: r
            .get::<Option<String>, _>(3)
            .unwrap_or_else(|| super::DEFAULT_NAMING_PATTERN.to_owned()),
    }
}

pub(super) fn product(r: AnyRow) -> Product {
    Product {
        org: r.get(0),
        label: r.get(1),
        public: r.get::<i64, _>(2) != 0,
        created_at: r.get(3),
        require_signed_by: r
            .get::<Option<String>, _>(4)
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
        sign_on_push: r.get(5),
    }
}

pub(super) fn member(r: AnyRow) -> Member {
    let product: String = r.get(2);
    Member {
        username: r.get(0),
        role: r.get(1),
        product: (!product.is_empty()).then_some(product),
        created_at: r.get(3),
    }
}

pub(super) fn pull_secret(r: AnyRow) -> PullSecretInfo {
    let products: Option<String> = r.get(4);
    PullSecretInfo {
        id: r.get(0),
        username: r.get(1),
        org: r.get(2),
        name: r.get(3),
        products: products.and_then(|p| serde_json::from_str(&p).ok()),
        can_push: r.get::<i64, _>(5) != 0,
        expires_at: r.get(6),
        created_by: r.get(7),
        created_at: r.get(8),
        last_used_at: r.get(9),
    }
}
