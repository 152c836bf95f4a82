//! `switchyard`: run everything in one process (the default), or create a
//! key for an operator.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard::{AllInOne, ServeArgs};
use switchyard_kit::{Shutdown, runtime, telemetry};

#[derive(Parser)]
#[command(version, about = "Switchyard: an open-source LLM router (all-in-one)")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Async worker threads. Default: one less than the CPUs this process
    /// may use (at least one); `TOKIO_WORKER_THREADS` also works.
    #[arg(long, env = "SWITCHYARD_WORKER_THREADS", global = true)]
    worker_threads: Option<usize>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the four services in one process (the default).
    Serve,
    /// Probe a running service and exit 0 when it is healthy: gRPC health
    /// (`--grpc http://host:port`) or an HTTP URL (`--http http://.../readyz`).
    /// Container health checks use this.
    Health {
        #[arg(long, conflicts_with = "http", required_unless_present = "http")]
        grpc: Option<String>,
        #[arg(long)]
        http: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    runtime::run("switchyard", cli.worker_threads, run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let _telemetry = telemetry::init_with(cli.serve.telemetry());
    let result = match cli.command {
        None | Some(Command::Serve) => serve(cli.serve).await,
        Some(Command::Health { grpc, http }) => switchyard::health::probe(grpc, http).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "switchyard failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let app = AllInOne::build(args).await?;
    let base = format!("http://{}/api/v1", app.http_addr());
    // Scripts (and the tests) read this first line to find the port.
    println!("switchyard listening on {base} (gRPC {})", app.grpc_addr());
    println!("development key: {}", app.dev_key);
    println!("development management key: {}", app.dev_management_key);
    if app.simulating() {
        println!("providers without an API key are answered by the built-in simulator");
    }
    println!(
        "try: curl {base}/chat/completions -H 'Authorization: Bearer {}' \
         -H 'Content-Type: application/json' \
         -d '{{\"model\":\"openai/gpt-4\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'",
        app.dev_key
    );
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    app.run(shutdown).await
}
