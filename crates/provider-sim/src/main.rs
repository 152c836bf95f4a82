//! The `provider-sim` binary: flags → listener → serve until SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use provider_sim::{App, Config};
use switchyard_kit::Shutdown;
use switchyard_kit::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "provider-sim",
    version,
    about = "Provider simulator speaking the OpenAI, Anthropic and Gemini wire formats"
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[arg(long, env = "SWITCHYARD_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let app = match App::build(cli.config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "provider-sim failed to start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %app.addr(), "provider-sim listening");
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    match app.run(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "provider-sim stopped with an error");
            ExitCode::FAILURE
        }
    }
}
