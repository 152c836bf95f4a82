//! The user-editable seed file (`deploy/catalog.toml`): its TOML shape and
//! its parsing into validated domain values. Applying a seed is an upsert:
//! unchanged rows stay as they are, edited ones are updated, and rows that
//! are not in the file (added over gRPC) are left alone.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::domain::{Architecture, Endpoint, Model, Pricing, Provider, WireFormat};
use crate::error::CatalogError;
use crate::rules::{check_tag, invalid};
use crate::store::Batch;

/// A parsed, validated seed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seed {
    pub providers: Vec<Provider>,
    pub models: Vec<Model>,
    pub endpoints: Vec<Endpoint>,
}

impl Seed {
    pub fn to_batch(&self) -> Batch {
        Batch {
            providers: self.providers.clone(),
            models: self.models.clone(),
            endpoints: self.endpoints.clone(),
            delete_endpoints: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    #[serde(default)]
    providers: Vec<SeedProvider>,
    #[serde(default)]
    models: Vec<SeedModel>,
    #[serde(default)]
    endpoints: Vec<SeedEndpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedProvider {
    slug: String,
    name: String,
    wire_format: WireFormat,
    base_url: String,
    #[serde(default)]
    credential_ref: String,
    privacy_policy_url: Option<String>,
    terms_of_service_url: Option<String>,
    status_page_url: Option<String>,
    headquarters: Option<String>,
    /// Data policy; leave out what you do not know (unknown counts as the
    /// less private answer when a request asks for privacy).
    may_train: Option<bool>,
    retains_prompts: Option<bool>,
    zero_data_retention: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedModel {
    id: String,
    canonical_slug: Option<String>,
    name: String,
    created: i64,
    #[serde(default)]
    description: String,
    context_length: u32,
    #[serde(default)]
    architecture: Architecture,
    knowledge_cutoff: Option<String>,
    #[serde(default)]
    supported_parameters: Vec<String>,
    hugging_face_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedEndpoint {
    model: String,
    /// Provider tag: `slug` or `slug/variant`.
    provider: String,
    upstream_model: String,
    pricing: Pricing,
    /// Defaults to the model's.
    context_length: Option<u32>,
    max_completion_tokens: Option<u32>,
    quantization: Option<String>,
    /// Defaults to the model's.
    supported_parameters: Option<Vec<String>>,
    #[serde(default)]
    status: i32,
}

/// Reads and validates a seed file.
pub fn load(path: &Path) -> anyhow::Result<Seed> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read catalog seed {}", path.display()))?;
    parse(&text).with_context(|| format!("catalog seed {}", path.display()))
}

/// Parses and validates seed TOML.
pub fn parse(text: &str) -> Result<Seed, CatalogError> {
    let file: SeedFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let providers = file
        .providers
        .into_iter()
        .map(|p| {
            let provider = Provider {
                slug: p.slug,
                name: p.name,
                wire_format: p.wire_format,
                base_url: p.base_url,
                credential_ref: p.credential_ref,
                privacy_policy_url: p.privacy_policy_url,
                terms_of_service_url: p.terms_of_service_url,
                status_page_url: p.status_page_url,
                headquarters: p.headquarters,
                may_train: p.may_train,
                retains_prompts: p.retains_prompts,
                zero_data_retention: p.zero_data_retention,
            };
            provider.validate().map(|()| provider)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let models = file
        .models
        .into_iter()
        .map(|m| {
            let model = Model {
                canonical_slug: m.canonical_slug.unwrap_or_else(|| m.id.clone()),
                id: m.id,
                name: m.name,
                created: m.created,
                description: m.description,
                context_length: m.context_length,
                architecture: m.architecture,
                knowledge_cutoff: m.knowledge_cutoff,
                supported_parameters: m.supported_parameters,
                hugging_face_id: m.hugging_face_id,
            };
            model.validate().map(|()| model)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let by_id: HashMap<&str, &Model> = models.iter().map(|m| (m.id.as_str(), m)).collect();
    let endpoints = file
        .endpoints
        .into_iter()
        .map(|e| {
            let id = Endpoint::id_for(&e.provider, &e.model);
            let model = by_id.get(e.model.as_str()).copied();
            let context_length = e
                .context_length
                .or(model.map(|m| m.context_length))
                .ok_or_else(|| {
                    invalid(format!(
                        "endpoint {id}: context_length is required when the model is not in the seed"
                    ))
                })?;
            let endpoint = Endpoint {
                provider_slug: check_tag(&e.provider)?.to_owned(),
                supported_parameters: e
                    .supported_parameters
                    .or_else(|| model.map(|m| m.supported_parameters.clone()))
                    .unwrap_or_default(),
                id,
                model_id: e.model,
                tag: e.provider,
                upstream_model: e.upstream_model,
                pricing: e.pricing,
                context_length,
                max_completion_tokens: e.max_completion_tokens,
                quantization: e.quantization,
                status: e.status,
            };
            endpoint.validate().map(|()| endpoint)
        })
        .collect::<Result<Vec<_>, _>>()?;
    reject_duplicates(providers.iter().map(|p| p.slug.as_str()), "provider")?;
    reject_duplicates(models.iter().map(|m| m.id.as_str()), "model")?;
    reject_duplicates(endpoints.iter().map(|e| e.id.as_str()), "endpoint")?;
    Ok(Seed {
        providers,
        models,
        endpoints,
    })
}

/// A key twice in one file is almost always a copy-paste slip; the later
/// entry would silently win.
fn reject_duplicates<'a>(
    keys: impl Iterator<Item = &'a str>,
    what: &str,
) -> Result<(), CatalogError> {
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        if !seen.insert(key) {
            return Err(invalid(format!("{what} {key:?} appears twice in the seed")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
        [[providers]]
        slug = "together"
        name = "Together"
        wire_format = "openai"
        base_url = "https://api.together.xyz/v1"
        credential_ref = "TOGETHER_API_KEY"

        [[models]]
        id = "meta-llama/llama-3.1-8b-instruct"
        name = "Meta: Llama 3.1 8B Instruct"
        created = 1721692800
        context_length = 131072
        supported_parameters = ["max_tokens", "temperature"]

        [[endpoints]]
        model = "meta-llama/llama-3.1-8b-instruct"
        provider = "together/turbo"
        upstream_model = "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"
        pricing = { prompt = "0.00000018", completion = 0.00000018 }
    "#;

    #[test]
    fn endpoint_defaults_come_from_the_model() {
        let seed = parse(SMALL).unwrap();
        let e = &seed.endpoints[0];
        assert_eq!(e.id, "together/turbo:meta-llama/llama-3.1-8b-instruct");
        assert_eq!(e.provider_slug, "together");
        assert_eq!(e.context_length, 131072);
        assert_eq!(e.supported_parameters, ["max_tokens", "temperature"]);
        assert_eq!(e.pricing.completion.to_string(), "0.00000018");
        assert_eq!(seed.models[0].canonical_slug, seed.models[0].id);
        assert_eq!(seed.models[0].architecture, Architecture::default());
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let typo = SMALL.replace("upstream_model", "upstream_modle");
        assert!(parse(&typo).is_err());
        let bad_wire = SMALL.replace("\"openai\"", "\"openai-chat\"");
        assert!(parse(&bad_wire).is_err());
        let bad_price = SMALL.replace("\"0.00000018\"", "\"1.8e-7\"");
        assert!(parse(&bad_price).is_err());
        let duplicate = format!(
            "{SMALL}\n{}",
            &SMALL[SMALL.find("[[endpoints]]").unwrap()..]
        );
        assert!(parse(&duplicate).is_err());
    }
}
