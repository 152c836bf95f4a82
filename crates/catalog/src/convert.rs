//! Proto <-> domain conversions. Incoming protos are parsed into domain
//! types (and validated) here; prost types go no further than this module
//! and the gRPC handlers.

use switchyard_kit::Price;
use switchyard_proto::catalog::v1 as pb;
use switchyard_proto::provider::v1::WireFormat as PbWireFormat;

use crate::domain::{
    Architecture, CatalogSnapshot, Endpoint, Model, Pricing, Provider, WireFormat,
};
use crate::error::CatalogError;
use crate::rules::{check_tag, invalid};

impl TryFrom<i32> for WireFormat {
    type Error = CatalogError;
    fn try_from(value: i32) -> Result<WireFormat, CatalogError> {
        match PbWireFormat::try_from(value) {
            Ok(PbWireFormat::OpenaiChat) => Ok(WireFormat::OpenAi),
            Ok(PbWireFormat::AnthropicMessages) => Ok(WireFormat::Anthropic),
            Ok(PbWireFormat::Gemini) => Ok(WireFormat::Gemini),
            Ok(PbWireFormat::Unspecified) | Err(_) => {
                Err(invalid(format!("unknown wire format {value}")))
            }
        }
    }
}

impl From<WireFormat> for PbWireFormat {
    fn from(value: WireFormat) -> PbWireFormat {
        match value {
            WireFormat::OpenAi => PbWireFormat::OpenaiChat,
            WireFormat::Anthropic => PbWireFormat::AnthropicMessages,
            WireFormat::Gemini => PbWireFormat::Gemini,
        }
    }
}

impl From<pb::Architecture> for Architecture {
    fn from(a: pb::Architecture) -> Architecture {
        Architecture {
            modality: a.modality,
            input_modalities: a.input_modalities,
            output_modalities: a.output_modalities,
            tokenizer: a.tokenizer,
            instruct_type: a.instruct_type,
        }
    }
}

impl From<Architecture> for pb::Architecture {
    fn from(a: Architecture) -> pb::Architecture {
        pb::Architecture {
            modality: a.modality,
            input_modalities: a.input_modalities,
            output_modalities: a.output_modalities,
            tokenizer: a.tokenizer,
            instruct_type: a.instruct_type,
        }
    }
}

impl TryFrom<pb::Model> for Model {
    type Error = CatalogError;
    fn try_from(m: pb::Model) -> Result<Model, CatalogError> {
        let canonical_slug = if m.canonical_slug.is_empty() {
            m.id.clone()
        } else {
            m.canonical_slug
        };
        let model = Model {
            id: m.id,
            canonical_slug,
            name: m.name,
            created: m.created,
            description: m.description,
            context_length: m.context_length,
            architecture: m.architecture.map(Architecture::from).unwrap_or_default(),
            knowledge_cutoff: m.knowledge_cutoff,
            supported_parameters: m.supported_parameters,
            hugging_face_id: m.hugging_face_id,
        };
        model.validate()?;
        Ok(model)
    }
}

impl From<Model> for pb::Model {
    fn from(m: Model) -> pb::Model {
        pb::Model {
            id: m.id,
            canonical_slug: m.canonical_slug,
            name: m.name,
            created: m.created,
            description: m.description,
            context_length: m.context_length,
            architecture: Some(m.architecture.into()),
            knowledge_cutoff: m.knowledge_cutoff,
            supported_parameters: m.supported_parameters,
            hugging_face_id: m.hugging_face_id,
        }
    }
}

impl TryFrom<pb::Provider> for Provider {
    type Error = CatalogError;
    fn try_from(p: pb::Provider) -> Result<Provider, CatalogError> {
        let provider = Provider {
            slug: p.slug,
            name: p.name,
            wire_format: WireFormat::try_from(p.wire_format)?,
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
        provider.validate()?;
        Ok(provider)
    }
}

impl From<Provider> for pb::Provider {
    fn from(p: Provider) -> pb::Provider {
        pb::Provider {
            slug: p.slug,
            name: p.name,
            wire_format: PbWireFormat::from(p.wire_format).into(),
            base_url: p.base_url,
            credential_ref: p.credential_ref,
            privacy_policy_url: p.privacy_policy_url,
            terms_of_service_url: p.terms_of_service_url,
            status_page_url: p.status_page_url,
            headquarters: p.headquarters,
            may_train: p.may_train,
            retains_prompts: p.retains_prompts,
            zero_data_retention: p.zero_data_retention,
        }
    }
}

fn price(value: &str, what: &str) -> Result<Price, CatalogError> {
    value
        .parse()
        .map_err(|e| invalid(format!("pricing.{what}: {e}")))
}

fn optional_price(value: Option<String>, what: &str) -> Result<Option<Price>, CatalogError> {
    value.map(|v| price(&v, what)).transpose()
}

impl TryFrom<pb::Pricing> for Pricing {
    type Error = CatalogError;
    fn try_from(p: pb::Pricing) -> Result<Pricing, CatalogError> {
        Ok(Pricing {
            prompt: price(&p.prompt, "prompt")?,
            completion: price(&p.completion, "completion")?,
            request: optional_price(p.request, "request")?,
            image: optional_price(p.image, "image")?,
            input_cache_read: optional_price(p.input_cache_read, "input_cache_read")?,
            input_cache_write: optional_price(p.input_cache_write, "input_cache_write")?,
            internal_reasoning: optional_price(p.internal_reasoning, "internal_reasoning")?,
        })
    }
}

impl From<Pricing> for pb::Pricing {
    fn from(p: Pricing) -> pb::Pricing {
        let text = |v: Option<Price>| v.map(|v| v.to_string());
        pb::Pricing {
            prompt: p.prompt.to_string(),
            completion: p.completion.to_string(),
            request: text(p.request),
            image: text(p.image),
            input_cache_read: text(p.input_cache_read),
            input_cache_write: text(p.input_cache_write),
            internal_reasoning: text(p.internal_reasoning),
        }
    }
}

impl TryFrom<pb::Endpoint> for Endpoint {
    type Error = CatalogError;
    /// `id` and `provider_slug` may be left empty: both follow from the tag
    /// and the model id.
    fn try_from(e: pb::Endpoint) -> Result<Endpoint, CatalogError> {
        let provider_slug = if e.provider_slug.is_empty() {
            check_tag(&e.tag)?.to_owned()
        } else {
            e.provider_slug
        };
        let id = if e.id.is_empty() {
            Endpoint::id_for(&e.tag, &e.model_id)
        } else {
            e.id
        };
        let pricing = e
            .pricing
            .ok_or_else(|| invalid(format!("endpoint {id}: pricing is missing")))?;
        let endpoint = Endpoint {
            id,
            model_id: e.model_id,
            provider_slug,
            tag: e.tag,
            upstream_model: e.upstream_model,
            pricing: pricing.try_into()?,
            context_length: e.context_length,
            max_completion_tokens: e.max_completion_tokens,
            quantization: e.quantization,
            supported_parameters: e.supported_parameters,
            status: e.status,
        };
        endpoint.validate()?;
        Ok(endpoint)
    }
}

impl From<Endpoint> for pb::Endpoint {
    fn from(e: Endpoint) -> pb::Endpoint {
        pb::Endpoint {
            id: e.id,
            model_id: e.model_id,
            provider_slug: e.provider_slug,
            tag: e.tag,
            upstream_model: e.upstream_model,
            pricing: Some(e.pricing.into()),
            context_length: e.context_length,
            max_completion_tokens: e.max_completion_tokens,
            quantization: e.quantization,
            supported_parameters: e.supported_parameters,
            status: e.status,
        }
    }
}

impl TryFrom<pb::CatalogSnapshot> for CatalogSnapshot {
    type Error = CatalogError;
    /// What a watcher (the router) uses to turn a streamed snapshot back
    /// into checked domain values.
    fn try_from(s: pb::CatalogSnapshot) -> Result<CatalogSnapshot, CatalogError> {
        let snapshot = CatalogSnapshot {
            version: s.version,
            models: s
                .models
                .into_iter()
                .map(Model::try_from)
                .collect::<Result<_, _>>()?,
            providers: s
                .providers
                .into_iter()
                .map(Provider::try_from)
                .collect::<Result<_, _>>()?,
            endpoints: s
                .endpoints
                .into_iter()
                .map(Endpoint::try_from)
                .collect::<Result<_, _>>()?,
        };
        snapshot.validate()?;
        Ok(snapshot)
    }
}

impl From<&CatalogSnapshot> for pb::CatalogSnapshot {
    fn from(s: &CatalogSnapshot) -> pb::CatalogSnapshot {
        pb::CatalogSnapshot {
            version: s.version,
            models: s.models.iter().cloned().map(Into::into).collect(),
            providers: s.providers.iter().cloned().map(Into::into).collect(),
            endpoints: s.endpoints.iter().cloned().map(Into::into).collect(),
        }
    }
}

impl From<CatalogSnapshot> for pb::CatalogSnapshot {
    fn from(s: CatalogSnapshot) -> pb::CatalogSnapshot {
        pb::CatalogSnapshot::from(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> pb::Endpoint {
        pb::Endpoint {
            model_id: "meta-llama/llama-3.1-8b-instruct".into(),
            tag: "deepinfra/turbo".into(),
            upstream_model: "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo".into(),
            pricing: Some(pb::Pricing {
                prompt: "0.00000002".into(),
                completion: "0.00000005".into(),
                ..Default::default()
            }),
            context_length: 131072,
            ..Default::default()
        }
    }

    #[test]
    fn endpoint_id_and_provider_follow_from_the_tag() {
        let e = Endpoint::try_from(endpoint()).unwrap();
        assert_eq!(e.id, "deepinfra/turbo:meta-llama/llama-3.1-8b-instruct");
        assert_eq!(e.provider_slug, "deepinfra");
        assert_eq!(e.pricing.prompt.to_string(), "0.00000002");
        let back = pb::Endpoint::from(e.clone());
        assert_eq!(Endpoint::try_from(back).unwrap(), e);
    }

    #[test]
    fn endpoint_rules() {
        let wrong_provider = pb::Endpoint {
            provider_slug: "together".into(),
            ..endpoint()
        };
        assert!(Endpoint::try_from(wrong_provider).is_err());
        let wrong_id = pb::Endpoint {
            id: "deepinfra:meta-llama/llama-3.1-8b-instruct".into(),
            ..endpoint()
        };
        assert!(Endpoint::try_from(wrong_id).is_err());
        let float_price = pb::Endpoint {
            pricing: Some(pb::Pricing {
                prompt: "2e-8".into(),
                completion: "0".into(),
                ..Default::default()
            }),
            ..endpoint()
        };
        assert!(Endpoint::try_from(float_price).is_err());
        let no_pricing = pb::Endpoint {
            pricing: None,
            ..endpoint()
        };
        assert!(Endpoint::try_from(no_pricing).is_err());
    }

    #[test]
    fn unspecified_wire_format_is_rejected() {
        let p = pb::Provider {
            slug: "openai".into(),
            name: "OpenAI".into(),
            wire_format: 0,
            base_url: "https://api.openai.com/v1".into(),
            credential_ref: "OPENAI_API_KEY".into(),
            ..Default::default()
        };
        assert!(Provider::try_from(p.clone()).is_err());
        let p = pb::Provider {
            wire_format: PbWireFormat::OpenaiChat.into(),
            ..p
        };
        assert_eq!(
            Provider::try_from(p).unwrap().wire_format,
            WireFormat::OpenAi
        );
    }

    #[test]
    fn snapshot_endpoints_must_reference_known_rows() {
        let snapshot = pb::CatalogSnapshot {
            version: 1,
            endpoints: vec![endpoint()],
            ..Default::default()
        };
        assert!(matches!(
            CatalogSnapshot::try_from(snapshot),
            Err(CatalogError::UnknownModel(_))
        ));
    }
}
