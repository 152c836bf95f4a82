//! Shared plumbing for every Switchyard service: error kinds, money, gRPC
//! serving (health + reflection) and internal channels, shutdown, telemetry.
//!
//! Scope rule: only code that two or more services need and that fits this
//! one sentence belongs here.

pub mod error;
pub mod grpc;
pub mod money;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::ErrorKind;
pub use money::{Nanos, Price};
pub use shutdown::Shutdown;
