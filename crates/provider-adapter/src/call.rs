//! `GenerateRequest` → a validated `UpstreamCall`: wire format checked, URL
//! built, headers parsed, request body translated. Parsing is validation; the
//! upstream driver never sees a prost type.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use switchyard_proto::provider::v1::{GenerateRequest, WireFormat};

use crate::errors::AdapterError;
use crate::openai;

#[derive(Debug)]
pub struct UpstreamCall {
    pub url: reqwest::Url,
    pub credential_ref: String,
    pub body: bytes::Bytes,
    pub stream: bool,
    pub headers: HeaderMap,
    pub first_token_timeout: Option<Duration>,
    pub total_timeout: Option<Duration>,
    pub provider_slug: String,
}

impl TryFrom<GenerateRequest> for UpstreamCall {
    type Error = AdapterError;

    fn try_from(request: GenerateRequest) -> Result<UpstreamCall, AdapterError> {
        let invalid = |m: &str| AdapterError::InvalidRequest(m.to_owned());
        let target = request
            .target
            .ok_or_else(|| invalid("target is required"))?;
        let chat = request
            .request
            .ok_or_else(|| invalid("request is required"))?;
        match WireFormat::try_from(target.wire_format) {
            Ok(WireFormat::OpenaiChat) => {}
            Ok(other) => {
                return Err(AdapterError::UnsupportedWireFormat(
                    other.as_str_name().to_owned(),
                ));
            }
            Err(_) => return Err(invalid("unknown wire_format")),
        }
        if target.upstream_model.is_empty() {
            return Err(invalid("target.upstream_model is required"));
        }
        let base = target.base_url.trim_end_matches('/');
        let url = reqwest::Url::parse(&format!("{base}/chat/completions"))
            .map_err(|_| invalid("target.base_url is not a valid URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("target.base_url must be http or https"));
        }
        let body = openai::request::build_body(&chat, &target.upstream_model, request.stream)?;
        let mut headers = HeaderMap::new();
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
            url,
            credential_ref: target.credential_ref,
            body: bytes::Bytes::from(body.to_string()),
            stream: request.stream,
            headers,
            first_token_timeout: millis(request.first_token_timeout_ms),
            total_timeout: millis(request.total_timeout_ms),
            provider_slug: target.provider_slug,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::common::v1::ChatRequest;
    use switchyard_proto::provider::v1::UpstreamTarget;

    fn request(base_url: &str, wire_format: WireFormat) -> GenerateRequest {
        GenerateRequest {
            target: Some(UpstreamTarget {
                wire_format: wire_format as i32,
                base_url: base_url.into(),
                upstream_model: "m".into(),
                ..Default::default()
            }),
            request: Some(ChatRequest::default()),
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
    fn rejects_what_it_cannot_call() {
        let unsupported = UpstreamCall::try_from(request("http://x/v1", WireFormat::Gemini));
        assert!(matches!(
            unsupported,
            Err(AdapterError::UnsupportedWireFormat(_))
        ));
        let bad_url = UpstreamCall::try_from(request("not a url", WireFormat::OpenaiChat));
        assert!(matches!(bad_url, Err(AdapterError::InvalidRequest(_))));
        let mut no_target = request("http://x/v1", WireFormat::OpenaiChat);
        no_target.target = None;
        assert!(UpstreamCall::try_from(no_target).is_err());
    }
}
