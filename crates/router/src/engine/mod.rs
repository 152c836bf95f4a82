//! The request engine shared by the HTTP and gRPC APIs: resolve the model(s)
//! to candidate endpoints, try them in order until one starts producing, then
//! hand the rest of the stream to a pump task that also does the bookkeeping
//! (stats, usage) whether the client stays or leaves.
//!
//! Fallback is allowed until the first content (or tool-call, or finish)
//! event; after that the stream is committed to its endpoint.

mod adapter;
mod pump;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use switchyard_kit::Nanos;
use switchyard_proto::common::v1::{ChatRequest, TokenUsage};
use switchyard_proto::provider::v1::generate_response::Event as Upstream;
use switchyard_proto::provider::v1::{Delta, GenerateRequest, UpstreamErrorKind};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::catalog_view::{CatalogView, EndpointRoute};
use crate::credits::{self, Credits, Reservation};
use crate::error::{ApiError, AttemptFailure, attempt_status};
use crate::metrics::{RouterMetrics, kind_label};
use crate::routing::budget::RetryBudget;
use crate::routing::health::{Admission, Health, Signal, State};
use crate::routing::needs::Needs;
use crate::routing::perf::PerfView;
use crate::routing::prefs::ProviderPrefs;
use crate::routing::select::{self, Candidate};
use crate::routing::sticky::{Sticky, StickyKey};
use crate::stats::{Outcome, Stats};
use crate::usage::UsageSink;

pub use crate::routing::select::MAX_ENDPOINTS_PER_MODEL;
use adapter::UpstreamStream;
pub use adapter::{AdapterClient, LocalGenerate};

/// Attempts per request across all models and endpoints.
pub const MAX_ATTEMPTS: usize = 5;
/// Backoff between attempts: full jitter, 25 ms doubling up to 250 ms.
const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_millis(250);

/// Time limits of one request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Until the first token, per attempt (standard models).
    pub first_token: Duration,
    /// Until the first token for reasoning models, which think first.
    pub reasoning_first_token: Duration,
    /// The whole request, all attempts included.
    pub total: Duration,
}

/// Who asked, and where the request came from.
#[derive(Debug, Clone, Default)]
pub struct Attribution {
    pub key_hash: String,
    pub account_id: String,
    pub http_referer: Option<String>,
    pub app_title: Option<String>,
    pub user_agent: Option<String>,
    pub session_id: Option<String>,
    pub origin: Option<String>,
}

/// One chat completion to run.
#[derive(Debug)]
pub struct Job {
    pub generation_id: String,
    pub created: i64,
    pub models: Vec<String>,
    pub request: ChatRequest,
    pub stream: bool,
    pub attribution: Attribution,
    pub received_at: Instant,
    /// "completions" for chat, as in the generation record's `api_type`.
    pub api_type: &'static str,
    pub prefs: ProviderPrefs,
    /// `session_id` / `x-session-id` / `prompt_cache_key`, for stickiness.
    pub session_key: Option<String>,
}

/// What the client-facing layer renders, in order.
#[derive(Debug)]
pub enum Event {
    Delta(Delta),
    Finish {
        reason: String,
        native: String,
    },
    /// The last event: tokens and cost (also after an in-band error).
    Done(Summary),
    /// A failure after the stream was committed (in-band error).
    Error {
        status: u16,
        error_type: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub usage: TokenUsage,
    pub cost_nanos: Nanos,
    pub prompt_cost_nanos: Nanos,
    pub completion_cost_nanos: Nanos,
    pub finish_reason: String,
    pub native_finish_reason: String,
}

/// A stream committed to one endpoint.
#[derive(Debug)]
pub struct Committed {
    pub generation_id: String,
    pub created: i64,
    /// The model that served (after any model fallback).
    pub model: String,
    pub provider_name: String,
    pub endpoint_id: String,
    /// Every attempt, failed ones first, the serving one last (status 200).
    pub attempts: Vec<AttemptFailure>,
    /// `reasoning_details[].format` for the serving provider's wire format.
    pub reasoning_format: &'static str,
    pub events: mpsc::Receiver<Event>,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    catalog: CatalogView,
    adapter: AdapterClient,
    stats: Stats,
    usage: UsageSink,
    credits: Credits,
    health: Arc<Health>,
    perf: PerfView,
    budget: RetryBudget,
    sticky: Arc<Sticky>,
    timeouts: Timeouts,
    metrics: RouterMetrics,
    /// Streams past their commit point: drained before usage is flushed.
    pumps: TaskTracker,
}

/// What an attempt produced before it committed.
struct Opened {
    stream: UpstreamStream,
    buffered: Vec<Upstream>,
    dispatched_at: Instant,
    upstream_id: String,
}

impl Engine {
    pub fn new(
        catalog: CatalogView,
        adapter: AdapterClient,
        stats: Stats,
        perf: PerfView,
        (usage, credits): (UsageSink, Credits),
        timeouts: Timeouts,
        metrics: RouterMetrics,
    ) -> Engine {
        Engine {
            inner: Arc::new(EngineInner {
                catalog,
                adapter,
                stats,
                usage,
                credits,
                health: Arc::new(Health::default()),
                perf,
                budget: RetryBudget::default(),
                sticky: Arc::new(Sticky::default()),
                timeouts,
                metrics,
                pumps: TaskTracker::new(),
            }),
        }
    }

    pub fn catalog(&self) -> &CatalogView {
        &self.inner.catalog
    }

    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    pub fn perf(&self) -> &PerfView {
        &self.inner.perf
    }

    /// Waits (up to `limit`) for committed streams to finish their books.
    pub async fn drain(&self, limit: Duration) {
        self.inner.pumps.close();
        if tokio::time::timeout(limit, self.inner.pumps.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.inner.pumps.len(),
                "streams still open after the drain window"
            );
        }
    }

    /// Plans the endpoints, then tries them until one commits; the rest
    /// streams through `Committed::events`.
    pub async fn start(&self, job: Job) -> Result<Committed, ApiError> {
        let result = self.run_attempts(job).await;
        if let Err(err) = &result {
            self.inner.metrics.error(err.error_type());
        }
        result
    }

    async fn run_attempts(&self, job: Job) -> Result<Committed, ApiError> {
        let inner = &self.inner;
        if !inner.catalog.is_ready() {
            return Err(ApiError::Unavailable(
                "The model catalog is still loading".into(),
            ));
        }
        if inner.usage.is_full() {
            // Fail closed: a request whose usage cannot be recorded is not served.
            return Err(ApiError::Unavailable(
                "Usage cannot be recorded right now; retry shortly".into(),
            ));
        }
        let table = inner.catalog.current();
        let perf = inner.perf.snapshot();
        let needs = Needs::of(&job.request);
        let now = Instant::now();
        inner.budget.deposit(now);
        let primary = select::resolve(&table, &job.models[0]).map(|(e, _)| e.model.id.clone());
        let sticky_key = primary.as_ref().map(|model| {
            StickyKey::of(
                &job.attribution.account_id,
                model,
                job.session_key.as_deref(),
                &job.request,
            )
        });
        let sticky = sticky_key.and_then(|k| inner.sticky.get(&k, now));
        let cx = select::Context {
            table: &table,
            prefs: &job.prefs,
            needs: &needs,
            health: &inner.health,
            perf: &perf,
            sticky: sticky.as_deref(),
            request: Some(&job.request),
            now,
        };
        let groups = select::plan(&job.models, &cx);
        // Admission: reserve the worst case at the first endpoint to try
        // (402 if the credit or the key's limit cannot cover it); a
        // fallback to a pricier endpoint grows the reservation first.
        let worst_at =
            |c: &Candidate| credits::worst_case(&c.endpoint, needs.prompt_tokens, needs.max_tokens);
        let worst = groups
            .iter()
            .filter_map(|g| g.candidates.as_ref().ok())
            .flatten()
            .map(worst_at)
            .next();
        // Credit calls are boxed, like the attempt below: they may be gRPC
        // calls to metering, and inline they would grow this future.
        let mut reservation = match worst {
            Some(worst) => Some(
                Box::pin(inner.credits.admit(
                    &job.attribution.account_id,
                    &job.attribution.key_hash,
                    worst,
                ))
                .await?,
            ),
            None => None,
        };
        let deadline = job.received_at + inner.timeouts.total;
        let mut failures: Vec<AttemptFailure> = Vec::new();
        let mut last_error: Option<ApiError> = None;
        let mut attempts = 0;
        'models: for group in groups {
            let candidates = match group.candidates {
                Ok(c) => c,
                Err(err) => {
                    last_error = Some(err);
                    continue;
                }
            };
            for candidate in candidates {
                if attempts >= MAX_ATTEMPTS {
                    break 'models;
                }
                let endpoint = candidate.endpoint.clone();
                let admission = if candidate.panic {
                    Admission::Allowed
                } else {
                    inner.health.admit(&endpoint.id, Instant::now())
                };
                if matches!(admission, Admission::Ejected | Admission::CoolingDown(_)) {
                    continue;
                }
                if let Some(previous) = failures.last() {
                    inner.metrics.fallback(&kind_label(previous.kind));
                }
                if attempts > 0 {
                    if !inner.budget.withdraw(Instant::now()) {
                        tracing::warn!(generation_id = %job.generation_id, "retry budget exhausted");
                        inner
                            .health
                            .record(&endpoint.id, Signal::Neutral, Instant::now());
                        break 'models;
                    }
                    let cap = (BACKOFF_BASE * 2u32.pow(attempts as u32 - 1)).min(BACKOFF_MAX);
                    let wait = cap.mul_f64(rand::rng().random::<f64>());
                    tokio::time::sleep(wait).await;
                }
                if Instant::now() >= deadline {
                    inner
                        .health
                        .record(&endpoint.id, Signal::Neutral, Instant::now());
                    break 'models;
                }
                if let Some(reservation) = reservation.as_mut() {
                    let need = worst_at(&candidate);
                    if let Err(err) = Box::pin(reservation.grow(
                        &inner.credits,
                        &job.attribution.account_id,
                        &job.attribution.key_hash,
                        need,
                    ))
                    .await
                    {
                        // This endpoint costs more than the credit covers;
                        // a cheaper one may still serve.
                        last_error = Some(err);
                        continue;
                    }
                }
                attempts += 1;
                // Boxed: the attempt's future (an adapter call) is most of
                // this one's size, and every move of this one copied it.
                match Box::pin(self.attempt(&job, &candidate, deadline)).await {
                    Ok(opened) => {
                        inner.metrics.attempt(&endpoint.provider_slug, "ok");
                        if let Some(model) = &primary {
                            inner.stats.record_request(model, true, attempts == 1);
                        }
                        let mut trail = failures;
                        trail.push(served(&endpoint));
                        let key = sticky_key.filter(|_| {
                            primary.as_deref() == Some(candidate.model.model.id.as_str())
                        });
                        return Ok(self.commit(
                            job,
                            candidate,
                            opened,
                            trail,
                            key,
                            reservation.take(),
                        ));
                    }
                    Err(failure) => {
                        let (outcome, signal) = classify(&failure);
                        inner.stats.record(&endpoint.id, outcome, None, None);
                        inner.health.record(&endpoint.id, signal, Instant::now());
                        inner
                            .metrics
                            .attempt(&endpoint.provider_slug, &kind_label(failure.kind));
                        inner.metrics.breaker(
                            &endpoint.id,
                            inner.health.state(&endpoint.id) == State::Open,
                        );
                        tracing::info!(
                            generation_id = %job.generation_id,
                            endpoint = %endpoint.id,
                            status = failure.status,
                            "attempt failed"
                        );
                        let give_up_on_model = !retryable(failure.kind);
                        failures.push(failure);
                        last_error = Some(ApiError::Upstream {
                            last: Box::new(failures.last().cloned().expect("just pushed")),
                            attempts: failures.clone(),
                        });
                        if give_up_on_model {
                            continue 'models;
                        }
                    }
                }
            }
        }
        if attempts > 0
            && let Some(model) = &primary
        {
            inner.stats.record_request(model, false, false);
        }
        Err(last_error.unwrap_or_else(|| {
            ApiError::Unavailable("No endpoint could take the request right now".into())
        }))
    }

    async fn attempt(
        &self,
        job: &Job,
        candidate: &Candidate,
        deadline: Instant,
    ) -> Result<Opened, AttemptFailure> {
        let endpoint = &candidate.endpoint;
        let fail = |kind, upstream_status: u32, message: String, retry_after_ms, provider_code| {
            AttemptFailure {
                provider: endpoint.provider_name.clone(),
                endpoint_id: endpoint.id.clone(),
                status: attempt_status(kind, upstream_status),
                kind,
                message,
                retry_after_ms,
                provider_code,
            }
        };
        let dispatched_at = Instant::now();
        let reasoning = candidate
            .model
            .model
            .supported_parameters
            .iter()
            .any(|p| p == "reasoning" || p == "include_reasoning");
        let first_token = if reasoning {
            self.inner.timeouts.reasoning_first_token
        } else {
            self.inner.timeouts.first_token
        };
        let remaining = deadline.saturating_duration_since(dispatched_at);
        let first_token = first_token.min(remaining);
        let token_deadline = tokio::time::Instant::from_std(dispatched_at + first_token);
        let request = GenerateRequest {
            target: Some(endpoint.target.clone()),
            request: Some(crate::routing::params::for_endpoint(&job.request, endpoint)),
            stream: job.stream,
            generation_id: job.generation_id.clone(),
            first_token_timeout_ms: first_token.as_millis() as u32,
            total_timeout_ms: remaining.as_millis().min(u32::MAX as u128) as u32,
            upstream_headers: Default::default(),
        };
        let call = self.inner.adapter.generate(request);
        let mut stream = match tokio::time::timeout_at(token_deadline, call).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(status)) => {
                tracing::warn!(%status, "provider-adapter call failed");
                return Err(fail(
                    UpstreamErrorKind::Unavailable,
                    0,
                    "Provider adapter unavailable".into(),
                    None,
                    None,
                ));
            }
            Err(_) => {
                return Err(fail(
                    UpstreamErrorKind::Timeout,
                    0,
                    "Timed out waiting for the provider".into(),
                    None,
                    None,
                ));
            }
        };
        let mut buffered = Vec::new();
        let mut upstream_id = String::new();
        loop {
            let next = match tokio::time::timeout_at(token_deadline, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    return Err(fail(
                        UpstreamErrorKind::Timeout,
                        0,
                        "Timed out waiting for the first token".into(),
                        None,
                        None,
                    ));
                }
            };
            let event = match next {
                Some(Ok(msg)) => msg.event,
                Some(Err(status)) => {
                    tracing::warn!(%status, "provider-adapter stream failed");
                    return Err(fail(
                        UpstreamErrorKind::BadResponse,
                        0,
                        "Provider stream failed".into(),
                        None,
                        None,
                    ));
                }
                None => {
                    return Err(fail(
                        UpstreamErrorKind::BadResponse,
                        0,
                        "Provider closed the stream without a response".into(),
                        None,
                        None,
                    ));
                }
            };
            match event {
                Some(Upstream::Started(started)) => upstream_id = started.upstream_id,
                Some(Upstream::Error(e)) => {
                    let kind = UpstreamErrorKind::try_from(e.kind)
                        .unwrap_or(UpstreamErrorKind::Unspecified);
                    return Err(fail(
                        kind,
                        e.upstream_status,
                        e.message,
                        e.retry_after_ms,
                        e.provider_code,
                    ));
                }
                Some(Upstream::Delta(d)) => {
                    let commits = d.content.as_deref().is_some_and(|c| !c.is_empty())
                        || !d.tool_calls.is_empty()
                        || d.refusal.is_some();
                    buffered.push(Upstream::Delta(d));
                    if commits {
                        break;
                    }
                }
                Some(other @ (Upstream::Finish(_) | Upstream::Usage(_))) => {
                    let finish = matches!(other, Upstream::Finish(_));
                    buffered.push(other);
                    if finish {
                        break;
                    }
                }
                None => {}
            }
        }
        Ok(Opened {
            stream,
            buffered,
            dispatched_at,
            upstream_id,
        })
    }

    fn commit(
        &self,
        job: Job,
        candidate: Candidate,
        opened: Opened,
        attempts: Vec<AttemptFailure>,
        sticky: Option<StickyKey>,
        reservation: Option<Reservation>,
    ) -> Committed {
        let (tx, rx) = mpsc::channel(64);
        let endpoint = candidate.endpoint;
        let committed = Committed {
            generation_id: job.generation_id.clone(),
            created: job.created,
            model: candidate.served_model.clone(),
            provider_name: endpoint.provider_name.clone(),
            endpoint_id: endpoint.id.clone(),
            attempts: attempts.clone(),
            reasoning_format: reasoning_format(endpoint.target.wire_format),
            events: rx,
        };
        self.inner.pumps.spawn(
            pump::run(pump::Pump {
                job,
                endpoint,
                served_model: candidate.served_model,
                opened,
                attempts,
                tx,
                stats: self.inner.stats.clone(),
                usage: self.inner.usage.clone(),
                health: self.inner.health.clone(),
                sticky: sticky.map(|key| (self.inner.sticky.clone(), key)),
                metrics: self.inner.metrics.clone(),
                reservation,
            })
            .instrument(tracing::Span::current()),
        );
        committed
    }
}

/// OpenRouter's `reasoning_details[].format` per wire format.
fn reasoning_format(wire_format: i32) -> &'static str {
    use switchyard_proto::provider::v1::WireFormat;
    match WireFormat::try_from(wire_format) {
        Ok(WireFormat::AnthropicMessages) => "anthropic-claude-v1",
        Ok(WireFormat::Gemini) => "google-gemini-v1",
        _ => "unknown",
    }
}

/// The serving attempt, as listed in the attempts trail.
fn served(endpoint: &EndpointRoute) -> AttemptFailure {
    AttemptFailure {
        provider: endpoint.provider_name.clone(),
        endpoint_id: endpoint.id.clone(),
        status: 200,
        kind: UpstreamErrorKind::Unspecified,
        message: String::new(),
        retry_after_ms: None,
        provider_code: None,
    }
}

/// How a failed attempt counts for stats and for the endpoint's health.
fn classify(failure: &AttemptFailure) -> (Outcome, Signal) {
    match failure.kind {
        UpstreamErrorKind::RateLimited => (
            Outcome::RateLimited,
            Signal::RateLimited(failure.retry_after_ms.map(Duration::from_millis)),
        ),
        UpstreamErrorKind::Timeout => (Outcome::Timeout, Signal::Failure),
        k if !retryable(k) => (Outcome::ClientError, Signal::Neutral),
        _ => (Outcome::Failure, Signal::Failure),
    }
}

/// Whether another endpoint may succeed where this one failed. Errors the
/// request itself caused would fail everywhere.
fn retryable(kind: UpstreamErrorKind) -> bool {
    !matches!(
        kind,
        UpstreamErrorKind::InvalidRequest
            | UpstreamErrorKind::ContextLengthExceeded
            | UpstreamErrorKind::ContentFilter
    )
}
