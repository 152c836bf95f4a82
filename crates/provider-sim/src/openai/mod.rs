//! OpenAI Chat Completions at `POST /v1/chat/completions`: the request
//! fields the simulator reads, bearer auth, and OpenAI's error shape.

mod render;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::plan::{ForcedTool, Prompt};
use crate::serve::{self, Fault};
use crate::state::SimState;

pub use render::OpenAi;

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Value>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    stop: Option<Value>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    logprobs: Option<bool>,
    top_logprobs: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

impl ChatRequest {
    /// The tool the request forces: `"required"` picks the first tool, a
    /// `{"type":"function","function":{"name":..}}` choice picks that one.
    fn forced_tool(&self) -> Option<ForcedTool> {
        let tools = self.tools.as_deref().filter(|t| !t.is_empty())?;
        let function = |tool: &Value| tool.get("function").cloned().unwrap_or(Value::Null);
        let wanted = match self.tool_choice.as_ref()? {
            Value::String(choice) if choice == "required" => None,
            Value::Object(choice) => Some(
                choice
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)?
                    .to_owned(),
            ),
            _ => return None,
        };
        let tool = match &wanted {
            None => tools.first().map(function)?,
            Some(name) => tools
                .iter()
                .map(function)
                .find(|f| f.get("name").and_then(Value::as_str) == Some(name))
                .unwrap_or(Value::Null),
        };
        let name =
            wanted.or_else(|| tool.get("name").and_then(Value::as_str).map(str::to_owned))?;
        Some(ForcedTool {
            name,
            parameters: tool.get("parameters").cloned(),
        })
    }

    /// `stop` is a string or an array of strings.
    fn stop(&self) -> Vec<String> {
        match &self.stop {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(all)) => all
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn into_prompt(self) -> (Prompt, OpenAi) {
        let wire = OpenAi::new(
            self.stream_options
                .as_ref()
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
            (self.logprobs == Some(true)).then(|| self.top_logprobs.unwrap_or(0).min(20)),
        );
        let prompt = Prompt {
            tool: self.forced_tool(),
            stop: self.stop(),
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
            stream: self.stream.unwrap_or(false),
            model: self.model,
            messages: self.messages,
            thinking_budget: None,
            json_schema: None,
        };
        (prompt, wire)
    }
}

pub async fn chat_completions(
    State(state): State<SimState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match serde_json::from_slice::<ChatRequest>(&body) {
        Ok(request) => {
            let (prompt, wire) = request.into_prompt();
            serve::serve(state, &headers, prompt, wire).await
        }
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            &format!("invalid request body: {e}"),
        ),
    }
}

/// Bearer auth for the OpenAI routes when the simulator has an API key.
pub async fn require_key(State(state): State<SimState>, request: Request, next: Next) -> Response {
    if let Some(key) = state.api_key() {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(key) {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key"),
                "Incorrect API key provided.",
            );
        }
    }
    next.run(request).await
}

/// A simulator fault in OpenAI's shape.
pub fn fault(fault: &Fault) -> Response {
    match fault {
        Fault::BadRequest(message) => error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            message,
        ),
        Fault::RateLimited { retry_after_secs } => {
            let secs = *retry_after_secs;
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                Some("rate_limit_exceeded"),
                &format!("Rate limit reached (simulated). Please try again in {secs}s."),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            response
        }
        Fault::ContextTooLong {
            limit,
            prompt_tokens,
        } => error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("context_length_exceeded"),
            &format!(
                "This model's maximum context length is {limit} tokens. However, your \
                 messages resulted in {prompt_tokens} tokens. Please reduce the length of the \
                 messages."
            ),
        ),
        Fault::Failed(status) => {
            let (kind, code) = match status.as_u16() {
                429 => ("requests", "rate_limit_exceeded"),
                400..=499 => ("invalid_request_error", "simulated_failure"),
                _ => ("server_error", "simulated_failure"),
            };
            let message = format!(
                "The server had an error while processing your request (simulated {status})."
            );
            error(*status, kind, Some(code), &message)
        }
        Fault::ShuttingDown => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            None,
            "simulator shutting down",
        ),
    }
}

/// An error in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
pub fn error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    (status, Json(error_body(kind, code, message))).into_response()
}

fn error_body(kind: &str, code: Option<&str>, message: &str) -> Value {
    json!({
        "error": {"message": message, "type": kind, "param": null, "code": code},
    })
}
