//! One upstream call driven to its end: send, classify the answer, turn it
//! into normalized events, enforce the first-token, idle and total timeouts.
//! Dropping the future drops the HTTP request, which is how cancellation works.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use switchyard_proto::provider::v1::generate_response::Event;
use tokio::time::{Instant, timeout_at};
use tracing::Instrument;
use tracing::field::Empty;

use crate::call::UpstreamCall;
use crate::credentials::Credentials;
use crate::deadlines::{Deadlines, Timeouts};
use crate::emit::{Emitter, EventSender, Piece, Probe, Stop, emit};
use crate::errors::UpstreamFailure;
use crate::metrics::{AdapterMetrics, Outcome};
use crate::sse::SseParser;
use crate::wire::Decoder;

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

impl Upstream {
    /// Demo mode: a provider that needs a credential nobody configured is
    /// answered by the simulator. The configured URL is the simulator's
    /// OpenAI base, so every format is rewritten to OpenAI.
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

    /// The call, as a task's future: sends events to `tx`; ends early once the
    /// receiver is gone, dropping the upstream request with it. The call
    /// gets a client span, a child of the caller's; only the host goes into
    /// it, since a base URL may carry a key in its query.
    ///
    /// The span is opened here, by the caller (inside its server span), and
    /// is the only one the returned future enters at each poll: a task
    /// carrying the server span as well would enter and leave both for every
    /// chunk of a stream.
    pub fn run(
        self: Arc<Self>,
        call: UpstreamCall,
        tx: EventSender,
    ) -> impl Future<Output = ()> + Send + 'static {
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
        async move { self.run_traced(call, tx, &provider).await }.instrument(span)
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
            request = call.wire.authorize(request, secret.expose_secret());
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
            let parsed = call.wire.http_error(status, &body);
            return Err(
                UpstreamFailure::from_http(status, &headers, parsed, SystemTime::now()).into(),
            );
        }
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut emitter = Emitter::new(tx, probe, call.hide_reasoning, call.prompt_estimate);
        let decoder = call.wire.decoder(status);
        if is_sse {
            stream(response, status, &deadlines, decoder, &mut emitter).await?;
        } else {
            whole(response, status, &deadlines, decoder, &mut emitter).await?;
        }
        emitter.close().await
    }
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

/// The upstream's request id header: OpenAI's `x-request-id`, Anthropic's
/// `request-id`.
fn upstream_id(response: &reqwest::Response) -> String {
    ["x-request-id", "request-id"]
        .iter()
        .find_map(|name| response.headers().get(*name)?.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A non-streaming answer: one JSON body, replayed as the same event
/// sequence a stream produces.
async fn whole(
    response: reqwest::Response,
    status: u16,
    deadlines: &Deadlines,
    mut decoder: Decoder,
    emitter: &mut Emitter<'_>,
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
    let mut pieces = Vec::new();
    decoder.whole(&bytes, &mut pieces)?;
    let upstream_id = pieces
        .iter()
        .find_map(|p| match p {
            Piece::Id(id) if !id.is_empty() => Some(id.clone()),
            _ => None,
        })
        .unwrap_or(header_id);
    emitter.started(upstream_id, status).await?;
    for piece in pieces {
        emitter.piece(piece).await?;
    }
    Ok(())
}

async fn stream(
    response: reqwest::Response,
    status: u16,
    deadlines: &Deadlines,
    mut decoder: Decoder,
    emitter: &mut Emitter<'_>,
) -> Result<(), Stop> {
    // `Started` goes out with the first piece rather than on its own: the
    // router waits for content to commit, so a lone `Started` only woke it
    // for nothing (one write and one wake-up fewer per stream). A stream
    // that ends or fails before any piece still announces it first.
    let mut started = Some(upstream_id(&response));
    let mut body = response.bytes_stream();
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut pieces = Vec::new();
    let malformed = |_| UpstreamFailure::bad_response("upstream sent a malformed event stream");
    let mut ended = false;
    let relayed = async {
        while !emitter.done && !ended {
            let (deadline, limit) = deadlines.next_chunk(emitter.first_token_seen);
            let next = timeout_at(deadline, body.next())
                .await
                .map_err(|_| deadlines.failure(limit))?;
            match next {
                Some(Ok(bytes)) => parser.push(&bytes, &mut events).map_err(malformed)?,
                // A connection dropped after the finish lost nothing that matters.
                Some(Err(_)) if emitter.finished => break,
                Some(Err(_)) => {
                    return Err(UpstreamFailure::bad_response(
                        "upstream stream was cut before it finished",
                    )
                    .into());
                }
                None => {
                    parser.finish(&mut events).map_err(malformed)?;
                    ended = true;
                }
            }
            for event in events.drain(..) {
                decoder.event(&event, &mut pieces)?;
                for piece in pieces.drain(..) {
                    if let Some(id) = started.take() {
                        emitter.started(id, status).await?;
                    }
                    emitter.piece(piece).await?;
                }
                if emitter.done {
                    break;
                }
            }
        }
        if !emitter.finished && !emitter.done {
            return Err(
                UpstreamFailure::bad_response("upstream stream ended before it finished").into(),
            );
        }
        Ok(())
    }
    .await;
    match started {
        Some(id) => {
            let announced = emitter.started(id, status).await;
            relayed.and(announced)
        }
        None => relayed,
    }
}
