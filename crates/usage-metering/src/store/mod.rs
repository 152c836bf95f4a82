//! The storage contract behind the service, with a Postgres and an embedded
//! (redb) implementation that must behave identically.

mod embedded;
mod postgres;

pub use embedded::EmbeddedStore;
pub use postgres::PostgresStore;

use crate::keys::ApiKey;
use crate::usage::{Cost, Generation, UsageEvent};

/// A validated event with its computed charge, ready to store.
#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub event: UsageEvent,
    pub cost: Cost,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordOutcome {
    pub recorded: u32,
    pub duplicates: u32,
    /// Sum of the charges of the events recorded (not the duplicates).
    pub cost: switchyard_kit::Nanos,
}

/// Which account a new key goes to.
#[derive(Debug, Clone)]
pub enum AccountChoice {
    /// Create this account in the same transaction as the key.
    New(String),
    Existing(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyInsert {
    Created(ApiKey),
    /// A key with the same hash exists; nothing was written.
    AlreadyExists(ApiKey),
    AccountNotFound,
}

#[tonic::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts `key` (and a new account, if asked) atomically, unless a key
    /// with the same hash already exists.
    async fn insert_key(&self, key: ApiKey, account: AccountChoice) -> anyhow::Result<KeyInsert>;

    async fn find_key(&self, hash: &str) -> anyhow::Result<Option<ApiKey>>;

    /// Records the batch in one transaction; a generation id already stored
    /// (or repeated within the batch) counts as a duplicate and changes nothing.
    async fn record_usage(&self, records: Vec<UsageRecord>) -> anyhow::Result<RecordOutcome>;

    /// The generation, only if it belongs to `account_id`.
    async fn get_generation(
        &self,
        id: &str,
        account_id: &str,
    ) -> anyhow::Result<Option<Generation>>;
}
