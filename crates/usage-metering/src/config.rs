//! Command-line and environment configuration of the usage-metering service.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;
use switchyard_kit::telemetry::{LogFormat, TelemetryConfig};

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the gRPC server listens on (port 0 picks a free port).
    #[arg(
        long,
        env = "SWITCHYARD_METERING_GRPC_ADDR",
        default_value = "127.0.0.1:50053"
    )]
    pub grpc_addr: SocketAddr,

    /// Prometheus `GET /metrics` listen address (port 0 picks a free port).
    #[arg(
        long,
        env = "SWITCHYARD_METERING_METRICS_ADDR",
        default_value = "127.0.0.1:9465"
    )]
    pub metrics_addr: SocketAddr,

    /// Postgres URL; without one, storage is embedded in --data-dir.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Directory for embedded storage and the generated key pepper.
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = "./switchyard-data")]
    pub data_dir: PathBuf,

    /// Secret mixed into every stored key hash. Embedded mode generates and
    /// keeps one in --data-dir when unset; changing it invalidates all keys.
    #[arg(long, env = "SWITCHYARD_KEY_PEPPER", hide_env_values = true)]
    pub key_pepper: Option<SecretString>,

    /// Log line format: text or json.
    #[arg(long, env = "SWITCHYARD_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// OTLP/gRPC collector for spans (e.g. http://127.0.0.1:4317); no export when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

impl Config {
    /// Embedded storage in `data_dir`, listening on free loopback ports.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            otlp_endpoint: None,
            database_url: None,
            data_dir: data_dir.into(),
            key_pepper: None,
            log_format: LogFormat::Text,
        }
    }

    /// What `kit::telemetry::init_with` needs from this config.
    pub fn telemetry(&self) -> TelemetryConfig {
        TelemetryConfig {
            service_name: "switchyard-usage-metering".to_owned(),
            log_format: self.log_format,
            otlp_endpoint: self.otlp_endpoint.clone(),
        }
    }
}
