//! Router configuration: flags with environment fallbacks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use switchyard_kit::telemetry::LogFormat;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Public HTTP API (OpenRouter-compatible) listen address.
    #[arg(long, env = "SWITCHYARD_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Public gRPC API listen address.
    #[arg(
        long,
        env = "SWITCHYARD_ROUTER_GRPC_ADDR",
        default_value = "127.0.0.1:50051"
    )]
    pub grpc_addr: SocketAddr,
    /// catalog service URL.
    #[arg(
        long,
        env = "SWITCHYARD_CATALOG_URL",
        default_value = "http://127.0.0.1:50054"
    )]
    pub catalog_url: String,
    /// provider-adapter service URL.
    #[arg(
        long,
        env = "SWITCHYARD_ADAPTER_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub adapter_url: String,
    /// usage-metering service URL.
    #[arg(
        long,
        env = "SWITCHYARD_METERING_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub metering_url: String,
    /// Redis for shared endpoint stats; without it stats stay in-process.
    #[arg(long, env = "SWITCHYARD_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this router writes.
    #[arg(long, env = "SWITCHYARD_REDIS_PREFIX", default_value = "switchyard")]
    pub redis_prefix: String,
    /// Directory for the durable usage spool (usage that metering has not
    /// acknowledged yet survives restarts here).
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = "./switchyard-data")]
    pub data_dir: PathBuf,
    /// Largest accepted request body, bytes.
    #[arg(long, env = "SWITCHYARD_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Seconds between SSE keep-alive comments while waiting for tokens.
    #[arg(long, env = "SWITCHYARD_KEEPALIVE_SECS", default_value_t = 10)]
    pub keepalive_secs: u64,
    /// Milliseconds until the first token before an attempt is abandoned
    /// and the next endpoint is tried.
    #[arg(
        long,
        env = "SWITCHYARD_FIRST_TOKEN_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub first_token_timeout_ms: u32,
    /// Milliseconds until the first token for reasoning models (those whose
    /// catalog entry supports `reasoning`).
    #[arg(
        long,
        env = "SWITCHYARD_REASONING_FIRST_TOKEN_TIMEOUT_MS",
        default_value_t = 180_000
    )]
    pub reasoning_first_token_timeout_ms: u32,
    /// Seconds one request may take in total, every attempt included.
    #[arg(long, env = "SWITCHYARD_REQUEST_TIMEOUT_SECS", default_value_t = 900)]
    pub request_timeout_secs: u64,
    /// Seconds allowed for draining in-flight requests on shutdown.
    #[arg(long, env = "SWITCHYARD_DRAIN_SECS", default_value_t = 30)]
    pub drain_secs: u64,
    /// Log line format: text or json.
    #[arg(long, env = "SWITCHYARD_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// OTLP/gRPC collector for traces (e.g. http://otel-collector:4317).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Credit each router reserves per key at a time (USD): the most a key
    /// can overspend if this router dies holding it.
    #[arg(long, env = "SWITCHYARD_CREDIT_LEASE_USD", default_value = "1")]
    pub credit_lease_usd: String,
    /// Requests per minute per key when the key sets none (0 = no limit).
    #[arg(long, env = "SWITCHYARD_DEFAULT_RATE_LIMIT_RPM", default_value_t = 0)]
    pub default_rate_limit_rpm: u32,
    /// How many router replicas share the rate limits; each enforces
    /// limit / replicas on its own while Redis is unreachable.
    #[arg(long, env = "SWITCHYARD_ROUTER_REPLICAS", default_value_t = 1)]
    pub replicas: u32,
    /// Stop admitting requests when undelivered usage on disk exceeds this
    /// many bytes (they could not be billed).
    #[arg(long, env = "SWITCHYARD_USAGE_JOURNAL_MAX_BYTES", default_value_t = 1 << 30)]
    pub usage_journal_max_bytes: u64,
    /// How long usage events gather before a batch goes to usage-metering
    /// (milliseconds, at most 1000; at most 500 events a batch). Shorter
    /// batches make each database commit a shorter burst beside the
    /// requests being served, at the price of more commits per second.
    #[arg(long, env = "SWITCHYARD_USAGE_BATCH_LINGER_MS", default_value_t = 20)]
    pub usage_batch_linger_ms: u64,
}

impl Config {
    /// The credit lease size in nano-dollars.
    pub fn credit_lease_nanos(&self) -> anyhow::Result<i64> {
        switchyard_kit::money::usd_to_nanos(&self.credit_lease_usd)
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "SWITCHYARD_CREDIT_LEASE_USD must be a positive amount of USD, got {:?}",
                    self.credit_lease_usd
                )
            })
    }

    /// At most a second: the batcher also drives the journal's 50 ms fsync
    /// and the shutdown flush, which a longer wait would hold up.
    pub fn usage_batch_linger(&self) -> anyhow::Result<Duration> {
        anyhow::ensure!(
            self.usage_batch_linger_ms <= 1_000,
            "SWITCHYARD_USAGE_BATCH_LINGER_MS must be at most 1000, got {}",
            self.usage_batch_linger_ms
        );
        Ok(Duration::from_millis(self.usage_batch_linger_ms))
    }

    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_secs.max(1))
    }

    /// A config for tests and embedding: loopback, port 0 everywhere.
    pub fn local(data_dir: PathBuf) -> Config {
        Config {
            http_addr: "127.0.0.1:0".parse().expect("literal"),
            grpc_addr: "127.0.0.1:0".parse().expect("literal"),
            catalog_url: String::new(),
            adapter_url: String::new(),
            metering_url: String::new(),
            redis_url: None,
            redis_prefix: "switchyard".into(),
            data_dir,
            max_body_bytes: 32 * 1024 * 1024,
            keepalive_secs: 10,
            first_token_timeout_ms: 30_000,
            reasoning_first_token_timeout_ms: 180_000,
            request_timeout_secs: 900,
            drain_secs: 30,
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            credit_lease_usd: "1".into(),
            default_rate_limit_rpm: 0,
            replicas: 1,
            usage_journal_max_bytes: 1 << 30,
            usage_batch_linger_ms: 20,
        }
    }

    pub fn telemetry(&self) -> switchyard_kit::telemetry::TelemetryConfig {
        switchyard_kit::telemetry::TelemetryConfig {
            service_name: "switchyard-router".to_owned(),
            log_format: self.log_format,
            otlp_endpoint: self.otlp_endpoint.clone(),
        }
    }
}
