//! The pipeline every wire format shares: knobs, admission and stats,
//! injected faults (429, context length, random failures), then the planned
//! answer as one body or an event stream paced by the time-to-first-token and
//! tokens-per-second knobs, with hangs and cuts. Formats only render.

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

use crate::knobs::{Behaviour, Knobs};
use crate::plan::{Plan, Prompt};
use crate::state::{Outcome, SimState};
use crate::text;

/// Everything the simulator answers with an error, before each format puts
/// it in its own shape.
#[derive(Debug)]
pub enum Fault {
    /// Unreadable body, bad knob header or a request the API would refuse.
    BadRequest(String),
    RateLimited {
        retry_after_secs: u64,
    },
    ContextTooLong {
        limit: u64,
        prompt_tokens: u64,
    },
    /// The `fail_rate` knob fired with this status.
    Failed(StatusCode),
    /// A hanging request released by shutdown.
    ShuttingDown,
}

/// One streamed event with the completion tokens it carries.
pub struct Event {
    pub data: Bytes,
    pub tokens: u64,
}

impl Event {
    pub fn new(data: impl Into<Bytes>, tokens: u64) -> Event {
        Event {
            data: data.into(),
            tokens,
        }
    }
}

/// One wire format's rendering of the shared plan.
pub trait Wire: Send + 'static {
    fn error(&self, fault: &Fault) -> Response;
    /// The non-streaming body.
    fn body(&self, plan: &Plan) -> Value;
    /// The whole stream, in order, terminator included.
    fn events(&self, plan: &Plan) -> Vec<Event>;
    /// What a stream cut with `cut_with_error` ends with, after `sent`
    /// events.
    fn stream_error(&self, sent: u32) -> Bytes;
    fn stream_content_type(&self) -> &'static str {
        "text/event-stream"
    }
    /// Adds the format's request-id header, if it has one.
    fn decorate(&self, _plan: &Plan, _response: &mut Response) {}
}

/// Answers one parsed request in `wire`'s format.
pub async fn serve(
    state: SimState,
    headers: &HeaderMap,
    prompt: Prompt,
    wire: impl Wire,
) -> Response {
    let behaviour = match Knobs::from_headers(headers) {
        Ok(knobs) => knobs.or(&state.model_knobs(&prompt.model)).resolve(),
        Err(message) => return wire.error(&Fault::BadRequest(message)),
    };
    let seq = state.admit(&prompt.model);
    let hash = text::request_hash(&prompt.messages);
    let prompt_tokens = text::prompt_tokens(&prompt.messages);
    if let Some(fault) = injected_fault(&behaviour, hash, seq, prompt_tokens) {
        state.update(&prompt.model, |s| s.failed += 1);
        return wire.error(&fault);
    }
    state.update(&prompt.model, |s| s.prompt_tokens += prompt_tokens);
    let plan = Plan::new(&prompt, hash, seq, prompt_tokens, &behaviour);
    let outcome = Outcome::new(state.clone(), prompt.model.clone());
    if prompt.stream {
        stream(state, plan, behaviour, outcome, wire)
    } else {
        complete(state, plan, behaviour, outcome, wire).await
    }
}

fn injected_fault(behaviour: &Behaviour, hash: u64, seq: u64, prompt_tokens: u64) -> Option<Fault> {
    if let Some(secs) = behaviour.rate_limit_after_secs {
        return Some(Fault::RateLimited {
            retry_after_secs: secs,
        });
    }
    if let Some(limit) = behaviour.context_length
        && prompt_tokens > limit
    {
        return Some(Fault::ContextTooLong {
            limit,
            prompt_tokens,
        });
    }
    let seed = hash ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    if behaviour.fail_rate > 0.0 && text::Rng::new(seed).next_f64() < behaviour.fail_rate {
        return Some(Fault::Failed(behaviour.fail_status));
    }
    None
}

async fn complete(
    state: SimState,
    plan: Plan,
    behaviour: Behaviour,
    mut outcome: Outcome,
    wire: impl Wire,
) -> Response {
    if behaviour.hang {
        state.hang().await;
        outcome.failed();
        return wire.error(&Fault::ShuttingDown);
    }
    let tokens = plan.completion_tokens();
    let pacing =
        behaviour.token_interval * u32::try_from(tokens.saturating_sub(1)).unwrap_or(u32::MAX);
    let delay = behaviour.ttft + pacing;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let body = wire.body(&plan).to_string();
    outcome.add_completion_tokens(tokens);
    let mut response = if behaviour.cut_after_chunks.is_some() {
        // Half a body, then an aborted connection.
        outcome.failed();
        let body = Bytes::from(body);
        let half = body.slice(..body.len() / 2);
        let parts = futures_util::stream::iter([Ok(half)]).chain(futures_util::stream::once(cut()));
        Body::from_stream(parts).into_response()
    } else {
        outcome.succeeded();
        Body::from(body).into_response()
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    wire.decorate(&plan, &mut response);
    response
}

/// Aborts the response. Yields first so hyper flushes what was already
/// sent: a cut drops the connection, not the bytes before it.
async fn cut() -> Result<Bytes, std::io::Error> {
    tokio::task::yield_now().await;
    Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "simulated cut",
    ))
}

/// One event still to send, with the delay before it.
struct Pending {
    delay: Duration,
    event: Event,
}

struct StreamState<W> {
    state: SimState,
    pending: VecDeque<Pending>,
    sent: u32,
    behaviour: Behaviour,
    outcome: Outcome,
    wire: W,
    done: bool,
}

fn stream(
    state: SimState,
    plan: Plan,
    behaviour: Behaviour,
    outcome: Outcome,
    wire: impl Wire,
) -> Response {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut first_token_seen = false;
    for (i, event) in wire.events(&plan).into_iter().enumerate() {
        // The first event waits for the TTFT; the first token follows it at
        // once, later tokens are paced.
        let delay = if i == 0 {
            behaviour.ttft
        } else if event.tokens > 0 && first_token_seen {
            behaviour.token_interval
        } else {
            Duration::ZERO
        };
        first_token_seen |= event.tokens > 0;
        pending.push_back(Pending { delay, event });
    }
    let content_type = wire.stream_content_type();
    let mut response = Body::empty().into_response();
    wire.decorate(&plan, &mut response);
    let initial = StreamState {
        state,
        pending,
        sent: 0,
        behaviour,
        outcome,
        wire,
        done: false,
    };
    let events = futures_util::stream::unfold(initial, |mut st| async move {
        if st.done {
            return None;
        }
        if st.behaviour.hang {
            st.state.hang().await;
            st.outcome.failed();
            return None;
        }
        if st.behaviour.cut_after_chunks.is_some_and(|n| st.sent >= n) {
            st.done = true;
            st.outcome.failed();
            if st.behaviour.cut_with_error {
                let error = st.wire.stream_error(st.sent);
                return Some((Ok(error), st));
            }
            return Some((cut().await, st));
        }
        let next = st.pending.pop_front()?;
        if !next.delay.is_zero() {
            tokio::time::sleep(next.delay).await;
        }
        if st.pending.is_empty() {
            st.outcome.succeeded();
        }
        st.sent += 1;
        st.outcome.add_completion_tokens(next.event.tokens);
        Some((Ok(next.event.data), st))
    });
    *response.body_mut() = Body::from_stream(events);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Sets a request-id style header, skipping values a header cannot hold.
pub fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}
