//! Errors: `AdapterError` for calls the adapter cannot serve at all (a gRPC
//! status), and `UpstreamFailure` for everything the upstream did wrong,
//! normalized into an `UpstreamError` event with retry hints.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use switchyard_kit::error::{ErrorKind, ServiceError};
use switchyard_proto::provider::v1::{UpstreamError, UpstreamErrorKind};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("invalid generate request: {0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ServiceError for AdapterError {
    fn kind(&self) -> ErrorKind {
        match self {
            AdapterError::InvalidRequest(_) => ErrorKind::InvalidArgument,
            AdapterError::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl From<AdapterError> for Status {
    fn from(err: AdapterError) -> Status {
        switchyard_kit::error::to_status(err)
    }
}

/// Longest upstream text passed on to clients.
const MAX_MESSAGE_CHARS: usize = 300;

/// What a provider's error body says, read by its wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub kind: UpstreamErrorKind,
    pub message: Option<String>,
    /// The provider's own error code or type.
    pub code: Option<String>,
    /// A retry delay carried in the body (Google's `RetryInfo`).
    pub retry_after_ms: Option<u64>,
}

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

    /// A non-success HTTP answer, its body already read by the wire format.
    pub fn from_http(
        status: u16,
        headers: &HeaderMap,
        body: ErrorBody,
        now: SystemTime,
    ) -> UpstreamFailure {
        let retryable = matches!(
            body.kind,
            UpstreamErrorKind::RateLimited | UpstreamErrorKind::Overloaded
        ) || matches!(status, 429 | 503 | 529);
        let detail = body.message.filter(|m| !m.trim().is_empty());
        UpstreamFailure {
            kind: body.kind,
            message: match detail {
                Some(detail) => format!("upstream returned {status}: {}", truncate(&detail)),
                None => format!("upstream returned {status}"),
            },
            status,
            retry_after_ms: retryable
                .then(|| retry_after_ms(headers, now).or(body.retry_after_ms))
                .flatten(),
            provider_code: body.code,
        }
    }

    /// An error reported inside a 200 response or a stream.
    pub fn in_band(body: ErrorBody, http_status: u16) -> UpstreamFailure {
        UpstreamFailure {
            kind: body.kind,
            message: format!(
                "upstream reported an error: {}",
                truncate(body.message.as_deref().unwrap_or("no message"))
            ),
            status: http_status,
            retry_after_ms: body.retry_after_ms,
            provider_code: body.code,
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

pub fn mentions_context_length(lower: &str) -> bool {
    [
        "context_length_exceeded",
        "context length",
        "maximum context",
        "context window",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
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

    fn body(kind: UpstreamErrorKind, message: &str) -> ErrorBody {
        ErrorBody {
            kind,
            message: Some(message.to_owned()),
            code: None,
            retry_after_ms: None,
        }
    }

    #[test]
    fn messages_are_truncated_and_redacted() {
        let now = SystemTime::now();
        let headers = HeaderMap::new();
        let f =
            UpstreamFailure::from_http(500, &headers, body(K::Unavailable, &"x".repeat(1000)), now);
        assert!(f.message.chars().count() < 340, "{}", f.message.len());
        let mut f = UpstreamFailure::from_http(
            401,
            &headers,
            body(
                K::Authentication,
                "Incorrect API key provided: sk-secret-123",
            ),
            now,
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
    }

    #[test]
    fn retry_hints_only_for_retryable_kinds() {
        let now = SystemTime::now();
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        let f = UpstreamFailure::from_http(429, &headers, body(K::RateLimited, "slow down"), now);
        assert_eq!((f.kind, f.retry_after_ms), (K::RateLimited, Some(2000)));
        let f = UpstreamFailure::from_http(400, &headers, body(K::InvalidRequest, "no"), now);
        assert_eq!(f.retry_after_ms, None);
        // A delay in the body counts when no header says otherwise.
        let mut from_body = body(K::RateLimited, "quota");
        from_body.retry_after_ms = Some(7000);
        let f = UpstreamFailure::from_http(429, &HeaderMap::new(), from_body, now);
        assert_eq!(f.retry_after_ms, Some(7000));
    }
}
