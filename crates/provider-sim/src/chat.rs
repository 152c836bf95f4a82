//! `POST /v1/chat/completions`: faults first (429, context length, random
//! failures, hangs), then the planned answer as one body or an SSE stream
//! paced by the time-to-first-token and tokens-per-second knobs.

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::knobs::{Behaviour, Knobs};
use crate::openai::{self, ChatRequest, Plan};
use crate::state::{Outcome, SimState};
use crate::text;

pub async fn chat_completions(
    State(state): State<SimState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let message = format!("invalid request body: {e}");
            return openai::error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                &message,
            );
        }
    };
    let behaviour = match Knobs::from_headers(&headers) {
        Ok(knobs) => knobs.or(&state.model_knobs(&request.model)).resolve(),
        Err(message) => {
            return openai::error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                &message,
            );
        }
    };
    let seq = state.admit(&request.model);
    let hash = text::request_hash(&request.messages);
    let prompt_tokens = text::prompt_tokens(&request.messages);
    if let Some(response) = injected_fault(&behaviour, hash, seq, prompt_tokens) {
        state.update(&request.model, |s| s.failed += 1);
        return response;
    }
    state.update(&request.model, |s| s.prompt_tokens += prompt_tokens);
    let plan = Plan::new(
        &request,
        hash,
        seq,
        prompt_tokens,
        behaviour.completion_tokens,
    );
    let outcome = Outcome::new(state.clone(), request.model.clone());
    if request.stream.unwrap_or(false) {
        stream(state, plan, behaviour, outcome)
    } else {
        complete(state, plan, behaviour, outcome).await
    }
}

fn injected_fault(
    behaviour: &Behaviour,
    hash: u64,
    seq: u64,
    prompt_tokens: u64,
) -> Option<Response> {
    if let Some(secs) = behaviour.rate_limit_after_secs {
        let mut response = openai::error(
            StatusCode::TOO_MANY_REQUESTS,
            "requests",
            Some("rate_limit_exceeded"),
            &format!("Rate limit reached (simulated). Please try again in {secs}s."),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Some(response);
    }
    if let Some(limit) = behaviour.context_length
        && prompt_tokens > limit
    {
        let message = format!(
            "This model's maximum context length is {limit} tokens. However, your messages \
             resulted in {prompt_tokens} tokens. Please reduce the length of the messages."
        );
        return Some(openai::error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("context_length_exceeded"),
            &message,
        ));
    }
    let seed = hash ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    if behaviour.fail_rate > 0.0 && text::Rng::new(seed).next_f64() < behaviour.fail_rate {
        let status = behaviour.fail_status;
        let (kind, code) = match status.as_u16() {
            429 => ("requests", "rate_limit_exceeded"),
            400..=499 => ("invalid_request_error", "simulated_failure"),
            _ => ("server_error", "simulated_failure"),
        };
        let message =
            format!("The server had an error while processing your request (simulated {status}).");
        return Some(openai::error(status, kind, Some(code), &message));
    }
    None
}

async fn complete(
    state: SimState,
    plan: Plan,
    behaviour: Behaviour,
    mut outcome: Outcome,
) -> Response {
    if behaviour.hang {
        state.hang().await;
        outcome.failed();
        return openai::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            None,
            "simulator shutting down",
        );
    }
    let tokens = plan.completion_tokens();
    let pacing =
        behaviour.token_interval * u32::try_from(tokens.saturating_sub(1)).unwrap_or(u32::MAX);
    tokio::time::sleep(behaviour.ttft + pacing).await;
    let body = plan.completion().to_string();
    outcome.add_completion_tokens(tokens);
    let mut response = if behaviour.cut_after_chunks.is_some() {
        // Half a body, then an aborted connection.
        outcome.failed();
        let body = Bytes::from(body);
        let half = body.slice(..body.len() / 2);
        let parts = futures_util::stream::iter([Ok(half)]).chain(futures_util::stream::once(cut()));
        let mut response = Body::from_stream(parts).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    } else {
        outcome.succeeded();
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    };
    set_request_id(&mut response, &plan.id);
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

fn set_request_id(response: &mut Response, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert("x-request-id", value);
    }
}

/// One SSE event still to send, with the delay before it.
struct Pending {
    delay: Duration,
    data: Bytes,
    tokens: u64,
}

struct StreamState {
    state: SimState,
    pending: VecDeque<Pending>,
    sent: u32,
    behaviour: Behaviour,
    outcome: Outcome,
    done: bool,
}

fn stream(state: SimState, plan: Plan, behaviour: Behaviour, outcome: Outcome) -> Response {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut first_token_seen = false;
    for (i, (chunk, tokens)) in plan.chunks().into_iter().enumerate() {
        // The first chunk waits for the TTFT; the first token follows it at
        // once, later tokens are paced.
        let delay = if i == 0 {
            behaviour.ttft
        } else if tokens > 0 && !first_token_seen {
            Duration::ZERO
        } else if tokens > 0 {
            behaviour.token_interval
        } else {
            Duration::ZERO
        };
        first_token_seen |= tokens > 0;
        pending.push_back(Pending {
            delay,
            data: Bytes::from(format!("data: {chunk}\n\n")),
            tokens,
        });
    }
    pending.push_back(Pending {
        delay: Duration::ZERO,
        data: Bytes::from_static(b"data: [DONE]\n\n"),
        tokens: 0,
    });
    let initial = StreamState {
        state,
        pending,
        sent: 0,
        behaviour,
        outcome,
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
        st.outcome.add_completion_tokens(next.tokens);
        Some((Ok(next.data), st))
    });
    let mut response = Body::from_stream(events).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    set_request_id(&mut response, &plan.id);
    response
}
