//! The `switchyard-provider-adapter` binary: flags → listener → serve until SIGTERM.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;
use switchyard_kit::{Shutdown, telemetry};
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
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Cli::parse().config;
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
