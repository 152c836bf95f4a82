//! A whole Switchyard deployment for tests: the four services, each on its
//! own loopback listener and talking real gRPC to the others, on a fresh
//! Postgres database and a private Redis key prefix, with provider-sim as
//! the upstream.
//!
//! The test catalog has two providers for `openai/gpt-4`: "SimCheap"
//! (upstream model `gpt-4-cheap`, list price) and "SimPricey" (upstream
//! `gpt-4-pricey`, 1000x the price). Default routing picks SimCheap first with
//! probability 1 - 1e-6, so tests can make it fail and watch the fallback.

use std::net::SocketAddr;
use std::path::PathBuf;

use switchyard_kit::Shutdown;
use switchyard_kit::testing;
use tokio::task::JoinHandle;

pub const CHEAP_UPSTREAM: &str = "gpt-4-cheap";
pub const PRICEY_UPSTREAM: &str = "gpt-4-pricey";
/// With `Options::three_providers`: a third endpoint, "SimMid", between the two.
pub const MID_UPSTREAM: &str = "gpt-4-mid";

pub struct Stack {
    pub http: SocketAddr,
    pub router_grpc: SocketAddr,
    /// An inference key of the test account.
    pub key: String,
    pub sim: provider_sim::SimState,
    pub database_url: String,
    pub redis_prefix: String,
    pub data_dir: PathBuf,
    pub metering: switchyard_usage_metering::Metering,
    metering_config: switchyard_usage_metering::Config,
    metering_task: Option<(Shutdown, JoinHandle<anyhow::Result<()>>)>,
    router_task: Option<(Shutdown, JoinHandle<anyhow::Result<()>>)>,
    shutdown: Shutdown,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

fn seed(sim_url: &str, three: bool) -> String {
    let third = if three {
        format!(
            r#"
[[providers]]
slug = "sim-mid"
name = "SimMid"
wire_format = "openai"
base_url = "{sim_url}/v1"
credential_ref = ""

[[endpoints]]
model = "openai/gpt-4"
provider = "sim-mid"
upstream_model = "{MID_UPSTREAM}"
pricing = {{ prompt = "0.00004", completion = "0.00008" }}
"#
        )
    } else {
        String::new()
    };
    let base = format!(
        r#"
[[providers]]
slug = "sim-cheap"
name = "SimCheap"
wire_format = "openai"
base_url = "{sim_url}/v1"
credential_ref = ""

[[providers]]
slug = "sim-pricey"
name = "SimPricey"
wire_format = "openai"
base_url = "{sim_url}/v1"
credential_ref = ""

[[providers]]
slug = "sim-anthropic"
name = "SimAnthropic"
wire_format = "anthropic"
base_url = "{sim_url}/v1"
credential_ref = ""

[[providers]]
slug = "sim-gemini"
name = "SimGemini"
wire_format = "gemini"
base_url = "{sim_url}/v1beta"
credential_ref = ""

[[models]]
id = "anthropic/claude-test"
name = "Anthropic: Claude (test)"
created = 1700000000
context_length = 200000
architecture = {{ modality = "text->text", input_modalities = ["text"], output_modalities = ["text"], tokenizer = "Claude" }}
supported_parameters = ["max_tokens", "temperature", "tools", "tool_choice", "reasoning"]

[[endpoints]]
model = "anthropic/claude-test"
provider = "sim-anthropic"
upstream_model = "claude-sim"
pricing = {{ prompt = "0.000003", completion = "0.000015" }}

[[models]]
id = "google/gemini-test"
name = "Google: Gemini (test)"
created = 1700000001
context_length = 1000000
architecture = {{ modality = "text->text", input_modalities = ["text"], output_modalities = ["text"], tokenizer = "Gemini" }}
supported_parameters = ["max_tokens", "temperature", "tools", "tool_choice", "reasoning"]

[[endpoints]]
model = "google/gemini-test"
provider = "sim-gemini"
upstream_model = "gemini-sim"
pricing = {{ prompt = "0.0000001", completion = "0.0000004" }}

[[models]]
id = "openai/gpt-4"
name = "OpenAI: GPT-4"
created = 1685232000
description = "Test entry"
context_length = 8191
architecture = {{ modality = "text->text", input_modalities = ["text"], output_modalities = ["text"], tokenizer = "GPT" }}
supported_parameters = ["max_tokens", "temperature", "tools", "tool_choice", "logprobs", "top_logprobs", "stop", "seed"]

[[endpoints]]
model = "openai/gpt-4"
provider = "sim-cheap"
upstream_model = "{CHEAP_UPSTREAM}"
pricing = {{ prompt = "0.00003", completion = "0.00006", input_cache_read = "0.000015" }}

[[endpoints]]
model = "openai/gpt-4"
provider = "sim-pricey"
upstream_model = "{PRICEY_UPSTREAM}"
pricing = {{ prompt = "0.03", completion = "0.06", input_cache_read = "0.015" }}
"#
    );
    base + &third
}

pub struct Options {
    pub max_body_bytes: usize,
    /// Add "SimMid" as a third provider of `openai/gpt-4`.
    pub three_providers: bool,
    pub first_token_timeout_ms: u32,
    /// Redis to use instead of the shared one (fault tests run their own).
    pub redis_url: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_body_bytes: 256 * 1024,
            three_providers: false,
            first_token_timeout_ms: 30_000,
            redis_url: None,
        }
    }
}

impl Stack {
    pub async fn start() -> Stack {
        Stack::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Stack {
        // Service logs only when asked for (RUST_LOG=info cargo test ...).
        if std::env::var_os("RUST_LOG").is_some() {
            switchyard_kit::telemetry::init(Default::default());
        }
        let shutdown = Shutdown::new();
        let mut tasks = Vec::new();
        let data_dir = std::env::temp_dir().join(testing::unique_name("switchyard_stack"));
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let database_url = testing::fresh_postgres_database().await;
        let redis_prefix = testing::unique_name("sy");

        let sim = provider_sim::App::build(provider_sim::Config::ephemeral())
            .await
            .expect("provider-sim");
        let sim_url = format!("http://{}", sim.addr());
        let sim_state = sim.state();
        tasks.push(tokio::spawn(sim.run(shutdown.clone())));

        let seed_path = data_dir.join("seed.toml");
        std::fs::write(&seed_path, seed(&sim_url, options.three_providers)).expect("seed");
        let catalog = switchyard_catalog::App::build(switchyard_catalog::Config {
            grpc_addr: "127.0.0.1:0".parse().expect("literal"),
            database_url: Some(database_url.clone().into()),
            data_dir: data_dir.clone(),
            seed: Some(seed_path),
            ..Default::default()
        })
        .await
        .expect("catalog");
        let catalog_url = format!("http://{}", catalog.grpc_addr());
        tasks.push(tokio::spawn(catalog.run(shutdown.clone())));

        let mut metering_config = switchyard_usage_metering::Config::embedded(&data_dir);
        metering_config.database_url = Some(database_url.clone());
        let metering = switchyard_usage_metering::App::build(&metering_config)
            .await
            .expect("usage-metering");
        // Restarts (outage tests) come back on the same port.
        metering_config.grpc_addr = metering.grpc_addr();
        let metering_url = format!("http://{}", metering.grpc_addr());
        let metering_handle = metering.metering().clone();
        // A prepaid account with ample credit: every request goes through
        // admission and the credit lease, as a customer's would.
        let created = metering_handle
            .ensure_key(
                "e2e",
                switchyard_usage_metering::KeyKind::Inference,
                None,
                switchyard_usage_metering::ledger::Billing::Prepaid,
            )
            .await
            .expect("key");
        metering_handle
            .post_transfer(switchyard_proto::metering::v1::PostTransferRequest {
                account_id: created.key.account_id.clone(),
                kind: switchyard_proto::metering::v1::TransferKind::TopUp.into(),
                amount_nanos: 100_000 * 1_000_000_000,
                idempotency_key: "e2e-credit".into(),
                memo: String::new(),
            })
            .await
            .expect("credit");
        let key = created.key_text;
        let metering_shutdown = shutdown.child();
        let metering_task = Some((
            metering_shutdown.clone(),
            tokio::spawn(metering.run(metering_shutdown)),
        ));

        let adapter = switchyard_provider_adapter::App::build(
            switchyard_provider_adapter::Config::ephemeral(),
        )
        .await
        .expect("provider-adapter");
        let adapter_url = format!("http://{}", adapter.grpc_addr());
        tasks.push(tokio::spawn(adapter.run(shutdown.clone())));

        let mut config = switchyard_router::Config::local(data_dir.join("router"));
        config.catalog_url = catalog_url;
        config.adapter_url = adapter_url;
        config.metering_url = metering_url;
        config.redis_url = Some(options.redis_url.clone().unwrap_or_else(testing::redis_url));
        config.first_token_timeout_ms = options.first_token_timeout_ms;
        config.redis_prefix = redis_prefix.clone();
        config.max_body_bytes = options.max_body_bytes;
        let peers = switchyard_router::Peers::connect(&config).expect("peers");
        let router = switchyard_router::App::build(config, peers)
            .await
            .expect("router");
        router.ready().await.expect("catalog snapshot");
        let (http, router_grpc) = (router.http_addr(), router.grpc_addr());
        let router_shutdown = shutdown.child();
        let router_task = Some((
            router_shutdown.clone(),
            tokio::spawn(router.run(router_shutdown)),
        ));

        Stack {
            http,
            router_grpc,
            key,
            sim: sim_state,
            database_url,
            redis_prefix,
            data_dir,
            metering: metering_handle,
            metering_config,
            metering_task,
            router_task,
            shutdown,
            tasks,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// Takes usage-metering down (an outage), leaving the rest running.
    pub async fn stop_metering(&mut self) {
        let (shutdown, task) = self.metering_task.take().expect("metering is running");
        shutdown.trigger();
        task.await
            .expect("metering panicked")
            .expect("metering failed");
    }

    /// Brings usage-metering back on its old address and database.
    pub async fn restart_metering(&mut self) {
        assert!(self.metering_task.is_none(), "metering is already running");
        let app = switchyard_usage_metering::App::build(&self.metering_config)
            .await
            .expect("usage-metering restart");
        let shutdown = self.shutdown.child();
        self.metering_task = Some((shutdown.clone(), tokio::spawn(app.run(shutdown))));
    }

    /// Stops every service, the router first (as a deployment drains its
    /// edge before its dependencies), so its last usage reaches metering.
    pub async fn stop(mut self) {
        if let Some((shutdown, task)) = self.router_task.take() {
            shutdown.trigger();
            task.await.expect("router panicked").expect("router failed");
        }
        self.shutdown.trigger();
        if let Some((_, task)) = self.metering_task.take() {
            task.await
                .expect("metering panicked")
                .expect("metering failed");
        }
        for task in self.tasks {
            task.await.expect("task panicked").expect("service failed");
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
