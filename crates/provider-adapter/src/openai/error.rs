//! OpenAI-style error bodies — `{"error":{"message","type","code"}}`, plus
//! the looser `{"error":"text"}` and `{"message":"text"}` some compatible
//! hosts send — classified mostly by HTTP status, refined by the body text.

use serde_json::Value;
use switchyard_proto::provider::v1::UpstreamErrorKind;

use crate::errors::{ErrorBody, kind_for_status, mentions_context_length};

/// A non-success HTTP body.
pub fn http_error(status: u16, body: &[u8]) -> ErrorBody {
    let text = String::from_utf8_lossy(body);
    let (message, code) = match serde_json::from_str::<Value>(&text) {
        Ok(json) => error_fields(&json),
        Err(_) => (Some(text.trim().to_owned()), None),
    };
    ErrorBody {
        kind: kind_for_status(status, &text.to_ascii_lowercase()),
        message,
        code,
        retry_after_ms: None,
    }
}

/// The `error` object of a 200 body or a stream chunk.
pub fn in_band(error: &Value) -> ErrorBody {
    let wrapper = serde_json::json!({ "error": error });
    let (message, code) = error_fields(&wrapper);
    let lower = error.to_string().to_ascii_lowercase();
    let embedded_status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c));
    let kind = match embedded_status {
        Some(status) => kind_for_status(status, &lower),
        None if mentions_context_length(&lower) => UpstreamErrorKind::ContextLengthExceeded,
        None if lower.contains("rate_limit") => UpstreamErrorKind::RateLimited,
        None if lower.contains("overloaded") => UpstreamErrorKind::Overloaded,
        None if lower.contains("server_error") => UpstreamErrorKind::Unavailable,
        None => UpstreamErrorKind::BadResponse,
    };
    ErrorBody {
        kind,
        message,
        code,
        retry_after_ms: None,
    }
}

/// `(message, code)` from `{"error":{"message","code","type"}}`,
/// `{"error":"text"}` or `{"message":"text"}`.
fn error_fields(json: &Value) -> (Option<String>, Option<String>) {
    let error = json.get("error").unwrap_or(json);
    if let Some(text) = error.as_str() {
        return (Some(text.to_owned()), None);
    }
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let code = match error.get("code") {
        Some(Value::String(code)) => Some(code.clone()),
        Some(Value::Number(code)) => Some(code.to_string()),
        _ => error.get("type").and_then(Value::as_str).map(str::to_owned),
    };
    (message, code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use UpstreamErrorKind as K;

    #[test]
    fn statuses_map_to_kinds() {
        let cases = [
            (429, K::RateLimited),
            (503, K::Overloaded),
            (529, K::Overloaded),
            (500, K::Unavailable),
            (502, K::Unavailable),
            (504, K::Timeout),
            (408, K::Timeout),
            (400, K::InvalidRequest),
            (422, K::InvalidRequest),
            (401, K::Authentication),
            (403, K::PermissionDenied),
            (404, K::NotFound),
        ];
        for (status, kind) in cases {
            assert_eq!(http_error(status, b"{}").kind, kind, "{status}");
        }
    }

    #[test]
    fn context_length_is_recognised_by_code_or_text() {
        let by_code = http_error(
            400,
            br#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(by_code.kind, K::ContextLengthExceeded);
        assert_eq!(by_code.code.as_deref(), Some("context_length_exceeded"));
        assert_eq!(by_code.message.as_deref(), Some("too long"));
        let by_text = http_error(400, b"This model's maximum context length is 4096 tokens.");
        assert_eq!(by_text.kind, K::ContextLengthExceeded);
    }

    #[test]
    fn in_band_errors_are_classified() {
        let err = serde_json::json!({"code": 502, "message": "provider down"});
        assert_eq!(in_band(&err).kind, K::Unavailable);
        let err = serde_json::json!({"message": "x", "type": "server_error"});
        assert_eq!(in_band(&err).kind, K::Unavailable);
        let err = serde_json::json!({"message": "odd"});
        assert_eq!(in_band(&err).kind, K::BadResponse);
    }
}
