//! `switchyard-catalog`: the catalog service binary.

use std::process::ExitCode;

use clap::Parser;
use switchyard_catalog::{App, Config};
use switchyard_kit::{Shutdown, telemetry};

/// Switchyard catalog service: models, providers and endpoints over gRPC.
#[derive(Parser)]
#[command(version)]
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
