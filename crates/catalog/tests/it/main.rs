//! Integration tests for the catalog: the storage suite (run against
//! Postgres and the embedded store), the seed file, and gRPC end to end.

mod grpc;
mod metrics;
mod seed;
mod storage;
mod support;
