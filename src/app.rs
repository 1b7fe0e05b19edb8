//! Assembly of a running gatehouse from its settings: the database, the store (unless
//! requests go to a remote backend), identities and the first administrator, policies,
//! token keys, the audit log, the gateway and the admin API. `gatehouse serve` and the
//! integration tests build it the same way.

use crate::audit::{AuditLog, Retention};
use crate::config::Config;
use crate::db::Database;
use crate::gateway::backend::{Backend, Http, InProcess};
use crate::gateway::token::Keyring;
use crate::gateway::{self, Gateway};
use crate::identity::Identities;
use crate::identity::credentials::Secret;
use crate::policy::{Authorizer, Policies};
use crate::{admin, server, store};
use axum::Router;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot create data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("metadata database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("setting database ({0}): {1}")]
    Database(String, String),
    #[error(transparent)]
    Blobs(#[from] store::object_blobs::S3SetupError),
    #[error(transparent)]
    Store(#[from] store::OpenError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Keys(#[from] crate::gateway::token::TokenError),
    #[error(transparent)]
    Backend(#[from] crate::gateway::backend::BackendError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretError),
    #[error("edge: {0}")]
    Edge(String),
}

pub struct App {
    pub router: Router,
    /// `/metrics`, `/healthz` and `/readyz` without credentials, for `metrics_listen`.
    pub ops_router: Router,
    pub gateway: Gateway,
    /// `None` when requests go to a remote backend.
    pub registry: Option<store::Registry>,
    pub db: Database,
    /// The generated password of `admin`, on the first start only.
    pub initial_admin_password: Option<Secret>,
    /// Where the generated password was written.
    pub initial_admin_password_file: PathBuf,
    /// Which policy files are in force.
    pub policy_files: Vec<PathBuf>,
}

/// The policy directory to use: the configured one, else `./policies` if present.
fn policy_dir(cfg: &Config) -> Option<PathBuf> {
    cfg.policy_dir.clone().or_else(|| {
        let local = PathBuf::from("policies");
        local.is_dir().then_some(local)
    })
}

/// CA certificates trusted for outgoing TLS besides the system's: `ca_file`, else
/// the development CA of `tls_dir` when there is one.
pub fn outgoing_ca(cfg: &Config) -> Option<Vec<u8>> {
    match &cfg.ca_file {
        Some(f) => std::fs::read(f).ok(),
        None => std::fs::read(crate::tls::CertFiles::in_dir(&cfg.tls_dir).ca_cert).ok(),
    }
}

/// Open the metadata database the settings name and bring its schema up to date; a
/// failure names the `database` setting (its password masked) and says why.
pub async fn open_database(cfg: &Config) -> Result<Database, BuildError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| BuildError::DataDir(cfg.data_dir.clone(), e))?;
    Database::open(
        cfg.database.as_deref(),
        &cfg.data_dir.join("meta.db"),
        &cfg.pool_settings(),
    )
    .await
    .map_err(|e| BuildError::Database(cfg.database_display(), crate::error::chain(&e)))
}

/// Open the registry store the settings describe on `db`: blobs in object storage
/// (checked once here, so a wrong bucket, endpoint or key is refused at start) or in
/// `<data_dir>/blobs`.
pub async fn open_store(cfg: &Config, db: &Database) -> Result<store::Registry, BuildError> {
    let registry = match cfg.s3_settings() {
        Some(s3) => {
            let blobs = store::object_blobs::ObjectBlobStore::new(&s3)?;
            blobs.check().await?;
            store::Registry::open_with_object_store(db, &cfg.data_dir, std::sync::Arc::new(blobs))?
        }
        None => store::Registry::open_with(db, &cfg.data_dir)?,
    };
    registry.set_version_retention(cfg.version_retention);
    registry.set_blob_redirect(cfg.blob_redirect());
    Ok(registry)
}

/// Build the gateway application. `admin_password` is used for `admin` on the first
/// start only (from `GATEHOUSE_ADMIN_PASSWORD`); without it one is generated.
pub async fn build(cfg: &Config, admin_password: Option<Secret>, tls: bool) -> Result<App, BuildError> {
    build_as(cfg, Role::Main { admin_password }, tls).await
}

/// Build an edge site's application: it mirrors the main server `link.upstream`
/// (content and authorization data), serves pulls itself and forwards pushes.
pub async fn build_edge(cfg: &Config, link: crate::sync::edge::EdgeLink, tls: bool) -> Result<App, BuildError> {
    if cfg.backend.is_some() {
        return Err(BuildError::Edge(
            "an edge keeps its own store; --backend does not apply".into(),
        ));
    }
    build_as(cfg, Role::Edge(link), tls).await
}

enum Role {
    Main { admin_password: Option<Secret> },
    Edge(crate::sync::edge::EdgeLink),
}

async fn build_as(cfg: &Config, role: Role, tls: bool) -> Result<App, BuildError> {
    let data = &cfg.data_dir;
    crate::tls::install_crypto_provider();
    std::fs::create_dir_all(data).map_err(|e| BuildError::DataDir(data.clone(), e))?;
    let db = open_database(cfg).await?;
    let metrics = cfg.metrics.then(crate::metrics::Metrics::new);

    let (backend, registry): (Arc<dyn Backend>, _) = match &cfg.backend {
        Some(url) => (Arc::new(Http::new(url)?), None),
        None => {
            let registry = open_store(cfg, &db).await?;
            (
                Arc::new(InProcess::new(store::http::router(registry.clone()))),
                Some(registry),
            )
        }
    };

    let identities = Identities::new(&db)?;
    let password_file = data.join("initial-admin-password");
    // An edge's accounts are the main server's (copied): it makes none of its own.
    let initial_admin_password = match &role {
        Role::Main { admin_password } => {
            identities
                .bootstrap_admin(admin_password.clone(), &password_file)
                .await?
        }
        Role::Edge(_) => None,
    };
    let extra_ca = outgoing_ca(cfg);
    let (upstream, edge_link) = match &role {
        Role::Main { .. } => (None, None),
        Role::Edge(link) => {
            let http = crate::sync::upstream::http_client(extra_ca.as_deref()).map_err(BuildError::Edge)?;
            (
                Some(gateway::edge::UpstreamLink::new(
                    link.upstream.trim_end_matches('/').to_owned(),
                    http,
                )),
                Some(link.clone()),
            )
        }
    };

    let dir = policy_dir(cfg);
    let policies = match &dir {
        Some(d) => Policies::load_dir(d)?,
        None => Policies::builtin()?,
    };
    let policy_files = policies.files().to_vec();
    let keys_dir = cfg.keys_dir();
    let keyring = Keyring::load_or_create(&keys_dir)?;
    let audit = AuditLog::start(
        &db,
        Retention {
            max_age: cfg.audit_retention(),
            max_events: cfg.audit_max_events,
        },
    );
    // Signatures live in the store, so signing keys come with it (at an edge: the main
    // server's public keys, copied with the authorization data, to check requirements).
    let secrets = match &registry {
        Some(_) => Some(Arc::new(crate::secrets::SecretBox::open_or_create(
            &cfg.secrets_file(),
        )?)),
        None => None,
    };
    let signing = secrets
        .as_ref()
        .map(|s| crate::signing::SigningKeys::new(db.clone(), s.clone()));
    if let (Some(r), Some(s), Role::Main { .. }) = (&registry, &signing, &role) {
        r.set_signer(Arc::new(s.clone()));
    }
    let gateway = Gateway::new(gateway::Parts {
        settings: gateway::Settings {
            service: cfg.service.clone(),
            issuer: cfg.token_issuer.clone(),
            token_ttl: cfg.token_lifetime(),
            refresh_ttl: cfg.refresh_token_lifetime(),
            public_url: cfg.public_url.clone(),
            tls,
            policy_dir: dir,
        },
        identities,
        authorizer: Authorizer::new(policies),
        keyring,
        keys_dir,
        backend,
        audit,
        versioned: registry.clone(),
        signing: signing.clone(),
        upstream,
        metrics: metrics.clone(),
    });
    if let (Some(r), Some(m)) = (&registry, &metrics) {
        r.set_metrics(m.clone());
    }
    db.watch_changes({
        let gateway = gateway.clone();
        let registry = registry.clone();
        move || {
            gateway.forget_cached();
            if let Some(r) = &registry {
                r.meta().forget_repository_ids();
            }
        }
    });
    let syncer = match (&registry, &secrets) {
        (Some(r), Some(secrets)) => Some(crate::sync::Syncer::new(
            r.clone(),
            secrets.clone(),
            crate::sync::SyncerParts {
                gateway: Some(gateway.clone()),
                extra_ca,
                edge: edge_link.clone(),
                metrics: metrics.clone(),
            },
        )?),
        _ => None,
    };
    if let Some(r) = &registry {
        tokio::spawn(store::jobs::run_forever(r.clone()));
        if let Some(every) = cfg.upload_purge_interval() {
            tokio::spawn(store::gc::purge_uploads_every(r.clone(), every, cfg.gc_grace()));
        }
        if let Some(every) = cfg.gc_interval() {
            tokio::spawn(store::gc::collect_every(r.clone(), every, cfg.gc_grace()));
        }
    }
    if let Some(s) = &syncer {
        tokio::spawn(s.clone().run_forever());
    }
    let api = match (&edge_link, &syncer) {
        (Some(_), Some(s)) => {
            // Authorization data first (so the first pulls are authorized), then
            // everything the edge mirrors; both keep going if the main server is down.
            if let Err(e) = s.refresh_authz().await {
                tracing::warn!(error = %e, "no authorization data from the main server yet");
            }
            tokio::spawn(s.clone().run_authz_refresh());
            s.enqueue_edge_sync(None, None).await?;
            admin::edge_router(gateway.clone(), s.clone())
        }
        _ => {
            let api = admin::router(gateway.clone(), syncer.clone(), signing);
            // The web console calls the same API router, in process.
            api.clone()
                .merge(crate::console::router(gateway.clone(), api, db.clone()))
        }
    };
    let ops = crate::ops::Ops::new(crate::ops::OpsParts {
        metrics: metrics.clone(),
        gateway: gateway.clone(),
        registry: registry.clone(),
        syncer: syncer.clone(),
        db: db.clone(),
        scrape_token: cfg.metrics_token.clone(),
    });
    let router = server::with_request_log(gateway.router().merge(api).merge(ops.router()), metrics.clone());
    Ok(App {
        router,
        ops_router: ops.open_router(),
        gateway,
        registry,
        db,
        initial_admin_password,
        initial_admin_password_file: password_file,
        policy_files,
    })
}
