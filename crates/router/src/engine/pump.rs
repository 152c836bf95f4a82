//! After commit: forward the endpoint's events to the client-facing layer,
//! notice a client that went away (and cancel upstream at once by dropping
//! the stream), then settle the books exactly once: tokens, cost, stats and
//! one usage event, whatever happened to the client.

use std::sync::Arc;
use std::time::Instant;

use switchyard_proto::common::v1::{FinishReason, TokenUsage};
use switchyard_proto::metering::v1::{ProviderAttempt, UsageEvent};
use switchyard_proto::provider::v1::UpstreamErrorKind;
use switchyard_proto::provider::v1::generate_response::Event as Upstream;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use super::{Event, Job, Opened, Summary};
use crate::catalog_view::EndpointRoute;
use crate::credits::Reservation;
use crate::error::{AttemptFailure, upstream_error_type, upstream_kind};
use crate::metrics::RouterMetrics;
use crate::routing::health::{Health, Signal, State};
use crate::routing::sticky::{Sticky, StickyKey};
use crate::stats::{Outcome, Stats};
use crate::usage::UsageSink;

pub(super) struct Pump {
    pub job: Job,
    pub endpoint: Arc<EndpointRoute>,
    pub served_model: String,
    pub health: Arc<Health>,
    pub sticky: Option<(Arc<Sticky>, StickyKey)>,
    pub metrics: RouterMetrics,
    pub opened: Opened,
    pub attempts: Vec<AttemptFailure>,
    pub tx: mpsc::Sender<Event>,
    pub stats: Stats,
    pub usage: UsageSink,
    pub reservation: Option<Reservation>,
}

#[derive(Default)]
struct Tally {
    first_token_at: Option<Instant>,
    completion_chars: usize,
    usage: Option<TokenUsage>,
    finish: Option<(FinishReason, String)>,
    failure: Option<UpstreamErrorKind>,
    cancelled: bool,
}

impl Tally {
    fn observe(&mut self, event: &Upstream) {
        match event {
            Upstream::Delta(d) => {
                let chars = d.content.as_deref().map_or(0, str::len)
                    + d.reasoning.as_deref().map_or(0, str::len)
                    + d.tool_calls
                        .iter()
                        .map(|t| {
                            t.arguments.as_deref().map_or(0, str::len)
                                + t.name.as_deref().map_or(0, str::len)
                        })
                        .sum::<usize>();
                if chars > 0 && self.first_token_at.is_none() {
                    self.first_token_at = Some(Instant::now());
                }
                self.completion_chars += chars;
            }
            Upstream::Finish(f) => {
                let reason = FinishReason::try_from(f.reason).unwrap_or(FinishReason::Unspecified);
                self.finish = Some((reason, f.native_reason.clone()));
            }
            Upstream::Usage(u) => self.usage = Some(*u),
            Upstream::Error(e) => {
                self.failure = Some(
                    UpstreamErrorKind::try_from(e.kind).unwrap_or(UpstreamErrorKind::BadResponse),
                )
            }
            Upstream::Started(_) => {}
        }
    }
}

/// Everything `settle` needs once the upstream stream is gone.
struct Books {
    metrics: RouterMetrics,
    job: Job,
    endpoint: Arc<EndpointRoute>,
    served_model: String,
    health: Arc<Health>,
    sticky: Option<(Arc<Sticky>, StickyKey)>,
    dispatched_at: Instant,
    upstream_id: String,
    attempts: Vec<AttemptFailure>,
    tx: mpsc::Sender<Event>,
    stats: Stats,
    usage: UsageSink,
    reservation: Option<Reservation>,
}

pub(super) async fn run(p: Pump) {
    let Pump {
        metrics,
        job,
        endpoint,
        served_model,
        health,
        sticky,
        opened,
        attempts,
        tx,
        stats,
        usage,
        reservation,
    } = p;
    let Opened {
        mut stream,
        buffered,
        dispatched_at,
        upstream_id,
    } = opened;
    let books = Books {
        metrics,
        job,
        endpoint,
        served_model,
        health,
        sticky,
        dispatched_at,
        upstream_id,
        attempts,
        tx,
        stats,
        usage,
        reservation,
    };
    let mut tally = Tally::default();
    for event in buffered {
        tally.observe(&event);
        if !forward(&books.tx, event).await {
            tally.cancelled = true;
            break;
        }
    }
    while !tally.cancelled && tally.failure.is_none() {
        let next = tokio::select! {
            _ = books.tx.closed() => { tally.cancelled = true; break; }
            next = stream.next() => next,
        };
        match next {
            Some(Ok(msg)) => {
                let Some(event) = msg.event else { continue };
                tally.observe(&event);
                if !forward(&books.tx, event).await {
                    tally.cancelled = true;
                }
            }
            Some(Err(status)) => {
                tracing::warn!(%status, "provider-adapter stream broke after commit");
                tally.failure = Some(UpstreamErrorKind::BadResponse);
                let _ = books
                    .tx
                    .send(in_band_error(
                        UpstreamErrorKind::BadResponse,
                        "Provider stream failed",
                    ))
                    .await;
            }
            None => break,
        }
    }
    // Dropping the upstream stream cancels the adapter's call (and with it
    // the provider's HTTP request) right away.
    let ended_at = Instant::now();
    drop(stream);
    if tally.finish.is_none() && tally.failure.is_none() && !tally.cancelled {
        tally.failure = Some(UpstreamErrorKind::BadResponse);
        let _ = books
            .tx
            .send(in_band_error(
                UpstreamErrorKind::BadResponse,
                "Provider ended the stream early",
            ))
            .await;
    }
    settle(books, tally, ended_at).await;
}

/// Sends one event on; false when the client has gone.
async fn forward(tx: &mpsc::Sender<Event>, event: Upstream) -> bool {
    let out = match event {
        Upstream::Delta(d) => Event::Delta(d),
        Upstream::Finish(f) => Event::Finish {
            reason: finish_name(
                FinishReason::try_from(f.reason).unwrap_or(FinishReason::Unspecified),
            )
            .to_owned(),
            native: f.native_reason,
        },
        Upstream::Error(e) => {
            let kind =
                UpstreamErrorKind::try_from(e.kind).unwrap_or(UpstreamErrorKind::BadResponse);
            in_band_error(kind, &e.message)
        }
        Upstream::Usage(_) | Upstream::Started(_) => return !tx.is_closed(),
    };
    tx.send(out).await.is_ok()
}

fn in_band_error(kind: UpstreamErrorKind, message: &str) -> Event {
    Event::Error {
        status: upstream_kind(kind).http_status(),
        error_type: upstream_error_type(kind),
        message: message.to_owned(),
    }
}

pub fn finish_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Error => "error",
        FinishReason::Unspecified => "",
    }
}

async fn settle(books: Books, tally: Tally, ended_at: Instant) {
    let Books {
        metrics,
        job,
        endpoint,
        served_model,
        health,
        sticky,
        dispatched_at,
        upstream_id,
        attempts,
        tx,
        stats,
        usage,
        reservation,
    } = books;
    let tokens = tally.usage.unwrap_or_else(|| TokenUsage {
        prompt_tokens: crate::routing::needs::estimate_prompt_tokens(&job.request),
        completion_tokens: tally.completion_chars.div_ceil(4) as u64,
        estimated: true,
        ..Default::default()
    });
    let (finish_reason, native_finish_reason) = match (&tally.finish, tally.failure) {
        (_, Some(_)) => ("error".to_owned(), String::new()),
        (Some((reason, native)), None) => (finish_name(*reason).to_owned(), native.clone()),
        (None, None) => (String::new(), String::new()),
    };
    let charge = endpoint.rates.charge(
        tokens.prompt_tokens,
        tokens.completion_tokens,
        &finish_reason,
    );
    let summary = Summary {
        usage: tokens,
        cost_nanos: charge.total,
        prompt_cost_nanos: charge.prompt,
        completion_cost_nanos: charge.completion,
        finish_reason: finish_reason.clone(),
        native_finish_reason: native_finish_reason.clone(),
    };

    let ttft = tally
        .first_token_at
        .map(|t| t.duration_since(dispatched_at));
    let generation_time = ended_at.duration_since(dispatched_at);
    let streaming_secs = tally
        .first_token_at
        .map(|t| ended_at.duration_since(t).as_secs_f64())
        .filter(|s| *s > 0.0);
    let tps = streaming_secs.map(|s| tokens.completion_tokens as f64 / s);
    let outcome = match tally.failure {
        None => Outcome::Success,
        Some(UpstreamErrorKind::Timeout) => Outcome::Timeout,
        Some(_) => Outcome::Failure,
    };
    stats.record(&endpoint.id, outcome, ttft, tps);
    let now = Instant::now();
    let signal = match tally.failure {
        Some(_) => Signal::Failure,
        None => Signal::Success,
    };
    health.record(&endpoint.id, signal, now);
    metrics.breaker(&endpoint.id, health.state(&endpoint.id) == State::Open);
    metrics.completion(
        job.stream,
        if tally.cancelled {
            "cancelled"
        } else {
            &finish_reason
        },
    );
    metrics.timings(
        job.stream,
        tally
            .first_token_at
            .map(|t| t.duration_since(job.received_at)),
        ended_at.duration_since(job.received_at),
    );
    metrics.cost(charge.total);
    if signal == Signal::Success
        && let Some((sticky, key)) = sticky
    {
        sticky.succeeded(key, &endpoint, tokens.cached_tokens > 0, now);
    }

    let lease_id = reservation
        .as_ref()
        .map(|r| r.lease_id().to_owned())
        .unwrap_or_default();
    if let Some(reservation) = reservation {
        reservation.settle(charge.total);
    }
    let attribution = job.attribution;
    usage.submit(UsageEvent {
        generation_id: job.generation_id,
        account_id: attribution.account_id,
        key_hash: attribution.key_hash,
        model: served_model,
        endpoint_id: endpoint.id.clone(),
        provider_slug: endpoint.provider_slug.clone(),
        provider_name: endpoint.provider_name.clone(),
        upstream_id,
        created_at_ms: job.created * 1000,
        prompt_tokens: tokens.prompt_tokens,
        completion_tokens: tokens.completion_tokens,
        reasoning_tokens: tokens.reasoning_tokens,
        cached_tokens: tokens.cached_tokens,
        cache_write_tokens: tokens.cache_write_tokens,
        usage_estimated: tokens.estimated,
        latency_ms: ended_at.duration_since(job.received_at).as_millis() as u64,
        ttft_ms: tally
            .first_token_at
            .map(|t| t.duration_since(job.received_at).as_millis() as u64),
        generation_time_ms: generation_time.as_millis() as u64,
        streamed: job.stream,
        cancelled: tally.cancelled,
        finish_reason,
        native_finish_reason,
        http_referer: attribution.http_referer,
        app_title: attribution.app_title,
        user_agent: attribution.user_agent,
        pricing: Some(endpoint.pricing.clone()),
        attempts: attempts
            .iter()
            .map(|a| ProviderAttempt {
                provider_name: a.provider.clone(),
                endpoint_id: a.endpoint_id.clone(),
                status: a.status as u32,
                latency_ms: 0,
            })
            .collect(),
        api_type: job.api_type.to_owned(),
        session_id: attribution.session_id,
        external_user: job.request.user.clone(),
        lease_id,
        request_id: String::new(),
        origin: attribution.origin,
    });
    // Last, once usage is handed over (so a shutdown right after the
    // client's final byte cannot race it); sent after an in-band error too,
    // since a JSON body still reports usage.
    if !tally.cancelled {
        let _ = tx.send(Event::Done(summary)).await;
    }
}
