//! `switchyard-catalog`: the catalog service binary.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;
use switchyard_catalog::{App, Config};
use switchyard_kit::{Shutdown, runtime, telemetry};

/// Switchyard catalog service: models, providers and endpoints over gRPC.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    config: Config,
    /// Open the storage, run migrations, apply --seed, then exit (for a
    /// Kubernetes migration Job); binds no listener.
    #[arg(long, env = "SWITCHYARD_MIGRATE_ONLY", value_parser = clap::builder::FalseyValueParser::new())]
    migrate_only: bool,
    /// Async worker threads. Default: one less than the CPUs this process
    /// may use (at least one); `TOKIO_WORKER_THREADS` also works.
    #[arg(long, env = "SWITCHYARD_WORKER_THREADS")]
    worker_threads: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    runtime::run("switchyard-catalog", cli.worker_threads, start(cli))
}

async fn start(cli: Cli) -> ExitCode {
    let config = cli.config;
    let _telemetry = telemetry::init_with(config.telemetry());
    if cli.migrate_only {
        return match switchyard_catalog::Catalog::open(&config).await {
            Ok(_) => {
                tracing::info!("catalog migrated and seeded");
                ExitCode::SUCCESS
            }
            Err(err) => {
                tracing::error!(error = format!("{err:#}"), "catalog migration failed");
                ExitCode::FAILURE
            }
        };
    }
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "catalog failed to start");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    match app.run(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "catalog stopped with an error");
            ExitCode::FAILURE
        }
    }
}
