//! Google's error shape, `{"error":{"code","message","status","details"}}`,
//! with the canonical status name and the message Gemini uses per HTTP code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::serve::Fault;

/// A simulator fault in Google's shape. Rate limits carry their delay in a
/// `RetryInfo` detail, not a `Retry-After` header, as Google does.
pub fn fault(fault: &Fault) -> Response {
    match fault {
        Fault::BadRequest(message) => error(StatusCode::BAD_REQUEST, message),
        Fault::RateLimited { retry_after_secs } => with_details(
            StatusCode::TOO_MANY_REQUESTS,
            "You exceeded your current quota, please check your plan and billing details \
             (simulated).",
            vec![json!({
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": format!("{retry_after_secs}s"),
            })],
        ),
        Fault::ContextTooLong {
            limit,
            prompt_tokens,
        } => error(
            StatusCode::BAD_REQUEST,
            &format!(
                "The input token count ({prompt_tokens}) exceeds the maximum number of tokens \
                 allowed ({limit})."
            ),
        ),
        Fault::Failed(status) => error(*status, failure_message(status.as_u16())),
        Fault::ShuttingDown => error(
            StatusCode::SERVICE_UNAVAILABLE,
            failure_message(StatusCode::SERVICE_UNAVAILABLE.as_u16()),
        ),
    }
}

fn failure_message(code: u16) -> &'static str {
    match code {
        429 => "Resource has been exhausted (e.g. check quota).",
        500 => {
            "An internal error has occurred. Please retry or report in \
             https://developers.generativeai.google/guide/troubleshooting"
        }
        503 => "The model is overloaded. Please try again later.",
        504 => "The request timed out. Please try again.",
        _ => "Simulated failure.",
    }
}

/// The `google.rpc.Code` name Google pairs with each HTTP status.
pub fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        402..=498 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

pub fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(body(status.as_u16(), message, None))).into_response()
}

pub fn with_details(status: StatusCode, message: &str, details: Vec<Value>) -> Response {
    let body = body(status.as_u16(), message, Some(details));
    (status, Json(body)).into_response()
}

pub fn body(code: u16, message: &str, details: Option<Vec<Value>>) -> Value {
    let mut error = json!({"code": code, "message": message, "status": status_name(code)});
    if let Some(details) = details {
        error["details"] = Value::Array(details);
    }
    json!({"error": error})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_have_google_names() {
        assert_eq!(status_name(429), "RESOURCE_EXHAUSTED");
        assert_eq!(status_name(503), "UNAVAILABLE");
        assert_eq!(status_name(502), "INTERNAL");
        let body = body(400, "bad", None);
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
        assert!(body["error"].get("details").is_none());
    }
}
