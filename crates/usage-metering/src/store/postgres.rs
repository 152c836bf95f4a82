//! Postgres storage in schema `metering`. Batches run in one transaction and
//! take row locks in a fixed order (apps by referer, then generations by id)
//! so concurrent overlapping batches cannot deadlock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use switchyard_kit::Price;

use chrono::NaiveDate;
use switchyard_proto::metering::v1 as pb;

use super::{
    AccountChoice, ActivityRows, DayRange, KeyInsert, ModelUsage, RecordOutcome, Store, UsageRecord,
};
use crate::keys::{ApiKey, KeyKind, KeyPatch, KeySettings, LimitReset};
use crate::ledger::{
    self, AccountSummary, Billing, KeyDetails, KeyUsage, LeaseGrant, LeaseInputs, LeaseRequest,
    LedgerCheck, PostOutcome, Transfer, Windows,
};
use crate::rollup::Rollups;
use crate::usage::{Attempt, Cost, Generation, Pricing, UsageEvent};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects and migrates. The connections' search_path is `metering`, so
    /// sqlx's migration bookkeeping lives in our schema and never collides
    /// with another service migrating the same database.
    pub async fn connect(url: &str) -> anyhow::Result<PostgresStore> {
        let options = PgConnectOptions::from_str(url)
            .context("parsing the database URL")?
            .options([("search_path", "metering")]);
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect_with(options)
            .await
            .context("connecting to Postgres")?;
        sqlx::query("CREATE SCHEMA IF NOT EXISTS metering")
            .execute(&pool)
            .await
            .context("creating schema metering")?;
        MIGRATOR
            .run(&pool)
            .await
            .context("migrating schema metering")?;
        Ok(PostgresStore { pool })
    }
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    hash: String,
    account_id: String,
    name: String,
    kind: String,
    disabled: bool,
    label: String,
    created_at: DateTime<Utc>,
    limit_nanos: Option<i64>,
    limit_reset: Option<String>,
    include_byok_in_limit: bool,
    rate_limit_rpm: Option<i32>,
    updated_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    usage_nanos: i64,
    last_used_at: Option<DateTime<Utc>>,
}

const KEY_COLUMNS: &str = "hash, account_id, name, kind, disabled, label, created_at, \
    limit_nanos, limit_reset, include_byok_in_limit, rate_limit_rpm, updated_at, expires_at, \
    usage_nanos, last_used_at";

impl TryFrom<KeyRow> for ApiKey {
    type Error = anyhow::Error;
    fn try_from(row: KeyRow) -> anyhow::Result<ApiKey> {
        Ok(ApiKey {
            kind: KeyKind::parse(&row.kind)
                .with_context(|| format!("unknown key kind {:?}", row.kind))?,
            hash: row.hash,
            account_id: row.account_id,
            name: row.name,
            disabled: row.disabled,
            label: row.label,
            created_at: row.created_at,
            settings: KeySettings {
                limit_nanos: row.limit_nanos,
                limit_reset: row.limit_reset.as_deref().and_then(LimitReset::parse),
                include_byok_in_limit: row.include_byok_in_limit,
                rate_limit_rpm: row.rate_limit_rpm.and_then(|r| u32::try_from(r).ok()),
                expires_at: row.expires_at,
            },
            updated_at: row.updated_at,
        })
    }
}

async fn find_key(conn: &mut PgConnection, hash: &str) -> anyhow::Result<Option<ApiKey>> {
    sqlx::query_as::<_, KeyRow>(&format!(
        "SELECT {KEY_COLUMNS} FROM metering.api_keys WHERE hash = $1 AND deleted_at IS NULL"
    ))
    .bind(hash)
    .fetch_optional(conn)
    .await?
    .map(ApiKey::try_from)
    .transpose()
}

/// Usage of keys in their windows, from the daily rollup.
async fn key_usages(
    conn: &mut PgConnection,
    rows: Vec<KeyRow>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<KeyDetails>> {
    let w = Windows::at(now);
    let hashes: Vec<String> = rows.iter().map(|r| r.hash.clone()).collect();
    let since = w.week_start.min(w.month_start);
    let sums: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT key_hash,
                COALESCE(SUM(usage_nanos) FILTER (WHERE day = $2), 0)::bigint,
                COALESCE(SUM(usage_nanos) FILTER (WHERE day >= $3), 0)::bigint,
                COALESCE(SUM(usage_nanos) FILTER (WHERE day >= $4), 0)::bigint
         FROM metering.usage_daily
         WHERE key_hash = ANY($1) AND day >= $5
         GROUP BY key_hash",
    )
    .bind(&hashes)
    .bind(w.today)
    .bind(w.week_start)
    .bind(w.month_start)
    .bind(since)
    .fetch_all(conn)
    .await?;
    let sums: HashMap<String, (i64, i64, i64)> = sums
        .into_iter()
        .map(|(k, d, wk, m)| (k, (d, wk, m)))
        .collect();
    rows.into_iter()
        .map(|row| {
            let (daily, weekly, monthly) = sums.get(&row.hash).copied().unwrap_or_default();
            let usage = KeyUsage {
                total: row.usage_nanos,
                daily,
                weekly,
                monthly,
                last_used_at: row.last_used_at,
            };
            Ok(KeyDetails {
                key: ApiKey::try_from(row)?,
                usage,
            })
        })
        .collect()
}

/// Window usage of one key for its limit.
async fn key_window_usage(
    conn: &mut PgConnection,
    key: &ApiKey,
    total: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<i64> {
    let w = Windows::at(now);
    let since = match key.settings.limit_reset {
        None => return Ok(total),
        Some(LimitReset::Daily) => w.today,
        Some(LimitReset::Weekly) => w.week_start,
        Some(LimitReset::Monthly) => w.month_start,
    };
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(SUM(usage_nanos), 0)::bigint FROM metering.usage_daily
         WHERE key_hash = $1 AND day >= $2",
    )
    .bind(&key.hash)
    .bind(since)
    .fetch_one(conn)
    .await?)
}

/// Adds `deltas` to ledger balances in id order (the global lock order),
/// creating customer ledger accounts that do not exist yet.
async fn apply_balances(
    conn: &mut PgConnection,
    deltas: &BTreeMap<String, i64>,
) -> anyhow::Result<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = deltas.keys().map(String::as_str).collect();
    let amounts: Vec<i64> = deltas.values().copied().collect();
    sqlx::query(
        "INSERT INTO metering.ledger_accounts (id, kind, balance_nanos, version)
         SELECT id, 'customer', amount, 1 FROM UNNEST($1::text[], $2::bigint[]) AS t(id, amount)
         ORDER BY id
         ON CONFLICT (id) DO UPDATE
         SET balance_nanos = metering.ledger_accounts.balance_nanos + EXCLUDED.balance_nanos,
             version = metering.ledger_accounts.version + 1",
    )
    .bind(&ids)
    .bind(&amounts)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts transfers and their legs; returns the ids actually inserted.
async fn insert_transfers(
    conn: &mut PgConnection,
    transfers: &[Transfer],
) -> anyhow::Result<Vec<String>> {
    if transfers.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = transfers.iter().map(|t| t.id.as_str()).collect();
    let kinds: Vec<&str> = transfers.iter().map(|t| t.kind.as_str()).collect();
    let accounts: Vec<&str> = transfers.iter().map(|t| t.account_id.as_str()).collect();
    let amounts: Vec<i64> = transfers.iter().map(|t| t.amount_nanos).collect();
    let memos: Vec<&str> = transfers.iter().map(|t| t.memo.as_str()).collect();
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO metering.transfers (id, kind, account_id, amount_nanos, memo)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[])
         ON CONFLICT (id) DO NOTHING
         RETURNING id",
    )
    .bind(&ids)
    .bind(&kinds)
    .bind(&accounts)
    .bind(&amounts)
    .bind(&memos)
    .fetch_all(&mut *conn)
    .await?;
    // Usage of an account metering has never seen is still recorded (a
    // billable fact); its ledger account appears with it.
    sqlx::query(
        "INSERT INTO metering.ledger_accounts (id, kind)
         SELECT DISTINCT id, 'customer' FROM UNNEST($1::text[]) AS t(id) ORDER BY id
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&accounts)
    .execute(&mut *conn)
    .await?;
    let posted: std::collections::HashSet<&str> = inserted.iter().map(String::as_str).collect();
    let (mut leg_transfer, mut leg_account, mut leg_amount) = (Vec::new(), Vec::new(), Vec::new());
    for transfer in transfers.iter().filter(|t| posted.contains(t.id.as_str())) {
        for (account, amount) in transfer.legs() {
            leg_transfer.push(transfer.id.as_str());
            leg_account.push(account);
            leg_amount.push(amount);
        }
    }
    sqlx::query(
        "INSERT INTO metering.entries (transfer_id, ledger_account, amount_nanos)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])",
    )
    .bind(&leg_transfer)
    .bind(&leg_account)
    .bind(&leg_amount)
    .execute(conn)
    .await?;
    Ok(inserted)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// One statement for a whole batch: the columns go as arrays and `UNNEST`
/// turns them back into rows (one round trip and one plan instead of one per
/// generation). `RETURNING id` names the rows that were new.
const INSERT_GENERATIONS: &str = "
INSERT INTO metering.generations (
    id, account_id, key_hash, model, endpoint_id, provider_slug, provider_name, upstream_id,
    created_at, prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens,
    cache_write_tokens, latency_ms, ttft_ms, generation_time_ms, streamed, cancelled,
    finish_reason, native_finish_reason, http_referer, app_title, user_agent, app_id, api_type,
    session_id, external_user, price_prompt, price_completion, price_request, price_image,
    price_input_cache_read, price_input_cache_write, price_internal_reasoning, attempts,
    prompt_cost_nanos, completion_cost_nanos, total_cost_nanos, usage_estimated, lease_id,
    request_id, origin
)
SELECT id, account_id, key_hash, model, endpoint_id, provider_slug, provider_name, upstream_id,
    created_at, prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens,
    cache_write_tokens, latency_ms, ttft_ms, generation_time_ms, streamed, cancelled,
    finish_reason, native_finish_reason, http_referer, app_title, user_agent, app_id, api_type,
    session_id, external_user, price_prompt::numeric, price_completion::numeric,
    price_request::numeric, price_image::numeric, price_input_cache_read::numeric,
    price_input_cache_write::numeric, price_internal_reasoning::numeric, attempts::jsonb,
    prompt_cost_nanos, completion_cost_nanos, total_cost_nanos, usage_estimated, lease_id,
    request_id, origin
FROM UNNEST(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::timestamptz[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[],
    $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::boolean[], $19::boolean[],
    $20::text[], $21::text[], $22::text[], $23::text[], $24::text[], $25::bigint[], $26::text[],
    $27::text[], $28::text[], $29::text[], $30::text[], $31::text[], $32::text[], $33::text[],
    $34::text[], $35::text[], $36::text[], $37::bigint[], $38::bigint[], $39::bigint[],
    $40::boolean[], $41::text[], $42::text[], $43::text[]
) AS g(
    id, account_id, key_hash, model, endpoint_id, provider_slug, provider_name, upstream_id,
    created_at, prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens,
    cache_write_tokens, latency_ms, ttft_ms, generation_time_ms, streamed, cancelled,
    finish_reason, native_finish_reason, http_referer, app_title, user_agent, app_id, api_type,
    session_id, external_user, price_prompt, price_completion, price_request, price_image,
    price_input_cache_read, price_input_cache_write, price_internal_reasoning, attempts,
    prompt_cost_nanos, completion_cost_nanos, total_cost_nanos, usage_estimated, lease_id,
    request_id, origin
)
ON CONFLICT (id) DO NOTHING
RETURNING id";

const SELECT_GENERATION: &str = "
SELECT id, account_id, key_hash, model, endpoint_id, provider_slug, provider_name, upstream_id,
    created_at, prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens,
    cache_write_tokens, latency_ms, ttft_ms, generation_time_ms, streamed, cancelled,
    finish_reason, native_finish_reason, http_referer, app_title, user_agent, app_id, api_type,
    session_id, external_user, price_prompt::text AS price_prompt,
    price_completion::text AS price_completion, price_request::text AS price_request,
    price_image::text AS price_image, price_input_cache_read::text AS price_input_cache_read,
    price_input_cache_write::text AS price_input_cache_write,
    price_internal_reasoning::text AS price_internal_reasoning, attempts::text AS attempts,
    prompt_cost_nanos, completion_cost_nanos, total_cost_nanos, usage_estimated, lease_id,
    request_id, origin
FROM metering.generations WHERE id = $1 AND account_id = $2";

/// Counters are validated to fit BIGINT when events are parsed.
fn db_int(value: u64) -> anyhow::Result<i64> {
    i64::try_from(value).context("counter out of BIGINT range")
}

fn price_text(price: Option<Price>) -> Option<String> {
    price.map(|p| p.to_string())
}

/// Inserts the batch's generations (ids unique within `records`) and
/// returns the ids that were new; the others were recorded before.
async fn insert_generations(
    conn: &mut PgConnection,
    records: &[(&UsageRecord, Option<i64>)],
) -> anyhow::Result<HashSet<String>> {
    fn int(
        records: &[(&UsageRecord, Option<i64>)],
        f: impl Fn(&UsageEvent) -> u64,
    ) -> anyhow::Result<Vec<i64>> {
        records.iter().map(|(r, _)| db_int(f(&r.event))).collect()
    }
    fn price(
        records: &[(&UsageRecord, Option<i64>)],
        f: impl Fn(&Pricing) -> Option<Price>,
    ) -> Vec<Option<String>> {
        records
            .iter()
            .map(|(r, _)| price_text(r.event.pricing.as_ref().and_then(&f)))
            .collect()
    }
    fn column<'a, T>(
        records: &[(&'a UsageRecord, Option<i64>)],
        f: impl Fn(&'a UsageRecord) -> T,
    ) -> Vec<T> {
        records.iter().map(|(r, _)| f(r)).collect()
    }
    let ttft: Vec<Option<i64>> = records
        .iter()
        .map(|(r, _)| r.event.ttft_ms.map(db_int).transpose())
        .collect::<anyhow::Result<_>>()?;
    let attempts: Vec<String> = records
        .iter()
        .map(|(r, _)| serde_json::to_string(&r.event.attempts))
        .collect::<Result<_, _>>()?;
    let new: Vec<String> = sqlx::query_scalar(INSERT_GENERATIONS)
        .bind(column(records, |r| r.event.generation_id.as_str()))
        .bind(column(records, |r| r.event.account_id.as_str()))
        .bind(column(records, |r| r.event.key_hash.as_str()))
        .bind(column(records, |r| r.event.model.as_str()))
        .bind(column(records, |r| r.event.endpoint_id.as_str()))
        .bind(column(records, |r| r.event.provider_slug.as_str()))
        .bind(column(records, |r| r.event.provider_name.as_str()))
        .bind(column(records, |r| r.event.upstream_id.as_str()))
        .bind(column(records, |r| r.event.created_at))
        .bind(int(records, |e| e.prompt_tokens)?)
        .bind(int(records, |e| e.completion_tokens)?)
        .bind(int(records, |e| e.reasoning_tokens)?)
        .bind(int(records, |e| e.cached_tokens)?)
        .bind(int(records, |e| e.cache_write_tokens)?)
        .bind(int(records, |e| e.latency_ms)?)
        .bind(ttft)
        .bind(int(records, |e| e.generation_time_ms)?)
        .bind(column(records, |r| r.event.streamed))
        .bind(column(records, |r| r.event.cancelled))
        .bind(column(records, |r| r.event.finish_reason.as_str()))
        .bind(column(records, |r| r.event.native_finish_reason.as_str()))
        .bind(column(records, |r| r.event.http_referer.as_deref()))
        .bind(column(records, |r| r.event.app_title.as_deref()))
        .bind(column(records, |r| r.event.user_agent.as_deref()))
        .bind(records.iter().map(|(_, app)| *app).collect::<Vec<_>>())
        .bind(column(records, |r| r.event.api_type.as_str()))
        .bind(column(records, |r| r.event.session_id.as_deref()))
        .bind(column(records, |r| r.event.external_user.as_deref()))
        .bind(price(records, |p| Some(p.prompt)))
        .bind(price(records, |p| Some(p.completion)))
        .bind(price(records, |p| p.request))
        .bind(price(records, |p| p.image))
        .bind(price(records, |p| p.input_cache_read))
        .bind(price(records, |p| p.input_cache_write))
        .bind(price(records, |p| p.internal_reasoning))
        .bind(attempts)
        .bind(column(records, |r| r.cost.prompt))
        .bind(column(records, |r| r.cost.completion))
        .bind(column(records, |r| r.cost.total))
        .bind(column(records, |r| r.event.usage_estimated))
        .bind(column(records, |r| r.event.lease_id.as_str()))
        .bind(column(records, |r| r.event.request_id.as_str()))
        .bind(column(records, |r| r.event.origin.as_deref()))
        .fetch_all(conn)
        .await?;
    Ok(new.into_iter().collect())
}

#[derive(sqlx::FromRow)]
struct GenerationRow {
    id: String,
    account_id: String,
    key_hash: String,
    model: String,
    endpoint_id: String,
    provider_slug: String,
    provider_name: String,
    upstream_id: String,
    created_at: DateTime<Utc>,
    prompt_tokens: i64,
    completion_tokens: i64,
    reasoning_tokens: i64,
    cached_tokens: i64,
    cache_write_tokens: i64,
    usage_estimated: bool,
    latency_ms: i64,
    ttft_ms: Option<i64>,
    generation_time_ms: i64,
    streamed: bool,
    cancelled: bool,
    finish_reason: String,
    native_finish_reason: String,
    http_referer: Option<String>,
    app_title: Option<String>,
    user_agent: Option<String>,
    app_id: Option<i64>,
    api_type: String,
    session_id: Option<String>,
    external_user: Option<String>,
    price_prompt: Option<String>,
    price_completion: Option<String>,
    price_request: Option<String>,
    price_image: Option<String>,
    price_input_cache_read: Option<String>,
    price_input_cache_write: Option<String>,
    price_internal_reasoning: Option<String>,
    attempts: String,
    prompt_cost_nanos: i64,
    completion_cost_nanos: i64,
    total_cost_nanos: i64,
    lease_id: String,
    request_id: String,
    origin: Option<String>,
}

fn stored_price(text: Option<String>) -> anyhow::Result<Option<Price>> {
    text.map(|t| t.parse().context("stored price")).transpose()
}

fn stored_count(value: i64) -> anyhow::Result<u64> {
    u64::try_from(value).context("negative stored counter")
}

impl TryFrom<GenerationRow> for Generation {
    type Error = anyhow::Error;

    fn try_from(r: GenerationRow) -> anyhow::Result<Generation> {
        let pricing = match (
            stored_price(r.price_prompt)?,
            stored_price(r.price_completion)?,
        ) {
            (Some(prompt), Some(completion)) => Some(Pricing {
                prompt,
                completion,
                request: stored_price(r.price_request)?,
                image: stored_price(r.price_image)?,
                input_cache_read: stored_price(r.price_input_cache_read)?,
                input_cache_write: stored_price(r.price_input_cache_write)?,
                internal_reasoning: stored_price(r.price_internal_reasoning)?,
            }),
            _ => None,
        };
        let attempts: Vec<Attempt> = serde_json::from_str(&r.attempts)?;
        let event = UsageEvent {
            generation_id: r.id,
            account_id: r.account_id,
            key_hash: r.key_hash,
            model: r.model,
            endpoint_id: r.endpoint_id,
            provider_slug: r.provider_slug,
            provider_name: r.provider_name,
            upstream_id: r.upstream_id,
            created_at: r.created_at,
            prompt_tokens: stored_count(r.prompt_tokens)?,
            completion_tokens: stored_count(r.completion_tokens)?,
            reasoning_tokens: stored_count(r.reasoning_tokens)?,
            cached_tokens: stored_count(r.cached_tokens)?,
            cache_write_tokens: stored_count(r.cache_write_tokens)?,
            usage_estimated: r.usage_estimated,
            latency_ms: stored_count(r.latency_ms)?,
            ttft_ms: r.ttft_ms.map(stored_count).transpose()?,
            generation_time_ms: stored_count(r.generation_time_ms)?,
            streamed: r.streamed,
            cancelled: r.cancelled,
            finish_reason: r.finish_reason,
            native_finish_reason: r.native_finish_reason,
            http_referer: r.http_referer,
            app_title: r.app_title,
            user_agent: r.user_agent,
            pricing,
            attempts,
            api_type: r.api_type,
            session_id: r.session_id,
            external_user: r.external_user,
            lease_id: r.lease_id,
            request_id: r.request_id,
            origin: r.origin,
        };
        Ok(Generation {
            event,
            cost: Cost {
                prompt: r.prompt_cost_nanos,
                completion: r.completion_cost_nanos,
                total: r.total_cost_nanos,
            },
            app_id: r.app_id,
        })
    }
}

#[tonic::async_trait]
impl Store for PostgresStore {
    async fn insert_key(&self, key: ApiKey, account: AccountChoice) -> anyhow::Result<KeyInsert> {
        let mut tx = self.pool.begin().await?;
        if let Some(existing) = find_key(&mut tx, &key.hash).await? {
            return Ok(KeyInsert::AlreadyExists(existing));
        }
        match &account {
            AccountChoice::New(id, billing) => {
                sqlx::query(
                    "INSERT INTO metering.accounts (id, created_at, billing) VALUES ($1, $2, $3)",
                )
                .bind(id)
                .bind(key.created_at)
                .bind(billing.as_str())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO metering.ledger_accounts (id, kind) VALUES ($1, 'customer')
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            AccountChoice::Existing(id) => {
                let found: Option<String> =
                    sqlx::query_scalar("SELECT id FROM metering.accounts WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if found.is_none() {
                    return Ok(KeyInsert::AccountNotFound);
                }
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO metering.api_keys
                 (hash, account_id, name, kind, disabled, label, created_at, limit_nanos,
                  limit_reset, include_byok_in_limit, rate_limit_rpm, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (hash) DO NOTHING",
        )
        .bind(&key.hash)
        .bind(&key.account_id)
        .bind(&key.name)
        .bind(key.kind.as_str())
        .bind(key.disabled)
        .bind(&key.label)
        .bind(key.created_at)
        .bind(key.settings.limit_nanos)
        .bind(key.settings.limit_reset.map(LimitReset::as_str))
        .bind(key.settings.include_byok_in_limit)
        .bind(
            key.settings
                .rate_limit_rpm
                .map(|r| r.min(i32::MAX as u32) as i32),
        )
        .bind(key.settings.expires_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // Lost a race to the same imported key: drop our account too.
            tx.rollback().await?;
            let mut conn = self.pool.acquire().await?;
            let existing = find_key(&mut conn, &key.hash)
                .await?
                .context("key vanished after a conflicting insert")?;
            return Ok(KeyInsert::AlreadyExists(existing));
        }
        tx.commit().await?;
        Ok(KeyInsert::Created(key))
    }

    async fn find_key(&self, hash: &str) -> anyhow::Result<Option<ApiKey>> {
        let mut conn = self.pool.acquire().await?;
        find_key(&mut conn, hash).await
    }

    async fn record_usage(&self, mut records: Vec<UsageRecord>) -> anyhow::Result<RecordOutcome> {
        if records.is_empty() {
            return Ok(RecordOutcome::default());
        }
        // Later titles in the batch win, as they would one event at a time.
        let mut apps: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        for record in &records {
            if let Some(referer) = record.event.http_referer.as_deref() {
                let title = apps.entry(referer).or_default();
                if let Some(new) = record.event.app_title.as_deref() {
                    *title = Some(new);
                }
            }
        }
        let mut tx = self.pool.begin().await?;
        let mut app_ids: HashMap<String, i64> = HashMap::new();
        for (referer, title) in apps {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO metering.apps (http_referer, title) VALUES ($1, $2)
                 ON CONFLICT (http_referer)
                 DO UPDATE SET title = COALESCE(EXCLUDED.title, metering.apps.title)
                 RETURNING id",
            )
            .bind(referer)
            .bind(title)
            .fetch_one(&mut *tx)
            .await?;
            app_ids.insert(referer.to_owned(), id);
        }
        // Stable: the first of two events with one id is the one recorded.
        records.sort_by(|a, b| a.event.generation_id.cmp(&b.event.generation_id));
        let mut outcome = RecordOutcome::default();
        let mut unique: Vec<(&UsageRecord, Option<i64>)> = Vec::with_capacity(records.len());
        for record in &records {
            if unique
                .last()
                .is_some_and(|(last, _)| last.event.generation_id == record.event.generation_id)
            {
                outcome.duplicates += 1;
                continue;
            }
            let app_id = record
                .event
                .http_referer
                .as_ref()
                .and_then(|r| app_ids.get(r).copied());
            unique.push((record, app_id));
        }
        let new = insert_generations(&mut tx, &unique).await?;
        let mut recorded = Vec::with_capacity(new.len());
        for (record, app_id) in unique {
            if new.contains(&record.event.generation_id) {
                outcome.recorded += 1;
                outcome.cost += record.cost.total;
                recorded.push((record, app_id));
            } else {
                outcome.duplicates += 1;
            }
        }
        // The debits, holds and rollups commit with the generations: a
        // generation is recorded with its charge or not at all.
        apply_rollups(&mut tx, &Rollups::of(recorded)).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn get_generation(
        &self,
        id: &str,
        account_id: &str,
    ) -> anyhow::Result<Option<Generation>> {
        sqlx::query_as::<_, GenerationRow>(SELECT_GENERATION)
            .bind(id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?
            .map(Generation::try_from)
            .transpose()
    }

    async fn list_keys(
        &self,
        account_id: &str,
        include_disabled: bool,
        offset: u32,
        limit: u32,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<KeyDetails>> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query_as::<_, KeyRow>(&format!(
            "SELECT {KEY_COLUMNS} FROM metering.api_keys
             WHERE account_id = $1 AND deleted_at IS NULL AND ($2 OR NOT disabled)
             ORDER BY created_at DESC, hash
             OFFSET $3 LIMIT $4"
        ))
        .bind(account_id)
        .bind(include_disabled)
        .bind(i64::from(offset))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        key_usages(&mut conn, rows, now).await
    }

    async fn key_details(
        &self,
        account_id: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<KeyDetails>> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query_as::<_, KeyRow>(&format!(
            "SELECT {KEY_COLUMNS} FROM metering.api_keys
             WHERE account_id = $1 AND hash = $2 AND deleted_at IS NULL"
        ))
        .bind(account_id)
        .bind(hash)
        .fetch_all(&mut *conn)
        .await?;
        Ok(key_usages(&mut conn, rows, now).await?.pop())
    }

    async fn update_key(
        &self,
        account_id: &str,
        hash: &str,
        patch: KeyPatch,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<ApiKey>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query_as::<_, KeyRow>(&format!(
            "SELECT {KEY_COLUMNS} FROM metering.api_keys
             WHERE account_id = $1 AND hash = $2 AND deleted_at IS NULL FOR UPDATE"
        ))
        .bind(account_id)
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut key = ApiKey::try_from(row)?;
        patch.apply(&mut key, now);
        sqlx::query(
            "UPDATE metering.api_keys
             SET name = $2, disabled = $3, limit_nanos = $4, limit_reset = $5,
                 include_byok_in_limit = $6, rate_limit_rpm = $7, updated_at = $8
             WHERE hash = $1",
        )
        .bind(&key.hash)
        .bind(&key.name)
        .bind(key.disabled)
        .bind(key.settings.limit_nanos)
        .bind(key.settings.limit_reset.map(LimitReset::as_str))
        .bind(key.settings.include_byok_in_limit)
        .bind(
            key.settings
                .rate_limit_rpm
                .map(|r| r.min(i32::MAX as u32) as i32),
        )
        .bind(key.updated_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(key))
    }

    async fn delete_key(
        &self,
        account_id: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let deleted = sqlx::query(
            "UPDATE metering.api_keys SET deleted_at = $3, disabled = true, updated_at = $3
             WHERE account_id = $1 AND hash = $2 AND deleted_at IS NULL",
        )
        .bind(account_id)
        .bind(hash)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(deleted == 1)
    }

    async fn account(
        &self,
        account_id: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<AccountSummary>> {
        let row: Option<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT a.billing,
                    COALESCE(l.balance_nanos, 0),
                    COALESCE((SELECT amount_nanos FROM metering.account_totals
                              WHERE account_id = a.id AND kind = 'top_up'), 0),
                    COALESCE((SELECT amount_nanos FROM metering.account_totals
                              WHERE account_id = a.id AND kind = 'usage'), 0),
                    COALESCE((SELECT amount_nanos FROM metering.account_totals
                              WHERE account_id = a.id AND kind = 'refund'), 0),
                    COALESCE((SELECT SUM(amount_nanos) FROM metering.holds
                              WHERE account_id = a.id AND open AND expires_at > $2), 0)::bigint
             FROM metering.accounts a
             LEFT JOIN metering.ledger_accounts l ON l.id = a.id
             WHERE a.id = $1",
        )
        .bind(account_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(billing, balance, credits, usage, refunds, held)| AccountSummary {
                account_id: account_id.to_owned(),
                billing: Billing::parse(&billing).unwrap_or_default(),
                balance_nanos: balance,
                total_credits_nanos: credits,
                total_usage_nanos: usage - refunds,
                held_nanos: held,
            },
        ))
    }

    async fn post_transfer(&self, transfer: Transfer) -> anyhow::Result<PostOutcome> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM metering.accounts WHERE id = $1")
                .bind(&transfer.account_id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Ok(PostOutcome::AccountNotFound);
        }
        let posted = insert_transfers(&mut tx, std::slice::from_ref(&transfer)).await?;
        if !posted.is_empty() {
            let mut deltas = BTreeMap::new();
            for (account, amount) in transfer.legs() {
                *deltas.entry(account.to_owned()).or_default() += amount;
            }
            apply_balances(&mut tx, &deltas).await?;
        }
        let balance: i64 =
            sqlx::query_scalar("SELECT balance_nanos FROM metering.ledger_accounts WHERE id = $1")
                .bind(&transfer.account_id)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(if posted.is_empty() {
            PostOutcome::Duplicate {
                balance_nanos: balance,
            }
        } else {
            PostOutcome::Posted {
                balance_nanos: balance,
            }
        })
    }

    async fn check_ledger(&self) -> anyhow::Result<LedgerCheck> {
        let mut conn = self.pool.acquire().await?;
        let mut check = LedgerCheck {
            entries_sum_nanos: sqlx::query_scalar(
                "SELECT COALESCE(SUM(amount_nanos), 0)::bigint FROM metering.entries",
            )
            .fetch_one(&mut *conn)
            .await?,
            ..LedgerCheck::default()
        };
        let transfers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM metering.transfers")
            .fetch_one(&mut *conn)
            .await?;
        let accounts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM metering.ledger_accounts")
            .fetch_one(&mut *conn)
            .await?;
        check.transfers = to_u64(transfers);
        check.accounts = to_u64(accounts);
        if check.entries_sum_nanos != 0 {
            check.violations.push(format!(
                "entries sum to {} nanos, not 0",
                check.entries_sum_nanos
            ));
        }
        let unbalanced: Vec<String> = sqlx::query_scalar(
            "SELECT transfer_id FROM metering.entries GROUP BY transfer_id
             HAVING SUM(amount_nanos) <> 0 LIMIT 20",
        )
        .fetch_all(&mut *conn)
        .await?;
        for id in unbalanced {
            check
                .violations
                .push(format!("transfer {id} does not sum to 0"));
        }
        let drift: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT l.id, l.balance_nanos, COALESCE(SUM(e.amount_nanos), 0)::bigint
             FROM metering.ledger_accounts l
             LEFT JOIN metering.entries e ON e.ledger_account = l.id
             GROUP BY l.id, l.balance_nanos
             HAVING l.balance_nanos <> COALESCE(SUM(e.amount_nanos), 0) LIMIT 20",
        )
        .fetch_all(&mut *conn)
        .await?;
        for (id, cached, entries) in drift {
            check.violations.push(format!(
                "account {id}: balance {cached} but entries sum to {entries}"
            ));
        }
        let totals: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT COALESCE(t.account_id, s.account_id), COALESCE(t.kind, s.kind),
                    COALESCE(t.amount_nanos, 0), COALESCE(s.amount_nanos, 0)::bigint
             FROM metering.account_totals t
             FULL JOIN (SELECT account_id, kind, SUM(amount_nanos) AS amount_nanos
                        FROM metering.transfers GROUP BY account_id, kind) s
               ON s.account_id = t.account_id AND s.kind = t.kind
             WHERE COALESCE(t.amount_nanos, 0) <> COALESCE(s.amount_nanos, 0) LIMIT 20",
        )
        .fetch_all(&mut *conn)
        .await?;
        for (account, kind, kept, summed) in totals {
            check.violations.push(format!(
                "account {account}: {kind} total {kept} but its transfers add up to {summed}"
            ));
        }
        let unbilled: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT g.id, g.total_cost_nanos, t.amount_nanos
             FROM metering.generations g
             LEFT JOIN metering.transfers t ON t.id = 'usage:' || g.id
             WHERE (g.total_cost_nanos > 0 AND t.amount_nanos IS DISTINCT FROM g.total_cost_nanos)
                OR (g.total_cost_nanos = 0 AND t.id IS NOT NULL)
             LIMIT 20",
        )
        .fetch_all(&mut *conn)
        .await?;
        for (id, cost, debit) in unbilled {
            check.violations.push(format!(
                "generation {id} costs {cost} but its usage debit is {debit:?}"
            ));
        }
        let orphans: Vec<String> = sqlx::query_scalar(
            "SELECT t.id FROM metering.transfers t
             LEFT JOIN metering.generations g ON 'usage:' || g.id = t.id
             WHERE t.kind = 'usage' AND g.id IS NULL LIMIT 20",
        )
        .fetch_all(&mut *conn)
        .await?;
        for id in orphans {
            check
                .violations
                .push(format!("usage transfer {id} has no generation"));
        }
        let stale: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM metering.holds
             WHERE open AND expires_at < now() - interval '5 minutes'",
        )
        .fetch_one(&mut *conn)
        .await?;
        if stale > 0 {
            check
                .violations
                .push(format!("{stale} holds open long past their expiry"));
        }
        Ok(check)
    }

    async fn acquire_lease(
        &self,
        request: LeaseRequest,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<LeaseGrant>> {
        let mut tx = self.pool.begin().await?;
        // The ledger account row serialises grants per account; usage
        // recording takes it in the same order (before holds).
        let account: Option<(String, i64)> = sqlx::query_as(
            "SELECT a.billing, l.balance_nanos
             FROM metering.accounts a JOIN metering.ledger_accounts l ON l.id = a.id
             WHERE a.id = $1 FOR UPDATE OF l",
        )
        .bind(&request.account_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((billing, balance)) = account else {
            return Ok(None);
        };
        let key = sqlx::query_as::<_, KeyRow>(&format!(
            "SELECT {KEY_COLUMNS} FROM metering.api_keys
             WHERE hash = $1 AND account_id = $2 AND deleted_at IS NULL"
        ))
        .bind(&request.key_hash)
        .bind(&request.account_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(key_row) = key else { return Ok(None) };
        let total_usage = key_row.usage_nanos;
        let key = ApiKey::try_from(key_row)?;
        if !key.is_active(now) {
            return Ok(None);
        }
        let existing: Option<String> = match &request.lease_id {
            Some(id) => {
                sqlx::query_scalar(
                    "SELECT id FROM metering.holds
                     WHERE id = $1 AND key_hash = $2 AND open AND expires_at > $3 FOR UPDATE",
                )
                .bind(id)
                .bind(&request.key_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => None,
        };
        let (account_held, key_held): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(amount_nanos), 0)::bigint,
                    COALESCE(SUM(amount_nanos) FILTER (WHERE key_hash = $2), 0)::bigint
             FROM metering.holds WHERE account_id = $1 AND open AND expires_at > $3",
        )
        .bind(&request.account_id)
        .bind(&request.key_hash)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let window_usage = match key.settings.limit_nanos {
            Some(_) => key_window_usage(&mut tx, &key, total_usage, now).await?,
            None => 0,
        };
        let decision = ledger::decide_lease(LeaseInputs {
            billing: Billing::parse(&billing).unwrap_or_default(),
            balance_nanos: balance,
            account_held_nanos: account_held,
            key_limit_nanos: key.settings.limit_nanos,
            key_window_usage_nanos: window_usage,
            key_held_nanos: key_held,
            want_nanos: request.want_nanos,
        });
        let expires_at = now + ledger::LEASE_TTL;
        if decision.unlimited {
            tx.commit().await?;
            return Ok(Some(LeaseGrant {
                lease_id: String::new(),
                decision,
                expires_at,
            }));
        }
        let lease_id = match existing {
            Some(id) => {
                sqlx::query(
                    "UPDATE metering.holds
                     SET amount_nanos = amount_nanos + $2, expires_at = $3, updated_at = $4
                     WHERE id = $1",
                )
                .bind(&id)
                .bind(decision.granted_nanos)
                .bind(expires_at)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                let id = ledger::new_lease_id();
                sqlx::query(
                    "INSERT INTO metering.holds
                         (id, account_id, key_hash, holder, amount_nanos, expires_at, created_at,
                          updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .bind(&id)
                .bind(&request.account_id)
                .bind(&request.key_hash)
                .bind(&request.holder)
                .bind(decision.granted_nanos)
                .bind(expires_at)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        tx.commit().await?;
        Ok(Some(LeaseGrant {
            lease_id,
            decision,
            expires_at,
        }))
    }

    async fn release_lease(&self, lease_id: &str) -> anyhow::Result<i64> {
        let released: Option<i64> = sqlx::query_scalar(
            "UPDATE metering.holds h SET open = false, amount_nanos = 0, updated_at = now()
             FROM (SELECT id, amount_nanos FROM metering.holds WHERE id = $1 AND open
                   FOR UPDATE) old
             WHERE h.id = old.id
             RETURNING old.amount_nanos",
        )
        .bind(lease_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(released.unwrap_or(0))
    }

    async fn expire_holds(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        Ok(sqlx::query(
            "UPDATE metering.holds SET open = false, amount_nanos = 0, updated_at = $1
             WHERE open AND expires_at <= $1",
        )
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn activity(
        &self,
        account_id: &str,
        days: DayRange,
        key_hash: Option<&str>,
    ) -> anyhow::Result<ActivityRows> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            NaiveDate,
            String,
            String,
            String,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        )> = sqlx::query_as(
            "SELECT day, model, endpoint_id, MAX(provider_name), SUM(requests)::bigint,
                        SUM(prompt_tokens)::bigint, SUM(completion_tokens)::bigint,
                        SUM(reasoning_tokens)::bigint, SUM(cached_tokens)::bigint,
                        SUM(usage_nanos)::bigint
                 FROM metering.usage_daily
                 WHERE account_id = $1 AND day BETWEEN $2 AND $3
                   AND ($4::text IS NULL OR key_hash = $4)
                 GROUP BY day, model, endpoint_id
                 ORDER BY day, model, endpoint_id",
        )
        .bind(account_id)
        .bind(days.first)
        .bind(days.last)
        .bind(key_hash)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| pb::ActivityRow {
                date: r.0.to_string(),
                model: r.1,
                endpoint_id: r.2,
                provider_name: r.3,
                requests: to_u64(r.4),
                prompt_tokens: to_u64(r.5),
                completion_tokens: to_u64(r.6),
                reasoning_tokens: to_u64(r.7),
                cached_tokens: to_u64(r.8),
                usage_nanos: r.9,
            })
            .collect())
    }

    async fn model_usage(
        &self,
        model: &str,
        days: DayRange,
        month: DayRange,
        prices_since: DateTime<Utc>,
    ) -> anyhow::Result<ModelUsage> {
        let mut conn = self.pool.acquire().await?;
        let daily: Vec<(NaiveDate, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT day, SUM(requests)::bigint, SUM(prompt_tokens)::bigint,
                    SUM(completion_tokens)::bigint, SUM(reasoning_tokens)::bigint,
                    SUM(cached_tokens)::bigint
             FROM metering.usage_daily WHERE model = $1 AND day BETWEEN $2 AND $3
             GROUP BY day ORDER BY day",
        )
        .bind(model)
        .bind(days.first)
        .bind(days.last)
        .fetch_all(&mut *conn)
        .await?;
        let top_apps = app_usage(&mut conn, month, Some(model), 20).await?;
        let prices: Vec<(DateTime<Utc>, String, String, i64, i64, i64, i64, i64, i64)> =
            sqlx::query_as(
                "SELECT hour, provider_name, endpoint_id, requests, prompt_tokens,
                        completion_tokens, cached_tokens, prompt_cost_nanos,
                        completion_cost_nanos
                 FROM metering.price_hourly WHERE model = $1 AND hour >= $2
                 ORDER BY hour, endpoint_id",
            )
            .bind(model)
            .bind(prices_since)
            .fetch_all(&mut *conn)
            .await?;
        Ok(ModelUsage {
            daily: daily
                .into_iter()
                .map(|r| pb::DailyModelTokens {
                    date: r.0.to_string(),
                    requests: to_u64(r.1),
                    prompt_tokens: to_u64(r.2),
                    completion_tokens: to_u64(r.3),
                    reasoning_tokens: to_u64(r.4),
                    cached_tokens: to_u64(r.5),
                })
                .collect(),
            top_apps,
            prices: prices
                .into_iter()
                .map(|r| pb::EffectivePrice {
                    hour_ms: r.0.timestamp_millis(),
                    provider_name: r.1,
                    endpoint_id: r.2,
                    requests: to_u64(r.3),
                    prompt_tokens: to_u64(r.4),
                    completion_tokens: to_u64(r.5),
                    cached_tokens: to_u64(r.6),
                    prompt_cost_nanos: r.7,
                    completion_cost_nanos: r.8,
                })
                .collect(),
        })
    }

    async fn rankings(&self, days: DayRange) -> anyhow::Result<Vec<pb::ModelDayTokens>> {
        let rows: Vec<(NaiveDate, String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT day, model, SUM(prompt_tokens)::bigint, SUM(completion_tokens)::bigint,
                    SUM(reasoning_tokens)::bigint, SUM(requests)::bigint
             FROM metering.usage_daily WHERE day BETWEEN $1 AND $2
             GROUP BY day, model ORDER BY day, model",
        )
        .bind(days.first)
        .bind(days.last)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| pb::ModelDayTokens {
                date: r.0.to_string(),
                model: r.1,
                prompt_tokens: to_u64(r.2),
                completion_tokens: to_u64(r.3),
                reasoning_tokens: to_u64(r.4),
                requests: to_u64(r.5),
            })
            .collect())
    }

    async fn app_rankings(
        &self,
        days: DayRange,
        model: Option<&str>,
    ) -> anyhow::Result<Vec<pb::AppUsage>> {
        let mut conn = self.pool.acquire().await?;
        app_usage(&mut conn, days, model, 1000).await
    }
}

async fn app_usage(
    conn: &mut PgConnection,
    days: DayRange,
    model: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<pb::AppUsage>> {
    let rows: Vec<(i64, Option<String>, String, i64, i64)> = sqlx::query_as(
        "SELECT a.id, a.title, a.http_referer, SUM(u.requests)::bigint, SUM(u.tokens)::bigint
         FROM metering.app_usage_daily u JOIN metering.apps a ON a.id = u.app_id
         WHERE u.day BETWEEN $1 AND $2 AND ($3::text IS NULL OR u.model = $3)
         GROUP BY a.id, a.title, a.http_referer
         ORDER BY SUM(u.tokens) DESC, a.id
         LIMIT $4",
    )
    .bind(days.first)
    .bind(days.last)
    .bind(model)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| pb::AppUsage {
            app_id: r.0,
            title: r.1.unwrap_or_default(),
            http_referer: r.2,
            requests: to_u64(r.3),
            tokens: to_u64(r.4),
        })
        .collect())
}

/// day, account, key, model, endpoint, provider: the text columns of
/// `usage_daily` rows, as arrays for one UNNEST.
type UsageDailyColumns<'a> = (
    Vec<NaiveDate>,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<&'a str>,
);

/// Posts a recorded batch's debits, draws its holds down and adds its
/// rollups, each table in key order.
async fn apply_rollups(conn: &mut PgConnection, r: &Rollups) -> anyhow::Result<()> {
    insert_transfers(conn, &r.debits).await?;
    apply_balances(conn, &r.balance_deltas()).await?;
    if !r.hold_draws.is_empty() {
        let ids: Vec<&str> = r.hold_draws.keys().map(String::as_str).collect();
        let amounts: Vec<i64> = r.hold_draws.values().copied().collect();
        sqlx::query(
            "UPDATE metering.holds h
             SET amount_nanos = GREATEST(h.amount_nanos - d.amount, 0), updated_at = now()
             FROM UNNEST($1::text[], $2::bigint[]) AS d(id, amount)
             WHERE h.id = d.id AND h.open",
        )
        .bind(&ids)
        .bind(&amounts)
        .execute(&mut *conn)
        .await?;
    }
    if !r.key_spend.is_empty() {
        let hashes: Vec<&str> = r.key_spend.keys().map(String::as_str).collect();
        let nanos: Vec<i64> = r.key_spend.values().map(|k| k.nanos).collect();
        let used: Vec<DateTime<Utc>> = r.key_spend.values().map(|k| k.last_used_at).collect();
        sqlx::query(
            "UPDATE metering.api_keys k
             SET usage_nanos = k.usage_nanos + d.nanos,
                 last_used_at = GREATEST(k.last_used_at, d.used)
             FROM UNNEST($1::text[], $2::bigint[], $3::timestamptz[]) AS d(hash, nanos, used)
             WHERE k.hash = d.hash",
        )
        .bind(&hashes)
        .bind(&nanos)
        .bind(&used)
        .execute(&mut *conn)
        .await?;
    }
    if !r.usage_daily.is_empty() {
        let mut cols: UsageDailyColumns<'_> = Default::default();
        let mut nums: [Vec<i64>; 6] = Default::default();
        for (k, c) in &r.usage_daily {
            cols.0.push(k.day);
            cols.1.push(&k.account_id);
            cols.2.push(&k.key_hash);
            cols.3.push(&k.model);
            cols.4.push(&k.endpoint_id);
            cols.5.push(&c.provider_name);
            for (i, v) in [
                c.requests,
                c.prompt_tokens,
                c.completion_tokens,
                c.reasoning_tokens,
                c.cached_tokens,
            ]
            .into_iter()
            .enumerate()
            {
                nums[i].push(db_int(v)?);
            }
            nums[5].push(c.usage_nanos);
        }
        sqlx::query(
            "INSERT INTO metering.usage_daily AS u
                 (day, account_id, key_hash, model, endpoint_id, provider_name, requests,
                  prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens, usage_nanos)
             SELECT * FROM UNNEST($1::date[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::bigint[], $8::bigint[], $9::bigint[],
                                  $10::bigint[], $11::bigint[], $12::bigint[])
             ON CONFLICT (account_id, day, key_hash, model, endpoint_id) DO UPDATE SET
                 provider_name = EXCLUDED.provider_name,
                 requests = u.requests + EXCLUDED.requests,
                 prompt_tokens = u.prompt_tokens + EXCLUDED.prompt_tokens,
                 completion_tokens = u.completion_tokens + EXCLUDED.completion_tokens,
                 reasoning_tokens = u.reasoning_tokens + EXCLUDED.reasoning_tokens,
                 cached_tokens = u.cached_tokens + EXCLUDED.cached_tokens,
                 usage_nanos = u.usage_nanos + EXCLUDED.usage_nanos",
        )
        .bind(&cols.0)
        .bind(&cols.1)
        .bind(&cols.2)
        .bind(&cols.3)
        .bind(&cols.4)
        .bind(&cols.5)
        .bind(&nums[0])
        .bind(&nums[1])
        .bind(&nums[2])
        .bind(&nums[3])
        .bind(&nums[4])
        .bind(&nums[5])
        .execute(&mut *conn)
        .await?;
    }
    if !r.app_daily.is_empty() {
        let days: Vec<NaiveDate> = r.app_daily.keys().map(|k| k.day).collect();
        let apps: Vec<i64> = r.app_daily.keys().map(|k| k.app_id).collect();
        let models: Vec<&str> = r.app_daily.keys().map(|k| k.model.as_str()).collect();
        let requests = r
            .app_daily
            .values()
            .map(|c| db_int(c.requests))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let tokens = r
            .app_daily
            .values()
            .map(|c| db_int(c.tokens))
            .collect::<anyhow::Result<Vec<_>>>()?;
        sqlx::query(
            "INSERT INTO metering.app_usage_daily AS u (day, app_id, model, requests, tokens)
             SELECT * FROM UNNEST($1::date[], $2::bigint[], $3::text[], $4::bigint[],
                                  $5::bigint[])
             ON CONFLICT (day, app_id, model) DO UPDATE SET
                 requests = u.requests + EXCLUDED.requests,
                 tokens = u.tokens + EXCLUDED.tokens",
        )
        .bind(&days)
        .bind(&apps)
        .bind(&models)
        .bind(&requests)
        .bind(&tokens)
        .execute(&mut *conn)
        .await?;
    }
    if !r.price_hourly.is_empty() {
        let hours: Vec<DateTime<Utc>> = r.price_hourly.keys().map(|k| k.hour).collect();
        let models: Vec<&str> = r.price_hourly.keys().map(|k| k.model.as_str()).collect();
        let endpoints: Vec<&str> = r
            .price_hourly
            .keys()
            .map(|k| k.endpoint_id.as_str())
            .collect();
        let providers: Vec<&str> = r
            .price_hourly
            .values()
            .map(|c| c.provider_name.as_str())
            .collect();
        let mut nums: [Vec<i64>; 6] = Default::default();
        for c in r.price_hourly.values() {
            nums[0].push(db_int(c.requests)?);
            nums[1].push(db_int(c.prompt_tokens)?);
            nums[2].push(db_int(c.completion_tokens)?);
            nums[3].push(db_int(c.cached_tokens)?);
            nums[4].push(c.prompt_cost_nanos);
            nums[5].push(c.completion_cost_nanos);
        }
        sqlx::query(
            "INSERT INTO metering.price_hourly AS p
                 (hour, model, endpoint_id, provider_name, requests, prompt_tokens,
                  completion_tokens, cached_tokens, prompt_cost_nanos, completion_cost_nanos)
             SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[],
                                  $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[],
                                  $9::bigint[], $10::bigint[])
             ON CONFLICT (model, hour, endpoint_id) DO UPDATE SET
                 provider_name = EXCLUDED.provider_name,
                 requests = p.requests + EXCLUDED.requests,
                 prompt_tokens = p.prompt_tokens + EXCLUDED.prompt_tokens,
                 completion_tokens = p.completion_tokens + EXCLUDED.completion_tokens,
                 cached_tokens = p.cached_tokens + EXCLUDED.cached_tokens,
                 prompt_cost_nanos = p.prompt_cost_nanos + EXCLUDED.prompt_cost_nanos,
                 completion_cost_nanos = p.completion_cost_nanos + EXCLUDED.completion_cost_nanos",
        )
        .bind(&hours)
        .bind(&models)
        .bind(&endpoints)
        .bind(&providers)
        .bind(&nums[0])
        .bind(&nums[1])
        .bind(&nums[2])
        .bind(&nums[3])
        .bind(&nums[4])
        .bind(&nums[5])
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
