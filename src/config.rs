//! Settings. Precedence: command-line flags, then `GATEHOUSE_<SETTING>` environment
//! variables, then the TOML file given with `--config`, then the built-in defaults, so
//! that `gatehouse serve` with nothing else runs on embedded defaults.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the server listens on.
    pub listen: SocketAddr,
    /// Where metadata (`meta.db`), blobs and upload staging live.
    pub data_dir: PathBuf,
    /// The metadata database shared by replicas:
    /// `postgres://user:password@host[:port]/database`. By default SQLite in
    /// `<data_dir>/meta.db`.
    pub database: Option<String>,
    /// PostgreSQL connections per process.
    pub database_max_connections: u32,
    /// How long a request waits for a database connection before it fails with 503.
    pub database_acquire_timeout: String,
    /// PostgreSQL cancels statements running longer than this.
    pub database_statement_timeout: String,
    /// Token signing keys (`*.pem`). Replicas share one directory (a mounted secret or
    /// volume): each verifies the others' tokens, and a key one of them does not know yet
    /// makes it re-read the directory. By default `<data_dir>/keys`.
    pub keys_dir: Option<PathBuf>,
    /// The key that seals remote passwords at rest; replicas need the same file. By
    /// default `<data_dir>/secrets.key` (created on first start).
    pub secrets_file: Option<PathBuf>,
    /// Where blob bytes live: `s3://bucket[/prefix]` for S3-compatible object storage
    /// shared by replicas. By default files in `<data_dir>/blobs`.
    pub blobs: Option<String>,
    /// The S3-compatible server, `https://host[:port]` (MinIO, Ceph RGW, Garage…); AWS
    /// when absent.
    pub s3_endpoint: Option<String>,
    /// The bucket's region (`us-east-1` when neither this nor `AWS_REGION` says).
    pub s3_region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`); off means virtual-hosted style.
    pub s3_path_style: bool,
    /// Credentials; by default the standard `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
    /// environment variables (or the instance's role).
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    /// Answer blob GETs with a 307 to a presigned object-store URL valid this long
    /// (e.g. `5m`), so replicas do not carry the bytes; off (`0`) by default.
    pub blob_redirect: String,
    /// tracing filter directives, e.g. `info` or `gatehouse=debug,info`.
    pub log: String,
    /// `text` (for people) or `json` (one object per line, for log shippers).
    pub log_format: String,
    /// Count requests, pushes, pulls, tokens, jobs… for `/metrics` (Prometheus).
    pub metrics: bool,
    /// Also serve `/metrics`, `/healthz` and `/readyz` here, over plain HTTP and without
    /// credentials (an address only the monitoring network reaches).
    pub metrics_listen: Option<SocketAddr>,
    /// A bearer token Prometheus scrapes `/metrics` on the main port with (global admins
    /// may too). Keep it in the environment (`GATEHOUSE_METRICS_TOKEN`) or a file
    /// readable only by gatehouse; it is never logged.
    pub metrics_token: Option<String>,
    /// Age under which garbage collection never touches an upload, blob or link
    /// (e.g. `30s`, `15m`, `24h`, `7d`).
    pub gc_grace: String,
    /// How often the server discards upload sessions idle longer than `gc_grace`
    /// (`0` turns it off).
    pub upload_purge_interval: String,
    /// How often the server runs garbage collection itself (as `gatehouse gc`), e.g.
    /// `24h`; `0` (the default) leaves it to `gatehouse gc` from cron.
    pub gc_interval: String,
    /// Open client connections served at once; past it a new connection is answered
    /// 503 with `Retry-After` and closed. Idle connections close after 30 s.
    pub max_connections: usize,
    /// Directory of the development CA and server certificate, created on first start
    /// when `tls_cert`/`tls_key` are not given.
    pub tls_dir: PathBuf,
    /// PEM certificate chain to serve instead of the development certificate.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) trusted for outgoing TLS (to edges, to the main server),
    /// besides the system's; by default the development CA in `tls_dir`, if any.
    pub ca_file: Option<PathBuf>,
    /// Serve plain HTTP without TLS. Only for a private network or a TLS-terminating
    /// proxy in front.
    pub insecure_http: bool,
    /// Forward registry requests to this registry (`http://host:port`, e.g. a
    /// `gatehouse store`) instead of the store in this process.
    pub backend: Option<String>,
    /// The token audience (`service=` in challenges); edge sites must use the same.
    pub service: String,
    /// The `iss` of issued tokens.
    pub token_issuer: String,
    /// Lifetime of registry access tokens (at least 60s). Uploads begun with a token
    /// continue past its expiry.
    pub token_lifetime: String,
    /// Lifetime of refresh tokens (`offline_token=true`, docker's identity token).
    pub refresh_token_lifetime: String,
    /// The externally visible URL (`https://registry.example.com`); by default each
    /// request's Host header.
    pub public_url: Option<String>,
    /// Directory of `*.cedar` policies, reloaded on SIGHUP. By default `./policies` when
    /// it exists, else the built-in policies.
    pub policy_dir: Option<PathBuf>,
    /// Audit events older than this are removed.
    pub audit_retention: String,
    /// At most this many audit events are kept (the oldest go first).
    pub audit_max_events: u64,
    /// How many versions of each versioned repository are kept (0: all, as Pulp).
    pub version_retention: u64,
}

/// Secrets (the database password, the S3 secret key) are never printed.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database_display())
            .field("blobs", &self.blobs)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Every setting's name (the keys of the TOML file, `GATEHOUSE_<NAME>` in upper case).
pub const SETTINGS: &[&str] = &[
    "listen",
    "data_dir",
    "database",
    "database_max_connections",
    "database_acquire_timeout",
    "database_statement_timeout",
    "keys_dir",
    "secrets_file",
    "blobs",
    "s3_endpoint",
    "s3_region",
    "s3_path_style",
    "s3_access_key_id",
    "s3_secret_access_key",
    "blob_redirect",
    "log",
    "log_format",
    "metrics",
    "metrics_listen",
    "metrics_token",
    "gc_grace",
    "upload_purge_interval",
    "gc_interval",
    "max_connections",
    "tls_dir",
    "tls_cert",
    "tls_key",
    "ca_file",
    "insecure_http",
    "backend",
    "service",
    "token_issuer",
    "token_lifetime",
    "refresh_token_lifetime",
    "public_url",
    "policy_dir",
    "audit_retention",
    "audit_max_events",
    "version_retention",
];

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            data_dir: PathBuf::from("./data"),
            database: None,
            database_max_connections: 16,
            database_acquire_timeout: "5s".to_owned(),
            database_statement_timeout: "30s".to_owned(),
            keys_dir: None,
            secrets_file: None,
            blobs: None,
            s3_endpoint: None,
            s3_region: None,
            s3_path_style: true,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            blob_redirect: "0".to_owned(),
            log: "info".to_owned(),
            log_format: "text".to_owned(),
            metrics: true,
            metrics_listen: None,
            metrics_token: None,
            gc_grace: "24h".to_owned(),
            upload_purge_interval: "1h".to_owned(),
            gc_interval: "0".to_owned(),
            max_connections: 8192,
            tls_dir: PathBuf::from("certs"),
            tls_cert: None,
            tls_key: None,
            ca_file: None,
            insecure_http: false,
            backend: None,
            service: "gatehouse".to_owned(),
            token_issuer: "gatehouse".to_owned(),
            token_lifetime: "5m".to_owned(),
            refresh_token_lifetime: "30d".to_owned(),
            public_url: None,
            policy_dir: None,
            audit_retention: "90d".to_owned(),
            audit_max_events: 1_000_000,
            version_retention: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("config file {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("environment variable {0}: {1}")]
    Env(String, String),
    #[error("setting {0}: {1}")]
    Invalid(&'static str, String),
}

/// Environment variables, so tests can pass a map instead of the process environment.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl<S: std::hash::BuildHasher> Env for std::collections::HashMap<String, String, S> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

impl Config {
    /// Defaults, overlaid by the file (if any), then by `GATEHOUSE_*` variables.
    pub fn load(file: Option<&Path>, env: &dyn Env) -> Result<Self, ConfigError> {
        let mut table =
            toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Invalid("defaults", e.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
            let from_file: toml::Table = text.parse().map_err(|e| ConfigError::Parse(path.to_owned(), e))?;
            // Parse the file alone first so that its errors name the file.
            Config::deserialize(toml::Value::Table(from_file.clone()))
                .map_err(|e| ConfigError::Invalid("config file", e.to_string()))?;
            table.extend(from_file);
        }
        for key in SETTINGS {
            let var = format!("GATEHOUSE_{}", key.to_uppercase());
            if let Some(raw) = env.var(&var) {
                // A value that parses as TOML keeps its type (numbers, booleans, arrays);
                // anything else is taken as a plain string.
                let value = format!("v = {raw}")
                    .parse::<toml::Table>()
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or(toml::Value::String(raw));
                table.insert((*key).to_owned(), value);
            }
        }
        let cfg = Config::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::Env("GATEHOUSE_*".into(), e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        parse_duration(&self.gc_grace).map_err(|e| ConfigError::Invalid("gc_grace", e))?;
        parse_duration(&self.upload_purge_interval).map_err(|e| ConfigError::Invalid("upload_purge_interval", e))?;
        parse_duration(&self.gc_interval).map_err(|e| ConfigError::Invalid("gc_interval", e))?;
        tracing_subscriber::EnvFilter::try_new(&self.log).map_err(|e| ConfigError::Invalid("log", e.to_string()))?;
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid("log_format", "use text or json".into()));
        }
        if let Some(t) = &self.metrics_token
            && t.len() < 16
        {
            return Err(ConfigError::Invalid(
                "metrics_token",
                "at least 16 characters (a random secret)".into(),
            ));
        }
        let ttl = parse_duration(&self.token_lifetime).map_err(|e| ConfigError::Invalid("token_lifetime", e))?;
        if ttl < Duration::from_secs(60) {
            return Err(ConfigError::Invalid("token_lifetime", "must be at least 60s".into()));
        }
        parse_duration(&self.refresh_token_lifetime).map_err(|e| ConfigError::Invalid("refresh_token_lifetime", e))?;
        parse_duration(&self.audit_retention).map_err(|e| ConfigError::Invalid("audit_retention", e))?;
        if let Some(url) = &self.database
            && !["postgres://", "postgresql://", "sqlite://"]
                .iter()
                .any(|s| url.starts_with(s))
        {
            return Err(ConfigError::Invalid(
                "database",
                "use postgres://user:password@host[:port]/database (or sqlite:///path/meta.db)".into(),
            ));
        }
        if let Some(b) = &self.blobs {
            crate::store::object_blobs::parse_s3_url(b).map_err(|e| ConfigError::Invalid("blobs", e.to_string()))?;
        }
        if let Some(e) = &self.s3_endpoint
            && !(e.starts_with("https://") || e.starts_with("http://"))
        {
            return Err(ConfigError::Invalid(
                "s3_endpoint",
                format!("{e:?}: use https://host[:port]"),
            ));
        }
        if self.s3_access_key_id.is_some() != self.s3_secret_access_key.is_some() {
            return Err(ConfigError::Invalid(
                "s3_access_key_id",
                "s3_access_key_id and s3_secret_access_key must be given together".into(),
            ));
        }
        let redirect = parse_duration(&self.blob_redirect).map_err(|e| ConfigError::Invalid("blob_redirect", e))?;
        if !redirect.is_zero() && self.blobs.is_none() {
            return Err(ConfigError::Invalid(
                "blob_redirect",
                "needs object storage (blobs = \"s3://…\"): files have no URL to redirect to".into(),
            ));
        }
        if self.max_connections < 16 {
            return Err(ConfigError::Invalid("max_connections", "must be at least 16".into()));
        }
        if self.database_max_connections < 2 {
            return Err(ConfigError::Invalid(
                "database_max_connections",
                "must be at least 2".into(),
            ));
        }
        for (name, value) in [
            ("database_acquire_timeout", &self.database_acquire_timeout),
            ("database_statement_timeout", &self.database_statement_timeout),
        ] {
            match parse_duration(value) {
                Ok(d) if !d.is_zero() => {}
                Ok(_) => return Err(ConfigError::Invalid(name, "must be at least 1s".into())),
                Err(e) => return Err(ConfigError::Invalid(name, e)),
            }
        }
        if let Some(b) = &self.backend
            && !b.starts_with("http://")
        {
            return Err(ConfigError::Invalid("backend", format!("{b:?}: use http://host:port")));
        }
        if let Some(u) = &self.public_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(ConfigError::Invalid(
                "public_url",
                format!("{u:?}: use https://host[:port]"),
            ));
        }
        if self.service.is_empty() || self.service.contains(['"', '\\']) {
            return Err(ConfigError::Invalid(
                "service",
                "must be a non-empty name without quotes".into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert",
                "tls_cert and tls_key must be given together".into(),
            ));
        }
        Ok(())
    }

    pub fn pool_settings(&self) -> crate::db::PoolSettings {
        let defaults = crate::db::PoolSettings::default();
        crate::db::PoolSettings {
            max_connections: self.database_max_connections,
            acquire_timeout: parse_duration(&self.database_acquire_timeout).unwrap_or(defaults.acquire_timeout),
            statement_timeout: parse_duration(&self.database_statement_timeout).unwrap_or(defaults.statement_timeout),
        }
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.keys_dir.clone().unwrap_or_else(|| self.data_dir.join("keys"))
    }

    pub fn secrets_file(&self) -> PathBuf {
        self.secrets_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secrets.key"))
    }

    /// The object-store settings, when blobs live in one.
    pub fn s3_settings(&self) -> Option<crate::store::object_blobs::S3Settings> {
        self.blobs.as_ref().map(|url| crate::store::object_blobs::S3Settings {
            url: url.clone(),
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            path_style: self.s3_path_style,
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
        })
    }

    /// How long presigned blob URLs live; `None` when blob GETs are served directly.
    pub fn blob_redirect(&self) -> Option<Duration> {
        parse_duration(&self.blob_redirect).ok().filter(|d| !d.is_zero())
    }

    /// The database setting with its password masked, for messages and logs.
    pub fn database_display(&self) -> String {
        match &self.database {
            None => format!("sqlite:{}", self.data_dir.join("meta.db").display()),
            Some(url) => crate::db::redact_url(url),
        }
    }

    pub fn gc_grace(&self) -> Duration {
        parse_duration(&self.gc_grace).unwrap_or(Duration::from_secs(24 * 3600))
    }

    pub fn token_lifetime(&self) -> Duration {
        parse_duration(&self.token_lifetime).unwrap_or(Duration::from_secs(300))
    }

    pub fn refresh_token_lifetime(&self) -> Duration {
        parse_duration(&self.refresh_token_lifetime).unwrap_or(Duration::from_secs(30 * 86400))
    }

    pub fn audit_retention(&self) -> Duration {
        parse_duration(&self.audit_retention).unwrap_or(Duration::from_secs(90 * 86400))
    }

    /// `None` when periodic upload purging is off.
    pub fn upload_purge_interval(&self) -> Option<Duration> {
        parse_duration(&self.upload_purge_interval)
            .ok()
            .filter(|d| !d.is_zero())
    }

    pub fn gc_interval(&self) -> Option<Duration> {
        parse_duration(&self.gc_interval).ok().filter(|d| !d.is_zero())
    }
}

/// `90`, `90s`, `15m`, `24h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 15m, 24h or 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn env_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:6000\"\ngc_grace = \"1h\"\n").unwrap();
        let env: HashMap<String, String> = [("GATEHOUSE_GC_GRACE".to_owned(), "5m".to_owned())].into();
        let cfg = Config::load(Some(&file), &env).unwrap();
        assert_eq!(cfg.listen.port(), 6000);
        assert_eq!(cfg.gc_grace(), Duration::from_secs(300));
        assert_eq!(cfg.data_dir, PathBuf::from("./data"));
    }

    #[test]
    fn settings_lists_every_field() {
        let full = Config {
            tls_cert: Some("c".into()),
            tls_key: Some("k".into()),
            backend: Some("http://b".into()),
            public_url: Some("https://p".into()),
            policy_dir: Some("p".into()),
            ca_file: Some("ca".into()),
            database: Some("postgres://db/gh".into()),
            blobs: Some("s3://bucket".into()),
            keys_dir: Some("k".into()),
            secrets_file: Some("s".into()),
            s3_endpoint: Some("http://s3".into()),
            s3_region: Some("r".into()),
            s3_access_key_id: Some("k".into()),
            s3_secret_access_key: Some("s".into()),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9000))),
            metrics_token: Some("t".into()),
            ..Config::default()
        };
        let table = toml::Table::try_from(full).unwrap();
        let mut keys: Vec<&str> = table.keys().map(String::as_str).collect();
        let mut listed = SETTINGS.to_vec();
        keys.sort();
        listed.sort();
        assert_eq!(keys, listed);
    }

    #[test]
    fn env_sets_optional_and_boolean_settings() {
        let env: HashMap<String, String> = [
            ("GATEHOUSE_TLS_CERT".to_owned(), "/etc/gh/cert.pem".to_owned()),
            ("GATEHOUSE_TLS_KEY".to_owned(), "/etc/gh/key.pem".to_owned()),
            ("GATEHOUSE_INSECURE_HTTP".to_owned(), "true".to_owned()),
        ]
        .into();
        let cfg = Config::load(None, &env).unwrap();
        assert_eq!(cfg.tls_cert, Some(PathBuf::from("/etc/gh/cert.pem")));
        assert!(cfg.insecure_http);
        let half: HashMap<String, String> = [("GATEHOUSE_TLS_CERT".to_owned(), "c.pem".to_owned())].into();
        assert!(Config::load(None, &half).unwrap_err().to_string().contains("together"));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let env: HashMap<String, String> = [("GATEHOUSE_GC_GRACE".to_owned(), "soon".to_owned())].into();
        let err = Config::load(None, &env).unwrap_err().to_string();
        assert!(err.contains("gc_grace"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(&file, "listn = \"x\"\n").unwrap();
        let err = Config::load(Some(&file), &HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("listn"), "{err}");
    }
}
