//! Errors: `AdapterError` for calls the adapter cannot serve at all (a gRPC
//! status), and `UpstreamFailure` for everything the upstream did wrong,
//! normalized into an `UpstreamError` event with retry hints.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde_json::Value;
use switchyard_kit::error::{ErrorKind, ServiceError};
use switchyard_proto::provider::v1::{UpstreamError, UpstreamErrorKind};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("invalid generate request: {0}")]
    InvalidRequest(String),
    #[error("wire format {0} is not supported yet")]
    UnsupportedWireFormat(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ServiceError for AdapterError {
    fn kind(&self) -> ErrorKind {
        match self {
            AdapterError::InvalidRequest(_) | AdapterError::UnsupportedWireFormat(_) => {
                ErrorKind::InvalidArgument
            }
            AdapterError::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl From<AdapterError> for Status {
    fn from(err: AdapterError) -> Status {
        match err {
            // The router can tell "not built yet" from "you sent garbage".
            AdapterError::UnsupportedWireFormat(_) => Status::unimplemented(err.to_string()),
            other => switchyard_kit::error::to_status(other),
        }
    }
}

/// Longest upstream text passed on to clients.
const MAX_MESSAGE_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamFailure {
    pub kind: UpstreamErrorKind,
    pub message: String,
    /// 0 when there was no HTTP status (connect error, timeout).
    pub status: u16,
    pub retry_after_ms: Option<u64>,
    pub provider_code: Option<String>,
}

impl UpstreamFailure {
    fn new(kind: UpstreamErrorKind, message: impl Into<String>) -> UpstreamFailure {
        UpstreamFailure {
            kind,
            message: message.into(),
            status: 0,
            retry_after_ms: None,
            provider_code: None,
        }
    }

    pub fn timeout(message: impl Into<String>) -> UpstreamFailure {
        UpstreamFailure::new(UpstreamErrorKind::Timeout, message)
    }

    pub fn bad_response(message: impl Into<String>) -> UpstreamFailure {
        UpstreamFailure::new(UpstreamErrorKind::BadResponse, message)
    }

    /// A transport error. Its text never includes the URL, which may carry a key.
    pub fn transport(err: &reqwest::Error) -> UpstreamFailure {
        if err.is_timeout() {
            UpstreamFailure::timeout("upstream connection timed out")
        } else if err.is_connect() {
            UpstreamFailure::bad_response("cannot connect to upstream")
        } else if err.is_body() || err.is_decode() {
            UpstreamFailure::bad_response("upstream response body was cut short")
        } else {
            UpstreamFailure::bad_response("upstream request failed")
        }
    }

    /// A non-success HTTP answer.
    pub fn from_http(
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> UpstreamFailure {
        let text = String::from_utf8_lossy(body);
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        let (message, code) = match &parsed {
            Some(json) => error_fields(json),
            None => (Some(text.trim().to_owned()), None),
        };
        let lower = text.to_ascii_lowercase();
        let kind = kind_for_status(status, &lower);
        let detail = message.filter(|m| !m.is_empty());
        UpstreamFailure {
            kind,
            message: match detail {
                Some(detail) => format!("upstream returned {status}: {}", truncate(&detail)),
                None => format!("upstream returned {status}"),
            },
            status,
            retry_after_ms: (status == 429 || status == 503 || status == 529)
                .then(|| retry_after_ms(headers, now))
                .flatten(),
            provider_code: code,
        }
    }

    /// An `{"error": ...}` object inside a 200 response or a stream.
    pub fn in_band(error: &Value, http_status: u16) -> UpstreamFailure {
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
        UpstreamFailure {
            kind,
            message: format!(
                "upstream reported an error: {}",
                truncate(message.as_deref().unwrap_or("no message"))
            ),
            status: http_status,
            retry_after_ms: None,
            provider_code: code,
        }
    }

    /// Scrubs a secret that an upstream might have echoed back.
    pub fn redact(&mut self, secret: &str) {
        if secret.len() >= 4 && self.message.contains(secret) {
            self.message = self.message.replace(secret, "[redacted]");
        }
    }

    pub fn into_proto(self) -> UpstreamError {
        UpstreamError {
            kind: self.kind as i32,
            message: self.message,
            upstream_status: u32::from(self.status),
            retry_after_ms: self.retry_after_ms,
            provider_code: self.provider_code,
        }
    }
}

pub fn kind_for_status(status: u16, body_lower: &str) -> UpstreamErrorKind {
    match status {
        429 => UpstreamErrorKind::RateLimited,
        503 | 529 => UpstreamErrorKind::Overloaded,
        408 => UpstreamErrorKind::Timeout,
        401 => UpstreamErrorKind::Authentication,
        403 => UpstreamErrorKind::PermissionDenied,
        404 => UpstreamErrorKind::NotFound,
        400 | 413 | 422 if mentions_context_length(body_lower) => {
            UpstreamErrorKind::ContextLengthExceeded
        }
        400 | 422
            if body_lower.contains("content_filter") || body_lower.contains("content_policy") =>
        {
            UpstreamErrorKind::ContentFilter
        }
        504 => UpstreamErrorKind::Timeout,
        500..=599 => UpstreamErrorKind::Unavailable,
        400..=499 => UpstreamErrorKind::InvalidRequest,
        _ => UpstreamErrorKind::BadResponse,
    }
}

fn mentions_context_length(lower: &str) -> bool {
    [
        "context_length_exceeded",
        "context length",
        "maximum context",
        "context window",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
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

fn truncate(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `retry-after-ms` (Azure, OpenAI) or `Retry-After` in seconds or as an
/// HTTP date.
pub fn retry_after_ms(headers: &HeaderMap, now: SystemTime) -> Option<u64> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(ms.ceil() as u64);
    }
    let value = header("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).ceil() as u64);
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::from(date);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use UpstreamErrorKind as K;

    fn failure(status: u16, body: &str) -> UpstreamFailure {
        UpstreamFailure::from_http(
            status,
            &HeaderMap::new(),
            body.as_bytes(),
            SystemTime::now(),
        )
    }

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
            assert_eq!(failure(status, "{}").kind, kind, "{status}");
        }
    }

    #[test]
    fn context_length_is_recognised_by_code_or_text() {
        let by_code = failure(
            400,
            r#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(by_code.kind, K::ContextLengthExceeded);
        assert_eq!(
            by_code.provider_code.as_deref(),
            Some("context_length_exceeded")
        );
        let by_text = failure(400, "This model's maximum context length is 4096 tokens.");
        assert_eq!(by_text.kind, K::ContextLengthExceeded);
    }

    #[test]
    fn messages_are_truncated_and_redacted() {
        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "x".repeat(1000));
        let f = failure(500, &long);
        assert!(f.message.chars().count() < 340, "{}", f.message.len());
        let mut f = failure(
            401,
            r#"{"error":{"message":"Incorrect API key provided: sk-secret-123"}}"#,
        );
        f.redact("sk-secret-123");
        assert!(!f.message.contains("sk-secret-123"));
        assert!(f.message.contains("[redacted]"));
    }

    #[test]
    fn retry_after_in_seconds_ms_or_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after_ms(&headers, now), Some(7000));
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:30 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after_ms(&headers, now), Some(30_000));
        headers.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after_ms(&headers, now), Some(1500));
        headers.clear();
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after_ms(&headers, now), None);
        let f = UpstreamFailure::from_http(
            429,
            &{
                let mut h = HeaderMap::new();
                h.insert("retry-after", "2".parse().unwrap());
                h
            },
            b"rate limited",
            now,
        );
        assert_eq!((f.kind, f.retry_after_ms), (K::RateLimited, Some(2000)));
    }

    #[test]
    fn in_band_errors_are_classified() {
        let err = serde_json::json!({"code": 502, "message": "provider down"});
        assert_eq!(UpstreamFailure::in_band(&err, 200).kind, K::Unavailable);
        let err = serde_json::json!({"message": "x", "type": "server_error"});
        assert_eq!(UpstreamFailure::in_band(&err, 200).kind, K::Unavailable);
        let err = serde_json::json!({"message": "odd"});
        assert_eq!(UpstreamFailure::in_band(&err, 200).kind, K::BadResponse);
    }
}
