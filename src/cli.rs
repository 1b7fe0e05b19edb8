//! The command line: `gatehouse serve`, `edge`, `store`, `gc`, `migrate`, `keys`, `certs`,
//! `health`, and `admin` (the API client, in `client`).

use crate::config::{Config, ConfigError, ProcessEnv};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Container registry gateway and OCI registry store"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the registry (embedded defaults: ./data, SQLite, local blob files).
    Serve(ServeArgs),
    /// Run an edge site (smart proxy): serve pulls from a synced copy of a main server's
    /// content, authorize with its data, forward pushes to it.
    Edge(EdgeArgs),
    /// Run only the registry store: plain HTTP, no authentication. For a private network
    /// behind `gatehouse serve --backend http://ADDR`.
    Store(StoreArgs),
    /// Remove unreferenced blobs and abandoned uploads; safe while the server runs.
    Gc(GcArgs),
    /// Bring the metadata database's schema up to date (servers also do it at start).
    Migrate(MigrateArgs),
    /// Development TLS certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Administer a running server over its API: organisations, members, pull secrets,
    /// repositories, remotes, edges, keys, users, audit (`gatehouse admin login` first)
    Admin(crate::client::AdminArgs),
    /// Ask a running server whether it is ready (`/readyz`; `--live`: `/healthz`), for
    /// container healthchecks: exit status 0 when it is, 1 when not.
    Health(HealthArgs),
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The server's base URL
    #[arg(long, default_value = "https://localhost:5000")]
    pub url: String,
    /// CA certificate (PEM) that the server's certificate is signed by, besides the
    /// system's
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Only check that the process answers (`/healthz`)
    #[arg(long)]
    pub live: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new signing key (the running server picks it up on SIGHUP); older keys
    /// keep verifying until every token they signed has expired, then are removed.
    Rotate(KeysArgs),
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a development CA (kept if it exists) and a server certificate signed by it.
    Init(CertsInitArgs),
}

#[derive(Debug, Args)]
pub struct CertsInitArgs {
    /// Where to write ca.crt, ca.key, server.crt and server.key
    #[arg(long, default_value = "certs")]
    pub dir: PathBuf,
    /// Host name or IP address the server certificate is for (repeatable)
    /// [default: localhost, 127.0.0.1, ::1 and this machine's host name]
    #[arg(long = "host")]
    pub hosts: Vec<String>,
}

/// Settings shared by every command that opens the data directory.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// TOML settings file; every setting can also be given as GATEHOUSE_<NAME>.
    #[arg(long, env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Metadata database, postgres://user:password@host[:port]/database, shared by
    /// replicas [default: SQLite in <data-dir>/meta.db]
    #[arg(long)]
    pub database: Option<String>,
    /// Blob storage shared by replicas, s3://bucket[/prefix] [default: files in
    /// <data-dir>/blobs]
    #[arg(long)]
    pub blobs: Option<String>,
    /// S3-compatible server for --blobs, https://host[:port] [default: AWS]
    #[arg(long)]
    pub s3_endpoint: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Listen address [default: 127.0.0.1:5000]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain to serve (with --tls-key) instead of the development certificate
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Directory of the development certificate, created on first start [default: certs]
    #[arg(long)]
    pub tls_dir: Option<PathBuf>,
    /// Serve plain HTTP, without TLS (private networks and TLS-terminating proxies only)
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub insecure_http: bool,
    /// Forward registry requests to this registry (e.g. a `gatehouse store`) instead of
    /// the store in this process: http://host:port
    #[arg(long)]
    pub backend: Option<String>,
}

#[derive(Debug, Args)]
pub struct EdgeArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// The main server's base URL, e.g. https://main.example:5000
    #[arg(long, env = "GATEHOUSE_UPSTREAM")]
    pub upstream: String,
    /// This edge's name, as registered on the main server (POST /api/v1/smart-proxies)
    #[arg(long, env = "GATEHOUSE_EDGE_NAME")]
    pub name: String,
    /// File holding the credential secret the registration returned (gpx_…)
    #[arg(long, env = "GATEHOUSE_CREDENTIAL_FILE")]
    pub credential_file: PathBuf,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Listen address [default: 127.0.0.1:5001]
    #[arg(long, default_value = "127.0.0.1:5001")]
    pub listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Leave anything younger than this alone (e.g. 30s, 15m, 24h) [default: gc_grace, 24h]
    #[arg(long)]
    pub grace: Option<String>,
}

impl CommonArgs {
    /// Settings from file and environment, with this command's flags on top.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut cfg = Config::load(self.config.as_deref(), &ProcessEnv)?;
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        let mut changed = false;
        for (flag, setting) in [
            (&self.database, &mut cfg.database),
            (&self.blobs, &mut cfg.blobs),
            (&self.s3_endpoint, &mut cfg.s3_endpoint),
        ] {
            if let Some(v) = flag {
                *setting = Some(v.clone());
                changed = true;
            }
        }
        if changed {
            cfg.validate()?;
        }
        Ok(cfg)
    }
}
