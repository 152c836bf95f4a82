//! Anthropic Messages at `POST /v1/messages` (and `/v1/messages/count_tokens`):
//! request parsing and validation as the real API does it, `x-api-key` auth,
//! and Anthropic's error shape.

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
use crate::text;

#[derive(Debug, Deserialize)]
struct MessagesRequest {
    model: String,
    max_tokens: Option<u32>,
    messages: Vec<Message>,
    system: Option<Value>,
    #[serde(default)]
    stop_sequences: Vec<String>,
    temperature: Option<f64>,
    #[serde(default)]
    tools: Vec<Value>,
    tool_choice: Option<Value>,
    thinking: Option<Value>,
    stream: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    content: Value,
}

/// The minimum `thinking.budget_tokens` the real API accepts.
const MIN_THINKING_BUDGET: u32 = 1024;

impl MessagesRequest {
    /// The conversation as OpenAI-style messages, `system` first. Earlier
    /// thinking blocks are left out, as the real API leaves them out of the
    /// context.
    fn canonical_messages(&self) -> Result<Vec<Value>, String> {
        let mut messages = Vec::new();
        if let Some(system) = &self.system {
            messages.push(text::canonical_message("system", parts(system)));
        }
        for message in &self.messages {
            if message.role != "user" && message.role != "assistant" {
                return Err(format!(
                    "messages: Unexpected role \"{}\". The Messages API accepts a top-level \
                     `system` parameter, not \"system\" as an input message role.",
                    message.role
                ));
            }
            messages.push(text::canonical_message(
                &message.role,
                parts(&message.content),
            ));
        }
        Ok(messages)
    }

    fn forced_tool(&self) -> Result<Option<ForcedTool>, String> {
        let Some(choice) = &self.tool_choice else {
            return Ok(None);
        };
        let wanted = match choice.get("type").and_then(Value::as_str) {
            Some("auto") | Some("none") => return Ok(None),
            Some("any") => None,
            Some("tool") => match choice.get("name").and_then(Value::as_str) {
                Some(name) => Some(name.to_owned()),
                None => return Err("tool_choice.tool.name: Field required".to_owned()),
            },
            _ => return Err("tool_choice: Input tag does not match any variant".to_owned()),
        };
        if self.tools.is_empty() {
            return Err("tool_choice may only be specified while providing tools.".to_owned());
        }
        let name_of = |tool: &Value| tool.get("name").and_then(Value::as_str).map(str::to_owned);
        let tool = match &wanted {
            None => self.tools.first(),
            Some(name) => self
                .tools
                .iter()
                .find(|t| name_of(t).as_ref() == Some(name)),
        };
        let Some(name) = wanted.or_else(|| tool.and_then(name_of)) else {
            return Err("tools.0.name: Field required".to_owned());
        };
        Ok(Some(ForcedTool {
            name,
            parameters: tool.and_then(|t| t.get("input_schema")).cloned(),
        }))
    }

    fn thinking_budget(&self, max_tokens: u32) -> Result<Option<u32>, String> {
        let Some(thinking) = &self.thinking else {
            return Ok(None);
        };
        match thinking.get("type").and_then(Value::as_str) {
            Some("disabled") => Ok(None),
            Some("enabled") => {
                let budget = thinking
                    .get("budget_tokens")
                    .and_then(Value::as_u64)
                    .ok_or("thinking.enabled.budget_tokens: Field required")?;
                let budget = u32::try_from(budget).unwrap_or(u32::MAX);
                if budget < MIN_THINKING_BUDGET {
                    return Err(format!(
                        "thinking.enabled.budget_tokens: Input should be greater than or \
                         equal to {MIN_THINKING_BUDGET}"
                    ));
                }
                if max_tokens <= budget {
                    return Err(
                        "`max_tokens` must be greater than `thinking.budget_tokens`.".to_owned(),
                    );
                }
                Ok(Some(budget))
            }
            _ => Err("thinking: Input tag does not match any variant".to_owned()),
        }
    }

    /// Validates like the real API and produces the shared prompt.
    fn into_prompt(self) -> Result<Prompt, String> {
        let max_tokens = self.max_tokens.ok_or("max_tokens: Field required")?;
        if self.messages.is_empty() {
            return Err("messages: at least one message is required".to_owned());
        }
        if let Some(t) = self.temperature
            && !(0.0..=1.0).contains(&t)
        {
            return Err("temperature: range: 0..1".to_owned());
        }
        let tool = self.forced_tool()?;
        let thinking_budget = self.thinking_budget(max_tokens)?;
        if thinking_budget.is_some() && tool.is_some() {
            return Err("Thinking may not be enabled when tool_choice forces tool use.".to_owned());
        }
        Ok(Prompt {
            messages: self.canonical_messages()?,
            stream: self.stream.unwrap_or(false),
            max_tokens: Some(max_tokens),
            stop: self.stop_sequences,
            tool,
            thinking_budget,
            json_schema: None,
            model: self.model,
        })
    }
}

/// Content (a string or blocks) as OpenAI-style parts: tool calls and
/// results count as their JSON text, images and documents as themselves.
fn parts(content: &Value) -> Vec<Value> {
    let blocks: &Vec<Value> = match content {
        Value::String(s) => return vec![text::text_part(s.clone())],
        Value::Array(blocks) => blocks,
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                out.push(text::text_part(text));
            }
            Some("tool_use") => {
                let input = block.get("input").cloned().unwrap_or(Value::Null);
                out.push(text::text_part(input.to_string()));
            }
            Some("tool_result") => {
                out.extend(block.get("content").map(parts).unwrap_or_default());
            }
            Some("thinking") | Some("redacted_thinking") => {}
            _ => out.push(block.clone()),
        }
    }
    out
}

fn parse(body: &[u8]) -> Result<Prompt, String> {
    let request: MessagesRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))?;
    request.into_prompt()
}

pub async fn messages(State(state): State<SimState>, headers: HeaderMap, body: Bytes) -> Response {
    match parse(&body) {
        Ok(prompt) => serve::serve(state, &headers, prompt, render::Anthropic).await,
        Err(message) => fault(&Fault::BadRequest(message)),
    }
}

/// `POST /v1/messages/count_tokens`: the prompt tokens a message would use.
pub async fn count_tokens(body: Bytes) -> Response {
    // Counting needs no output budget, so `max_tokens` is optional here.
    let mut request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return fault(&Fault::BadRequest(format!("invalid request body: {e}"))),
    };
    if let Some(fields) = request.as_object_mut() {
        fields.entry("max_tokens").or_insert(json!(u32::MAX));
    }
    match parse(request.to_string().as_bytes()) {
        Ok(prompt) => {
            Json(json!({"input_tokens": text::prompt_tokens(&prompt.messages)})).into_response()
        }
        Err(message) => fault(&Fault::BadRequest(message)),
    }
}

/// `x-api-key` (or bearer) auth when the simulator has an API key.
pub async fn require_key(State(state): State<SimState>, request: Request, next: Next) -> Response {
    if let Some(key) = state.api_key() {
        let headers = request.headers();
        let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if api_key != Some(key) && bearer != Some(key) {
            return error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid x-api-key",
            );
        }
    }
    next.run(request).await
}

/// A simulator fault in Anthropic's shape.
pub fn fault(fault: &Fault) -> Response {
    match fault {
        Fault::BadRequest(message) => {
            error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
        Fault::RateLimited { retry_after_secs } => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "This request would exceed the rate limit for your organization (simulated). \
                 Please try again later.",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            response
        }
        Fault::ContextTooLong {
            limit,
            prompt_tokens,
        } => error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("prompt is too long: {prompt_tokens} tokens > {limit} maximum"),
        ),
        Fault::Failed(status) => {
            let (kind, message) = failure(status.as_u16());
            error(*status, kind, message)
        }
        Fault::ShuttingDown => {
            let status = StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            error(status, "overloaded_error", "Overloaded")
        }
    }
}

/// The error type and message Anthropic uses for each status.
fn failure(status: u16) -> (&'static str, &'static str) {
    match status {
        401 => ("authentication_error", "invalid x-api-key"),
        403 => (
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => ("not_found_error", "The requested resource was not found."),
        413 => (
            "request_too_large",
            "Request exceeds the maximum allowed size.",
        ),
        429 => (
            "rate_limit_error",
            "This request would exceed the rate limit for your organization (simulated).",
        ),
        529 => ("overloaded_error", "Overloaded"),
        400..=499 => ("invalid_request_error", "Simulated invalid request."),
        _ => ("api_error", "Internal server error"),
    }
}

/// `{"type":"error","error":{"type","message"}}`.
pub fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(error_body(kind, message))).into_response()
}

fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}
