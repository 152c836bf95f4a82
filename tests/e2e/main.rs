//! Cross-service tests: the four services on their own listeners over real
//! gRPC, real Postgres and Redis, provider-sim upstream.

mod bad_input;
mod chat;
mod compat;
mod credits;
mod deploy;
mod grpc;
mod helpers;
mod k8s;
mod routing;
mod telemetry;
mod web;
