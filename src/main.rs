use clap::Parser;
use gatehouse::cli::{CertsCommand, Cli, Command, EdgeArgs, KeysCommand, ServeArgs, StoreArgs};
use gatehouse::config::{Config, parse_duration};
use gatehouse::identity::credentials::Secret;
use gatehouse::{server, store, tls};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

fn init_tracing(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log).unwrap_or_else(|_| "info".into());
    if cfg.log_format == "json" {
        // One JSON object per line, the event's fields at the top level, for shippers.
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter(filter)
            .with_target(false)
            .init();
        return;
    }
    // Colour only for a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    keep_large_allocations_out_of_the_heap();
    gatehouse::tls::install_crypto_provider();
    let cli = Cli::parse();
    if let Command::Admin(args) = cli.command {
        // The API client's failures carry exit codes scripts can tell apart.
        return match gatehouse::client::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => {
                eprintln!("gatehouse admin: {f}");
                ExitCode::from(f.exit as u8)
            }
        };
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error>;

async fn run(cli: Cli) -> Result<(), AnyError> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Edge(args) => serve_edge(args).await,
        Command::Store(args) => serve_store(args).await,
        Command::Gc(args) => {
            let cfg = args.common.load()?;
            init_tracing(&cfg);
            let grace = match &args.grace {
                Some(g) => parse_duration(g)?,
                None => cfg.gc_grace(),
            };
            let db = gatehouse::app::open_database(&cfg).await?;
            let registry = gatehouse::app::open_store(&cfg, &db).await?;
            let r = store::gc::collect(&registry, grace).await?;
            println!(
                "removed {} blobs ({} bytes; {} orphan files), {} manifests, {} blob links, {} uploads",
                r.blobs_deleted,
                r.bytes_freed,
                r.orphan_files_removed,
                r.manifests_dropped,
                r.blob_links_dropped,
                r.uploads_removed
            );
            registry.meta().close().await;
            Ok(())
        }
        Command::Migrate(args) => {
            let cfg = args.common.load()?;
            init_tracing(&cfg);
            let db = gatehouse::app::open_database(&cfg).await?;
            println!("schema of {} is up to date", cfg.database_display());
            db.close().await;
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate(args)) => {
            let cfg = args.common.load()?;
            let mut keys = gatehouse::gateway::token::Keyring::load_or_create(&cfg.keys_dir())?;
            let kid = keys.rotate()?;
            // Refresh tokens and upload grants are signed with the same keys and live longest.
            let longest = cfg
                .token_lifetime()
                .max(cfg.refresh_token_lifetime())
                .max(std::time::Duration::from_secs(24 * 3600));
            let removed = keys.prune(longest)?;
            println!("new signing key {kid}; {removed} retired key(s) removed");
            println!("send SIGHUP to the running server to start signing with it");
            Ok(())
        }
        Command::Admin(_) => unreachable!("run before"),
        Command::Health(args) => {
            let ca = match &args.ca_file {
                Some(f) => Some(std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?),
                None => None,
            };
            let client = gatehouse::sync::upstream::http_client(ca.as_deref())?;
            let path = if args.live { "/healthz" } else { "/readyz" };
            let url = format!("{}{path}", args.url.trim_end_matches('/'));
            let r = client.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
            let status = r.status();
            println!("{}", r.text().await.unwrap_or_default());
            if !status.is_success() {
                return Err(format!("{url} answered {status}").into());
            }
            Ok(())
        }
        Command::Certs(CertsCommand::Init(args)) => {
            let hosts = if args.hosts.is_empty() {
                tls::default_hosts()
            } else {
                args.hosts
            };
            let files = tls::init_dev_certs(&args.dir, &hosts)?;
            println!("server certificate for {} in {}", hosts.join(", "), args.dir.display());
            println!("  CA:  {}", files.ca_cert.display());
            print_trust_hint(&files.ca_cert, "localhost:5000");
            Ok(())
        }
    }
}

/// Settings from the file and environment, overlaid by the command line.
fn serve_config(args: ServeArgs) -> Result<Config, AnyError> {
    let mut cfg = args.common.load()?;
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(d) = args.tls_dir {
        cfg.tls_dir = d;
    }
    if args.tls_cert.is_some() {
        cfg.tls_cert = args.tls_cert;
        cfg.tls_key = args.tls_key;
    }
    cfg.insecure_http |= args.insecure_http;
    if args.backend.is_some() {
        cfg.backend = args.backend;
    }
    cfg.validate()?;
    Ok(cfg)
}

async fn serve(args: ServeArgs) -> Result<(), AnyError> {
    let cfg = serve_config(args)?;
    init_tracing(&cfg);
    let tls = if cfg.insecure_http {
        None
    } else {
        Some(tls_config(&cfg)?)
    };
    let admin_password = std::env::var("GATEHOUSE_ADMIN_PASSWORD").ok().map(Secret::new);
    let app = gatehouse::app::build(&cfg, admin_password, tls.is_some()).await?;
    run_server(cfg, app, tls).await
}

/// `gatehouse edge`: an edge site of the main server `--upstream`.
async fn serve_edge(args: EdgeArgs) -> Result<(), AnyError> {
    let cfg = serve_config(args.serve)?;
    init_tracing(&cfg);
    let secret = std::fs::read_to_string(&args.credential_file)
        .map_err(|e| format!("credential file {}: {e}", args.credential_file.display()))?;
    let secret = secret.trim();
    if secret.is_empty() {
        return Err(format!("credential file {} is empty", args.credential_file.display()).into());
    }
    let tls = if cfg.insecure_http {
        None
    } else {
        Some(tls_config(&cfg)?)
    };
    let link = gatehouse::sync::edge::EdgeLink {
        name: args.name,
        upstream: args.upstream.trim_end_matches('/').to_owned(),
        secret: Secret::new(secret),
    };
    tracing::info!(upstream = %link.upstream, name = %link.name, "starting as an edge site");
    let app = gatehouse::app::build_edge(&cfg, link, tls.is_some()).await?;
    run_server(cfg, app, tls).await
}

async fn run_server(
    cfg: Config,
    app: gatehouse::app::App,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> Result<(), AnyError> {
    if let Some(password) = &app.initial_admin_password {
        eprintln!("gatehouse: created the administrator account:");
        eprintln!("    username: admin");
        eprintln!("    password: {}", password.expose());
        eprintln!(
            "  (shown once; also in {}, readable only by you: delete it once stored)",
            app.initial_admin_password_file.display()
        );
    }
    raise_open_file_limit();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tokio::spawn(reload_on_sighup(app.gateway.clone()));
    if let Some(at) = cfg.metrics_listen {
        let listener = tokio::net::TcpListener::bind(at)
            .await
            .map_err(|e| format!("cannot listen on {at} (metrics_listen): {e}"))?;
        tracing::info!(listen = %at, "serving /metrics, /healthz and /readyz over plain HTTP without credentials");
        tokio::spawn(server::serve(
            listener,
            app.ops_router.clone(),
            None,
            server::ConnLimits::default(),
            std::future::pending::<()>(),
        ));
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    if tls.is_none() {
        tracing::warn!(listen = %addr, "serving plain HTTP without TLS (insecure_http); use only behind a TLS proxy or on a private network");
    }
    let policies: Vec<String> = app.policy_files.iter().map(|p| p.display().to_string()).collect();
    tracing::info!(
        listen = %addr,
        scheme,
        data_dir = %cfg.data_dir.display(),
        database = %cfg.database_display(),
        blobs = cfg.blobs.as_deref().unwrap_or("files in data_dir"),
        backend = cfg.backend.as_deref().unwrap_or("in-process store"),
        policies = policies.join(","),
        "gatehouse serving"
    );
    let limits = server::ConnLimits {
        max_connections: cfg.max_connections,
        ..server::ConnLimits::default()
    };
    server::serve(listener, app.router, tls, limits, server::shutdown_signal()).await?;
    app.gateway.audit().flush().await;
    app.db.close().await;
    Ok(())
}

/// Each Argon2 check allocates 19 MiB. Once such a block is freed, glibc raises its mmap
/// threshold above it, and the next ones come from per-thread heaps that keep them: under
/// steady logins the server grew past 1.5 GiB in a minute of the soak run. A fixed
/// threshold keeps large blocks mapped and returns them to the system when freed (the
/// same run then stays under 80 MiB).
fn keep_large_allocations_out_of_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; any value is valid for it.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Every connection, blob read and upload holds a file descriptor: take the hard limit
/// the system allows (as Go's runtime does), so that `max_connections` bounds
/// connections rather than a default soft limit of 1024.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!("could not raise the open file limit");
            }
        }
    }
}

/// `gatehouse store`: the bare store over plain HTTP.
async fn serve_store(args: StoreArgs) -> Result<(), AnyError> {
    let cfg = args.common.load()?;
    init_tracing(&cfg);
    let db = gatehouse::app::open_database(&cfg).await?;
    let registry = gatehouse::app::open_store(&cfg, &db).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    if let Some(every) = cfg.upload_purge_interval() {
        tokio::spawn(store::gc::purge_uploads_every(registry.clone(), every, cfg.gc_grace()));
    }
    tracing::warn!(listen = %addr, data_dir = %cfg.data_dir.display(), "gatehouse store serving /v2/ over plain HTTP without authentication: keep it on a private network");
    server::serve(
        listener,
        server::store_app(registry.clone()),
        None,
        server::ConnLimits {
            max_connections: cfg.max_connections,
            ..server::ConnLimits::default()
        },
        server::shutdown_signal(),
    )
    .await?;
    registry.meta().close().await;
    Ok(())
}

/// SIGHUP re-reads the policies and token keys; a broken policy file is refused and the
/// policies in force stay.
async fn reload_on_sighup(gateway: gatehouse::gateway::Gateway) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            match gateway.reload() {
                Ok(()) => tracing::info!("policies and token keys reloaded"),
                Err(e) => tracing::error!(error = %e, "reload refused; the previous policies stay in force"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = gateway;
}

/// The configured certificate, or the development certificate (created on first start).
fn tls_config(cfg: &Config) -> Result<std::sync::Arc<rustls::ServerConfig>, AnyError> {
    if let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) {
        return Ok(tls::server_config(cert, key)?);
    }
    let files = tls::CertFiles::in_dir(&cfg.tls_dir);
    if !files.server_pair_exists() {
        let hosts = tls::default_hosts();
        let files = tls::init_dev_certs(&cfg.tls_dir, &hosts)?;
        eprintln!(
            "gatehouse: created a development CA and a server certificate for {} in {}",
            hosts.join(", "),
            cfg.tls_dir.display()
        );
        print_trust_hint(&files.ca_cert, &client_host(cfg.listen));
    }
    Ok(tls::server_config(&files.server_cert, &files.server_key)?)
}

/// How clients name this server: an unspecified address is reached as localhost.
fn client_host(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() || listen.ip().is_loopback() {
        format!("localhost:{}", listen.port())
    } else {
        listen.to_string()
    }
}

fn print_trust_hint(ca: &Path, host: &str) {
    eprintln!("gatehouse: trust the CA once, for podman, skopeo and buildah:");
    eprintln!("    sudo mkdir -p /etc/containers/certs.d/{host}");
    eprintln!("    sudo cp {} /etc/containers/certs.d/{host}/ca.crt", ca.display());
    eprintln!("  or system-wide (Debian, also for docker and curl):");
    eprintln!(
        "    sudo cp {} /usr/local/share/ca-certificates/gatehouse-dev-ca.crt && sudo update-ca-certificates",
        ca.display()
    );
}
