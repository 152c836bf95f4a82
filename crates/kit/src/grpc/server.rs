//! The server side of every gRPC call: a span that continues the caller's
//! trace (W3C `traceparent` in the request metadata) and, when a registry
//! is given, request and latency metrics by service, method and status
//! code. Both last until the response stream ends, so a streaming call is
//! measured whole.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;
use tracing::Instrument;

use crate::metrics::{BoundedLabel, CounterFamily, HistogramFamily, Registry, latency_family};

/// Distinct `/package.Service/Method` paths tracked before the rest are
/// reported as `other`: far above what our protos define, far below harm.
const MAX_METHODS: usize = 128;

/// gRPC server metrics, registered once per registry and shared by every
/// server (network or in-process) that should report into it.
#[derive(Clone)]
pub struct GrpcServerMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    requests: CounterFamily<3>,
    duration: HistogramFamily<2>,
    methods: BoundedLabel,
}

impl std::fmt::Debug for GrpcServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServerMetrics").finish_non_exhaustive()
    }
}

impl GrpcServerMetrics {
    /// Registers `switchyard_grpc_server_requests_total{service,method,code}`
    /// and `switchyard_grpc_server_duration_seconds{service,method}`.
    pub fn register(registry: &Registry) -> GrpcServerMetrics {
        let inner = Inner {
            requests: CounterFamily::default(),
            duration: latency_family(),
            methods: BoundedLabel::new(MAX_METHODS),
        };
        registry.register(
            "switchyard_grpc_server_requests",
            "gRPC calls served, by service, method and final status code.",
            inner.requests.clone(),
        );
        registry.register(
            "switchyard_grpc_server_duration_seconds",
            "gRPC call duration until the response (stream) ended, by service and method.",
            inner.duration.clone(),
        );
        GrpcServerMetrics {
            inner: Arc::new(inner),
        }
    }
}

/// Tower layer adding the server span (and metrics, if any) to a service.
#[derive(Clone, Default)]
pub struct ServerLayer {
    metrics: Option<GrpcServerMetrics>,
}

impl ServerLayer {
    pub fn new(metrics: Option<GrpcServerMetrics>) -> ServerLayer {
        ServerLayer { metrics }
    }
}

impl<S> tower::Layer<S> for ServerLayer {
    type Service = ServerService<S>;
    fn layer(&self, inner: S) -> ServerService<S> {
        ServerService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ServerService<S> {
    inner: S,
    metrics: Option<GrpcServerMetrics>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for ServerService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: HttpBody<Data = Bytes> + Send + 'static,
    RB::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().trim_start_matches('/');
        let (service, method) = path.split_once('/').unwrap_or((path, ""));
        // Health probes and reflection would only bury real traces.
        let span = if service.starts_with("grpc.") {
            tracing::Span::none()
        } else {
            tracing::info_span!(
            "grpc.server",
            otel.name = %path,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            )
        };
        crate::trace_context::set_parent(&span, request.headers());
        let labels = self.metrics.as_ref().map(|metrics| {
            let (service, method) = match metrics.inner.methods.get(path).split_once('/') {
                Some((s, m)) => (s.to_owned(), m.to_owned()),
                None => (
                    crate::metrics::OTHER.to_owned(),
                    crate::metrics::OTHER.to_owned(),
                ),
            };
            (metrics.clone(), [("service", service), ("method", method)])
        });
        let call = self.inner.call(request).instrument(span.clone());
        let started = Instant::now();
        Box::pin(async move {
            let response = call.await?;
            let (parts, body) = response.into_parts();
            // Errors before any message come back "trailers-only": the
            // status is in the headers and the body is empty.
            let code = parts.headers.get("grpc-status").and_then(parse_code);
            let observed = ObservedBody {
                inner: Body::new(body),
                end: Some(End {
                    span,
                    labels,
                    started,
                    code,
                }),
            };
            Ok(http::Response::from_parts(parts, Body::new(observed)))
        })
    }
}

/// A response body that closes the span and records metrics when the
/// stream ends, fails, or is dropped by a departed client.
struct ObservedBody {
    inner: Body,
    end: Option<End>,
}

struct End {
    span: tracing::Span,
    labels: Option<(GrpcServerMetrics, crate::metrics::Labels<2>)>,
    started: Instant,
    code: Option<i32>,
}

impl End {
    fn finish(self, code: i32) {
        let name = code_name(code);
        self.span.record("rpc.grpc.status_code", code);
        if is_server_error(code) {
            self.span.record("otel.status_code", "ERROR");
        }
        if let Some((metrics, [service, method])) = self.labels {
            metrics
                .inner
                .duration
                .get_or_create(&[service.clone(), method.clone()])
                .observe(self.started.elapsed().as_secs_f64());
            metrics
                .inner
                .requests
                .get_or_create(&[service, method, ("code", name.to_owned())])
                .inc();
        }
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            let code = end.code.unwrap_or(tonic::Code::Cancelled as i32);
            end.finish(code);
        }
    }
}

impl HttpBody for ObservedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(code) = frame
                    .trailers_ref()
                    .and_then(|t| t.get("grpc-status"))
                    .and_then(parse_code)
                    && let Some(end) = &mut self.end
                {
                    end.code = Some(code);
                }
            }
            Some(Err(status)) => {
                if let Some(end) = self.end.take() {
                    end.finish(status.code() as i32);
                }
            }
            None => {
                if let Some(end) = self.end.take() {
                    let code = end.code.unwrap_or(tonic::Code::Unknown as i32);
                    end.finish(code);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn parse_code(value: &http::HeaderValue) -> Option<i32> {
    value.to_str().ok()?.parse().ok()
}

/// Codes that mean the server (or something behind it) failed, as opposed
/// to a caller mistake: what marks a span as an error.
fn is_server_error(code: i32) -> bool {
    use tonic::Code;
    matches!(
        Code::from(code),
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// The canonical upper-case name of a gRPC status code, for labels.
pub fn code_name(code: i32) -> &'static str {
    use tonic::Code;
    match Code::from(code) {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
