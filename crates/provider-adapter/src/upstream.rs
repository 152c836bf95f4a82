//! One upstream call driven to its end: send, classify the answer, turn it
//! into normalized events, enforce the first-token, idle and total timeouts.
//! Dropping the future drops the HTTP request, which is how cancellation works.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use switchyard_proto::common::v1::FinishReason;
use switchyard_proto::provider::v1::generate_response::Event;
use switchyard_proto::provider::v1::{Finish, GenerateResponse, Started};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};
use tonic::Status;
use tracing::Instrument;
use tracing::field::Empty;

use crate::call::UpstreamCall;
use crate::credentials::Credentials;
use crate::deadlines::{Deadlines, Timeouts};
use crate::errors::UpstreamFailure;
use crate::metrics::{AdapterMetrics, Outcome};
use crate::openai::response::Body;
use crate::sse::{SseEvent, SseParser};

pub type EventSender = mpsc::Sender<Result<GenerateResponse, Status>>;

/// Largest whole (non-streaming) response body accepted.
const MAX_BODY_BYTES: usize = switchyard_kit::grpc::MAX_MESSAGE_BYTES;
/// How much of an error body is read to classify it.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
const ERROR_BODY_WAIT: Duration = Duration::from_secs(10);

pub struct Upstream {
    pub client: reqwest::Client,
    pub credentials: Credentials,
    /// See `Config::simulate_without_credentials`.
    pub simulator: Option<String>,
    pub timeouts: Timeouts,
    pub metrics: AdapterMetrics,
}

/// Times one call for the metrics: from sending to first content.
struct Probe<'a> {
    metrics: &'a AdapterMetrics,
    provider: &'a str,
    started: Instant,
    first_token_seen: AtomicBool,
}

impl Probe<'_> {
    fn first_token(&self) {
        if !self.first_token_seen.swap(true, Ordering::Relaxed) {
            self.metrics
                .first_token(self.provider, self.started.elapsed());
        }
    }
}

enum Stop {
    Failed(UpstreamFailure),
    ClientGone,
}

impl From<UpstreamFailure> for Stop {
    fn from(failure: UpstreamFailure) -> Stop {
        Stop::Failed(failure)
    }
}

impl Upstream {
    /// Demo mode: a provider that needs a credential nobody configured is
    /// answered by the simulator, in the OpenAI wire format it speaks.
    pub fn simulate_if_unconfigured(
        &self,
        request: &mut switchyard_proto::provider::v1::GenerateRequest,
    ) {
        let (Some(simulator), Some(target)) = (&self.simulator, request.target.as_mut()) else {
            return;
        };
        if target.credential_ref.is_empty()
            || self.credentials.resolve(&target.credential_ref).is_some()
        {
            return;
        }
        target.base_url = simulator.clone();
        target.wire_format = switchyard_proto::provider::v1::WireFormat::OpenaiChat as i32;
        target.credential_ref.clear();
    }

    /// Runs the call, sending events to `tx`; returns early once the
    /// receiver is gone, dropping the upstream request with it. The call
    /// gets a client span, a child of the caller's; only the host goes into
    /// it, since a base URL may carry a key in its query.
    pub async fn run(&self, call: UpstreamCall, tx: EventSender) {
        let provider = self.metrics.provider(&call.provider_slug);
        let span = tracing::info_span!(
            "upstream.generate",
            otel.kind = "client",
            otel.status_code = Empty,
            provider = %provider,
            http.request.method = "POST",
            server.address = call.url.host_str().unwrap_or_default(),
            http.response.status_code = Empty,
            error.type = Empty,
        );
        self.run_traced(call, tx, &provider).instrument(span).await
    }

    async fn run_traced(&self, call: UpstreamCall, tx: EventSender, provider: &str) {
        let credential = self.credentials.resolve(&call.credential_ref);
        let probe = Probe {
            metrics: &self.metrics,
            provider,
            started: Instant::now(),
            first_token_seen: AtomicBool::new(false),
        };
        let result = tokio::select! {
            _ = tx.closed() => Err(Stop::ClientGone),
            result = self.drive(&call, credential.as_ref(), &tx, &probe) => result,
        };
        let outcome = match &result {
            Ok(()) => Outcome::Ok,
            Err(Stop::ClientGone) => Outcome::Cancelled,
            Err(Stop::Failed(failure)) => Outcome::Failed(failure.kind),
        };
        self.metrics
            .finished(provider, outcome, probe.started.elapsed());
        if let Outcome::Failed(_) = outcome {
            let span = tracing::Span::current();
            span.record("error.type", outcome.as_str());
            span.record("otel.status_code", "ERROR");
        }
        match result {
            Ok(()) => {}
            Err(Stop::ClientGone) => {
                tracing::debug!(provider = %call.provider_slug, "client went away; upstream call dropped");
            }
            Err(Stop::Failed(mut failure)) => {
                if let Some(secret) = &credential {
                    failure.redact(secret.expose_secret());
                }
                tracing::info!(
                    provider = %call.provider_slug,
                    kind = failure.kind.as_str_name(),
                    status = failure.status,
                    "upstream call failed"
                );
                let _ = emit(&tx, Event::Error(failure.into_proto())).await;
            }
        }
    }

    async fn drive(
        &self,
        call: &UpstreamCall,
        credential: Option<&SecretString>,
        tx: &EventSender,
        probe: &Probe<'_>,
    ) -> Result<(), Stop> {
        let deadlines = Deadlines::new(&self.timeouts, call);
        let accept = if call.stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut request = self
            .client
            .post(call.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
            .body(call.body.clone());
        if let Some(secret) = credential {
            request = request.bearer_auth(secret.expose_secret());
        }
        let mut trace_headers = reqwest::header::HeaderMap::new();
        switchyard_kit::trace_context::inject(&mut trace_headers);
        request = request.headers(trace_headers);
        // Last, so per-request headers (e.g. a BYOK authorization) win.
        request = request.headers(call.headers.clone());

        let (deadline, which) = deadlines.before_first_token();
        let response = match timeout_at(deadline, request.send()).await {
            Err(_) => return Err(deadlines.failure(which).into()),
            Ok(Err(err)) => return Err(UpstreamFailure::transport(&err).into()),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        tracing::Span::current().record("http.response.status_code", status);
        if !response.status().is_success() {
            let headers = response.headers().clone();
            let wait = (Instant::now() + ERROR_BODY_WAIT).min(deadlines.total);
            let body = read_body(response, MAX_ERROR_BODY_BYTES, wait)
                .await
                .unwrap_or_default();
            return Err(
                UpstreamFailure::from_http(status, &headers, &body, SystemTime::now()).into(),
            );
        }
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if is_sse {
            stream(response, status, &deadlines, tx, probe).await
        } else {
            whole(response, status, &deadlines, tx, probe).await
        }
    }
}

async fn emit(tx: &EventSender, event: Event) -> Result<(), Stop> {
    tx.send(Ok(GenerateResponse { event: Some(event) }))
        .await
        .map_err(|_| Stop::ClientGone)
}

enum ReadError {
    Timeout,
    Transport(reqwest::Error),
    TooLarge,
}

async fn read_body(
    response: reqwest::Response,
    limit: usize,
    deadline: Instant,
) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    loop {
        match timeout_at(deadline, chunks.next()).await {
            Err(_) => return Err(ReadError::Timeout),
            Ok(None) => return Ok(body),
            Ok(Some(Err(err))) => return Err(ReadError::Transport(err)),
            Ok(Some(Ok(bytes))) => {
                if body.len() + bytes.len() > limit {
                    return Err(ReadError::TooLarge);
                }
                body.extend_from_slice(&bytes);
            }
        }
    }
}

fn upstream_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A non-streaming answer: one JSON body, replayed as the same event
/// sequence a stream produces.
async fn whole(
    response: reqwest::Response,
    status: u16,
    deadlines: &Deadlines,
    tx: &EventSender,
    probe: &Probe<'_>,
) -> Result<(), Stop> {
    let header_id = upstream_id(&response);
    let (deadline, limit) = deadlines.before_first_token();
    let bytes = read_body(response, MAX_BODY_BYTES, deadline)
        .await
        .map_err(|err| match err {
            ReadError::Timeout => deadlines.failure(limit),
            ReadError::Transport(err) => UpstreamFailure::transport(&err),
            ReadError::TooLarge => {
                UpstreamFailure::bad_response("upstream response body too large")
            }
        })?;
    let body: Body = serde_json::from_slice(&bytes)
        .map_err(|_| UpstreamFailure::bad_response("upstream sent a malformed JSON body"))?;
    if let Some(error) = &body.error {
        return Err(UpstreamFailure::in_band(error, status).into());
    }
    let upstream_id = body
        .id
        .clone()
        .filter(|id| !id.is_empty())
        .unwrap_or(header_id);
    let parsed = body.into_parsed();
    if parsed.delta.is_none() && parsed.finish.is_none() {
        return Err(UpstreamFailure::bad_response("upstream answer has no choices").into());
    }
    emit(
        tx,
        Event::Started(Started {
            upstream_id,
            upstream_status: u32::from(status),
        }),
    )
    .await?;
    if let Some(delta) = parsed.delta {
        probe.first_token();
        emit(tx, Event::Delta(delta)).await?;
    }
    emit(
        tx,
        Event::Finish(parsed.finish.unwrap_or_else(unreported_finish)),
    )
    .await?;
    if let Some(usage) = parsed.usage {
        emit(tx, Event::Usage(usage)).await?;
    }
    Ok(())
}

/// Some hosts end cleanly without a finish reason.
fn unreported_finish() -> Finish {
    Finish {
        reason: FinishReason::Stop as i32,
        native_reason: String::new(),
    }
}

#[derive(Default)]
struct StreamState {
    first_token_seen: bool,
    finished: bool,
    done: bool,
    usage: Option<switchyard_proto::common::v1::TokenUsage>,
}

async fn stream(
    response: reqwest::Response,
    status: u16,
    deadlines: &Deadlines,
    tx: &EventSender,
    probe: &Probe<'_>,
) -> Result<(), Stop> {
    let started = Started {
        upstream_id: upstream_id(&response),
        upstream_status: u32::from(status),
    };
    emit(tx, Event::Started(started)).await?;
    let mut body = response.bytes_stream();
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut state = StreamState::default();
    let malformed = |_| UpstreamFailure::bad_response("upstream sent a malformed event stream");
    while !state.done {
        let (deadline, limit) = deadlines.next_chunk(state.first_token_seen);
        let next = timeout_at(deadline, body.next())
            .await
            .map_err(|_| deadlines.failure(limit))?;
        match next {
            Some(Ok(bytes)) => parser.push(&bytes, &mut events).map_err(malformed)?,
            Some(Err(_)) if state.finished => break,
            Some(Err(_)) => {
                return Err(UpstreamFailure::bad_response(
                    "upstream stream was cut before it finished",
                )
                .into());
            }
            None => {
                parser.finish(&mut events).map_err(malformed)?;
                for event in events.drain(..) {
                    state.handle(event, status, tx, probe).await?;
                }
                break;
            }
        }
        for event in events.drain(..) {
            state.handle(event, status, tx, probe).await?;
            if state.done {
                break;
            }
        }
    }
    if !state.finished {
        if !state.done {
            return Err(
                UpstreamFailure::bad_response("upstream stream ended before it finished").into(),
            );
        }
        emit(tx, Event::Finish(unreported_finish())).await?;
    }
    if let Some(usage) = state.usage {
        emit(tx, Event::Usage(usage)).await?;
    }
    Ok(())
}

impl StreamState {
    async fn handle(
        &mut self,
        event: SseEvent,
        status: u16,
        tx: &EventSender,
        probe: &Probe<'_>,
    ) -> Result<(), Stop> {
        let data = event.data.trim();
        if data.is_empty() || self.done {
            return Ok(());
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: Body = serde_json::from_str(data)
            .map_err(|_| UpstreamFailure::bad_response("upstream sent a malformed stream chunk"))?;
        if let Some(error) = &chunk.error {
            return Err(UpstreamFailure::in_band(error, status).into());
        }
        let parsed = chunk.into_parsed();
        if let Some(delta) = parsed.delta {
            self.first_token_seen = true;
            probe.first_token();
            emit(tx, Event::Delta(delta)).await?;
        }
        if let Some(finish) = parsed.finish
            && !self.finished
        {
            self.finished = true;
            emit(tx, Event::Finish(finish)).await?;
        }
        if parsed.usage.is_some() {
            self.usage = parsed.usage;
        }
        Ok(())
    }
}
