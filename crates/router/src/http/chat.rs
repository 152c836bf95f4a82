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
    let job = prepare(&state, request, "completions", request::parse_chat).await?;
    if job.stream {
        sse::respond::<super::chat_stream::ChatChunks>(&state, job).await
    } else {
        let committed = state.engine.start(job).await?;
        Ok(json_completion(committed).await)
    }
}

/// Authenticates, reads and parses a request into a job, for any of the
/// completion-type APIs (each brings its own body parser).
pub async fn prepare(
    state: &AppState,
    request: Request,
    api_type: &'static str,
    parse: impl FnOnce(&[u8]) -> Result<request::ParsedChat, ApiError>,
) -> Result<Job, ApiError> {
    let received_at = Instant::now();
    let (parts, body) = request.into_parts();
    let caller = state
        .keys
        .authenticate(auth::bearer(&parts.headers))
        .await?;
    state
        .limiter
        .check(&caller.key_hash, caller.rate_limit_rpm)
        .await?;
    let bytes = read_body(&parts.headers, body, state.max_body_bytes).await?;
    let parsed = parse(&bytes)?;
    let stamp = ids::stamp();
    let session_key = parsed
        .session_id
        .clone()
        .or_else(|| header(&parts.headers, "x-session-id"))
        .or(parsed.prompt_cache_key);
    Ok(Job {
        generation_id: stamp.generation_id,
        created: stamp.created,
        models: parsed.models,
        request: parsed.request,
        stream: parsed.stream,
        session_key,
        attribution: attribution(&parts.headers, caller, parsed.session_id),
        received_at,
        api_type,
        prefs: parsed.prefs,
    })
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
        origin: header(headers, "origin"),
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

/// Everything a non-streaming answer needs, gathered from the events.
#[derive(Default)]
pub struct Collected {
    pub content: String,
    pub reasoning: String,
    pub refusal: Option<String>,
    /// By index: (id, name, arguments).
    pub tool_calls: BTreeMap<u32, (String, String, String)>,
    pub finish: String,
    pub native_finish: String,
    /// (status, error_type, message) of a failure after content.
    pub error: Option<(u16, &'static str, String)>,
    /// `logprobs.content` entries of every delta, in order, when sent.
    pub logprobs: Option<Vec<Value>>,
    pub summary: Option<Summary>,
}

impl Collected {
    pub async fn from(committed: &mut Committed) -> Collected {
        let mut c = Collected::default();
        while let Some(event) = committed.events.recv().await {
            match event {
                Event::Delta(d) => {
                    let logprobs = d
                        .logprobs_json
                        .as_deref()
                        .map(serde_json::from_str::<Value>);
                    if let Some(Ok(Value::Object(mut l))) = logprobs
                        && let Some(Value::Array(items)) = l.remove("content")
                    {
                        c.logprobs.get_or_insert_with(Vec::new).extend(items);
                    }
                    c.content.push_str(d.content.as_deref().unwrap_or(""));
                    c.reasoning.push_str(d.reasoning.as_deref().unwrap_or(""));
                    if let Some(r) = d.refusal {
                        c.refusal.get_or_insert_with(String::new).push_str(&r);
                    }
                    for t in d.tool_calls {
                        let acc = c.tool_calls.entry(t.index).or_default();
                        if let Some(id) = t.id {
                            acc.0 = id;
                        }
                        acc.1.push_str(t.name.as_deref().unwrap_or(""));
                        acc.2.push_str(t.arguments.as_deref().unwrap_or(""));
                    }
                }
                Event::Finish { reason, native } => (c.finish, c.native_finish) = (reason, native),
                Event::Error {
                    status,
                    error_type,
                    message,
                } => {
                    c.finish = "error".into();
                    c.error = Some((status, error_type, message));
                }
                Event::Done(s) => c.summary = Some(s),
            }
        }
        c
    }
}

/// Adds the completion headers to a finished response.
pub fn with_completion_headers(mut response: Response, committed: &Committed) -> Response {
    for (name, value) in completion_headers(committed) {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

async fn json_completion(mut committed: Committed) -> Response {
    let c = Collected::from(&mut committed).await;
    let mut message = json!({
        "role": "assistant",
        "content": if c.content.is_empty() && !c.tool_calls.is_empty() { Value::Null } else { c.content.clone().into() },
        "refusal": c.refusal,
        "reasoning": if c.reasoning.is_empty() { Value::Null } else { c.reasoning.clone().into() },
    });
    if !c.reasoning.is_empty() {
        message["reasoning_details"] = json!([{
            "type": "reasoning.text", "text": c.reasoning, "format": committed.reasoning_format, "index": 0,
        }]);
    }
    if !c.tool_calls.is_empty() {
        message["tool_calls"] = c
            .tool_calls
            .iter()
            .map(|(index, (id, name, arguments))| {
                json!({"index": index, "id": id, "type": "function",
                       "function": {"name": name, "arguments": arguments}})
            })
            .collect();
    }
    let mut choice = json!({
        "index": 0,
        "logprobs": c.logprobs.as_ref().map(|content| json!({ "content": content, "refusal": null })),
        "finish_reason": none_if_empty(&c.finish),
        "native_finish_reason": none_if_empty(&c.native_finish),
        "message": message,
    });
    if let Some((status, error_type, message)) = &c.error {
        choice["error"] =
            json!({"code": status, "message": message, "metadata": {"error_type": error_type}});
    }
    let body = json!({
        "id": committed.generation_id,
        "provider": committed.provider_name,
        "model": committed.model,
        "object": "chat.completion",
        "created": committed.created,
        "choices": [choice],
        "system_fingerprint": null,
        "usage": c.summary.as_ref().map(usage_json),
    });
    with_completion_headers(super::json_response(200, &body), &committed)
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
