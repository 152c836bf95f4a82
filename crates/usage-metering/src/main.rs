//! `switchyard-usage-metering`: serve the gRPC API, or create a key once.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard_kit::{Shutdown, telemetry};
use switchyard_usage_metering::{App, Config, KeyKind, Metering};

#[derive(Parser)]
#[command(
    version,
    about = "Switchyard usage-metering: API keys and usage records"
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    /// Open the storage and run migrations, then exit (for a Kubernetes
    /// migration Job); binds no listener.
    #[arg(long, env = "SWITCHYARD_MIGRATE_ONLY", value_parser = clap::builder::FalseyValueParser::new())]
    migrate_only: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create an API key on a new account and print its text once.
    CreateKey {
        /// Name shown wherever keys are listed.
        #[arg(long, default_value = "default")]
        name: String,
        /// Create a management key instead of an inference key.
        #[arg(long)]
        management: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _telemetry = telemetry::init_with(cli.config.telemetry());
    let result = match cli.command {
        None if cli.migrate_only => Metering::open(&cli.config).await.map(|_| {
            tracing::info!("usage-metering migrated");
        }),
        None => serve(&cli.config).await,
        Some(Command::CreateKey { name, management }) => {
            let kind = if management {
                KeyKind::Management
            } else {
                KeyKind::Inference
            };
            create_key(&cli.config, &name, kind).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "usage-metering failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let app = App::build(config).await?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    app.run(shutdown).await
}

async fn create_key(config: &Config, name: &str, kind: KeyKind) -> anyhow::Result<()> {
    let metering = Metering::open(config).await?;
    let created = metering.ensure_key(name, kind, None).await?;
    eprintln!(
        "account {}, key {} ({})",
        created.key.account_id, created.key.label, created.key.hash
    );
    println!("{}", created.key_text);
    Ok(())
}
