//! W3C trace context (`traceparent` / `tracestate`) across HTTP and gRPC
//! hops. gRPC metadata is HTTP/2 headers, so one pair of helpers over
//! [`http::HeaderMap`] serves axum handlers, reqwest calls and the tonic
//! layers in [`crate::grpc`] alike.
//!
//! A server handler makes its span the child of the caller's context with
//! [`set_parent`]:
//!
//! ```
//! # use tracing::Instrument;
//! # async fn handle(request: http::Request<()>) {
//! let span = tracing::info_span!("chat.completions", otel.kind = "server");
//! switchyard_kit::trace_context::set_parent(&span, request.headers());
//! async move { /* handle */ }.instrument(span).await
//! # }
//! ```
//!
//! and a client copies the current span's context onto its request with
//! [`inject`] (`InternalChannel`s from `kit::grpc` already do this).

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header carrying trace id, parent span id and flags.
pub const TRACEPARENT: &str = "traceparent";

/// Writes the current span's context into `headers`. A no-op outside any
/// span or when no OpenTelemetry layer is installed.
pub fn inject(headers: &mut HeaderMap) {
    inject_context(&tracing::Span::current().context(), headers);
}

/// Writes `cx` into `headers`.
pub fn inject_context(cx: &opentelemetry::Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

/// The caller's context from `headers` (empty if none or malformed).
pub fn extract(headers: &HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Makes `span` a child of the context found in `headers`, if any. Call
/// before the span is first entered.
pub fn set_parent(span: &tracing::Span, headers: &HeaderMap) {
    let cx = extract(headers);
    if cx.span().span_context().is_valid() {
        // Fails only without an OpenTelemetry layer, where there is no trace.
        let _ = span.set_parent(cx);
    }
}

/// The current span's trace id as 32 hex digits, if it has one: for logs
/// and for error bodies a user can quote.
pub fn current_trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let context = span.span_context();
    context.is_valid().then(|| context.trace_id().to_string())
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn round_trips_traceparent() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(PARENT));
        let cx = extract(&headers);
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let mut out = HeaderMap::new();
        inject_context(&cx, &mut out);
        assert_eq!(out[TRACEPARENT], PARENT);
    }

    #[test]
    fn ignores_missing_or_malformed_headers() {
        assert!(!extract(&HeaderMap::new()).has_active_span());
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static("garbage"));
        assert!(!extract(&headers).span().span_context().is_valid());
        let mut out = HeaderMap::new();
        inject(&mut out);
        assert!(out.is_empty(), "no span, nothing to propagate");
    }
}
