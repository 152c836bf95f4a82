//! Anthropic error bodies, `{"type":"error","error":{"type","message"}}`,
//! classified by the error type, which is more telling than the status
//! (a too-long prompt is a 400 `invalid_request_error` with that text).

use serde_json::Value;
use switchyard_proto::provider::v1::UpstreamErrorKind as Kind;

use crate::errors::{ErrorBody, kind_for_status, mentions_context_length};

/// A non-success HTTP body.
pub fn http_error(status: u16, body: &[u8]) -> ErrorBody {
    let text = String::from_utf8_lossy(body);
    match serde_json::from_str::<Value>(&text) {
        Ok(json) if json.get("error").is_some() => {
            let mut parsed = body_of(&json);
            if parsed.code.is_none() {
                parsed.kind = kind_for_status(status, &text.to_ascii_lowercase());
            }
            parsed
        }
        _ => ErrorBody {
            kind: kind_for_status(status, &text.to_ascii_lowercase()),
            message: Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
            code: None,
            retry_after_ms: None,
        },
    }
}

/// An error object, from an HTTP body or an in-band `error` event.
pub fn body_of(json: &Value) -> ErrorBody {
    let error = json.get("error").unwrap_or(json);
    let kind_name = error.get("type").and_then(Value::as_str);
    let message = error.get("message").and_then(Value::as_str);
    let lower = message.unwrap_or_default().to_ascii_lowercase();
    let kind = match kind_name {
        Some("rate_limit_error") => Kind::RateLimited,
        Some("overloaded_error") => Kind::Overloaded,
        Some("invalid_request_error" | "request_too_large")
            if lower.contains("prompt is too long") || mentions_context_length(&lower) =>
        {
            Kind::ContextLengthExceeded
        }
        Some("invalid_request_error" | "request_too_large") => Kind::InvalidRequest,
        Some("authentication_error") => Kind::Authentication,
        Some("permission_error" | "billing_error") => Kind::PermissionDenied,
        Some("not_found_error") => Kind::NotFound,
        Some("timeout_error") => Kind::Timeout,
        Some("api_error") => Kind::Unavailable,
        _ => Kind::BadResponse,
    };
    ErrorBody {
        kind,
        message: message.map(str::to_owned),
        code: kind_name.map(str::to_owned),
        retry_after_ms: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: &str, message: &str) -> Vec<u8> {
        serde_json::json!({"type": "error", "error": {"type": kind, "message": message}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn error_types_map_to_kinds() {
        let cases = [
            (429, "rate_limit_error", "slow down", Kind::RateLimited),
            (529, "overloaded_error", "Overloaded", Kind::Overloaded),
            (
                400,
                "invalid_request_error",
                "prompt is too long: 300 tokens > 200 maximum",
                Kind::ContextLengthExceeded,
            ),
            (
                400,
                "invalid_request_error",
                "max_tokens: Field required",
                Kind::InvalidRequest,
            ),
            (
                401,
                "authentication_error",
                "invalid x-api-key",
                Kind::Authentication,
            ),
            (403, "permission_error", "no", Kind::PermissionDenied),
            (404, "not_found_error", "model: claude-9", Kind::NotFound),
            (500, "api_error", "Internal server error", Kind::Unavailable),
            (
                413,
                "request_too_large",
                "Request exceeds the maximum allowed size.",
                Kind::InvalidRequest,
            ),
        ];
        for (status, kind, message, expected) in cases {
            let parsed = http_error(status, &body(kind, message));
            assert_eq!(parsed.kind, expected, "{kind}");
            assert_eq!(parsed.code.as_deref(), Some(kind));
            assert_eq!(parsed.message.as_deref(), Some(message));
        }
    }

    #[test]
    fn other_bodies_fall_back_to_the_status() {
        assert_eq!(
            http_error(502, b"<html>bad gateway</html>").kind,
            Kind::Unavailable
        );
        assert_eq!(http_error(529, b"").kind, Kind::Overloaded);
        assert_eq!(
            http_error(429, br#"{"error":{"message":"x"}}"#).kind,
            Kind::RateLimited
        );
    }
}
