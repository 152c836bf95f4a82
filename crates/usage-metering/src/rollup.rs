//! Rollups of recorded usage: what one recorded batch adds to the daily,
//! hourly and per-key aggregates, the ledger debits it posts and the holds
//! it draws down. Computed once here; each store only adds the deltas in
//! the transaction that records the batch.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::ledger::Transfer;
use crate::store::UsageRecord;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UsageDailyKey {
    pub account_id: String,
    pub day: NaiveDate,
    pub key_hash: String,
    pub model: String,
    pub endpoint_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageCounters {
    pub provider_name: String,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
    pub cached_tokens: u64,
    pub usage_nanos: i64,
}

impl UsageCounters {
    pub fn add(&mut self, other: &UsageCounters) {
        if self.provider_name.is_empty() {
            self.provider_name = other.provider_name.clone();
        }
        self.requests += other.requests;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.cached_tokens += other.cached_tokens;
        self.usage_nanos += other.usage_nanos;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppDailyKey {
    pub day: NaiveDate,
    pub app_id: i64,
    pub model: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCounters {
    pub requests: u64,
    pub tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PriceHourKey {
    pub model: String,
    pub hour: DateTime<Utc>,
    pub endpoint_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceCounters {
    pub provider_name: String,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub prompt_cost_nanos: i64,
    pub completion_cost_nanos: i64,
}

impl PriceCounters {
    pub fn add(&mut self, other: &PriceCounters) {
        if self.provider_name.is_empty() {
            self.provider_name = other.provider_name.clone();
        }
        self.requests += other.requests;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cached_tokens += other.cached_tokens;
        self.prompt_cost_nanos += other.prompt_cost_nanos;
        self.completion_cost_nanos += other.completion_cost_nanos;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpend {
    pub nanos: i64,
    pub last_used_at: DateTime<Utc>,
}

/// Everything one batch of newly recorded generations adds. Maps are
/// ordered, so stores lock and upsert rows in one global order.
#[derive(Debug, Default)]
pub struct Rollups {
    pub usage_daily: BTreeMap<UsageDailyKey, UsageCounters>,
    pub app_daily: BTreeMap<AppDailyKey, AppCounters>,
    pub price_hourly: BTreeMap<PriceHourKey, PriceCounters>,
    pub key_spend: BTreeMap<String, KeySpend>,
    /// One per generation that costs anything.
    pub debits: Vec<Transfer>,
    /// lease id -> cost to draw from its hold.
    pub hold_draws: BTreeMap<String, i64>,
}

impl Rollups {
    /// `records` must be only the newly recorded ones (not duplicates),
    /// each with its app id if attributed.
    pub fn of<'a>(records: impl IntoIterator<Item = (&'a UsageRecord, Option<i64>)>) -> Rollups {
        let mut r = Rollups::default();
        for (record, app_id) in records {
            let e = &record.event;
            let cost = record.cost;
            let day = e.created_at.date_naive();
            r.usage_daily
                .entry(UsageDailyKey {
                    account_id: e.account_id.clone(),
                    day,
                    key_hash: e.key_hash.clone(),
                    model: e.model.clone(),
                    endpoint_id: e.endpoint_id.clone(),
                })
                .or_default()
                .add(&UsageCounters {
                    provider_name: e.provider_name.clone(),
                    requests: 1,
                    prompt_tokens: e.prompt_tokens,
                    completion_tokens: e.completion_tokens,
                    reasoning_tokens: e.reasoning_tokens,
                    cached_tokens: e.cached_tokens,
                    usage_nanos: cost.total,
                });
            if let Some(app_id) = app_id {
                let c = r
                    .app_daily
                    .entry(AppDailyKey {
                        day,
                        app_id,
                        model: e.model.clone(),
                    })
                    .or_default();
                c.requests += 1;
                c.tokens += e.prompt_tokens + e.completion_tokens;
            }
            let hour = e
                .created_at
                .duration_trunc(TimeDelta::hours(1))
                .unwrap_or(e.created_at);
            r.price_hourly
                .entry(PriceHourKey {
                    model: e.model.clone(),
                    hour,
                    endpoint_id: e.endpoint_id.clone(),
                })
                .or_default()
                .add(&PriceCounters {
                    provider_name: e.provider_name.clone(),
                    requests: 1,
                    prompt_tokens: e.prompt_tokens,
                    completion_tokens: e.completion_tokens,
                    cached_tokens: e.cached_tokens,
                    prompt_cost_nanos: cost.prompt,
                    completion_cost_nanos: cost.completion,
                });
            let spend = r.key_spend.entry(e.key_hash.clone()).or_insert(KeySpend {
                nanos: 0,
                last_used_at: e.created_at,
            });
            spend.nanos += cost.total;
            spend.last_used_at = spend.last_used_at.max(e.created_at);
            if cost.total > 0 {
                r.debits
                    .push(Transfer::usage(&e.generation_id, &e.account_id, cost.total));
                if !e.lease_id.is_empty() {
                    *r.hold_draws.entry(e.lease_id.clone()).or_default() += cost.total;
                }
            }
        }
        r.debits.sort_by(|a, b| a.id.cmp(&b.id));
        r
    }

    /// Net change per ledger account, in id order (the lock order).
    pub fn balance_deltas(&self) -> BTreeMap<String, i64> {
        let mut deltas = BTreeMap::new();
        for transfer in &self.debits {
            for (account, amount) in transfer.legs() {
                *deltas.entry(account.to_owned()).or_default() += amount;
            }
        }
        deltas
    }
}
