//! `POST /api/v1/chat/completions`: authenticate, parse once, run the engine,
//! answer with one JSON body or an SSE stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use switchyard_kit::money::nanos_to_usd;

use super::{AppState, request, sse};
use crate::auth;
use crate::engine::{Attribution, Committed, Event, Job, Summary};
use crate::error::{ApiError, AttemptFailure};
use crate::ids;

pub async fn chat_completions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match handle(state, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn handle(state: Arc<AppState>, request: Request) -> Result<Response, ApiError> {
    let received_at = Instant::now();
    let (parts, body) = request.into_parts();
    let caller = state
        .keys
        .authenticate(auth::bearer(&parts.headers))
        .await?;
    let bytes = read_body(&parts.headers, body, state.max_body_bytes).await?;
    let parsed = request::parse_chat(&bytes)?;
    let created = ids::unix_now();
    let job = Job {
        generation_id: ids::generation_id(created),
        created,
        models: parsed.models,
        request: parsed.request,
        stream: parsed.stream,
        session_key: None,
        attribution: attribution(&parts.headers, caller, parsed.session_id),
        received_at,
        api_type: "completions",
        prefs: parsed.prefs,
    };
    let job = Job {
        session_key: job
            .attribution
            .session_id
            .clone()
            .or(parsed.prompt_cache_key),
        ..job
    };
    if job.stream {
        sse::respond(&state, job).await
    } else {
        let committed = state.engine.start(job).await?;
        Ok(json_completion(committed).await)
    }
}

/// Reads the body up to `limit` bytes; more is a 413.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| v.chars().take(512).collect())
}

pub fn attribution(
    headers: &HeaderMap,
    caller: auth::Caller,
    body_session: Option<String>,
) -> Attribution {
    Attribution {
        key_hash: caller.key_hash,
        account_id: caller.account_id,
        http_referer: header(headers, "http-referer"),
        app_title: header(headers, "x-openrouter-title").or_else(|| header(headers, "x-title")),
        user_agent: header(headers, "user-agent"),
        session_id: body_session
            .or_else(|| header(headers, "x-session-id"))
            .map(|s| s.chars().take(256).collect()),
    }
}

/// Headers every completion response carries.
pub fn completion_headers(committed: &Committed) -> Vec<(&'static str, String)> {
    vec![
        ("x-generation-id", committed.generation_id.clone()),
        ("x-switchyard-provider", committed.provider_name.clone()),
        (
            "x-switchyard-attempts",
            attempts_header(&committed.attempts),
        ),
    ]
}

/// `provider=status` per attempt, in order, e.g. `Together=500, DeepInfra=200`.
fn attempts_header(attempts: &[AttemptFailure]) -> String {
    attempts
        .iter()
        .map(|a| format!("{}={}", a.provider, a.status))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Default)]
struct ToolCallAcc {
    id: String,
    name: String,
    arguments: String,
}

async fn json_completion(mut committed: Committed) -> Response {
    let mut content = String::new();
    let mut reasoning = String::new();
    let mut refusal: Option<String> = None;
    let mut tool_calls: BTreeMap<u32, ToolCallAcc> = BTreeMap::new();
    let mut finish = (String::new(), String::new());
    let mut error: Option<Value> = None;
    let mut summary: Option<Summary> = None;
    while let Some(event) = committed.events.recv().await {
        match event {
            Event::Delta(d) => {
                content.push_str(d.content.as_deref().unwrap_or(""));
                reasoning.push_str(d.reasoning.as_deref().unwrap_or(""));
                if let Some(r) = d.refusal {
                    refusal.get_or_insert_with(String::new).push_str(&r);
                }
                for t in d.tool_calls {
                    let acc = tool_calls.entry(t.index).or_default();
                    if let Some(id) = t.id {
                        acc.id = id;
                    }
                    if let Some(name) = t.name {
                        acc.name.push_str(&name);
                    }
                    acc.arguments.push_str(t.arguments.as_deref().unwrap_or(""));
                }
            }
            Event::Finish { reason, native } => finish = (reason, native),
            Event::Error {
                status,
                error_type,
                message,
            } => {
                finish = ("error".into(), finish.1);
                error = Some(
                    json!({"code": status, "message": message, "metadata": {"error_type": error_type}}),
                );
            }
            Event::Done(s) => summary = Some(s),
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if content.is_empty() && !tool_calls.is_empty() { Value::Null } else { content.into() },
        "refusal": refusal,
        "reasoning": if reasoning.is_empty() { Value::Null } else { reasoning.into() },
    });
    if !tool_calls.is_empty() {
        message["tool_calls"] = tool_calls
            .into_iter()
            .map(|(index, t)| {
                json!({"index": index, "id": t.id, "type": "function",
                       "function": {"name": t.name, "arguments": t.arguments}})
            })
            .collect();
    }
    let mut choice = json!({
        "index": 0,
        "logprobs": null,
        "finish_reason": none_if_empty(&finish.0),
        "native_finish_reason": none_if_empty(&finish.1),
        "message": message,
    });
    if let Some(error) = error {
        choice["error"] = error;
    }
    let body = json!({
        "id": committed.generation_id,
        "provider": committed.provider_name,
        "model": committed.model,
        "object": "chat.completion",
        "created": committed.created,
        "choices": [choice],
        "system_fingerprint": null,
        "usage": summary.as_ref().map(usage_json),
    });
    let mut response = super::json_response(200, &body);
    for (name, value) in completion_headers(&committed) {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

pub fn none_if_empty(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_owned())
    }
}

/// The `usage` object of responses and the final stream chunk.
pub fn usage_json(s: &Summary) -> Value {
    let u = &s.usage;
    let cost = nanos_to_usd(s.cost_nanos);
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "cost": cost,
        "is_byok": false,
        "prompt_tokens_details": {
            "cached_tokens": u.cached_tokens,
            "cache_write_tokens": u.cache_write_tokens,
            "audio_tokens": 0,
            "video_tokens": 0,
        },
        "cost_details": {
            "upstream_inference_cost": cost,
            "upstream_inference_prompt_cost": nanos_to_usd(s.prompt_cost_nanos),
            "upstream_inference_completions_cost": nanos_to_usd(s.completion_cost_nanos),
        },
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning_tokens,
            "image_tokens": 0,
            "audio_tokens": 0,
        },
    })
}
