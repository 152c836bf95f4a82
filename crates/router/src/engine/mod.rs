//! The request engine shared by the HTTP and gRPC APIs: resolve the model(s)
//! to candidate endpoints, try them in order until one starts producing, then
//! hand the rest of the stream to a pump task that also does the bookkeeping
//! (stats, usage) whether the client stays or leaves.
//!
//! Fallback is allowed until the first content (or tool-call, or finish)
//! event; after that the stream is committed to its endpoint.

mod order;
mod pump;

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_kit::Nanos;
use switchyard_kit::grpc::{InternalChannel, MAX_MESSAGE_BYTES};
use switchyard_proto::common::v1::{ChatRequest, TokenUsage};
use switchyard_proto::provider::v1::generate_response::Event as Upstream;
use switchyard_proto::provider::v1::provider_adapter_service_client::ProviderAdapterServiceClient;
use switchyard_proto::provider::v1::{Delta, GenerateRequest, UpstreamErrorKind};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::catalog_view::{CatalogView, EndpointRoute};
use crate::error::{ApiError, AttemptFailure, attempt_status};
use crate::stats::{Outcome, Stats};
use crate::usage::UsageSink;

pub use order::MAX_ENDPOINTS_PER_MODEL;

/// Attempts per request across all models and endpoints.
pub const MAX_ATTEMPTS: usize = 5;

/// Who asked, and where the request came from.
#[derive(Debug, Clone, Default)]
pub struct Attribution {
    pub key_hash: String,
    pub account_id: String,
    pub http_referer: Option<String>,
    pub app_title: Option<String>,
    pub user_agent: Option<String>,
    pub session_id: Option<String>,
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
    pub events: mpsc::Receiver<Event>,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    catalog: CatalogView,
    adapter: ProviderAdapterServiceClient<InternalChannel>,
    stats: Stats,
    usage: UsageSink,
    first_token_timeout: Duration,
}

/// What an attempt produced before it committed.
struct Opened {
    stream: tonic::Streaming<switchyard_proto::provider::v1::GenerateResponse>,
    buffered: Vec<Upstream>,
    dispatched_at: Instant,
    upstream_id: String,
}

impl Engine {
    pub fn new(
        catalog: CatalogView,
        adapter: InternalChannel,
        stats: Stats,
        usage: UsageSink,
        first_token_timeout: Duration,
    ) -> Engine {
        let adapter = ProviderAdapterServiceClient::new(adapter)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        Engine {
            inner: Arc::new(EngineInner {
                catalog,
                adapter,
                stats,
                usage,
                first_token_timeout,
            }),
        }
    }

    pub fn catalog(&self) -> &CatalogView {
        &self.inner.catalog
    }

    /// Runs the attempts until one commits; the rest streams through
    /// `Committed::events`.
    pub async fn start(&self, job: Job) -> Result<Committed, ApiError> {
        let table = self.inner.catalog.current();
        if !self.inner.catalog.is_ready() {
            return Err(ApiError::Unavailable(
                "The model catalog is still loading".into(),
            ));
        }
        let mut plan: Vec<Arc<EndpointRoute>> = Vec::new();
        let mut known_model = false;
        for model in &job.models {
            if let Some(entry) = table.model(model) {
                known_model = true;
                plan.extend(order::order(&entry.endpoints, &self.inner.stats));
            }
        }
        if plan.is_empty() {
            return Err(if known_model {
                ApiError::NoEndpoints(job.models[0].clone())
            } else {
                ApiError::UnknownModel(job.models[0].clone())
            });
        }
        let mut failures: Vec<AttemptFailure> = Vec::new();
        for endpoint in plan.into_iter().take(MAX_ATTEMPTS) {
            match self.attempt(&job, &endpoint).await {
                Ok(opened) => {
                    let mut attempts = failures;
                    attempts.push(AttemptFailure {
                        provider: endpoint.provider_name.clone(),
                        endpoint_id: endpoint.id.clone(),
                        status: 200,
                        kind: UpstreamErrorKind::Unspecified,
                        message: String::new(),
                        retry_after_ms: None,
                        provider_code: None,
                    });
                    return Ok(self.commit(job, endpoint, opened, attempts));
                }
                Err(failure) => {
                    let outcome = match failure.kind {
                        UpstreamErrorKind::RateLimited => Outcome::RateLimited,
                        UpstreamErrorKind::Timeout => Outcome::Timeout,
                        k if !retryable(k) => Outcome::ClientError,
                        _ => Outcome::Failure,
                    };
                    self.inner.stats.record(&endpoint.id, outcome, None, None);
                    tracing::info!(
                        generation_id = %job.generation_id,
                        endpoint = %endpoint.id,
                        status = failure.status,
                        "attempt failed"
                    );
                    let stop = !retryable(failure.kind);
                    failures.push(failure);
                    if stop {
                        break;
                    }
                }
            }
        }
        let last = failures.last().cloned().expect("at least one attempt ran");
        Err(ApiError::Upstream {
            last: Box::new(last),
            attempts: failures,
        })
    }

    async fn attempt(&self, job: &Job, endpoint: &EndpointRoute) -> Result<Opened, AttemptFailure> {
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
        let deadline =
            tokio::time::Instant::from_std(dispatched_at + self.inner.first_token_timeout);
        let request = GenerateRequest {
            target: Some(endpoint.target.clone()),
            request: Some(job.request.clone()),
            stream: job.stream,
            generation_id: job.generation_id.clone(),
            first_token_timeout_ms: self.inner.first_token_timeout.as_millis() as u32,
            total_timeout_ms: 0,
            upstream_headers: Default::default(),
        };
        let mut adapter = self.inner.adapter.clone();
        let call = adapter.generate(request);
        let mut stream = match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(response)) => response.into_inner(),
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
            let next = match tokio::time::timeout_at(deadline, stream.next()).await {
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
        endpoint: Arc<EndpointRoute>,
        opened: Opened,
        attempts: Vec<AttemptFailure>,
    ) -> Committed {
        let (tx, rx) = mpsc::channel(64);
        let committed = Committed {
            generation_id: job.generation_id.clone(),
            created: job.created,
            model: endpoint.model_id.clone(),
            provider_name: endpoint.provider_name.clone(),
            endpoint_id: endpoint.id.clone(),
            attempts: attempts.clone(),
            events: rx,
        };
        tokio::spawn(pump::run(pump::Pump {
            job,
            endpoint,
            opened,
            attempts,
            tx,
            stats: self.inner.stats.clone(),
            usage: self.inner.usage.clone(),
        }));
        committed
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
