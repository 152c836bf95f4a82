//! The storage contract behind the service, with a Postgres and an embedded
//! (redb) implementation that must behave identically.

mod embedded;
mod postgres;
mod writer;

pub use embedded::EmbeddedStore;
pub use postgres::PostgresStore;

use chrono::{DateTime, NaiveDate, Utc};
use switchyard_proto::metering::v1 as pb;

use crate::keys::{ApiKey, KeyPatch};
use crate::ledger::{
    AccountSummary, Billing, KeyDetails, LeaseGrant, LeaseRequest, LedgerCheck, PostOutcome,
    Transfer,
};
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
    /// Create this account (with its ledger account) in the same
    /// transaction as the key.
    New(String, Billing),
    Existing(String),
}

/// A day range of rollup queries, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

/// `/activity` rows: one per (day, model, endpoint).
pub type ActivityRows = Vec<pb::ActivityRow>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelUsage {
    pub daily: Vec<pb::DailyModelTokens>,
    pub top_apps: Vec<pb::AppUsage>,
    pub prices: Vec<pb::EffectivePrice>,
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

    /// Keys of an account (deleted ones never), newest first.
    async fn list_keys(
        &self,
        account_id: &str,
        include_disabled: bool,
        offset: u32,
        limit: u32,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<KeyDetails>>;

    /// A key of the account with its usage; None if absent or deleted.
    async fn key_details(
        &self,
        account_id: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<KeyDetails>>;

    /// Applies `patch` to a key of the account; None if absent or deleted.
    async fn update_key(
        &self,
        account_id: &str,
        hash: &str,
        patch: KeyPatch,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<ApiKey>>;

    /// Soft-deletes a key of the account: it stops authenticating at once
    /// and disappears from listings; its usage stays. False if absent.
    async fn delete_key(
        &self,
        account_id: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    async fn account(
        &self,
        account_id: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<AccountSummary>>;

    /// Posts a top-up or refund once per transfer id.
    async fn post_transfer(&self, transfer: Transfer) -> anyhow::Result<PostOutcome>;

    /// Recomputes the ledger invariants from the stored rows.
    async fn check_ledger(&self) -> anyhow::Result<LedgerCheck>;

    /// Opens or extends a lease (hold) under the lease rule. The key must
    /// belong to the account.
    async fn acquire_lease(
        &self,
        request: LeaseRequest,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<LeaseGrant>>;

    /// Closes a lease, releasing what it still holds; returns that amount.
    async fn release_lease(&self, lease_id: &str) -> anyhow::Result<i64>;

    /// Closes holds past their expiry; returns how many.
    async fn expire_holds(&self, now: DateTime<Utc>) -> anyhow::Result<u64>;

    async fn activity(
        &self,
        account_id: &str,
        days: DayRange,
        key_hash: Option<&str>,
    ) -> anyhow::Result<ActivityRows>;

    /// Daily tokens over `days`, top apps of `month`, and hourly effective
    /// prices since `prices_since`, for one model.
    async fn model_usage(
        &self,
        model: &str,
        days: DayRange,
        month: DayRange,
        prices_since: DateTime<Utc>,
    ) -> anyhow::Result<ModelUsage>;

    /// Tokens per (day, model) over the range, all accounts.
    async fn rankings(&self, days: DayRange) -> anyhow::Result<Vec<pb::ModelDayTokens>>;

    /// Apps by tokens over the range (optionally for one model), all of them.
    async fn app_rankings(
        &self,
        days: DayRange,
        model: Option<&str>,
    ) -> anyhow::Result<Vec<pb::AppUsage>>;
}
