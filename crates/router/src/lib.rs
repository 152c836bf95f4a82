#![recursion_limit = "256"]
//! The router: Switchyard's public HTTP API (OpenRouter-compatible, axum) and
//! gRPC API (tonic), routing and fallbacks, streaming, and the background
//! queues that carry stats to Redis and usage to usage-metering.
//!
//! The hot path touches memory only: keys come from a cache, the catalog from
//! a snapshot kept current by a watch stream, health from local aggregates.

pub mod app;
pub mod auth;
pub mod catalog_view;
pub mod config;
pub mod credits;
pub mod engine;
pub mod error;
pub mod grpc_api;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod ratelimit;
pub mod routing;
pub mod stats;
pub mod usage;

pub use app::{App, Peers};
pub use config::Config;
