//! Router errors and their rendering in OpenRouter's envelope:
//! `{"error":{"code":<status>,"message":...,"metadata":{...}}}`.

use switchyard_kit::ErrorKind;
use switchyard_kit::error::ServiceError;
use switchyard_proto::provider::v1::UpstreamErrorKind;

/// One failed attempt at an upstream endpoint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttemptFailure {
    pub provider: String,
    pub endpoint_id: String,
    /// HTTP-style status of the attempt.
    pub status: u16,
    #[serde(skip)]
    pub kind: UpstreamErrorKind,
    #[serde(skip)]
    pub message: String,
    #[serde(skip)]
    pub retry_after_ms: Option<u64>,
    #[serde(skip)]
    pub provider_code: Option<String>,
}

/// Why no endpoint of a model could take the request (OpenRouter's
/// `error.availability`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    /// `no_endpoints` or `constraint_filtered`.
    pub code: &'static str,
    pub requested_models: Vec<String>,
    /// `max_price`, `context_length`, `require_parameters`, `quantization`,
    /// `allowed_providers`, `data_policy:zdr`, `data_policy:training`, ...
    pub excluded_by: Vec<&'static str>,
}

impl Availability {
    pub fn new(code: &'static str, model: &str, excluded_by: Vec<&'static str>) -> Availability {
        Availability {
            code,
            requested_models: vec![model.to_owned()],
            excluded_by,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("No auth credentials found")]
    MissingKey,
    #[error("Invalid API key")]
    InvalidKey,
    #[error("This API key is disabled")]
    KeyDisabled,
    #[error("Management keys cannot be used for inference")]
    ManagementKey,
    #[error("Model {0} does not exist")]
    UnknownModel(String),
    #[error("Generation {0} not found")]
    GenerationNotFound(String),
    #[error("Not found")]
    RouteNotFound,
    #[error("No endpoints found for {} that satisfy the request{}", .0.requested_models.join(", "),
            if .0.excluded_by.is_empty() { String::new() } else { format!(" (excluded by {})", .0.excluded_by.join(", ")) })]
    NoEndpoints(Availability),
    #[error("This request needs about {requested} tokens, more than any endpoint's context length")]
    ContextTooLong { requested: u64 },
    #[error("Every endpoint of this model is rate limited; retry after {retry_after_secs} s")]
    RateLimitedUpstream { retry_after_secs: u64 },
    #[error("Request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// Every attempted endpoint failed; the last failure decides the status.
    #[error("{}", .last.message)]
    Upstream {
        last: Box<AttemptFailure>,
        attempts: Vec<AttemptFailure>,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("Insufficient credits: this request may cost up to ${:.6} and ${:.6} is available. Add credits to continue.",
            switchyard_kit::money::nanos_to_usd(*.required_nanos), switchyard_kit::money::nanos_to_usd(*.available_nanos))]
    InsufficientCredits {
        required_nanos: i64,
        available_nanos: i64,
    },
    #[error("Key limit exceeded: this request may cost up to ${:.6} and the key has ${:.6} left in its limit. Raise the key's limit or wait for it to reset.",
            switchyard_kit::money::nanos_to_usd(*.required_nanos), switchyard_kit::money::nanos_to_usd(*.available_nanos))]
    KeyLimitExceeded {
        required_nanos: i64,
        available_nanos: i64,
    },
    #[error("Rate limit exceeded: {limit} requests per minute for this key; retry after {} s", .retry_after_ms.div_ceil(1000))]
    RateLimited {
        limit: u32,
        retry_after_ms: u64,
        /// Unix milliseconds when a request would be admitted again.
        reset_at_ms: u64,
    },
    #[error("This endpoint requires a management key")]
    ManagementKeyRequired,
    #[error("Key not found")]
    KeyNotFound,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ServiceError for ApiError {
    fn kind(&self) -> ErrorKind {
        match self {
            ApiError::BadRequest(_) => ErrorKind::InvalidArgument,
            ApiError::MissingKey | ApiError::InvalidKey | ApiError::KeyDisabled => {
                ErrorKind::Unauthenticated
            }
            ApiError::ManagementKey | ApiError::ManagementKeyRequired => {
                ErrorKind::PermissionDenied
            }
            ApiError::UnknownModel(_)
            | ApiError::GenerationNotFound(_)
            | ApiError::RouteNotFound
            | ApiError::KeyNotFound
            | ApiError::NoEndpoints(_) => ErrorKind::NotFound,
            ApiError::InsufficientCredits { .. } | ApiError::KeyLimitExceeded { .. } => {
                ErrorKind::PaymentRequired
            }
            ApiError::RateLimited { .. } => ErrorKind::RateLimited,
            ApiError::PayloadTooLarge { .. } => ErrorKind::PayloadTooLarge,
            ApiError::ContextTooLong { .. } => ErrorKind::InvalidArgument,
            ApiError::RateLimitedUpstream { .. } => ErrorKind::RateLimited,
            ApiError::Upstream { last, .. } => upstream_kind(last.kind),
            ApiError::Unavailable(_) => ErrorKind::Unavailable,
            ApiError::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// What a client sees when the upstream failed this way.
pub fn upstream_kind(kind: UpstreamErrorKind) -> ErrorKind {
    use UpstreamErrorKind as U;
    match kind {
        U::RateLimited => ErrorKind::RateLimited,
        U::Overloaded => ErrorKind::Unavailable,
        U::Timeout => ErrorKind::Timeout,
        U::ContextLengthExceeded | U::InvalidRequest | U::ContentFilter => {
            ErrorKind::InvalidArgument
        }
        // Our credential or the upstream model id is wrong: the provider is
        // unusable, which is not the client's fault.
        U::Authentication
        | U::PermissionDenied
        | U::NotFound
        | U::Unavailable
        | U::BadResponse
        | U::Unspecified => ErrorKind::BadGateway,
    }
}

/// OpenRouter's `metadata.error_type` for an upstream failure.
pub fn upstream_error_type(kind: UpstreamErrorKind) -> &'static str {
    use UpstreamErrorKind as U;
    match kind {
        U::RateLimited => "rate_limit_exceeded",
        U::Overloaded => "provider_overloaded",
        U::Timeout => "timeout",
        U::ContextLengthExceeded => "context_length_exceeded",
        U::InvalidRequest => "invalid_request",
        U::ContentFilter => "content_policy_violation",
        U::Authentication
        | U::PermissionDenied
        | U::NotFound
        | U::Unavailable
        | U::BadResponse
        | U::Unspecified => "provider_unavailable",
    }
}

/// The HTTP-style status an attempt is recorded with.
pub fn attempt_status(kind: UpstreamErrorKind, upstream_status: u32) -> u16 {
    if (400..600).contains(&upstream_status) {
        return upstream_status as u16;
    }
    match kind {
        UpstreamErrorKind::Timeout => 408,
        UpstreamErrorKind::RateLimited => 429,
        _ => 502,
    }
}

impl ApiError {
    pub fn status(&self) -> u16 {
        self.kind().http_status()
    }

    /// `metadata.error_type` from OpenRouter's vocabulary.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::MissingKey | ApiError::InvalidKey | ApiError::KeyDisabled => "authentication",
            ApiError::ManagementKey | ApiError::ManagementKeyRequired => "permission_denied",
            ApiError::UnknownModel(_)
            | ApiError::GenerationNotFound(_)
            | ApiError::RouteNotFound
            | ApiError::KeyNotFound
            | ApiError::NoEndpoints(_) => "not_found",
            ApiError::InsufficientCredits { .. } | ApiError::KeyLimitExceeded { .. } => {
                "payment_required"
            }
            ApiError::RateLimited { .. } => "rate_limit_exceeded",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::ContextTooLong { .. } => "context_length_exceeded",
            ApiError::RateLimitedUpstream { .. } => "rate_limit_exceeded",
            ApiError::Upstream { last, .. } => upstream_error_type(last.kind),
            ApiError::Unavailable(_) => "provider_overloaded",
            ApiError::Internal(_) => "server",
        }
    }

    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::Upstream { last, .. } => last.retry_after_ms.map(|ms| ms.div_ceil(1000)),
            ApiError::RateLimitedUpstream { retry_after_secs } => Some(*retry_after_secs),
            ApiError::RateLimited { retry_after_ms, .. } => Some(retry_after_ms.div_ceil(1000)),
            ApiError::Unavailable(_) => Some(1),
            _ => None,
        }
    }

    /// The client-safe message: internal details are logged, never sent.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "internal error");
                "Internal server error".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// The envelope body, as JSON.
    pub fn envelope(&self) -> serde_json::Value {
        let mut metadata = serde_json::json!({ "error_type": self.error_type() });
        if let ApiError::Upstream { last, attempts } = self {
            metadata["provider_name"] = last.provider.clone().into();
            if let Some(code) = &last.provider_code {
                metadata["provider_code"] = code.clone().into();
            }
            if let Some(secs) = self.retry_after_secs() {
                metadata["retry_after_seconds"] = secs.into();
            }
            metadata["previous_errors"] = attempts
                .iter()
                .map(|a| {
                    serde_json::json!({"provider": a.provider, "code": a.status, "status": a.status})
                })
                .collect();
        }
        match self {
            ApiError::InsufficientCredits {
                required_nanos,
                available_nanos,
            }
            | ApiError::KeyLimitExceeded {
                required_nanos,
                available_nanos,
            } => {
                metadata["required"] = switchyard_kit::money::nanos_to_usd(*required_nanos).into();
                metadata["available"] =
                    switchyard_kit::money::nanos_to_usd(*available_nanos).into();
                metadata["reason"] = match self {
                    ApiError::KeyLimitExceeded { .. } => "key_limit",
                    _ => "insufficient_credits",
                }
                .into();
            }
            ApiError::RateLimited {
                limit,
                retry_after_ms,
                ..
            } => {
                metadata["limit"] = (*limit).into();
                metadata["retry_after_seconds"] = retry_after_ms.div_ceil(1000).into();
            }
            _ => {}
        }
        let mut body = serde_json::json!({
            "error": {
                "code": self.status(),
                "message": self.public_message(),
                "metadata": metadata,
            }
        });
        if let ApiError::NoEndpoints(a) = self {
            body["error"]["error_type"] = "not_found".into();
            body["error"]["http_status"] = self.status().into();
            body["error"]["availability"] = serde_json::json!({
                "code": a.code,
                "retryable": false,
                "requested_models": a.requested_models,
                "excluded_by": a.excluded_by,
            });
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_rate_limit_maps_to_429_with_retry_after() {
        let failure = AttemptFailure {
            provider: "OpenAI".into(),
            endpoint_id: "openai:openai/gpt-4".into(),
            status: 429,
            kind: UpstreamErrorKind::RateLimited,
            message: "Rate limit exceeded".into(),
            retry_after_ms: Some(1500),
            provider_code: None,
        };
        let err = ApiError::Upstream {
            last: Box::new(failure.clone()),
            attempts: vec![failure],
        };
        assert_eq!(err.status(), 429);
        assert_eq!(err.retry_after_secs(), Some(2));
        let body = err.envelope();
        assert_eq!(body["error"]["code"], 429);
        assert_eq!(
            body["error"]["metadata"]["error_type"],
            "rate_limit_exceeded"
        );
        assert_eq!(
            body["error"]["metadata"]["previous_errors"][0]["provider"],
            "OpenAI"
        );
    }

    #[test]
    fn internal_details_never_reach_the_client() {
        let err = ApiError::Internal(anyhow::anyhow!("password=hunter2 in SQL"));
        assert_eq!(err.status(), 500);
        assert!(!err.envelope().to_string().contains("hunter2"));
    }
}
