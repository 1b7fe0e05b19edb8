use clap::Parser;
use gatehouse::cli::{Cli, Command};
use gatehouse::config::{Config, parse_duration};
use gatehouse::{server, store};
use std::process::ExitCode;

fn init_tracing(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log).unwrap_or_else(|_| "info".into());
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
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Serve(args) => {
            let mut cfg = args.common.load()?;
            if let Some(l) = args.listen {
                cfg.listen = l;
            }
            init_tracing(&cfg);
            let registry = store::Registry::open(&cfg.data_dir).await?;
            let listener = tokio::net::TcpListener::bind(cfg.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
            tracing::info!(listen = %listener.local_addr()?, data_dir = %cfg.data_dir.display(), "gatehouse store serving /v2/");
            server::serve(listener, server::app(registry.clone()), server::shutdown_signal()).await?;
            registry.meta().close().await;
            Ok(())
        }
        Command::Gc(args) => {
            let cfg = args.common.load()?;
            init_tracing(&cfg);
            let grace = match &args.grace {
                Some(g) => parse_duration(g)?,
                None => cfg.gc_grace(),
            };
            let registry = store::Registry::open(&cfg.data_dir).await?;
            let r = store::gc::collect(&registry, grace).await?;
            println!(
                "removed {} blobs ({} orphan files), {} manifests, {} blob links, {} uploads",
                r.blobs_deleted, r.orphan_files_removed, r.manifests_dropped, r.blob_links_dropped, r.uploads_removed
            );
            registry.meta().close().await;
            Ok(())
        }
    }
}
