//! The `switchyard-provider-adapter` binary: flags → listener → serve until SIGTERM.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;
use switchyard_kit::{Shutdown, runtime, telemetry};
use switchyard_provider_adapter::{App, Config};

#[derive(Parser)]
#[command(
    name = "switchyard-provider-adapter",
    version,
    about = "Switchyard provider adapter"
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    /// Async worker threads. Default: one less than the CPUs this process
    /// may use (at least one); `TOKIO_WORKER_THREADS` also works.
    #[arg(long, env = "SWITCHYARD_WORKER_THREADS")]
    worker_threads: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    runtime::run(
        "switchyard-provider-adapter",
        cli.worker_threads,
        start(cli.config),
    )
}

async fn start(config: Config) -> ExitCode {
    let _telemetry = telemetry::init_with(config.telemetry());
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "provider-adapter failed to start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        grpc_addr = %app.grpc_addr(),
        metrics_addr = %app.metrics_addr(),
        "provider-adapter listening"
    );
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    match app.run(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "provider-adapter stopped with an error");
            ExitCode::FAILURE
        }
    }
}
