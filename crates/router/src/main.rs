//! `switchyard-router`: the public HTTP and gRPC API, talking to the other
//! services over the network.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;
use switchyard_kit::{Shutdown, runtime, telemetry};
use switchyard_router::{App, Config, Peers};

#[derive(Parser)]
#[command(version, about = "Switchyard router: the public HTTP and gRPC API")]
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
    runtime::run("switchyard-router", cli.worker_threads, start(cli.config))
}

async fn start(config: Config) -> ExitCode {
    let _telemetry = telemetry::init_with(config.telemetry());
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
    // Scripts and tests read these stdout lines; logs go to stderr.
    println!(
        "switchyard-router listening on http://{} (gRPC {})",
        app.http_addr(),
        app.grpc_addr()
    );
    let ready = app.ready_signal();
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let run = app.run(shutdown);
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => return result,
        ready = ready => {
            ready?;
            println!("switchyard-router ready");
        }
    }
    run.await
}
