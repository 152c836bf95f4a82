//! Server-sent events in OpenRouter's shapes. The response waits briefly for
//! the engine to commit, so a request that fails everywhere still gets a real
//! error status; if committing takes longer than the keep-alive interval, the
//! 200 goes out with `: OPENROUTER PROCESSING` comments while attempts go on.
//! Chunks are rendered from a pre-built prefix; nothing is re-parsed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::AppState;
use super::chat::{completion_headers, none_if_empty, usage_json};
use crate::engine::{Committed, Event, Job};
use crate::error::ApiError;

const KEEPALIVE: &[u8] = b": OPENROUTER PROCESSING\n\n";
const DONE: &[u8] = b"data: [DONE]\n\n";

type Started = Result<Committed, ApiError>;

pub async fn respond(state: &Arc<AppState>, job: Job) -> Result<Response, ApiError> {
    let generation_id = job.generation_id.clone();
    let engine = state.engine.clone();
    let (tx, mut rx) = oneshot::channel::<Started>();
    tokio::spawn(
        async move {
            let _ = tx.send(engine.start(job).await);
        }
        .instrument(tracing::Span::current()),
    );
    let keepalive = state.keepalive;
    let (phase, headers) = match tokio::time::timeout(keepalive, &mut rx).await {
        Ok(Ok(Err(err))) => return Err(err),
        Ok(Ok(Ok(committed))) => {
            let headers = completion_headers(&committed);
            (Phase::Streaming(Renderer::new(committed)), headers)
        }
        Ok(Err(_)) => return Err(ApiError::Internal(anyhow::anyhow!("engine task vanished"))),
        Err(_) => (
            Phase::Waiting(rx),
            vec![("x-generation-id", generation_id.clone())],
        ),
    };
    let state = SseState {
        phase,
        keepalive,
        generation_id,
        opened: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        s.next().await.map(|bytes| (Ok::<_, Infallible>(bytes), s))
    });
    let mut response = (
        [
            (axum::http::header::CONTENT_TYPE, "text/event-stream"),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", "no".parse().expect("static"));
    for (name, value) in headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

enum Phase {
    Waiting(oneshot::Receiver<Started>),
    Streaming(Renderer),
    Finished,
}

struct SseState {
    phase: Phase,
    keepalive: Duration,
    generation_id: String,
    opened: bool,
}

impl SseState {
    async fn next(&mut self) -> Option<Bytes> {
        if !self.opened {
            self.opened = true;
            return Some(Bytes::from_static(KEEPALIVE));
        }
        loop {
            match &mut self.phase {
                Phase::Finished => return None,
                Phase::Waiting(rx) => match tokio::time::timeout(self.keepalive, rx).await {
                    Err(_) => return Some(Bytes::from_static(KEEPALIVE)),
                    Ok(Ok(Ok(committed))) => {
                        self.phase = Phase::Streaming(Renderer::new(committed))
                    }
                    Ok(Ok(Err(err))) => {
                        self.phase = Phase::Finished;
                        return Some(error_before_commit(&self.generation_id, err));
                    }
                    Ok(Err(_)) => {
                        self.phase = Phase::Finished;
                        return Some(error_before_commit(
                            &self.generation_id,
                            ApiError::Internal(anyhow::anyhow!("engine task vanished")),
                        ));
                    }
                },
                Phase::Streaming(renderer) => {
                    let event = match tokio::time::timeout(
                        self.keepalive,
                        renderer.committed.events.recv(),
                    )
                    .await
                    {
                        Err(_) => return Some(Bytes::from_static(KEEPALIVE)),
                        Ok(event) => event,
                    };
                    match event {
                        Some(event) => {
                            if let Some(bytes) = renderer.render(event) {
                                return Some(bytes);
                            }
                        }
                        None => {
                            self.phase = Phase::Finished;
                            return None;
                        }
                    }
                }
            }
        }
    }
}

/// Renders engine events as `chat.completion.chunk` events.
struct Renderer {
    committed: Committed,
    /// `{"id":..,"object":..,"created":..,"model":..,"provider":..,`
    prefix: String,
    errored: bool,
}

impl Renderer {
    fn new(committed: Committed) -> Renderer {
        let head = json!({
            "id": committed.generation_id,
            "object": "chat.completion.chunk",
            "created": committed.created,
            "model": committed.model,
            "provider": committed.provider_name,
        })
        .to_string();
        let prefix = format!("{},", &head[..head.len() - 1]);
        Renderer {
            committed,
            prefix,
            errored: false,
        }
    }

    fn chunk(&self, rest: Value) -> Bytes {
        // `rest` is an object; splice its members after the shared prefix.
        let rest = rest.to_string();
        let mut out = String::with_capacity(self.prefix.len() + rest.len() + 10);
        out.push_str("data: ");
        out.push_str(&self.prefix);
        out.push_str(&rest[1..]);
        out.push_str("\n\n");
        Bytes::from(out)
    }

    fn render(&mut self, event: Event) -> Option<Bytes> {
        match event {
            Event::Delta(d) => {
                let mut delta =
                    json!({ "role": "assistant", "content": d.content.unwrap_or_default() });
                if let Some(r) = d.reasoning {
                    delta["reasoning"] = r.into();
                }
                if let Some(r) = d.refusal {
                    delta["refusal"] = r.into();
                }
                if !d.tool_calls.is_empty() {
                    delta["tool_calls"] = d
                        .tool_calls
                        .into_iter()
                        .map(|t| {
                            let mut call = json!({ "index": t.index, "function": {} });
                            if let Some(id) = t.id {
                                call["id"] = id.into();
                                call["type"] = "function".into();
                            }
                            if let Some(name) = t.name {
                                call["function"]["name"] = name.into();
                            }
                            call["function"]["arguments"] = t.arguments.unwrap_or_default().into();
                            call
                        })
                        .collect();
                }
                Some(self.chunk(json!({ "choices": [{
                    "index": 0, "delta": delta, "finish_reason": null,
                    "native_finish_reason": null, "logprobs": null,
                }]})))
            }
            Event::Finish { reason, native } => Some(self.chunk(json!({ "choices": [{
                "index": 0, "delta": { "role": "assistant", "content": "" },
                "finish_reason": none_if_empty(&reason),
                "native_finish_reason": none_if_empty(&native), "logprobs": null,
            }]}))),
            Event::Error {
                status,
                error_type,
                message,
            } => {
                self.errored = true;
                Some(self.chunk(json!({
                    "error": { "code": status, "message": message, "metadata": { "error_type": error_type } },
                    "choices": [{ "index": 0, "delta": { "content": "" },
                                  "finish_reason": "error", "native_finish_reason": null }],
                })))
            }
            // After an in-band error the stream just ends: no usage, no [DONE].
            Event::Done(_) if self.errored => None,
            Event::Done(summary) => {
                let mut bytes = self
                    .chunk(json!({ "choices": [], "usage": usage_json(&summary) }))
                    .to_vec();
                bytes.extend_from_slice(DONE);
                Some(Bytes::from(bytes))
            }
        }
    }
}

/// The error, once the 200 was already sent: an in-band error chunk.
fn error_before_commit(generation_id: &str, err: ApiError) -> Bytes {
    let envelope = err.envelope();
    let body = json!({
        "id": generation_id,
        "object": "chat.completion.chunk",
        "created": crate::ids::unix_now(),
        "error": envelope["error"],
        "choices": [{ "index": 0, "delta": { "content": "" }, "finish_reason": "error", "native_finish_reason": null }],
    });
    Bytes::from(format!("data: {body}\n\n"))
}
