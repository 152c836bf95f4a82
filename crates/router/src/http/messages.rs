//! `POST /api/v1/messages`: Anthropic Messages compatible ingress, so the
//! official Anthropic SDKs work with only their base URL changed (to
//! `.../api`). The request is translated into the chat shape (one parser,
//! one engine), the answer rendered as an Anthropic `message` or as
//! Anthropic's event stream (`message_start` … `message_stop`). OpenRouter
//! extensions (`models`, `fallbacks`, `provider`, `session_id`) work too.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::chat::{Collected, prepare, with_completion_headers};
use super::sse::{self, StreamFormat};
use super::{AppState, request};
use crate::engine::{Committed, Event, Summary};
use crate::error::ApiError;

pub async fn messages(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match handle(state, request).await {
        Ok(response) => response,
        Err(err) => anthropic_error(err),
    }
}

async fn handle(state: Arc<AppState>, request: Request) -> Result<Response, ApiError> {
    let job = prepare(&state, request, "completions", parse).await?;
    if job.stream {
        return sse::respond::<MessageEvents>(&state, job).await;
    }
    let mut committed = state.engine.start(job).await?;
    let c = Collected::from(&mut committed).await;
    let mut content: Vec<Value> = Vec::new();
    if !c.reasoning.is_empty() {
        content.push(json!({"type": "thinking", "thinking": c.reasoning, "signature": ""}));
    }
    if !c.content.is_empty() {
        content.push(json!({"type": "text", "text": c.content}));
    }
    for (id, name, arguments) in c.tool_calls.values() {
        content.push(
            json!({"type": "tool_use", "id": id, "name": name, "input": parse_input(arguments)}),
        );
    }
    let body = json!({
        "id": committed.generation_id,
        "type": "message",
        "role": "assistant",
        "model": committed.model,
        "provider": committed.provider_name,
        "content": content,
        "stop_reason": stop_reason(&c.finish),
        "stop_sequence": null,
        "usage": c.summary.as_ref().map(usage),
    });
    Ok(with_completion_headers(
        super::json_response(200, &body),
        &committed,
    ))
}

/// Anthropic's error shape (`{"type":"error","error":{"type","message"}}`)
/// with the same statuses as the chat API.
fn anthropic_error(err: ApiError) -> Response {
    let status = err.status();
    let retry_after = err.retry_after_secs();
    let kind = match status {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 | 408 => "timeout_error",
        _ => "api_error",
    };
    let error_type = err.error_type();
    let body = json!({
        "type": "error",
        "error": { "type": kind, "message": err.public_message(), "error_type": error_type },
        "request_id": null,
    });
    let mut response = super::json_response(status, &body);
    if let Some(secs) = retry_after {
        response.headers_mut().insert("retry-after", secs.into());
    }
    response
}

fn stop_reason(finish: &str) -> Value {
    match finish {
        "stop" => "end_turn".into(),
        "length" => "max_tokens".into(),
        "tool_calls" => "tool_use".into(),
        "content_filter" => "refusal".into(),
        "" => Value::Null,
        _ => "end_turn".into(),
    }
}

fn usage(s: &Summary) -> Value {
    let u = &s.usage;
    json!({
        // Anthropic counts cached prompt tokens apart from input_tokens.
        "input_tokens": u.prompt_tokens.saturating_sub(u.cached_tokens + u.cache_write_tokens),
        "output_tokens": u.completion_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "cost": switchyard_kit::money::nanos_to_usd(s.cost_nanos),
        "is_byok": false,
    })
}

fn parse_input(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| json!({}))
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// An Anthropic Messages body → the chat body the shared parser validates.
pub fn parse(body: &[u8]) -> Result<request::ParsedChat, ApiError> {
    let body = request::parse_json(body)?;
    let obj = body
        .as_object()
        .ok_or_else(|| bad("The body must be a JSON object"))?;
    let mut chat = Map::new();
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("model is required"))?;
    chat.insert("model".into(), model.into());
    let mut models: Vec<Value> = obj
        .get("models")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(fallbacks) = obj.get("fallbacks").and_then(Value::as_array) {
        if !models.is_empty() {
            return Err(bad("fallbacks cannot be combined with models"));
        }
        if fallbacks.len() > 3 {
            return Err(bad("fallbacks accepts at most 3 entries"));
        }
        models = fallbacks
            .iter()
            .filter_map(|f| f.get("model").cloned())
            .collect();
    }
    if !models.is_empty() {
        chat.insert("models".into(), models.into());
    }
    let max_tokens = obj
        .get("max_tokens")
        .ok_or_else(|| bad("max_tokens is required"))?;
    chat.insert("max_tokens".into(), max_tokens.clone());
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_k", "top_k"),
        ("stream", "stream"),
        ("stop_sequences", "stop"),
        ("provider", "provider"),
        ("session_id", "session_id"),
        ("user", "user"),
    ] {
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()) {
            chat.insert(to.into(), v.clone());
        }
    }
    if let Some(user) = obj
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        chat.entry("user").or_insert_with(|| user.into());
    }
    match obj
        .get("thinking")
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
    {
        Some("enabled") => {
            let budget = obj["thinking"]
                .get("budget_tokens")
                .cloned()
                .unwrap_or(Value::Null);
            chat.insert("reasoning".into(), json!({ "max_tokens": budget }));
        }
        Some("adaptive") => {
            chat.insert("reasoning".into(), json!({ "enabled": true }));
        }
        _ => {}
    }
    if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            // Anthropic server tools (web search, ...) have a type of their
            // own and no input_schema; only client tools translate.
            .filter(|t| t.get("input_schema").is_some())
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.get("name").cloned().unwrap_or(Value::Null),
                    "description": t.get("description").cloned().unwrap_or(Value::Null),
                    "parameters": t.get("input_schema").cloned().unwrap_or(Value::Null),
                }})
            })
            .collect();
        chat.insert("tools".into(), tools.into());
    }
    if let Some(choice) = obj.get("tool_choice") {
        let translated = match choice.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => {
                json!({"type": "function", "function": {"name": choice.get("name").cloned().unwrap_or(Value::Null)}})
            }
            _ => return Err(bad("tool_choice.type must be auto, any, tool or none")),
        };
        chat.insert("tool_choice".into(), translated);
        if choice
            .get("disable_parallel_tool_use")
            .and_then(Value::as_bool)
            == Some(true)
        {
            chat.insert("parallel_tool_calls".into(), false.into());
        }
    }
    let mut messages: Vec<Value> = Vec::new();
    match obj.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            messages.push(json!({"role": "system", "content": text_parts(blocks)?}))
        }
        Some(_) => return Err(bad("system must be a string or a list of text blocks")),
    }
    let input = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("messages is required"))?;
    for (i, m) in input.iter().enumerate() {
        translate_message(i, m, &mut messages)?;
    }
    chat.insert("messages".into(), messages.into());
    request::parse_chat_value(Value::Object(chat))
}

fn text_parts(blocks: &[Value]) -> Result<Value, ApiError> {
    blocks
        .iter()
        .map(|b| {
            let text = b
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("system blocks must be text"))?;
            let mut part = json!({"type": "text", "text": text});
            if let Some(cc) = b.get("cache_control") {
                part["cache_control"] = cc.clone();
            }
            Ok(part)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn translate_message(i: usize, m: &Value, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
    if role != "user" && role != "assistant" {
        return Err(bad(format!("messages[{i}].role must be user or assistant")));
    }
    let blocks = match m.get("content") {
        Some(Value::String(s)) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(bad(format!(
                "messages[{i}].content must be a string or a list of blocks"
            )));
        }
    };
    let mut parts: Vec<Value> = Vec::new();
    let mut tool_calls: Vec<Value> = Vec::new();
    let mut reasoning = String::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str).unwrap_or_default() {
            "text" => {
                let mut part = json!({"type": "text", "text": block.get("text").cloned().unwrap_or_default()});
                if let Some(cc) = block.get("cache_control") {
                    part["cache_control"] = cc.clone();
                }
                parts.push(part);
            }
            "image" => {
                let source = block.get("source").cloned().unwrap_or_default();
                let url = match source.get("type").and_then(Value::as_str) {
                    Some("base64") => format!(
                        "data:{};base64,{}",
                        source.get("media_type").and_then(Value::as_str).unwrap_or("image/png"),
                        source.get("data").and_then(Value::as_str).unwrap_or_default()
                    ),
                    Some("url") => source.get("url").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    _ => return Err(bad(format!("messages[{i}]: unsupported image source"))),
                };
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            "tool_use" => tool_calls.push(json!({
                "id": block.get("id").cloned().unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or_default(),
                    "arguments": block.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                },
            })),
            "tool_result" => {
                let content = match block.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(|x| x.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(""),
                    _ => String::new(),
                };
                out.push(json!({
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id").cloned().unwrap_or_default(),
                    "content": content,
                }));
            }
            "thinking" => reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or_default()),
            "redacted_thinking" => {}
            other => {
                // Documents and other blocks pass as provider-native parts.
                let mut part = block.clone();
                if other.is_empty() {
                    return Err(bad(format!("messages[{i}]: content block without type")));
                }
                part["type"] = Value::String(other.to_owned());
                parts.push(part);
            }
        }
    }
    if !parts.is_empty() || !tool_calls.is_empty() || !reasoning.is_empty() {
        let mut message = json!({"role": role, "content": if parts.is_empty() { Value::Null } else { Value::Array(parts) }});
        if !tool_calls.is_empty() {
            message["tool_calls"] = tool_calls.into();
        }
        if !reasoning.is_empty() {
            message["reasoning"] = reasoning.into();
        }
        out.push(message);
    }
    Ok(())
}

/// Anthropic's stream: `message_start`, then per content block
/// `content_block_start` / `content_block_delta`… / `content_block_stop`,
/// then `message_delta` (stop reason, output tokens) and `message_stop`.
pub struct MessageEvents {
    /// The open block: (index, kind, tool index for tool_use blocks).
    open: Option<(u32, &'static str, u32)>,
    next_index: u32,
    stop_reason: Value,
    errored: bool,
}

fn event(name: &str, data: Value) -> Vec<u8> {
    format!("event: {name}\ndata: {data}\n\n").into_bytes()
}

impl MessageEvents {
    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _, _)) = self.open.take() {
            out.extend(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    /// Makes sure a block of `kind` (and tool index) is open.
    fn ensure(
        &mut self,
        kind: &'static str,
        tool: u32,
        start: impl FnOnce() -> Value,
        out: &mut Vec<u8>,
    ) -> u32 {
        if let Some((index, k, t)) = self.open
            && k == kind
            && t == tool
        {
            return index;
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        out.extend(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start()}),
        ));
        self.open = Some((index, kind, tool));
        index
    }
}

impl StreamFormat for MessageEvents {
    fn start(committed: &Committed) -> (MessageEvents, Option<Bytes>) {
        let mut out = event(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": committed.generation_id, "type": "message", "role": "assistant",
                "model": committed.model, "provider": committed.provider_name, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }}),
        );
        out.extend(event("ping", json!({"type": "ping"})));
        let events = MessageEvents {
            open: None,
            next_index: 0,
            stop_reason: Value::Null,
            errored: false,
        };
        (events, Some(Bytes::from(out)))
    }

    fn render(&mut self, e: Event) -> Option<Bytes> {
        let mut out = Vec::new();
        match e {
            Event::Delta(d) => {
                if let Some(thinking) = d.reasoning.filter(|t| !t.is_empty()) {
                    let index = self.ensure(
                        "thinking",
                        0,
                        || json!({"type": "thinking", "thinking": ""}),
                        &mut out,
                    );
                    out.extend(event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "thinking_delta", "thinking": thinking}}),
                    ));
                }
                if let Some(text) = d.content.filter(|t| !t.is_empty()) {
                    let index =
                        self.ensure("text", 0, || json!({"type": "text", "text": ""}), &mut out);
                    out.extend(event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": text}}),
                    ));
                }
                for t in d.tool_calls {
                    let (id, name) = (
                        t.id.clone().unwrap_or_default(),
                        t.name.clone().unwrap_or_default(),
                    );
                    let index = self.ensure(
                        "tool_use",
                        t.index,
                        || json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                        &mut out,
                    );
                    if let Some(args) = t.arguments.filter(|a| !a.is_empty()) {
                        out.extend(event(
                            "content_block_delta",
                            json!({"type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": args}}),
                        ));
                    }
                }
            }
            Event::Finish { reason, .. } => self.stop_reason = stop_reason(&reason),
            Event::Error {
                status, message, ..
            } => {
                self.errored = true;
                self.close(&mut out);
                let kind = if status == 429 {
                    "rate_limit_error"
                } else if status == 503 {
                    "overloaded_error"
                } else {
                    "api_error"
                };
                out.extend(event(
                    "error",
                    json!({"type": "error", "error": {"type": kind, "message": message}}),
                ));
            }
            Event::Done(_) if self.errored => return None,
            Event::Done(summary) => {
                self.close(&mut out);
                out.extend(event(
                    "message_delta",
                    json!({"type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
                    "usage": usage(&summary)}),
                ));
                out.extend(event("message_stop", json!({"type": "message_stop"})));
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    fn error_before_commit(_generation_id: &str, err: ApiError) -> Bytes {
        let body = json!({"type": "error", "error": {"type": "api_error", "message": err.public_message()}});
        Bytes::from(event("error", body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_requests_translate_to_chat() {
        let p = parse(br#"{
            "model": "anthropic/claude-3.5-sonnet", "max_tokens": 100,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "4C"}]}
            ],
            "tools": [{"name": "weather", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any"}, "stop_sequences": ["END"],
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "metadata": {"user_id": "u-1"}
        }"#)
        .unwrap();
        let m = &p.request.messages;
        assert_eq!(m[0].role, "system");
        assert!(m[0].parts[0].cache_control_json.is_some());
        assert_eq!(m[1].parts.len(), 2);
        assert_eq!(m[2].tool_calls[0].arguments, r#"{"city":"Oslo"}"#);
        assert_eq!(m[3].role, "tool");
        assert_eq!(m[3].tool_call_id.as_deref(), Some("toolu_1"));
        assert_eq!(p.request.tool_choice_json.as_deref(), Some(r#""required""#));
        assert_eq!(p.request.stop, ["END"]);
        assert_eq!(
            p.request.reasoning_json.as_deref(),
            Some(r#"{"max_tokens":2048}"#)
        );
        assert_eq!(p.request.user.as_deref(), Some("u-1"));
        assert_eq!(p.request.max_tokens, Some(100));
    }

    #[test]
    fn anthropic_rejections() {
        for (body, needle) in [
            (
                r#"{"model":"a/b","messages":[{"role":"user","content":"x"}]}"#,
                "max_tokens",
            ),
            (r#"{"max_tokens":5,"messages":[]}"#, "model"),
            (
                r#"{"model":"a/b","max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#,
                "role",
            ),
            (
                r#"{"model":"a/b","max_tokens":5,"messages":[{"role":"user","content":"x"}],"models":["c/d"],"fallbacks":[{"model":"e/f"}]}"#,
                "fallbacks",
            ),
        ] {
            let err = parse(body.as_bytes()).unwrap_err();
            assert!(err.to_string().contains(needle), "{body}: {err}");
        }
    }
}
