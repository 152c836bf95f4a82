//! Postgres catalog storage in schema `catalog`. Prices are NUMERIC, read
//! back as text and parsed exactly; lists are `text[]`. Writers serialise on
//! the version row, and an upsert whose row is unchanged updates nothing.

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use switchyard_kit::Price;

use super::pg_rows::{EndpointRow, ModelRow, ProviderRow, corrupt};
use super::{Batch, CatalogStore, Outcome};
use crate::domain::{CatalogSnapshot, Endpoint, Model, Provider};
use crate::error::CatalogError;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

fn db_error(err: sqlx::Error) -> CatalogError {
    CatalogError::Internal(anyhow::Error::new(err).context("catalog database"))
}

impl PostgresStore {
    /// Connects and runs the catalog migrations. sqlx's bookkeeping table
    /// lives in schema `catalog` too (via `search_path`), so other services
    /// migrating the same database keep their own history.
    pub async fn connect(url: &SecretString) -> anyhow::Result<PostgresStore> {
        let options: PgConnectOptions = url
            .expose_secret()
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid database URL: {e}"))?;
        let options = options.options([("search_path", "catalog")]);
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to the catalog database: {e}"))?;
        sqlx::query("CREATE SCHEMA IF NOT EXISTS catalog")
            .execute(&pool)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(PostgresStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

const SELECT_MODELS: &str = "SELECT id, canonical_slug, name, \
     extract(epoch FROM created)::bigint AS created, description, context_length, modality, \
     input_modalities, output_modalities, tokenizer, instruct_type, \
     knowledge_cutoff::text AS knowledge_cutoff, supported_parameters, hugging_face_id \
     FROM catalog.models ORDER BY id COLLATE \"C\"";

const SELECT_PROVIDERS: &str = "SELECT slug, name, wire_format, base_url, credential_ref, \
     privacy_policy_url, terms_of_service_url, status_page_url, headquarters, \
     may_train, retains_prompts, zero_data_retention \
     FROM catalog.providers ORDER BY slug COLLATE \"C\"";

const SELECT_ENDPOINTS: &str = "SELECT id, model_id, provider_slug, tag, upstream_model, \
     price_prompt::text AS price_prompt, price_completion::text AS price_completion, \
     price_request::text AS price_request, price_image::text AS price_image, \
     price_input_cache_read::text AS price_input_cache_read, \
     price_input_cache_write::text AS price_input_cache_write, \
     price_internal_reasoning::text AS price_internal_reasoning, \
     context_length, max_completion_tokens, quantization, supported_parameters, status \
     FROM catalog.endpoints ORDER BY id COLLATE \"C\"";

// Each upsert's `WHERE ... IS DISTINCT FROM` turns an unchanged row into
// zero affected rows, which is how a re-applied seed leaves the version alone.
const UPSERT_PROVIDER: &str = "INSERT INTO catalog.providers AS t (slug, name, wire_format, \
     base_url, credential_ref, privacy_policy_url, terms_of_service_url, status_page_url, \
     headquarters, may_train, retains_prompts, zero_data_retention) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (slug) DO UPDATE SET name = excluded.name, wire_format = excluded.wire_format, \
     base_url = excluded.base_url, credential_ref = excluded.credential_ref, \
     privacy_policy_url = excluded.privacy_policy_url, \
     terms_of_service_url = excluded.terms_of_service_url, \
     status_page_url = excluded.status_page_url, headquarters = excluded.headquarters, \
     may_train = excluded.may_train, retains_prompts = excluded.retains_prompts, \
     zero_data_retention = excluded.zero_data_retention, \
     updated_at = now() \
     WHERE (t.name, t.wire_format, t.base_url, t.credential_ref, t.privacy_policy_url, \
     t.terms_of_service_url, t.status_page_url, t.headquarters, t.may_train, \
     t.retains_prompts, t.zero_data_retention) IS DISTINCT FROM \
     (excluded.name, excluded.wire_format, excluded.base_url, excluded.credential_ref, \
     excluded.privacy_policy_url, excluded.terms_of_service_url, excluded.status_page_url, \
     excluded.headquarters, excluded.may_train, excluded.retains_prompts, \
     excluded.zero_data_retention)";

const UPSERT_MODEL: &str = "INSERT INTO catalog.models AS t (id, canonical_slug, name, created, \
     description, context_length, modality, input_modalities, output_modalities, tokenizer, \
     instruct_type, knowledge_cutoff, supported_parameters, hugging_face_id) \
     VALUES ($1, $2, $3, to_timestamp($4), $5, $6, $7, $8, $9, $10, $11, $12::date, $13, $14) \
     ON CONFLICT (id) DO UPDATE SET canonical_slug = excluded.canonical_slug, \
     name = excluded.name, created = excluded.created, description = excluded.description, \
     context_length = excluded.context_length, modality = excluded.modality, \
     input_modalities = excluded.input_modalities, output_modalities = excluded.output_modalities, \
     tokenizer = excluded.tokenizer, instruct_type = excluded.instruct_type, \
     knowledge_cutoff = excluded.knowledge_cutoff, \
     supported_parameters = excluded.supported_parameters, \
     hugging_face_id = excluded.hugging_face_id, updated_at = now() \
     WHERE (t.canonical_slug, t.name, t.created, t.description, t.context_length, t.modality, \
     t.input_modalities, t.output_modalities, t.tokenizer, t.instruct_type, t.knowledge_cutoff, \
     t.supported_parameters, t.hugging_face_id) IS DISTINCT FROM \
     (excluded.canonical_slug, excluded.name, excluded.created, excluded.description, \
     excluded.context_length, excluded.modality, excluded.input_modalities, \
     excluded.output_modalities, excluded.tokenizer, excluded.instruct_type, \
     excluded.knowledge_cutoff, excluded.supported_parameters, excluded.hugging_face_id)";

// Prices are compared as text, not as numbers: 0.00003 and 0.000030 are
// equal numerically but the stored text is what readers get back.
const UPSERT_ENDPOINT: &str = "INSERT INTO catalog.endpoints AS t (id, model_id, provider_slug, \
     tag, upstream_model, price_prompt, price_completion, price_request, price_image, \
     price_input_cache_read, price_input_cache_write, price_internal_reasoning, context_length, \
     max_completion_tokens, quantization, supported_parameters, status) \
     VALUES ($1, $2, $3, $4, $5, $6::numeric, $7::numeric, $8::numeric, $9::numeric, \
     $10::numeric, $11::numeric, $12::numeric, $13, $14, $15, $16, $17) \
     ON CONFLICT (id) DO UPDATE SET model_id = excluded.model_id, \
     provider_slug = excluded.provider_slug, tag = excluded.tag, \
     upstream_model = excluded.upstream_model, price_prompt = excluded.price_prompt, \
     price_completion = excluded.price_completion, price_request = excluded.price_request, \
     price_image = excluded.price_image, price_input_cache_read = excluded.price_input_cache_read, \
     price_input_cache_write = excluded.price_input_cache_write, \
     price_internal_reasoning = excluded.price_internal_reasoning, \
     context_length = excluded.context_length, \
     max_completion_tokens = excluded.max_completion_tokens, \
     quantization = excluded.quantization, supported_parameters = excluded.supported_parameters, \
     status = excluded.status, updated_at = now() \
     WHERE (t.upstream_model, t.price_prompt::text, t.price_completion::text, \
     t.price_request::text, t.price_image::text, t.price_input_cache_read::text, \
     t.price_input_cache_write::text, t.price_internal_reasoning::text, t.context_length, \
     t.max_completion_tokens, t.quantization, t.supported_parameters, t.status) \
     IS DISTINCT FROM (excluded.upstream_model, excluded.price_prompt::text, \
     excluded.price_completion::text, excluded.price_request::text, excluded.price_image::text, \
     excluded.price_input_cache_read::text, excluded.price_input_cache_write::text, \
     excluded.price_internal_reasoning::text, excluded.context_length, \
     excluded.max_completion_tokens, excluded.quantization, excluded.supported_parameters, \
     excluded.status)";

/// Validated counts fit `integer`; see `domain::check_count`.
fn int(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

async fn exists(
    tx: &mut Transaction<'_, Postgres>,
    sql: &str,
    key: &str,
) -> Result<bool, CatalogError> {
    sqlx::query_scalar(sql)
        .bind(key)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)
}

async fn apply_in(
    tx: &mut Transaction<'_, Postgres>,
    batch: &Batch,
) -> Result<Outcome, CatalogError> {
    let version: i64 = sqlx::query_scalar("SELECT version FROM catalog.version FOR UPDATE")
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?;
    let mut changed: u64 = 0;
    for p in &batch.providers {
        changed += sqlx::query(UPSERT_PROVIDER)
            .bind(&p.slug)
            .bind(&p.name)
            .bind(p.wire_format.as_str())
            .bind(&p.base_url)
            .bind(&p.credential_ref)
            .bind(&p.privacy_policy_url)
            .bind(&p.terms_of_service_url)
            .bind(&p.status_page_url)
            .bind(&p.headquarters)
            .bind(p.may_train)
            .bind(p.retains_prompts)
            .bind(p.zero_data_retention)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?
            .rows_affected();
    }
    for m in &batch.models {
        let a = &m.architecture;
        changed += sqlx::query(UPSERT_MODEL)
            .bind(&m.id)
            .bind(&m.canonical_slug)
            .bind(&m.name)
            .bind(m.created as f64)
            .bind(&m.description)
            .bind(int(m.context_length))
            .bind(&a.modality)
            .bind(&a.input_modalities)
            .bind(&a.output_modalities)
            .bind(&a.tokenizer)
            .bind(&a.instruct_type)
            .bind(&m.knowledge_cutoff)
            .bind(&m.supported_parameters)
            .bind(&m.hugging_face_id)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?
            .rows_affected();
    }
    for e in &batch.endpoints {
        if !exists(
            tx,
            "SELECT EXISTS (SELECT 1 FROM catalog.models WHERE id = $1)",
            &e.model_id,
        )
        .await?
        {
            return Err(CatalogError::UnknownModel(e.model_id.clone()));
        }
        if !exists(
            tx,
            "SELECT EXISTS (SELECT 1 FROM catalog.providers WHERE slug = $1)",
            &e.provider_slug,
        )
        .await?
        {
            return Err(CatalogError::UnknownProvider(e.provider_slug.clone()));
        }
        let p = &e.pricing;
        let text = |v: Option<Price>| v.map(|v| v.to_string());
        changed += sqlx::query(UPSERT_ENDPOINT)
            .bind(&e.id)
            .bind(&e.model_id)
            .bind(&e.provider_slug)
            .bind(&e.tag)
            .bind(&e.upstream_model)
            .bind(p.prompt.to_string())
            .bind(p.completion.to_string())
            .bind(text(p.request))
            .bind(text(p.image))
            .bind(text(p.input_cache_read))
            .bind(text(p.input_cache_write))
            .bind(text(p.internal_reasoning))
            .bind(int(e.context_length))
            .bind(e.max_completion_tokens.map(int))
            .bind(&e.quantization)
            .bind(&e.supported_parameters)
            .bind(e.status)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?
            .rows_affected();
    }
    for id in &batch.delete_endpoints {
        changed += sqlx::query("DELETE FROM catalog.endpoints WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?
            .rows_affected();
    }
    let mut version = version;
    if changed > 0 {
        version = sqlx::query_scalar(
            "UPDATE catalog.version SET version = version + 1 RETURNING version",
        )
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    Ok(Outcome {
        version: u64::try_from(version).map_err(|_| corrupt("a negative version".into()))?,
        changed: usize::try_from(changed).unwrap_or(usize::MAX),
    })
}

#[tonic::async_trait]
impl CatalogStore for PostgresStore {
    async fn snapshot(&self) -> Result<CatalogSnapshot, CatalogError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // One MVCC snapshot for all four reads, so the result is consistent.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let version: i64 = sqlx::query_scalar("SELECT version FROM catalog.version")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        let models: Vec<ModelRow> = sqlx::query_as(SELECT_MODELS)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let providers: Vec<ProviderRow> = sqlx::query_as(SELECT_PROVIDERS)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let endpoints: Vec<EndpointRow> = sqlx::query_as(SELECT_ENDPOINTS)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(CatalogSnapshot {
            version: u64::try_from(version).map_err(|_| corrupt("a negative version".into()))?,
            models: models
                .into_iter()
                .map(Model::try_from)
                .collect::<Result<_, _>>()?,
            providers: providers
                .into_iter()
                .map(Provider::try_from)
                .collect::<Result<_, _>>()?,
            endpoints: endpoints
                .into_iter()
                .map(Endpoint::try_from)
                .collect::<Result<_, _>>()?,
        })
    }

    async fn version(&self) -> Result<u64, CatalogError> {
        let version: i64 = sqlx::query_scalar("SELECT version FROM catalog.version")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        u64::try_from(version).map_err(|_| corrupt("a negative version".into()))
    }

    async fn apply(&self, batch: Batch) -> Result<Outcome, CatalogError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let outcome = apply_in(&mut tx, &batch).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(outcome)
    }
}
