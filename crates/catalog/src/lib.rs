//! The catalog service: models, providers and endpoints (model x provider)
//! with their prices and limits, stored in Postgres or an embedded file,
//! seeded from a TOML file and served over gRPC with a watch stream.

mod app;
mod catalog;
mod convert;
pub mod domain;
mod error;
mod grpc;
mod metrics;
mod rules;
pub mod seed;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;
use switchyard_kit::telemetry::{LogFormat, TelemetryConfig};

pub use app::App;
pub use catalog::{Catalog, EMBEDDED_FILE};
pub use domain::{Architecture, CatalogSnapshot, Endpoint, Model, Pricing, Provider, WireFormat};
pub use error::CatalogError;
pub use grpc::{CatalogGrpc, SERVICE_NAME};
pub use seed::Seed;

/// Catalog service configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the gRPC server listens on (port 0 picks a free port).
    #[arg(
        long,
        env = "SWITCHYARD_CATALOG_GRPC_ADDR",
        default_value = "127.0.0.1:50054"
    )]
    pub grpc_addr: SocketAddr,
    /// Prometheus `GET /metrics` listen address (port 0 picks a free port).
    #[arg(
        long,
        env = "SWITCHYARD_CATALOG_METRICS_ADDR",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_addr: SocketAddr,
    /// Postgres URL; without it the catalog uses an embedded file in --data-dir.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL", value_parser = parse_secret, hide_env_values = true)]
    pub database_url: Option<SecretString>,
    /// Directory for embedded storage.
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = "./switchyard-data")]
    pub data_dir: PathBuf,
    /// Seed file (TOML) upserted at startup, e.g. deploy/catalog.toml.
    #[arg(long, env = "SWITCHYARD_CATALOG_SEED")]
    pub seed: Option<PathBuf>,
    /// Log line format: text or json.
    #[arg(long, env = "SWITCHYARD_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// OTLP/gRPC collector for spans (e.g. http://127.0.0.1:4317); no export when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

impl Config {
    /// What `kit::telemetry::init_with` needs from this config.
    pub fn telemetry(&self) -> TelemetryConfig {
        TelemetryConfig {
            service_name: "switchyard-catalog".to_owned(),
            log_format: self.log_format,
            otlp_endpoint: self.otlp_endpoint.clone(),
        }
    }
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

impl Default for Config {
    /// The same values as the command-line defaults (embedded storage in
    /// `./switchyard-data`, no seed), except that metrics take a free port:
    /// several catalogs in one test process must not collide on it.
    fn default() -> Config {
        Config {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50054)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            otlp_endpoint: None,
            database_url: None,
            data_dir: PathBuf::from("./switchyard-data"),
            seed: None,
            log_format: LogFormat::Text,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn command_line_defaults_match_default() {
        let parsed = Cli::parse_from(["switchyard-catalog"]).config;
        let default = Config::default();
        assert_eq!(parsed.grpc_addr, default.grpc_addr);
        assert_eq!(parsed.data_dir, default.data_dir);
        assert_eq!(parsed.log_format, default.log_format);
    }
}
