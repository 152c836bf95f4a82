//! Google's error bodies, `{"error":{"code","message","status","details"}}`,
//! classified by the canonical status name; a rate limit's delay comes from
//! the `RetryInfo` detail, since Google sends no `Retry-After` header.

use serde_json::Value;
use switchyard_proto::provider::v1::UpstreamErrorKind as Kind;

use crate::errors::{ErrorBody, kind_for_status, mentions_context_length};

/// A non-success HTTP body.
pub fn http_error(status: u16, body: &[u8]) -> ErrorBody {
    let text = String::from_utf8_lossy(body);
    match serde_json::from_str::<Value>(&text) {
        Ok(json) if json.get("error").is_some_and(Value::is_object) => {
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

/// An error object, from an HTTP body or a stream chunk.
pub fn body_of(json: &Value) -> ErrorBody {
    let error = json.get("error").unwrap_or(json);
    let status = error.get("status").and_then(Value::as_str);
    let message = error.get("message").and_then(Value::as_str);
    let lower = message.unwrap_or_default().to_ascii_lowercase();
    let details = error
        .get("details")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let reason = details
        .iter()
        .find_map(|d| d.get("reason").and_then(Value::as_str));
    let bad_key = reason == Some("API_KEY_INVALID") || lower.contains("api key not valid");
    let kind = match status {
        Some("RESOURCE_EXHAUSTED") => Kind::RateLimited,
        Some("UNAVAILABLE") => Kind::Overloaded,
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") if bad_key => {
            Kind::Authentication
        }
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE")
            if mentions_token_limit(&lower) =>
        {
            Kind::ContextLengthExceeded
        }
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => Kind::InvalidRequest,
        Some("UNAUTHENTICATED") => Kind::Authentication,
        // Google answers a call without any key with PERMISSION_DENIED.
        Some("PERMISSION_DENIED")
            if lower.contains("api key") || lower.contains("unregistered callers") =>
        {
            Kind::Authentication
        }
        Some("PERMISSION_DENIED") => Kind::PermissionDenied,
        Some("NOT_FOUND") => Kind::NotFound,
        Some("DEADLINE_EXCEEDED") => Kind::Timeout,
        Some("INTERNAL" | "UNKNOWN" | "ABORTED") => Kind::Unavailable,
        _ => match error
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
        {
            Some(code) => kind_for_status(code, &lower),
            None => Kind::BadResponse,
        },
    };
    ErrorBody {
        kind,
        message: message.map(str::to_owned),
        code: status.map(str::to_owned),
        retry_after_ms: details
            .iter()
            .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
            .and_then(parse_duration_ms),
    }
}

fn mentions_token_limit(lower: &str) -> bool {
    mentions_context_length(lower)
        || [
            "maximum number of tokens",
            "input token count",
            "token limit",
            "too many tokens",
        ]
        .iter()
        .any(|needle| lower.contains(needle))
}

/// A protobuf `Duration` in its JSON form: `"7s"`, `"1.5s"`.
fn parse_duration_ms(text: &str) -> Option<u64> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(code: u16, status: &str, message: &str, details: Value) -> Vec<u8> {
        json!({"error": {"code": code, "message": message, "status": status, "details": details}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn statuses_map_to_kinds() {
        let retry =
            json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]);
        let bad_key = json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]);
        let cases = [
            (
                429,
                "RESOURCE_EXHAUSTED",
                "quota",
                retry,
                Kind::RateLimited,
                Some(7000),
            ),
            (
                503,
                "UNAVAILABLE",
                "The model is overloaded.",
                json!([]),
                Kind::Overloaded,
                None,
            ),
            (
                400,
                "INVALID_ARGUMENT",
                "The input token count (300) exceeds the maximum number of tokens allowed (200).",
                json!([]),
                Kind::ContextLengthExceeded,
                None,
            ),
            (
                400,
                "INVALID_ARGUMENT",
                "Please use a valid role",
                json!([]),
                Kind::InvalidRequest,
                None,
            ),
            (
                400,
                "INVALID_ARGUMENT",
                "API key not valid.",
                bad_key,
                Kind::Authentication,
                None,
            ),
            (
                401,
                "UNAUTHENTICATED",
                "no",
                json!([]),
                Kind::Authentication,
                None,
            ),
            (
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers",
                json!([]),
                Kind::Authentication,
                None,
            ),
            (
                403,
                "PERMISSION_DENIED",
                "You do not have access",
                json!([]),
                Kind::PermissionDenied,
                None,
            ),
            (
                404,
                "NOT_FOUND",
                "models/x is not found",
                json!([]),
                Kind::NotFound,
                None,
            ),
            (
                500,
                "INTERNAL",
                "An internal error",
                json!([]),
                Kind::Unavailable,
                None,
            ),
            (
                504,
                "DEADLINE_EXCEEDED",
                "timed out",
                json!([]),
                Kind::Timeout,
                None,
            ),
        ];
        for (code, status, message, details, kind, retry) in cases {
            let parsed = http_error(code, &body(code, status, message, details));
            assert_eq!(parsed.kind, kind, "{status}: {message}");
            assert_eq!(parsed.code.as_deref(), Some(status));
            assert_eq!(parsed.retry_after_ms, retry);
        }
    }

    #[test]
    fn durations_and_odd_bodies() {
        assert_eq!(parse_duration_ms("1.5s"), Some(1500));
        assert_eq!(parse_duration_ms("soon"), None);
        assert_eq!(http_error(502, b"Bad Gateway").kind, Kind::Unavailable);
        assert_eq!(
            http_error(429, br#"{"error":{"code":429}}"#).kind,
            Kind::RateLimited
        );
    }
}
