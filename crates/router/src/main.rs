//! `switchyard-router`: the public HTTP and gRPC API, talking to the other
//! services over the network.

use std::process::ExitCode;

use clap::Parser;
use switchyard_kit::{Shutdown, telemetry};
use switchyard_router::{App, Config, Peers};

#[derive(Parser)]
#[command(version, about = "Switchyard router: the public HTTP and gRPC API")]
struct Cli {
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Cli::parse().config;
    telemetry::init(config.log_format);
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "router failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let peers = Peers::connect(&config)?;
    let app = App::build(config, peers).await?;
    tracing::info!(http = %app.http_addr(), grpc = %app.grpc_addr(), "router listening");
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    app.run(shutdown).await
}
