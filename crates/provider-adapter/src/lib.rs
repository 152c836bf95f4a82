//! provider-adapter: speaks the providers' wire formats — OpenAI Chat
//! Completions, Anthropic Messages and Google Gemini. It turns one
//! normalized `GenerateRequest` into an upstream HTTP call and streams the
//! answer back as normalized events, with upstream failures classified into
//! typed errors the router can act on. It owns the upstream connection pool
//! and the provider credentials; it never chooses providers and never bills.

pub mod anthropic;
mod call;
mod credentials;
mod deadlines;
pub mod emit;
pub mod errors;
pub mod gemini;
mod metrics;
pub mod openai;
mod service;
pub mod sse;
pub mod translate;
mod upstream;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use switchyard_kit::Shutdown;
use switchyard_kit::grpc::{GrpcListeners, MAX_MESSAGE_BYTES};
use switchyard_kit::metrics::Registry;
use switchyard_kit::telemetry::{LogFormat, TelemetryConfig};
use switchyard_proto::provider::v1::provider_adapter_service_server::ProviderAdapterServiceServer;
use tonic::service::Routes;

pub use deadlines::Timeouts;
pub use errors::{AdapterError, UpstreamFailure};
pub use metrics::{AdapterMetrics, Outcome};
pub use service::GenerateService;

use credentials::Credentials;
use upstream::Upstream;

pub const SERVICE_NAME: &str = "switchyard.provider.v1.ProviderAdapterService";

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// gRPC listen address; port 0 picks a free port.
    #[arg(
        long,
        env = "SWITCHYARD_ADAPTER_GRPC_ADDR",
        default_value = "127.0.0.1:50052"
    )]
    pub grpc_addr: SocketAddr,
    /// Prometheus `GET /metrics` listen address; port 0 picks a free port.
    #[arg(
        long,
        env = "SWITCHYARD_ADAPTER_METRICS_ADDR",
        default_value = "127.0.0.1:9466"
    )]
    pub metrics_addr: SocketAddr,
    /// OTLP/gRPC collector for spans (e.g. http://127.0.0.1:4317); no export when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Log line format: text | json.
    #[arg(long, env = "SWITCHYARD_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Default time allowed until the first streamed token, when the request sets none.
    #[arg(
        long,
        env = "SWITCHYARD_ADAPTER_FIRST_TOKEN_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub first_token_timeout_ms: u64,
    /// Default time allowed for a whole generation, when the request sets none.
    #[arg(
        long,
        env = "SWITCHYARD_ADAPTER_TOTAL_TIMEOUT_MS",
        default_value_t = 600_000
    )]
    pub total_timeout_ms: u64,
    /// Longest silence allowed between two chunks of a stream.
    #[arg(
        long,
        env = "SWITCHYARD_ADAPTER_IDLE_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub idle_timeout_ms: u64,
    /// Upstream TCP/TLS connect timeout.
    #[arg(
        long,
        env = "SWITCHYARD_ADAPTER_CONNECT_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub connect_timeout_ms: u64,
    /// Demo mode: calls to a provider whose credential is not configured go
    /// to this OpenAI-compatible base URL instead (e.g. a provider-sim), so a
    /// catalog of real providers answers without any API keys. Providers with
    /// a configured key are called for real. Off unless set.
    #[arg(long, env = "SWITCHYARD_SIMULATE_WITHOUT_CREDENTIALS")]
    pub simulate_without_credentials: Option<String>,
    /// Credentials by name, consulted before the environment. Not a flag:
    /// tests and embedders set it so nothing mutates the process environment.
    #[arg(skip)]
    pub credentials: HashMap<String, SecretString>,
}

impl Config {
    /// What `kit::telemetry::init_with` needs from this config.
    pub fn telemetry(&self) -> TelemetryConfig {
        TelemetryConfig {
            service_name: "switchyard-provider-adapter".to_owned(),
            log_format: self.log_format,
            otlp_endpoint: self.otlp_endpoint.clone(),
        }
    }

    /// Defaults with free loopback ports: what tests want.
    pub fn ephemeral() -> Config {
        Config {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            otlp_endpoint: None,
            log_format: LogFormat::Text,
            first_token_timeout_ms: 30_000,
            total_timeout_ms: 600_000,
            idle_timeout_ms: 60_000,
            connect_timeout_ms: 5_000,
            simulate_without_credentials: None,
            credentials: HashMap::new(),
        }
    }
}

/// The adapter: one shared, pooled HTTP client plus credentials.
#[derive(Clone)]
pub struct Adapter {
    upstream: Arc<Upstream>,
}

impl Adapter {
    pub fn new(config: &Config) -> anyhow::Result<Adapter> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(concat!(
                "switchyard-provider-adapter/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        let timeouts = Timeouts {
            first_token: Duration::from_millis(config.first_token_timeout_ms),
            total: Duration::from_millis(config.total_timeout_ms),
            idle: Duration::from_millis(config.idle_timeout_ms),
        };
        Ok(Adapter {
            upstream: Arc::new(Upstream {
                client,
                credentials: Credentials::new(config.credentials.clone()),
                timeouts,
                simulator: config.simulate_without_credentials.clone(),
                metrics: AdapterMetrics::default(),
            }),
        })
    }

    /// Exposes this adapter's metrics in `registry` (once per registry).
    pub fn register_metrics(&self, registry: &Registry) {
        self.upstream.metrics.register(registry);
    }

    /// The service itself, for a caller in the same process (the all-in-one
    /// router calls it without gRPC).
    pub fn generate_service(&self) -> GenerateService {
        GenerateService {
            upstream: Arc::clone(&self.upstream),
        }
    }

    /// The generated gRPC server, for a listener or `kit::grpc::in_process`.
    pub fn grpc_server(&self) -> ProviderAdapterServiceServer<GenerateService> {
        ProviderAdapterServiceServer::new(self.generate_service())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

pub struct App {
    adapter: Adapter,
    listeners: GrpcListeners,
}

impl App {
    /// Builds the adapter and binds the gRPC and metrics listeners.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let adapter = Adapter::new(&config)?;
        let registry = Registry::new();
        adapter.register_metrics(&registry);
        let listeners =
            GrpcListeners::bind(config.grpc_addr, config.metrics_addr, registry).await?;
        Ok(App { adapter, listeners })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.listeners.grpc_addr()
    }

    /// Where `GET /metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.listeners.metrics_addr()
    }

    /// Serves gRPC (plus health and reflection) and `/metrics` until
    /// `shutdown`, then drains.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let routes = Routes::new(self.adapter.grpc_server());
        self.listeners
            .serve(routes, &[SERVICE_NAME], shutdown)
            .await
    }
}
