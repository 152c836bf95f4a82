//! Switchyard usage-metering: API keys (stored only as peppered hashes) and
//! one idempotent, exactly priced usage record per generation, in Postgres
//! or an embedded redb file.

mod app;
mod config;
mod error;
pub mod keys;
pub mod ledger;
mod metrics;
pub mod rollup;
mod service;
pub mod store;
pub mod usage;

pub use app::App;
pub use config::Config;
pub use error::MeteringError;
pub use keys::{ApiKey, KeyKind};
pub use service::{CreatedKey, Metering};
pub use switchyard_proto::metering::v1::usage_metering_service_server::SERVICE_NAME;
