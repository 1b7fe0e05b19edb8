//! Who exists and what they are bound to: users, organisations, products, role
//! bindings and pull secrets, kept in the metadata database.
//!
//! `Identities` authenticates credentials (Argon2id, with a short-lived cache of
//! verified credentials so token requests stay fast) and turns a token's subject back
//! into a policy `Principal` on every request (cached for a few seconds, and dropped
//! at once on any change made through this process), which is what makes a revoked
//! pull secret stop working on its next request rather than when its token expires.

pub mod credentials;
mod members;
mod orgs;
pub mod proxies;
mod pull_secrets;
mod records;

use crate::db::{Database, now_ms};
use crate::policy::{Principal, Role, RoleBinding};
use base64::Engine;
use credentials::{Secret, hash_password, validate_account_name, verify_password};
use moka::sync::Cache;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest as _, Sha256};
use sqlx::Row;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

pub use records::{Member, Org, Product, PullSecretInfo, User};

/// Where a push to `org/product/name` is copied to and distributed from, unless the
/// organisation sets its own pattern.
pub const DEFAULT_NAMING_PATTERN: &str = "{org}/{product}/{name}";

/// Expand a naming pattern; `None` unless the result is a three-part name of labels.
pub fn expand_naming_pattern(pattern: &str, org: &str, product: &str, name: &str) -> Option<String> {
    let out = pattern
        .replace("{org}", org)
        .replace("{product}", product)
        .replace("{name}", name);
    let parts: Vec<&str> = out.split('/').collect();
    (parts.len() == 3 && parts.iter().all(|p| valid_label(p))).then_some(out)
}

/// Labels of organisations and products: `[a-z0-9]+([._-][a-z0-9]+)*`, at most 64.
pub fn valid_label(s: &str) -> bool {
    if s.is_empty() || s.len() > 64 {
        return false;
    }
    let b = s.as_bytes();
    let sep = |c: u8| matches!(c, b'.' | b'_' | b'-');
    let word = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    word(b[0])
        && word(b[b.len() - 1])
        && b.iter().all(|&c| word(c) || sep(c))
        && !b.windows(2).any(|w| sep(w[0]) && sep(w[1]))
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A request field is wrong: (field, why).
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("hashing a credential failed")]
    Hash,
}

/// On the registry path an identity failure is an OCI error.
impl From<IdentityError> for crate::error::Error {
    fn from(e: IdentityError) -> Self {
        use crate::error::{Error, ErrorCode};
        match e {
            IdentityError::NotFound(m) => Error::new(ErrorCode::NameUnknown, m),
            IdentityError::Db(db) => db.into(),
            other => Error::internal(&other),
        }
    }
}

pub type IdResult<T> = Result<T, IdentityError>;

/// Who a verified credential or token subject is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `users.id` or `pull_secrets.id`: tokens carry it, so a credential re-created
    /// under the same name never inherits the old one's tokens.
    pub id: i64,
    pub username: String,
    pub kind: AccountKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    User,
    PullSecret,
    SmartProxy,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::PullSecret => "pull_secret",
            Self::SmartProxy => "smart_proxy",
        }
    }
}

/// What a pull secret may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPullSecret {
    pub org: String,
    pub name: String,
    /// `None`: every product of the org.
    pub products: Option<Vec<String>>,
    pub can_push: bool,
    pub expires_in_days: Option<u32>,
    pub created_by: String,
}

/// A pull secret just created: the only time its secret is known.
#[derive(Debug, Clone)]
pub struct CreatedPullSecret {
    pub username: String,
    pub secret: Secret,
    pub info: PullSecretInfo,
}

/// How long a verified username/password pair is remembered. Changes made through this
/// process (revocation, deletion) clear it at once; this bounds how long another
/// replica may still accept a revoked credential.
const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(60);
/// How long a principal and its bindings, or a product, is remembered between requests.
const PRINCIPAL_CACHE_TTL: Duration = Duration::from_secs(5);
/// `last_used_at` of a pull secret is written at most this often.
const LAST_USE_RESOLUTION_MS: i64 = 60_000;

#[derive(Clone)]
pub struct Identities {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    /// sha256(username NUL password) -> account, and when it expires.
    verified: Cache<[u8; 32], (Account, Option<i64>)>,
    /// (username, id) -> principal (`None` when gone), and when it expires.
    principals: Cache<(String, i64), (Option<Principal>, Option<i64>)>,
    /// (org, product) -> product, `None` when absent.
    products: Cache<(String, String), Option<Product>>,
    /// pull secret id -> when `last_used_at` was last written.
    last_use_written: Cache<i64, i64>,
    /// Argon2id takes ~20 MiB and tens of ms: never more at once than there are cores,
    /// so a flood of bad passwords cannot exhaust memory.
    hashing: Semaphore,
    /// Compared against for unknown usernames, so that they take as long as wrong passwords.
    dummy_hash: String,
}

impl Identities {
    pub fn new(db: &Database) -> IdResult<Self> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let dummy_hash = hash_password(&Secret::new(random_secret())).map_err(|_| IdentityError::Hash)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db: db.clone(),
                verified: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(CREDENTIAL_CACHE_TTL)
                    .build(),
                principals: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(PRINCIPAL_CACHE_TTL)
                    .build(),
                products: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(PRINCIPAL_CACHE_TTL)
                    .build(),
                last_use_written: Cache::builder().max_capacity(100_000).build(),
                hashing: Semaphore::new(cores),
                dummy_hash,
            }),
        })
    }

    fn db(&self) -> &Database {
        &self.inner.db
    }

    /// Tell every replica that identities changed (see `Database::announce_change`).
    pub async fn announce_change(&self) -> Result<(), sqlx::Error> {
        self.db().announce_change().await
    }

    /// Forget every cached credential, principal and product: called after any change.
    pub fn invalidate(&self) {
        self.inner.verified.invalidate_all();
        self.inner.principals.invalidate_all();
        self.inner.products.invalidate_all();
    }

    // === bootstrap ===

    /// On first start (no user at all), create the global administrator `admin` with
    /// `password`, or with a generated one that is written to `password_file` (mode
    /// 0600) and returned so it can be printed once.
    pub async fn bootstrap_admin(&self, password: Option<Secret>, password_file: &Path) -> IdResult<Option<Secret>> {
        let any = sqlx::query("SELECT 1 FROM users LIMIT 1")
            .fetch_optional(&self.db().read)
            .await?;
        if any.is_some() {
            return Ok(None);
        }
        let (password, generated) = match password {
            Some(p) if !p.expose().is_empty() => (p, false),
            _ => (Secret::new(random_secret()), true),
        };
        if generated {
            write_private(password_file, password.expose().as_bytes()).map_err(|e| {
                IdentityError::Invalid("initial-admin-password", format!("{}: {e}", password_file.display()))
            })?;
        }
        self.create_user("admin", &password, true).await?;
        Ok(generated.then_some(password))
    }

    // === authentication ===

    /// The account whose credentials these are, or `None` (unknown, wrong, expired).
    pub async fn authenticate(&self, username: &str, password: &Secret) -> IdResult<Option<Account>> {
        let key = credential_key(username, password);
        if let Some((account, expires_at)) = self.inner.verified.get(&key) {
            if expires_at.is_some_and(|at| at <= now_ms()) {
                return Ok(None);
            }
            self.note_use(&account).await;
            return Ok(Some(account));
        }
        let candidate = self.credential_row(username).await?;
        let hash = candidate
            .as_ref()
            .map_or(self.inner.dummy_hash.clone(), |(_, h, _)| h.clone());
        let ok = {
            let _permit = self.inner.hashing.acquire().await.map_err(|_| IdentityError::Hash)?;
            let password = password.clone();
            tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .map_err(|_| IdentityError::Hash)?
        };
        match candidate {
            Some((account, _, expires_at)) if ok => {
                self.inner.verified.insert(key, (account.clone(), expires_at));
                self.note_use(&account).await;
                Ok(Some(account))
            }
            _ => Ok(None),
        }
    }

    /// A user's id and a tag of their current password (not the hash: a digest of it),
    /// which changes when the password does; `None` when there is no such user.
    pub async fn password_tag(&self, username: &str) -> IdResult<Option<(i64, String)>> {
        use sha2::Digest as _;
        let row = sqlx::query("SELECT id, password_hash FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.db().read)
            .await?;
        Ok(row.map(|r| {
            let hash: String = r.get(1);
            (r.get(0), hex::encode(&sha2::Sha256::digest(hash.as_bytes())[..16]))
        }))
    }

    /// The account named `username` with its stored hash, if it may log in now.
    async fn credential_row(&self, username: &str) -> IdResult<Option<(Account, String, Option<i64>)>> {
        if let Some(name) = username.strip_prefix(proxies::PROXY_USER_PREFIX) {
            let row = sqlx::query("SELECT id, credential_hash FROM smart_proxies WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.db().read)
                .await?;
            return Ok(row.map(|r| {
                let account = Account {
                    id: r.get(0),
                    username: username.to_owned(),
                    kind: AccountKind::SmartProxy,
                };
                (account, r.get(1), None)
            }));
        }
        let row = sqlx::query(
            "SELECT id, secret_hash, expires_at FROM pull_secrets \
             WHERE username = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(username)
        .bind(now_ms())
        .fetch_optional(&self.db().read)
        .await?;
        if let Some(r) = row {
            let account = Account {
                id: r.get(0),
                username: username.to_owned(),
                kind: AccountKind::PullSecret,
            };
            return Ok(Some((account, r.get(1), r.get(2))));
        }
        let row = sqlx::query("SELECT id, password_hash FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.db().read)
            .await?;
        Ok(row.map(|r| {
            let account = Account {
                id: r.get(0),
                username: username.to_owned(),
                kind: AccountKind::User,
            };
            (account, r.get(1), None)
        }))
    }

    /// Record a pull secret's last use, at most once a minute per secret.
    async fn note_use(&self, account: &Account) {
        if account.kind != AccountKind::PullSecret {
            return;
        }
        let now = now_ms();
        if self
            .inner
            .last_use_written
            .get(&account.id)
            .is_some_and(|at| now - at < LAST_USE_RESOLUTION_MS)
        {
            return;
        }
        self.inner.last_use_written.insert(account.id, now);
        let r = sqlx::query("UPDATE pull_secrets SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(account.id)
            .execute(&self.db().write)
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "recording a pull secret's last use failed");
        }
    }

    /// The current principal of a token subject, or `None` when that account no longer
    /// exists, was re-created (another id), or has expired.
    pub async fn principal(&self, username: &str, id: i64) -> IdResult<Option<Principal>> {
        let key = (username.to_owned(), id);
        let (p, expires_at) = match self.inner.principals.get(&key) {
            Some(cached) => cached,
            None => {
                let loaded = self.load_principal(username, id).await?;
                self.inner.principals.insert(key, loaded.clone());
                loaded
            }
        };
        if expires_at.is_some_and(|at| at <= now_ms()) {
            return Ok(None);
        }
        Ok(p)
    }

    async fn load_principal(&self, username: &str, id: i64) -> IdResult<(Option<Principal>, Option<i64>)> {
        if let Some(name) = username.strip_prefix(proxies::PROXY_USER_PREFIX) {
            let row = sqlx::query("SELECT orgs FROM smart_proxies WHERE id = $1 AND name = $2")
                .bind(id)
                .bind(name)
                .fetch_optional(&self.db().read)
                .await?;
            return Ok((
                row.map(|r| {
                    let (orgs, products) = proxies::split_mirrors(r.get(0));
                    Principal::SmartProxy {
                        name: username.to_owned(),
                        orgs,
                        products,
                    }
                }),
                None,
            ));
        }
        let row = sqlx::query(
            "SELECT org, products, can_push, expires_at FROM pull_secrets \
             WHERE id = $1 AND username = $2 AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(id)
        .bind(username)
        .bind(now_ms())
        .fetch_optional(&self.db().read)
        .await?;
        if let Some(r) = row {
            let products: Option<String> = r.get(1);
            let principal = Principal::PullSecret {
                name: username.to_owned(),
                org: r.get(0),
                products: products.and_then(|p| serde_json::from_str(&p).ok()),
                can_push: r.get::<i64, _>(2) != 0,
            };
            return Ok((Some(principal), r.get(3)));
        }
        let row = sqlx::query("SELECT global_admin FROM users WHERE id = $1 AND username = $2")
            .bind(id)
            .bind(username)
            .fetch_optional(&self.db().read)
            .await?;
        let Some(r) = row else {
            return Ok((None, None));
        };
        let rows = sqlx::query("SELECT org, product, role FROM role_bindings WHERE user_id = $1 ORDER BY org, product")
            .bind(id)
            .fetch_all(&self.db().read)
            .await?;
        let bindings = rows
            .into_iter()
            .filter_map(|b| {
                let product: String = b.get(1);
                Some(RoleBinding {
                    org: b.get(0),
                    product: (!product.is_empty()).then_some(product),
                    role: parse_role(b.get::<&str, _>(2))?,
                })
            })
            .collect();
        let principal = Principal::User {
            name: username.to_owned(),
            global_admin: r.get::<i64, _>(0) != 0,
            bindings,
        };
        Ok((Some(principal), None))
    }

    // === users ===

    pub async fn create_user(&self, username: &str, password: &Secret, global_admin: bool) -> IdResult<User> {
        validate_account_name(username).map_err(|e| IdentityError::Invalid("username", e.to_string()))?;
        validate_password(password)?;
        let hash = self.hash(password).await?;
        let mut tx = self.db().begin_write().await?;
        let taken = sqlx::query(
            "SELECT 1 FROM users WHERE username = $1 UNION ALL SELECT 1 FROM pull_secrets WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(IdentityError::Conflict(format!("username {username:?} is taken")));
        }
        let now = now_ms();
        let id: i64 = sqlx::query(
            "INSERT INTO users (username, password_hash, global_admin, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(username)
        .bind(&hash)
        .bind(i64::from(global_admin))
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
        tx.commit().await?;
        self.invalidate();
        Ok(User {
            id,
            username: username.to_owned(),
            global_admin,
            created_at: now,
        })
    }

    pub async fn set_password(&self, username: &str, password: &Secret) -> IdResult<()> {
        validate_password(password)?;
        let hash = self.hash(password).await?;
        let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2")
            .bind(&hash)
            .bind(username)
            .execute(&self.db().write)
            .await?;
        self.invalidate();
        if r.rows_affected() == 0 {
            return Err(IdentityError::NotFound(format!("no user {username:?}")));
        }
        Ok(())
    }

    pub async fn users(&self) -> IdResult<Vec<User>> {
        let rows = sqlx::query("SELECT id, username, global_admin, created_at FROM users ORDER BY username")
            .fetch_all(&self.db().read)
            .await?;
        Ok(rows.into_iter().map(records::user).collect())
    }

    pub async fn delete_user(&self, username: &str) -> IdResult<()> {
        let r = sqlx::query("DELETE FROM users WHERE username = $1")
            .bind(username)
            .execute(&self.db().write)
            .await?;
        self.invalidate();
        if r.rows_affected() == 0 {
            return Err(IdentityError::NotFound(format!("no user {username:?}")));
        }
        Ok(())
    }

    async fn hash(&self, secret: &Secret) -> IdResult<String> {
        let _permit = self.inner.hashing.acquire().await.map_err(|_| IdentityError::Hash)?;
        let secret = secret.clone();
        tokio::task::spawn_blocking(move || hash_password(&secret))
            .await
            .map_err(|_| IdentityError::Hash)?
            .map_err(|_| IdentityError::Hash)
    }
}

fn check_label(field: &'static str, s: &str) -> IdResult<()> {
    if valid_label(s) {
        Ok(())
    } else {
        Err(IdentityError::Invalid(
            field,
            format!("{s:?} is not a label: use lowercase letters and digits, separated by single '.', '_' or '-'"),
        ))
    }
}

fn validate_password(p: &Secret) -> IdResult<()> {
    let n = p.expose().chars().count();
    if n < 8 {
        return Err(IdentityError::Invalid(
            "password",
            "must be at least 8 characters".into(),
        ));
    }
    if n > 1024 {
        return Err(IdentityError::Invalid(
            "password",
            "must be at most 1024 characters".into(),
        ));
    }
    Ok(())
}

pub fn parse_role(s: &str) -> Option<Role> {
    match s {
        "org_admin" => Some(Role::OrgAdmin),
        "pusher" => Some(Role::Pusher),
        "viewer" => Some(Role::Viewer),
        _ => None,
    }
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::OrgAdmin => "org_admin",
        Role::Pusher => "pusher",
        Role::Viewer => "viewer",
    }
}

fn credential_key(username: &str, password: &Secret) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update([0]);
    h.update(password.expose().as_bytes());
    h.finalize().into()
}

/// 256 random bits, base64url.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    // Without an OS entropy source nothing secure can be made; an all-zero secret would
    // be guessable, so fall back to hashing the time and pid, never to zeros.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        let seed = format!("{}:{}", now_ms(), std::process::id());
        bytes = Sha256::digest(seed.as_bytes()).into();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Write a file readable by the owner only.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_grammar() {
        for ok in ["acme", "web", "a1", "my-app", "v1.2_x"] {
            assert!(valid_label(ok), "{ok}");
        }
        for bad in ["", "Acme", "-a", "a-", "a--b", "a._b", "a/b", "a b", &"a".repeat(65)] {
            assert!(!valid_label(bad), "{bad}");
        }
    }
}
