//! `switchyard-usage-metering`: serve the gRPC API, or create a key once.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard_kit::{Shutdown, runtime, telemetry};
use switchyard_usage_metering::ledger::Billing;
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
    /// Async worker threads. Default: one less than the CPUs this process
    /// may use (at least one); `TOKIO_WORKER_THREADS` also works.
    #[arg(long, env = "SWITCHYARD_WORKER_THREADS", global = true)]
    worker_threads: Option<usize>,
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
        /// The new account is postpaid (metered, never refused for credit)
        /// instead of prepaid.
        #[arg(long)]
        postpaid: bool,
    },
    /// Create the first account: a management key, an inference key and,
    /// optionally, credit. Prints both keys once.
    Bootstrap {
        #[arg(long, default_value = "admin")]
        name: String,
        /// Initial credit in USD (e.g. 25 or 0.50).
        #[arg(long, default_value = "0")]
        credits: String,
        /// Postpaid: metered, never refused for credit.
        #[arg(long)]
        postpaid: bool,
    },
    /// Add credit to an account (idempotent per --idempotency-key).
    TopUp {
        #[arg(long)]
        account: String,
        /// USD, e.g. 10 or 2.50.
        #[arg(long)]
        amount: String,
        #[arg(long)]
        idempotency_key: String,
        #[arg(long, default_value = "")]
        memo: String,
    },
    /// Check the ledger invariants; exits non-zero on any violation.
    CheckLedger,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    runtime::run("switchyard-usage-metering", cli.worker_threads, start(cli))
}

async fn start(cli: Cli) -> ExitCode {
    let _telemetry = telemetry::init_with(cli.config.telemetry());
    let result = match cli.command {
        None if cli.migrate_only => Metering::open(&cli.config).await.map(|_| {
            tracing::info!("usage-metering migrated");
        }),
        None => serve(&cli.config).await,
        Some(Command::CreateKey {
            name,
            management,
            postpaid,
        }) => {
            let kind = if management {
                KeyKind::Management
            } else {
                KeyKind::Inference
            };
            create_key(&cli.config, &name, kind, billing(postpaid)).await
        }
        Some(Command::Bootstrap {
            name,
            credits,
            postpaid,
        }) => bootstrap(&cli.config, &name, &credits, billing(postpaid)).await,
        Some(Command::TopUp {
            account,
            amount,
            idempotency_key,
            memo,
        }) => top_up(&cli.config, account, &amount, idempotency_key, memo).await,
        Some(Command::CheckLedger) => check_ledger(&cli.config).await,
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

fn billing(postpaid: bool) -> Billing {
    if postpaid {
        Billing::Postpaid
    } else {
        Billing::Prepaid
    }
}

fn usd(text: &str) -> anyhow::Result<i64> {
    switchyard_kit::money::usd_to_nanos(text)
        .ok_or_else(|| anyhow::anyhow!("{text:?} is not an amount of USD"))
}

async fn bootstrap(
    config: &Config,
    name: &str,
    credits: &str,
    billing: Billing,
) -> anyhow::Result<()> {
    let credits = usd(credits)?;
    let metering = Metering::open(config).await?;
    let (management, inference) = metering.bootstrap(name, billing, credits).await?;
    eprintln!(
        "account {} ({}), credit ${}",
        management.key.account_id,
        billing.as_str(),
        switchyard_kit::money::nanos_to_usd(credits)
    );
    println!("management key: {}", management.key_text);
    println!("inference key:  {}", inference.key_text);
    Ok(())
}

async fn top_up(
    config: &Config,
    account: String,
    amount: &str,
    idempotency_key: String,
    memo: String,
) -> anyhow::Result<()> {
    let metering = Metering::open(config).await?;
    let response = metering
        .post_transfer(switchyard_proto::metering::v1::PostTransferRequest {
            account_id: account,
            kind: switchyard_proto::metering::v1::TransferKind::TopUp.into(),
            amount_nanos: usd(amount)?,
            idempotency_key,
            memo,
        })
        .await?;
    println!(
        "{} {}; balance ${}",
        response.transfer_id,
        if response.duplicate {
            "was already posted"
        } else {
            "posted"
        },
        switchyard_kit::money::nanos_to_usd(response.balance_nanos)
    );
    Ok(())
}

async fn check_ledger(config: &Config) -> anyhow::Result<()> {
    let metering = Metering::open(config).await?;
    let check = metering.check_ledger().await?;
    println!(
        "{} transfers over {} ledger accounts; entries sum to {}",
        check.transfers, check.accounts, check.entries_sum_nanos
    );
    for violation in &check.violations {
        println!("VIOLATION: {violation}");
    }
    anyhow::ensure!(check.violations.is_empty(), "the ledger does not balance");
    Ok(())
}

async fn create_key(
    config: &Config,
    name: &str,
    kind: KeyKind,
    billing: Billing,
) -> anyhow::Result<()> {
    let metering = Metering::open(config).await?;
    let created = metering.ensure_key(name, kind, None, billing).await?;
    eprintln!(
        "account {}, key {} ({})",
        created.key.account_id, created.key.label, created.key.hash
    );
    println!("{}", created.key_text);
    Ok(())
}
