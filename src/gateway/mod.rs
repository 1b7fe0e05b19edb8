//! The authorizing gateway: the public face of gatehouse.
//!
//! - `token_service`: the Docker/OCI token endpoint (`/v2/token`, GET and OAuth2 POST)
//!   and the JWKS (`/.well-known/jwks.json`);
//! - `registry`: every other `/v2/` request: authenticate the bearer token, check its
//!   scope, check the policy, map the public name to the backend's, forward, rewrite;
//! - `backend`: where requests go (the store in-process, or a registry over HTTP);
//! - `mapping`: `org/product/name` and `org/name` to backend names;
//! - `repositories`: push/normal pairs, distributions, deleting a repository;
//! - `scope`, `challenge`, `credentials`, `token`: protocol building blocks.
//!
//! Decisions: a token bounds what a request may do (its `access`); the policy, evaluated
//! again on every request against the principal as it is now (cached for seconds),
//! decides. So removing a binding or revoking a pull secret bites on the next request.

pub mod backend;
pub mod challenge;
pub mod edge;
pub mod mapping;
mod registry;
mod repositories;
pub mod scope;
mod signed;
pub mod token;
mod token_service;

use crate::audit::AuditLog;
use crate::error::{Error, ErrorCode};
use crate::identity::{Account, Identities};
use crate::policy::{Action, Authorizer, Principal, Resource};
use crate::store::versions::Distribution;
use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{any, get};
use backend::Backend;
use challenge::ChallengeError;
use mapping::RepoPath;
use moka::sync::Cache;
use scope::Access;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use token::{Claims, Expiry, Keyring, TokenError};

/// Token service settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The audience of tokens (`service=` of challenges and token requests).
    pub service: String,
    /// `iss` of tokens.
    pub issuer: String,
    pub token_ttl: Duration,
    pub refresh_ttl: Duration,
    /// The externally visible base URL (`https://registry.example.com`), for the realm
    /// of challenges and pull-secret config entries; derived from each request's `Host`
    /// when unset.
    pub public_url: Option<String>,
    /// Whether this listener speaks TLS (for URLs derived from `Host`).
    pub tls: bool,
    /// Policy directory reloaded on SIGHUP (`None`: the built-in policies).
    pub policy_dir: Option<PathBuf>,
}

/// Upload-session grants outlive access tokens: a push continues past its token's expiry.
const UPLOAD_GRANT_TTL: Duration = Duration::from_secs(24 * 3600);
/// The query parameter carrying an upload-session grant in upload `Location`s.
const UPLOAD_GRANT_PARAM: &str = "_gatehouse_grant";

#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    identities: Identities,
    authorizer: Authorizer,
    keyring: RwLock<Keyring>,
    keys_dir: PathBuf,
    backend: Arc<dyn Backend>,
    audit: AuditLog,
    /// The store in this process, when it is the backend: pushes then land in push
    /// repositories whose content is copied into versioned normal repositories.
    versioned: Option<crate::store::Registry>,
    signing: Option<crate::signing::SigningKeys>,
    /// Which accepted keys signed a manifest (see `signed`).
    signed: signed::Caches,
    upstream: Option<edge::UpstreamLink>,
    metrics: Option<crate::metrics::Metrics>,
    /// When the main server's keys were last fetched on an unknown key id (ms).
    keys_refreshed: std::sync::atomic::AtomicU64,
    /// Push/normal repository pairs known to exist.
    pairs: Cache<String, ()>,
    /// Distributions by name (`None`: not one), for seconds.
    distributions: Cache<String, Option<Arc<Distribution>>>,
    /// Verified access tokens: an ES256 verification per request would cost more than
    /// serving a manifest. Entries are re-checked against `exp` on every hit.
    tokens: Cache<String, Arc<Claims>>,
    /// Policy decisions, by a hash of (principal as loaded now, with its bindings;
    /// action; resource). The entry holds the full key, compared on every hit, so a
    /// hash collision can never return another request's decision; a changed binding
    /// never hits a stale entry; a policy reload clears them.
    decisions: Cache<u64, Arc<Decision>>,
    /// Randomly keyed (SipHash), so nobody can aim for collisions.
    decision_hasher: std::collections::hash_map::RandomState,
}

struct Decision {
    principal: Principal,
    action: Action,
    resource: Resource,
    /// For a manifest pull in a product that requires signatures: who signed it.
    signed_by: Option<Vec<String>>,
    allowed: bool,
}

/// Who is making a registry request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub principal: Principal,
    /// The verified token; `None` when the request carried none.
    pub claims: Option<Arc<Claims>>,
}

impl Caller {
    pub fn actor(&self) -> (&str, &str) {
        match &self.principal {
            Principal::Anonymous => ("", "anonymous"),
            Principal::User { name, .. } => (name, "user"),
            Principal::PullSecret { name, .. } => (name, "pull_secret"),
            Principal::SmartProxy { name, .. } => (name, "smart_proxy"),
        }
    }

    /// Whether the token grants `action` on `kind:name`.
    pub fn token_allows(&self, kind: &str, name: &str, action: &str) -> bool {
        self.claims.as_ref().is_some_and(|c| {
            c.access
                .iter()
                .any(|a| a.kind == kind && a.name == name && a.allows(action))
        })
    }
}

pub struct Parts {
    pub settings: Settings,
    pub identities: Identities,
    pub authorizer: Authorizer,
    pub keyring: Keyring,
    pub keys_dir: PathBuf,
    pub backend: Arc<dyn Backend>,
    pub audit: AuditLog,
    pub versioned: Option<crate::store::Registry>,
    /// Signing keys, to check products' signing requirements (with the store in this
    /// process only: signatures live there).
    pub signing: Option<crate::signing::SigningKeys>,
    /// At an edge: the main server (tokens first, writes always go there).
    pub upstream: Option<edge::UpstreamLink>,
    /// Counters of pushes, pulls, tokens and denials (none with metrics off).
    pub metrics: Option<crate::metrics::Metrics>,
}

impl Gateway {
    pub fn new(p: Parts) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings: p.settings,
                identities: p.identities,
                authorizer: p.authorizer,
                keyring: RwLock::new(p.keyring),
                keys_dir: p.keys_dir,
                backend: p.backend,
                audit: p.audit,
                versioned: p.versioned,
                signing: p.signing,
                signed: signed::Caches::default(),
                upstream: p.upstream,
                metrics: p.metrics,
                keys_refreshed: std::sync::atomic::AtomicU64::new(0),
                pairs: Cache::builder().max_capacity(100_000).build(),
                distributions: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(Duration::from_secs(5))
                    .build(),
                tokens: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(Duration::from_secs(300))
                    .build(),
                decisions: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(Duration::from_secs(60))
                    .build(),
                decision_hasher: std::collections::hash_map::RandomState::new(),
            }),
        }
    }

    /// `/v2/token`, the JWKS, and every other `/v2/` path.
    pub fn router(&self) -> Router {
        let token = if self.inner.upstream.is_some() {
            any(edge::token)
        } else {
            get(token_service::get_token).post(token_service::post_token)
        };
        Router::new()
            .route("/v2/token", token)
            .route("/.well-known/jwks.json", get(token_service::jwks))
            .route("/v2", any(registry::handle))
            .route("/v2/", any(registry::handle))
            .route("/v2/{*rest}", any(registry::handle))
            .route("/extensions/v2/{*rest}", any(registry::handle))
            .with_state(self.clone())
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn identities(&self) -> &Identities {
        &self.inner.identities
    }

    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        self.inner.backend.as_ref()
    }

    /// The in-process store, when pushes go through push and normal repositories.
    /// The registry host clients pull from (what signatures name): the `public_url`
    /// setting's, else the host this request was sent to.
    pub fn registry_host(&self, headers: &axum::http::HeaderMap) -> Option<String> {
        match self.inner.settings.public_url.as_deref() {
            Some(url) => Some(url.split("://").nth(1).unwrap_or(url).trim_end_matches('/').to_owned()),
            None => headers
                .get(axum::http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }

    pub fn signing_keys(&self) -> Option<&crate::signing::SigningKeys> {
        self.inner.signing.as_ref()
    }

    pub(crate) fn metrics(&self) -> Option<&crate::metrics::Metrics> {
        self.inner.metrics.as_ref()
    }

    pub fn versioned(&self) -> Option<&crate::store::Registry> {
        self.inner.versioned.as_ref()
    }

    /// Re-read the policies and the token keys (SIGHUP). On a bad policy file the old
    /// policies stay in force and the error is returned.
    pub fn reload(&self) -> Result<(), String> {
        if let Some(dir) = &self.inner.settings.policy_dir {
            self.inner.authorizer.reload(dir).map_err(|e| e.to_string())?;
        }
        self.reload_keys().map_err(|e| e.to_string())?;
        self.changed();
        Ok(())
    }

    /// Re-read the token keys directory (shared by replicas: one may have rotated).
    fn reload_keys(&self) -> Result<(), TokenError> {
        let mut k = Keyring::load_or_create(&self.inner.keys_dir)?;
        let mut current = self.inner.keyring.write().unwrap_or_else(|p| p.into_inner());
        k.keep_trusted_from(&current);
        *current = k;
        Ok(())
    }

    /// Something that decisions depend on changed: forget cached decisions, principals
    /// and credentials here, and tell the other replicas to do the same.
    pub fn changed(&self) {
        self.forget_cached();
        let identities = self.inner.identities.clone();
        tokio::spawn(async move {
            if let Err(e) = identities.announce_change().await {
                tracing::warn!(error = %e, "cannot tell other replicas about a change");
            }
        });
    }

    /// Forget cached decisions, principals and credentials (another replica changed
    /// what they depend on).
    pub fn forget_cached(&self) {
        self.inner.decisions.invalidate_all();
        self.inner.identities.invalidate();
        // A repository deleted elsewhere: its pair and distribution are made again on
        // the next push rather than trusted from memory.
        self.inner.pairs.invalidate_all();
        self.inner.distributions.invalidate_all();
    }

    pub fn jwks(&self) -> serde_json::Value {
        self.inner.keyring.read().unwrap_or_else(|p| p.into_inner()).jwks()
    }

    pub(crate) fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        self.inner
            .keyring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .sign(claims)
    }

    fn verify(&self, token: &str, audience: &str, expiry: Expiry) -> Result<Claims, TokenError> {
        let s = &self.inner.settings;
        self.inner
            .keyring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .verify(token, &s.issuer, audience, expiry)
    }

    /// `verify_access`; a token signed by a key this process does not know yet makes it
    /// look again, at most once a second, and try again: at an edge (the main server
    /// rotated its keys) it fetches the main server's keys; on a main server it re-reads
    /// the keys directory (another replica sharing it rotated).
    async fn verify_access_fresh(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        match self.verify_access(token) {
            Err(TokenError::UnknownKey) => {
                let now = token::now_secs();
                let last = self
                    .inner
                    .keys_refreshed
                    .swap(now, std::sync::atomic::Ordering::Relaxed);
                if last < now {
                    if self.inner.upstream.is_some() {
                        self.fetch_upstream_keys().await;
                    } else if let Err(e) = self.reload_keys() {
                        tracing::warn!(error = %e, "re-reading the token keys failed");
                    }
                }
                self.verify_access(token)
            }
            other => other,
        }
    }

    async fn fetch_upstream_keys(&self) {
        let Some(link) = &self.inner.upstream else {
            return;
        };
        let res = link
            .http
            .get(format!("{}/.well-known/jwks.json", link.url))
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => match r.json::<serde_json::Value>().await {
                Ok(jwks) => {
                    self.trust_keys(&jwks);
                }
                Err(e) => tracing::warn!(error = %e, "the main server's keys are not a JWK set"),
            },
            Ok(r) => tracing::warn!(status = %r.status(), "fetching the main server's keys failed"),
            Err(e) => tracing::debug!(error = %e, "the main server is unreachable for its keys"),
        }
    }

    /// Verify a registry access token (cached).
    fn verify_access(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        let now = token::now_secs();
        if let Some(c) = self.inner.tokens.get(token) {
            if c.exp + token::LEEWAY_SECS >= now {
                return Ok(c);
            }
            return Err(TokenError::Invalid(
                jsonwebtoken::errors::ErrorKind::ExpiredSignature.into(),
            ));
        }
        let claims = Arc::new(self.verify(token, &self.inner.settings.service, Expiry::Enforce)?);
        self.inner.tokens.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    /// Accept tokens signed by the keys of another token service (an edge trusts its
    /// main server's JWK set). Returns how many keys are trusted.
    pub fn trust_keys(&self, jwks: &serde_json::Value) -> usize {
        let n = self
            .inner
            .keyring
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .trust(jwks);
        self.inner.tokens.invalidate_all();
        n
    }

    /// A short-lived token that tells the edge `proxy_user` (`smart-proxy/<name>`) to
    /// sync: only this server's keys can make one, and only that edge accepts it.
    pub fn edge_notification_token(&self, proxy_user: &str) -> Result<String, TokenError> {
        let now = token::now_secs();
        self.sign(&Claims {
            iss: self.inner.settings.issuer.clone(),
            sub: proxy_user.to_owned(),
            aud: self.edge_audience(),
            exp: now + 60,
            nbf: now,
            iat: now,
            jti: token::new_jti(),
            access: Vec::new(),
            cid: None,
        })
    }

    /// A one-minute access token for user `username` (credential `id`) with no registry
    /// access: what the web console presents to the admin API for a logged-in user, so
    /// that every console action is decided as the same API call would be.
    pub fn console_token(&self, username: &str, id: i64) -> Result<String, TokenError> {
        let now = token::now_secs();
        self.sign(&Claims {
            iss: self.inner.settings.issuer.clone(),
            sub: username.to_owned(),
            aud: self.inner.settings.service.clone(),
            exp: now + 60,
            nbf: now,
            iat: now,
            jti: token::new_jti(),
            access: Vec::new(),
            cid: Some(id),
        })
    }

    /// Whether `token` is a sync notification for `proxy_user` from a trusted server.
    pub fn verify_edge_notification(&self, token: &str, proxy_user: &str) -> bool {
        self.verify(token, &self.edge_audience(), Expiry::Enforce)
            .is_ok_and(|c| c.sub == proxy_user)
    }

    fn edge_audience(&self) -> String {
        format!("{}#edge", self.inner.settings.service)
    }

    pub(crate) fn refresh_audience(&self) -> String {
        format!("{}#refresh", self.inner.settings.service)
    }

    fn upload_audience(&self) -> String {
        format!("{}#upload", self.inner.settings.service)
    }

    /// Whether `principal` may do `action` on `resource`, by the current policies.
    pub(crate) fn allowed(&self, principal: &Principal, action: Action, resource: &Resource) -> bool {
        self.decide(principal, action, resource, None)
    }

    /// `allowed` for pulling a manifest that the keys `signed_by` signed (products that
    /// require signatures).
    pub(crate) fn allowed_to_pull_signed(
        &self,
        principal: &Principal,
        resource: &Resource,
        signed_by: &[String],
    ) -> bool {
        self.decide(principal, Action::Pull, resource, Some(signed_by))
    }

    fn decide(&self, principal: &Principal, action: Action, resource: &Resource, signed_by: Option<&[String]>) -> bool {
        use std::hash::BuildHasher;
        let key = self
            .inner
            .decision_hasher
            .hash_one((principal, action, resource, signed_by));
        if let Some(d) = self.inner.decisions.get(&key)
            && d.action == action
            && d.resource == *resource
            && d.principal == *principal
            && d.signed_by.as_deref() == signed_by
        {
            return d.allowed;
        }
        let allowed = match signed_by {
            None => self.inner.authorizer.is_allowed(principal, action, resource),
            Some(keys) => self
                .inner
                .authorizer
                .is_allowed_to_pull_signed(principal, resource, keys),
        };
        let d = Decision {
            principal: principal.clone(),
            action,
            resource: resource.clone(),
            signed_by: signed_by.map(<[String]>::to_vec),
            allowed,
        };
        self.inner.decisions.insert(key, Arc::new(d));
        allowed
    }

    /// The policy resource for a repository path (its product's settings looked up).
    pub(crate) async fn resource(&self, path: &RepoPath) -> Result<Resource, Error> {
        let product = self.inner.identities.product(&path.org, &path.product).await?;
        Ok(Resource::Repository {
            org: path.org.clone(),
            product: path.product.clone(),
            name: path.name.clone(),
            public: product.as_ref().is_some_and(|p| p.public),
            require_signed_by: product.map(|p| p.require_signed_by).unwrap_or_default(),
        })
    }

    /// The current principal behind a token, or `None` when its credential is gone.
    pub(crate) async fn principal_of(&self, claims: &Claims) -> Result<Option<Principal>, Error> {
        if claims.sub.is_empty() {
            return Ok(Some(Principal::Anonymous));
        }
        let Some(cid) = claims.cid else {
            return Ok(None);
        };
        Ok(self.inner.identities.principal(&claims.sub, cid).await?)
    }

    /// The principal for a verified credential.
    pub(crate) async fn principal_of_account(&self, account: &Account) -> Result<Option<Principal>, Error> {
        Ok(self.inner.identities.principal(&account.username, account.id).await?)
    }

    /// The externally visible base URL, e.g. `https://localhost:5000`.
    pub(crate) fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(u) = &self.inner.settings.public_url {
            return u.trim_end_matches('/').to_owned();
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()) && !h.contains(['/', '"', '\\']))
            .unwrap_or("localhost");
        let scheme = if self.inner.settings.tls { "https" } else { "http" };
        format!("{scheme}://{host}")
    }

    /// A 401 with the Bearer challenge clients need to fetch a token.
    pub(crate) fn challenge(
        &self,
        headers: &HeaderMap,
        scope: Option<&Access>,
        error: Option<ChallengeError>,
    ) -> Error {
        let realm = format!("{}/v2/token", self.base_url(headers));
        let value = challenge::bearer(&realm, &self.inner.settings.service, scope, error);
        let message = match error {
            Some(ChallengeError::InvalidToken) => "the bearer token is invalid, expired or revoked",
            Some(ChallengeError::InsufficientScope) => "the token does not grant this access",
            None => "authentication required",
        };
        Error::new(ErrorCode::Unauthorized, message).with_header(axum::http::header::WWW_AUTHENTICATE, &value)
    }

    /// Sign a grant that lets requests continue upload session `id` of `public` after
    /// the caller's access token has expired.
    fn upload_grant(&self, claims: &Claims, public: &str, id: &str) -> Result<String, TokenError> {
        let now = token::now_secs();
        let grant = Claims {
            iss: self.inner.settings.issuer.clone(),
            sub: claims.sub.clone(),
            aud: self.upload_audience(),
            exp: now + UPLOAD_GRANT_TTL.as_secs(),
            nbf: now,
            iat: now,
            jti: token::new_jti(),
            access: vec![Access::new("upload", &format!("{public}/{id}"), &["push"])],
            cid: claims.cid,
        };
        self.sign(&grant)
    }

    /// Whether `grant` lets the holder of the (expired) `claims` continue upload `id`.
    fn upload_grant_valid(&self, grant: &str, claims: &Claims, public: &str, id: &str) -> bool {
        match self.verify(grant, &self.upload_audience(), Expiry::Enforce) {
            Ok(g) => {
                g.sub == claims.sub
                    && g.cid == claims.cid
                    && g.access
                        .iter()
                        .any(|a| a.kind == "upload" && a.name == format!("{public}/{id}") && a.allows("push"))
            }
            Err(_) => false,
        }
    }
}

/// Why a request's credentials were refused.
pub(crate) enum AuthFailure {
    Malformed,
    BadCredentials,
    InvalidToken,
    Internal(Error),
}

impl Gateway {
    /// The principal behind an `Authorization` header (Basic or Bearer access token) for
    /// the admin API; `Ok(None)` when there is none. Returns the actor name with it.
    pub(crate) async fn principal_from_header(
        &self,
        value: Option<&str>,
    ) -> Result<Option<(String, Principal)>, AuthFailure> {
        let Some(value) = value else {
            return Ok(None);
        };
        if let Some((scheme, token)) = value.split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
        {
            let claims = self
                .verify_access_fresh(token.trim())
                .await
                .map_err(|_| AuthFailure::InvalidToken)?;
            return match self.principal_of(&claims).await {
                Ok(Some(p)) => Ok(Some((claims.sub.clone(), p))),
                Ok(None) => Err(AuthFailure::InvalidToken),
                Err(e) => Err(AuthFailure::Internal(e)),
            };
        }
        let creds = crate::identity::credentials::parse_basic(value).map_err(|_| AuthFailure::Malformed)?;
        let Some(creds) = creds else {
            return Ok(None);
        };
        let account = match self
            .inner
            .identities
            .authenticate(&creds.username, &creds.password)
            .await
        {
            Ok(Some(a)) => a,
            Ok(None) => {
                if let Some(m) = self.metrics() {
                    m.login_failed("api");
                }
                return Err(AuthFailure::BadCredentials);
            }
            Err(e) => return Err(AuthFailure::Internal(e.into())),
        };
        match self.principal_of_account(&account).await {
            Ok(Some(p)) => Ok(Some((account.username, p))),
            Ok(None) => Err(AuthFailure::BadCredentials),
            Err(e) => Err(AuthFailure::Internal(e)),
        }
    }
}
