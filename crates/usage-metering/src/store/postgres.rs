//! Postgres storage in schema `metering`. Batches run in one transaction and
//! take row locks in a fixed order (apps by referer, then generations by id)
//! so concurrent overlapping batches cannot deadlock.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use switchyard_kit::Price;

use super::{AccountChoice, KeyInsert, RecordOutcome, Store, UsageRecord};
use crate::keys::{ApiKey, KeyKind};
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
}

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
        })
    }
}

async fn find_key(conn: &mut PgConnection, hash: &str) -> anyhow::Result<Option<ApiKey>> {
    sqlx::query_as::<_, KeyRow>(
        "SELECT hash, account_id, name, kind, disabled, label, created_at
         FROM metering.api_keys WHERE hash = $1",
    )
    .bind(hash)
    .fetch_optional(conn)
    .await?
    .map(ApiKey::try_from)
    .transpose()
}

const INSERT_GENERATION: &str = "
INSERT INTO metering.generations (
    id, account_id, key_hash, model, endpoint_id, provider_slug, provider_name, upstream_id,
    created_at, prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens,
    cache_write_tokens, latency_ms, ttft_ms, generation_time_ms, streamed, cancelled,
    finish_reason, native_finish_reason, http_referer, app_title, user_agent, app_id, api_type,
    session_id, external_user, price_prompt, price_completion, price_request, price_image,
    price_input_cache_read, price_input_cache_write, price_internal_reasoning, attempts,
    prompt_cost_nanos, completion_cost_nanos, total_cost_nanos, usage_estimated
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
    $21, $22, $23, $24, $25, $26, $27, $28, $29::numeric, $30::numeric, $31::numeric,
    $32::numeric, $33::numeric, $34::numeric, $35::numeric, $36::jsonb, $37, $38, $39, $40
) ON CONFLICT (id) DO NOTHING";

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
    prompt_cost_nanos, completion_cost_nanos, total_cost_nanos, usage_estimated
FROM metering.generations WHERE id = $1 AND account_id = $2";

/// Counters are validated to fit BIGINT when events are parsed.
fn db_int(value: u64) -> anyhow::Result<i64> {
    i64::try_from(value).context("counter out of BIGINT range")
}

fn price_text(price: Option<Price>) -> Option<String> {
    price.map(|p| p.to_string())
}

async fn insert_generation(
    conn: &mut PgConnection,
    record: &UsageRecord,
    app_id: Option<i64>,
) -> anyhow::Result<bool> {
    let e = &record.event;
    let pricing = e.pricing.as_ref();
    let result = sqlx::query(INSERT_GENERATION)
        .bind(&e.generation_id)
        .bind(&e.account_id)
        .bind(&e.key_hash)
        .bind(&e.model)
        .bind(&e.endpoint_id)
        .bind(&e.provider_slug)
        .bind(&e.provider_name)
        .bind(&e.upstream_id)
        .bind(e.created_at)
        .bind(db_int(e.prompt_tokens)?)
        .bind(db_int(e.completion_tokens)?)
        .bind(db_int(e.reasoning_tokens)?)
        .bind(db_int(e.cached_tokens)?)
        .bind(db_int(e.cache_write_tokens)?)
        .bind(db_int(e.latency_ms)?)
        .bind(e.ttft_ms.map(db_int).transpose()?)
        .bind(db_int(e.generation_time_ms)?)
        .bind(e.streamed)
        .bind(e.cancelled)
        .bind(&e.finish_reason)
        .bind(&e.native_finish_reason)
        .bind(&e.http_referer)
        .bind(&e.app_title)
        .bind(&e.user_agent)
        .bind(app_id)
        .bind(&e.api_type)
        .bind(&e.session_id)
        .bind(&e.external_user)
        .bind(price_text(pricing.map(|p| p.prompt)))
        .bind(price_text(pricing.map(|p| p.completion)))
        .bind(price_text(pricing.and_then(|p| p.request)))
        .bind(price_text(pricing.and_then(|p| p.image)))
        .bind(price_text(pricing.and_then(|p| p.input_cache_read)))
        .bind(price_text(pricing.and_then(|p| p.input_cache_write)))
        .bind(price_text(pricing.and_then(|p| p.internal_reasoning)))
        .bind(serde_json::to_string(&e.attempts)?)
        .bind(record.cost.prompt)
        .bind(record.cost.completion)
        .bind(record.cost.total)
        .bind(e.usage_estimated)
        .execute(conn)
        .await?;
    Ok(result.rows_affected() == 1)
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
            AccountChoice::New(id) => {
                sqlx::query("INSERT INTO metering.accounts (id, created_at) VALUES ($1, $2)")
                    .bind(id)
                    .bind(key.created_at)
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
                 (hash, account_id, name, kind, disabled, label, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (hash) DO NOTHING",
        )
        .bind(&key.hash)
        .bind(&key.account_id)
        .bind(&key.name)
        .bind(key.kind.as_str())
        .bind(key.disabled)
        .bind(&key.label)
        .bind(key.created_at)
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
        for record in &records {
            let app_id = record
                .event
                .http_referer
                .as_ref()
                .and_then(|r| app_ids.get(r).copied());
            if insert_generation(&mut tx, record, app_id).await? {
                outcome.recorded += 1;
                outcome.cost += record.cost.total;
            } else {
                outcome.duplicates += 1;
            }
        }
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
}
