//! The catalog's domain types and the rules every stored value obeys. Values
//! built from the outside world (protos, the seed file) pass `validate`
//! before anything is written.

use serde::{Deserialize, Serialize};
use switchyard_kit::Price;

use crate::error::CatalogError;
use crate::rules::{
    MAX_UNIX_SECONDS, check_count, check_list, check_slug, check_url, invalid, non_empty,
};
pub use crate::rules::{check_date, check_model_id, check_tag};

/// How the adapter talks to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    /// OpenAI Chat Completions, also every OpenAI-compatible host.
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
    Gemini,
}

impl WireFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WireFormat::OpenAi => "openai",
            WireFormat::Anthropic => "anthropic",
            WireFormat::Gemini => "gemini",
        }
    }
}

impl std::str::FromStr for WireFormat {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<WireFormat, CatalogError> {
        match s {
            "openai" => Ok(WireFormat::OpenAi),
            "anthropic" => Ok(WireFormat::Anthropic),
            "gemini" => Ok(WireFormat::Gemini),
            other => Err(invalid(format!(
                "unknown wire format {other:?} (openai|anthropic|gemini)"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// e.g. "text+image->text"
    pub modality: String,
    pub input_modalities: Vec<String>,
    pub output_modalities: Vec<String>,
    pub tokenizer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruct_type: Option<String>,
}

impl Default for Architecture {
    fn default() -> Architecture {
        Architecture {
            modality: "text->text".to_owned(),
            input_modalities: vec!["text".to_owned()],
            output_modalities: vec!["text".to_owned()],
            tokenizer: "Other".to_owned(),
            instruct_type: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    /// Routable id, `author/slug`, e.g. "openai/gpt-4".
    pub id: String,
    pub canonical_slug: String,
    pub name: String,
    /// Unix seconds.
    pub created: i64,
    pub description: String,
    pub context_length: u32,
    pub architecture: Architecture,
    /// YYYY-MM-DD
    pub knowledge_cutoff: Option<String>,
    pub supported_parameters: Vec<String>,
    pub hugging_face_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    pub slug: String,
    pub name: String,
    pub wire_format: WireFormat,
    pub base_url: String,
    /// Name of the environment variable holding the provider's API key;
    /// empty when the upstream needs none (a local server).
    pub credential_ref: String,
    pub privacy_policy_url: Option<String>,
    pub terms_of_service_url: Option<String>,
    pub status_page_url: Option<String>,
    pub headquarters: Option<String>,
    /// Data policy (routing's `data_collection` and `zdr`); `None` = unknown.
    #[serde(default)]
    pub may_train: Option<bool>,
    #[serde(default)]
    pub retains_prompts: Option<bool>,
    #[serde(default)]
    pub zero_data_retention: Option<bool>,
}

/// USD per unit (token unless named). `None` = not priced.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    pub prompt: Price,
    pub completion: Price,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cache_read: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cache_write: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_reasoning: Option<Price>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// "<tag>:<model id>"
    pub id: String,
    pub model_id: String,
    pub provider_slug: String,
    /// Provider slug plus optional variant, e.g. "deepinfra/turbo".
    pub tag: String,
    pub upstream_model: String,
    pub pricing: Pricing,
    pub context_length: u32,
    pub max_completion_tokens: Option<u32>,
    pub quantization: Option<String>,
    pub supported_parameters: Vec<String>,
    /// 0 normal; negative = deranked or disabled.
    pub status: i32,
}

/// The whole catalog at one version: what watchers receive.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CatalogSnapshot {
    pub version: u64,
    pub models: Vec<Model>,
    pub providers: Vec<Provider>,
    pub endpoints: Vec<Endpoint>,
}

impl CatalogSnapshot {
    pub fn model(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id == id)
    }

    pub fn provider(&self, slug: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.slug == slug)
    }

    pub fn endpoints_of<'a>(&'a self, model_id: &'a str) -> impl Iterator<Item = &'a Endpoint> {
        self.endpoints
            .iter()
            .filter(move |e| e.model_id == model_id)
    }

    /// Every endpoint must point at a model and a provider of this snapshot.
    pub fn validate(&self) -> Result<(), CatalogError> {
        for m in &self.models {
            m.validate()?;
        }
        for p in &self.providers {
            p.validate()?;
        }
        for e in &self.endpoints {
            e.validate()?;
            if self.model(&e.model_id).is_none() {
                return Err(CatalogError::UnknownModel(e.model_id.clone()));
            }
            if self.provider(&e.provider_slug).is_none() {
                return Err(CatalogError::UnknownProvider(e.provider_slug.clone()));
            }
        }
        Ok(())
    }
}

impl Model {
    pub fn validate(&self) -> Result<(), CatalogError> {
        check_model_id(&self.id)?;
        if self.canonical_slug.is_empty() {
            return Err(invalid(format!("model {}: empty canonical_slug", self.id)));
        }
        non_empty(&self.name, "model name")?;
        check_count(self.context_length, "model context_length")?;
        if !(0..=MAX_UNIX_SECONDS).contains(&self.created) {
            return Err(invalid(format!(
                "model {}: created {} is out of range",
                self.id, self.created
            )));
        }
        if let Some(cutoff) = &self.knowledge_cutoff {
            check_date(cutoff)?;
        }
        check_list(&self.supported_parameters, "supported_parameters")?;
        check_list(&self.architecture.input_modalities, "input_modalities")?;
        check_list(&self.architecture.output_modalities, "output_modalities")?;
        Ok(())
    }
}

impl Provider {
    pub fn validate(&self) -> Result<(), CatalogError> {
        check_slug(&self.slug, "provider slug")?;
        non_empty(&self.name, "provider name")?;
        check_url(&self.base_url)?;
        let env_var = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_';
        if !self.credential_ref.bytes().all(env_var) {
            return Err(invalid(format!(
                "provider {}: credential_ref {:?} is not an environment variable name (A-Z, 0-9, _)",
                self.slug, self.credential_ref
            )));
        }
        for url in [
            &self.privacy_policy_url,
            &self.terms_of_service_url,
            &self.status_page_url,
        ]
        .into_iter()
        .flatten()
        {
            check_url(url)?;
        }
        Ok(())
    }
}

impl Endpoint {
    /// The endpoint id for a tag and a model: "<tag>:<model id>".
    pub fn id_for(tag: &str, model_id: &str) -> String {
        format!("{tag}:{model_id}")
    }

    pub fn validate(&self) -> Result<(), CatalogError> {
        check_model_id(&self.model_id)?;
        let slug = check_tag(&self.tag)?;
        if slug != self.provider_slug {
            return Err(invalid(format!(
                "endpoint tag {:?} does not belong to provider {:?}",
                self.tag, self.provider_slug
            )));
        }
        let expected = Endpoint::id_for(&self.tag, &self.model_id);
        if self.id != expected {
            return Err(invalid(format!(
                "endpoint id {:?} must be {expected:?}",
                self.id
            )));
        }
        non_empty(&self.upstream_model, "upstream_model")?;
        check_count(self.context_length, "endpoint context_length")?;
        if let Some(max) = self.max_completion_tokens {
            check_count(max, "max_completion_tokens")?;
        }
        check_list(&self.supported_parameters, "supported_parameters")?;
        Ok(())
    }
}
