//! Catalog storage: one trait, a Postgres and an embedded (redb)
//! implementation with the same semantics.
//!
//! Every write is a [`Batch`] applied atomically. Rows equal to what is
//! stored are skipped, and the catalog version goes up by one only when a
//! batch changed something, so re-applying the seed is a no-op.

mod embedded;
mod pg_rows;
mod postgres;

pub use embedded::EmbeddedStore;
pub use postgres::PostgresStore;

use crate::domain::{CatalogSnapshot, Endpoint, Model, Provider};
use crate::error::CatalogError;

/// Writes applied in one transaction: providers, then models, then
/// endpoints, then endpoint deletions. Values must already be validated.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub providers: Vec<Provider>,
    pub models: Vec<Model>,
    pub endpoints: Vec<Endpoint>,
    pub delete_endpoints: Vec<String>,
}

/// What a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The catalog version after the batch.
    pub version: u64,
    /// Rows inserted, updated or deleted; 0 means the version did not move.
    pub changed: usize,
}

#[tonic::async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// The whole catalog, read consistently: models by id, providers by
    /// slug, endpoints by id.
    async fn snapshot(&self) -> Result<CatalogSnapshot, CatalogError>;

    /// The current version, cheap enough to poll.
    async fn version(&self) -> Result<u64, CatalogError>;

    /// Applies `batch` atomically. An endpoint whose model or provider is
    /// in neither the store nor the batch fails the whole batch.
    async fn apply(&self, batch: Batch) -> Result<Outcome, CatalogError>;
}
