//! `GenerateRequest` → a validated `UpstreamCall`: wire format checked, URL
//! built, headers parsed, request body translated. Parsing is validation; the
//! upstream driver never sees a prost type.

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use switchyard_proto::provider::v1::GenerateRequest;

use crate::errors::AdapterError;
use crate::translate::{estimate_prompt_tokens, hides_reasoning, invalid};
use crate::wire::Wire;

#[derive(Debug)]
pub struct UpstreamCall {
    pub wire: Wire,
    pub url: reqwest::Url,
    pub credential_ref: String,
    pub body: bytes::Bytes,
    pub stream: bool,
    pub headers: reqwest::header::HeaderMap,
    pub first_token_timeout: Option<Duration>,
    pub total_timeout: Option<Duration>,
    pub provider_slug: String,
    /// `reasoning.exclude`: reason, but leave it out of the events.
    pub hide_reasoning: bool,
    /// Prompt tokens by text length, for upstreams that report no usage.
    pub prompt_estimate: u64,
}

impl TryFrom<GenerateRequest> for UpstreamCall {
    type Error = AdapterError;

    fn try_from(request: GenerateRequest) -> Result<UpstreamCall, AdapterError> {
        let target = request
            .target
            .ok_or_else(|| invalid("target is required"))?;
        let chat = request
            .request
            .ok_or_else(|| invalid("request is required"))?;
        let wire = Wire::try_from(target.wire_format)?;
        if target.upstream_model.is_empty() {
            return Err(invalid("target.upstream_model is required"));
        }
        let base = target.base_url.trim_end_matches('/');
        let url = wire.url(base, &target.upstream_model, request.stream)?;
        let body = wire.body(&chat, &target.upstream_model, request.stream)?;
        let mut headers = wire.fixed_headers();
        if !request.generation_id.is_empty()
            && let Ok(value) = HeaderValue::from_str(&request.generation_id)
        {
            headers.insert("x-client-request-id", value);
        }
        for (name, value) in &request.upstream_headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid("upstream_headers has an invalid header name"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| invalid("upstream_headers has an invalid header value"))?;
            headers.insert(name, value);
        }
        let millis = |ms: u32| (ms > 0).then(|| Duration::from_millis(u64::from(ms)));
        Ok(UpstreamCall {
            wire,
            url,
            credential_ref: target.credential_ref,
            body: bytes::Bytes::from(body.to_string()),
            stream: request.stream,
            headers,
            first_token_timeout: millis(request.first_token_timeout_ms),
            total_timeout: millis(request.total_timeout_ms),
            provider_slug: target.provider_slug,
            hide_reasoning: hides_reasoning(&chat),
            prompt_estimate: estimate_prompt_tokens(&chat),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::common::v1::{ChatMessage, ChatRequest};
    use switchyard_proto::provider::v1::{UpstreamTarget, WireFormat};

    fn request(base_url: &str, wire_format: WireFormat) -> GenerateRequest {
        GenerateRequest {
            target: Some(UpstreamTarget {
                wire_format: wire_format as i32,
                base_url: base_url.into(),
                upstream_model: "m".into(),
                ..Default::default()
            }),
            request: Some(ChatRequest {
                messages: vec![ChatMessage {
                    role: "user".into(),
                    text: Some("hi".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            upstream_headers: [("x-sim-ttft-ms".to_owned(), "5".to_owned())].into(),
            first_token_timeout_ms: 250,
            ..Default::default()
        }
    }

    #[test]
    fn builds_the_url_and_headers() {
        let call =
            UpstreamCall::try_from(request("http://127.0.0.1:9090/v1/", WireFormat::OpenaiChat))
                .unwrap();
        assert_eq!(
            call.url.as_str(),
            "http://127.0.0.1:9090/v1/chat/completions"
        );
        assert_eq!(call.headers["x-sim-ttft-ms"], "5");
        assert_eq!(call.first_token_timeout, Some(Duration::from_millis(250)));
        assert_eq!(call.total_timeout, None);
    }

    #[test]
    fn each_format_has_its_endpoint_and_fixed_headers() {
        let anthropic = UpstreamCall::try_from(request(
            "https://api.anthropic.com/v1",
            WireFormat::AnthropicMessages,
        ))
        .unwrap();
        assert_eq!(
            anthropic.url.as_str(),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(anthropic.headers["anthropic-version"], "2023-06-01");
        let mut gemini = request(
            "https://generativelanguage.googleapis.com/v1beta",
            WireFormat::Gemini,
        );
        gemini.target.as_mut().unwrap().upstream_model = "models/gemini-2.5-flash".into();
        gemini.stream = true;
        let gemini = UpstreamCall::try_from(gemini).unwrap();
        assert_eq!(
            gemini.url.as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert!(!gemini.headers.contains_key("anthropic-version"));
        assert_eq!(gemini.prompt_estimate, 1 + 3);
    }

    #[test]
    fn rejects_what_it_cannot_call() {
        let unspecified = UpstreamCall::try_from(request("http://x/v1", WireFormat::Unspecified));
        assert!(matches!(unspecified, Err(AdapterError::InvalidRequest(_))));
        let bad_url = UpstreamCall::try_from(request("not a url", WireFormat::OpenaiChat));
        assert!(matches!(bad_url, Err(AdapterError::InvalidRequest(_))));
        let mut no_target = request("http://x/v1", WireFormat::OpenaiChat);
        no_target.target = None;
        assert!(UpstreamCall::try_from(no_target).is_err());
    }
}
