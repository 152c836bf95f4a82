//! Postgres row shapes and their conversion into domain values. Rows come
//! from our own writes, so a failed conversion means a corrupt database.

use sqlx::FromRow;
use switchyard_kit::Price;

use crate::domain::{Architecture, Endpoint, Model, Pricing, Provider, WireFormat};
use crate::error::CatalogError;

#[derive(FromRow)]
pub(super) struct ModelRow {
    id: String,
    canonical_slug: String,
    name: String,
    created: i64,
    description: String,
    context_length: i32,
    modality: String,
    input_modalities: Vec<String>,
    output_modalities: Vec<String>,
    tokenizer: String,
    instruct_type: Option<String>,
    knowledge_cutoff: Option<String>,
    supported_parameters: Vec<String>,
    hugging_face_id: Option<String>,
}

#[derive(FromRow)]
pub(super) struct ProviderRow {
    slug: String,
    name: String,
    wire_format: String,
    base_url: String,
    credential_ref: String,
    privacy_policy_url: Option<String>,
    terms_of_service_url: Option<String>,
    status_page_url: Option<String>,
    headquarters: Option<String>,
    may_train: Option<bool>,
    retains_prompts: Option<bool>,
    zero_data_retention: Option<bool>,
}

#[derive(FromRow)]
pub(super) struct EndpointRow {
    id: String,
    model_id: String,
    provider_slug: String,
    tag: String,
    upstream_model: String,
    price_prompt: String,
    price_completion: String,
    price_request: Option<String>,
    price_image: Option<String>,
    price_input_cache_read: Option<String>,
    price_input_cache_write: Option<String>,
    price_internal_reasoning: Option<String>,
    context_length: i32,
    max_completion_tokens: Option<i32>,
    quantization: Option<String>,
    supported_parameters: Vec<String>,
    status: i32,
}

pub(super) fn corrupt(what: String) -> CatalogError {
    CatalogError::Internal(anyhow::anyhow!("catalog database holds {what}"))
}

fn count(value: i32, what: &str) -> Result<u32, CatalogError> {
    u32::try_from(value).map_err(|_| corrupt(format!("a negative {what}")))
}

fn stored_price(value: &str) -> Result<Price, CatalogError> {
    value
        .parse()
        .map_err(|e| corrupt(format!("an unreadable price: {e}")))
}

impl TryFrom<ModelRow> for Model {
    type Error = CatalogError;
    fn try_from(r: ModelRow) -> Result<Model, CatalogError> {
        Ok(Model {
            context_length: count(r.context_length, "context length")?,
            id: r.id,
            canonical_slug: r.canonical_slug,
            name: r.name,
            created: r.created,
            description: r.description,
            architecture: Architecture {
                modality: r.modality,
                input_modalities: r.input_modalities,
                output_modalities: r.output_modalities,
                tokenizer: r.tokenizer,
                instruct_type: r.instruct_type,
            },
            knowledge_cutoff: r.knowledge_cutoff,
            supported_parameters: r.supported_parameters,
            hugging_face_id: r.hugging_face_id,
        })
    }
}

impl TryFrom<ProviderRow> for Provider {
    type Error = CatalogError;
    fn try_from(r: ProviderRow) -> Result<Provider, CatalogError> {
        Ok(Provider {
            wire_format: r
                .wire_format
                .parse::<WireFormat>()
                .map_err(|e| corrupt(e.to_string()))?,
            slug: r.slug,
            name: r.name,
            base_url: r.base_url,
            credential_ref: r.credential_ref,
            privacy_policy_url: r.privacy_policy_url,
            terms_of_service_url: r.terms_of_service_url,
            status_page_url: r.status_page_url,
            headquarters: r.headquarters,
            may_train: r.may_train,
            retains_prompts: r.retains_prompts,
            zero_data_retention: r.zero_data_retention,
        })
    }
}

impl TryFrom<EndpointRow> for Endpoint {
    type Error = CatalogError;
    fn try_from(r: EndpointRow) -> Result<Endpoint, CatalogError> {
        let optional = |v: Option<String>| v.as_deref().map(stored_price).transpose();
        Ok(Endpoint {
            pricing: Pricing {
                prompt: stored_price(&r.price_prompt)?,
                completion: stored_price(&r.price_completion)?,
                request: optional(r.price_request)?,
                image: optional(r.price_image)?,
                input_cache_read: optional(r.price_input_cache_read)?,
                input_cache_write: optional(r.price_input_cache_write)?,
                internal_reasoning: optional(r.price_internal_reasoning)?,
            },
            context_length: count(r.context_length, "context length")?,
            max_completion_tokens: r
                .max_completion_tokens
                .map(|v| count(v, "max completion tokens"))
                .transpose()?,
            id: r.id,
            model_id: r.model_id,
            provider_slug: r.provider_slug,
            tag: r.tag,
            upstream_model: r.upstream_model,
            quantization: r.quantization,
            supported_parameters: r.supported_parameters,
            status: r.status,
        })
    }
}
