//! Integration tests for usage-metering: the storage suite runs against both
//! Postgres (a fresh database per test) and the embedded store.

mod grpc;
mod keys;
mod metrics;
mod support;
mod usage;
