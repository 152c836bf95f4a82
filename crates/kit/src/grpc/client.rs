//! The client side of every internal gRPC call: a client span, whose W3C
//! context goes out in the request metadata so the server continues the
//! same trace.

use std::task::{Context, Poll};

use tracing::Instrument;
use tracing::instrument::Instrumented;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Wraps a channel so every call gets a client span and a `traceparent`.
#[derive(Clone, Debug)]
pub struct TracedChannel<S> {
    inner: S,
}

impl<S> TracedChannel<S> {
    pub fn new(inner: S) -> TracedChannel<S> {
        TracedChannel { inner }
    }
}

impl<S, B> tower::Service<http::Request<B>> for TracedChannel<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().trim_start_matches('/');
        let (service, method) = path.split_once('/').unwrap_or((path, ""));
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = %path,
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
        );
        crate::trace_context::inject_context(&span.context(), request.headers_mut());
        self.inner.call(request).instrument(span)
    }
}
