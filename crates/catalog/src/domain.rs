//! The catalog's domain types and the rules every stored value obeys. Values
//! built from the outside world (protos, the seed file) pass `validate`
//! before anything is written.

use serde::{Deserialize, Serialize};
use switchyard_kit::Price;

use crate::error::CatalogError;

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

pub(crate) fn invalid(msg: impl Into<String>) -> CatalogError {
    CatalogError::Invalid(msg.into())
}

fn non_empty(value: &str, what: &str) -> Result<(), CatalogError> {
    if value.trim().is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    Ok(())
}

/// 9999-12-31T23:59:59Z: beyond it timestamps stop being dates.
const MAX_UNIX_SECONDS: i64 = 253_402_300_799;

/// Token counts are positive and fit the SQL `integer` the stores use.
fn check_count(value: u32, what: &str) -> Result<(), CatalogError> {
    if value == 0 || value > i32::MAX as u32 {
        return Err(invalid(format!("{what} {value} is out of range")));
    }
    Ok(())
}

fn is_slug_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
}

fn check_slug(value: &str, what: &str) -> Result<(), CatalogError> {
    if value.is_empty() || !value.bytes().all(is_slug_byte) {
        return Err(invalid(format!(
            "{what} {value:?} must be non-empty and use only a-z, 0-9, '-', '.', '_'"
        )));
    }
    Ok(())
}

/// `author/slug`, lowercase. ':' is kept out because routers read
/// `model:variant` suffixes and endpoint ids use it as the separator.
pub fn check_model_id(id: &str) -> Result<(), CatalogError> {
    match id.split_once('/') {
        Some((author, slug)) if !slug.contains('/') => {
            check_slug(author, "model author")?;
            check_slug(slug, "model slug")
        }
        _ => Err(invalid(format!(
            "model id {id:?} must look like author/slug"
        ))),
    }
}

/// A provider tag, `slug` or `slug/variant`; returns the provider slug.
pub fn check_tag(tag: &str) -> Result<&str, CatalogError> {
    match tag.split_once('/') {
        None => check_slug(tag, "provider tag").map(|()| tag),
        Some((slug, variant)) => {
            check_slug(slug, "provider tag")?;
            check_slug(variant, "provider tag variant")?;
            Ok(slug)
        }
    }
}

fn check_url(url: &str) -> Result<(), CatalogError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.contains(char::is_whitespace) => Ok(()),
        _ => Err(invalid(format!("{url:?} is not an http(s) URL"))),
    }
}

fn check_list(items: &[String], what: &str) -> Result<(), CatalogError> {
    if items.iter().any(|s| s.trim().is_empty()) {
        return Err(invalid(format!("{what} has an empty entry")));
    }
    Ok(())
}

/// A real calendar date written YYYY-MM-DD.
pub fn check_date(date: &str) -> Result<(), CatalogError> {
    let bad = || invalid(format!("date {date:?} is not a YYYY-MM-DD calendar date"));
    let bytes = date.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, CatalogError> {
        let part = &date[range];
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if year == 0 || day == 0 || day > days {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids() {
        for ok in ["openai/gpt-4", "meta-llama/llama-3.1-8b-instruct", "a/b"] {
            assert!(check_model_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "gpt-4",
            "OpenAI/gpt-4",
            "a/b/c",
            "/x",
            "x/",
            "a/b:free",
            "a /b",
        ] {
            assert!(check_model_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        assert_eq!(check_tag("deepinfra").unwrap(), "deepinfra");
        assert_eq!(check_tag("deepinfra/turbo").unwrap(), "deepinfra");
        for bad in ["", "Deepinfra", "a/b/c", "a/", "/b"] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates() {
        for ok in ["2023-04-30", "2024-02-29", "2000-02-29"] {
            assert!(check_date(ok).is_ok(), "{ok}");
        }
        for bad in [
            "2023-02-29",
            "1900-02-29",
            "2023-4-30",
            "2023-13-01",
            "2023-04-31",
            "abcd-ef-gh",
        ] {
            assert!(check_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wire_formats_round_trip() {
        for wf in [
            WireFormat::OpenAi,
            WireFormat::Anthropic,
            WireFormat::Gemini,
        ] {
            assert_eq!(wf.as_str().parse::<WireFormat>().unwrap(), wf);
        }
        assert!("grpc".parse::<WireFormat>().is_err());
    }
}
