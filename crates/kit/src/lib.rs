//! Shared plumbing for every Switchyard service: error kinds, money, gRPC
//! serving (health + reflection) and internal channels, shutdown, telemetry
//! (logs, traces and their propagation, Prometheus metrics).
//!
//! Scope rule: only code that two or more services need and that fits this
//! one sentence belongs here.

pub mod api_key;
pub mod error;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod money;
pub mod runtime;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace_context;

pub use error::ErrorKind;
pub use money::{Nanos, Price};
pub use shutdown::Shutdown;
