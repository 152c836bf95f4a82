//! `POST /api/v1/chat/completions`: authenticate, parse once, run the engine,
//! answer with one JSON body or an SSE stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
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
    let message = Message {
        role: "assistant",
        content: (!c.content.is_empty() || c.tool_calls.is_empty()).then_some(c.content.as_str()),
        refusal: c.refusal.as_deref(),
        reasoning: non_empty(&c.reasoning),
        reasoning_details: (!c.reasoning.is_empty()).then(|| {
            [ReasoningDetail {
                kind: "reasoning.text",
                text: &c.reasoning,
                format: committed.reasoning_format,
                index: 0,
            }]
        }),
        tool_calls: c
            .tool_calls
            .iter()
            .map(|(index, (id, name, arguments))| ToolCall {
                index: *index,
                id,
                kind: "function",
                function: FunctionCall { name, arguments },
            })
            .collect(),
    };
    let choice = Choice {
        index: 0,
        logprobs: c.logprobs.as_deref().map(|content| Logprobs {
            content,
            refusal: None,
        }),
        finish_reason: non_empty(&c.finish),
        native_finish_reason: non_empty(&c.native_finish),
        message,
        error: c
            .error
            .as_ref()
            .map(|(code, error_type, message)| ChoiceError {
                code: *code,
                message,
                metadata: ErrorMetadata { error_type },
            }),
    };
    let body = ChatCompletion {
        id: &committed.generation_id,
        provider: &committed.provider_name,
        model: &committed.model,
        object: "chat.completion",
        created: committed.created,
        choices: [choice],
        system_fingerprint: None,
        usage: c.summary.as_ref().map(UsageBody::of),
    };
    let response = match serde_json::to_string(&body) {
        Ok(text) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            text,
        )
            .into_response(),
        Err(e) => return ApiError::Internal(e.into()).into_response(),
    };
    with_completion_headers(response, &committed)
}

// The non-streaming chat completion body, serialized straight from what was
// collected. Built as a `serde_json::Value` first, it cost a map insertion
// per key, a copy per string and a second walk to print it: about 15% of a
// non-streaming request's instructions (bench/instructions.sh).

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    provider: &'a str,
    model: &'a str,
    object: &'static str,
    created: i64,
    choices: [Choice<'a>; 1],
    system_fingerprint: Option<&'a str>,
    usage: Option<UsageBody>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    logprobs: Option<Logprobs<'a>>,
    finish_reason: Option<&'a str>,
    native_finish_reason: Option<&'a str>,
    message: Message<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ChoiceError<'a>>,
}

#[derive(Serialize)]
struct Logprobs<'a> {
    content: &'a [Value],
    refusal: Option<&'a str>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<&'a str>,
    reasoning: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_details: Option<[ReasoningDetail<'a>; 1]>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Serialize)]
pub(super) struct ReasoningDetail<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: &'a str,
    pub format: &'static str,
    pub index: u32,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    index: u32,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ChoiceError<'a> {
    code: u16,
    message: &'a str,
    metadata: ErrorMetadata,
}

#[derive(Serialize)]
struct ErrorMetadata {
    error_type: &'static str,
}

/// The `usage` object of responses and the final stream chunk.
#[derive(Serialize)]
pub struct UsageBody {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    cost: f64,
    is_byok: bool,
    prompt_tokens_details: PromptTokensDetails,
    cost_details: CostDetails,
    completion_tokens_details: CompletionTokensDetails,
}

#[derive(Serialize)]
struct PromptTokensDetails {
    cached_tokens: u64,
    cache_write_tokens: u64,
    audio_tokens: u64,
    video_tokens: u64,
}

#[derive(Serialize)]
struct CostDetails {
    upstream_inference_cost: f64,
    upstream_inference_prompt_cost: f64,
    upstream_inference_completions_cost: f64,
}

#[derive(Serialize)]
struct CompletionTokensDetails {
    reasoning_tokens: u64,
    image_tokens: u64,
    audio_tokens: u64,
}

impl UsageBody {
    pub fn of(s: &Summary) -> UsageBody {
        let u = &s.usage;
        let cost = nanos_to_usd(s.cost_nanos);
        UsageBody {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
            cost,
            is_byok: false,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: u.cached_tokens,
                cache_write_tokens: u.cache_write_tokens,
                audio_tokens: 0,
                video_tokens: 0,
            },
            cost_details: CostDetails {
                upstream_inference_cost: cost,
                upstream_inference_prompt_cost: nanos_to_usd(s.prompt_cost_nanos),
                upstream_inference_completions_cost: nanos_to_usd(s.completion_cost_nanos),
            },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: u.reasoning_tokens,
                image_tokens: 0,
                audio_tokens: 0,
            },
        }
    }
}

/// `None` for an empty string: what bodies show as `null`.
pub fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// [`UsageBody`] as a JSON value, for bodies still built with `json!`.
pub fn usage_json(s: &Summary) -> Value {
    serde_json::to_value(UsageBody::of(s)).unwrap_or(Value::Null)
}
