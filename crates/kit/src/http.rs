//! The server side of every HTTP request, for axum apps (the router's
//! public API): a span that continues the caller's W3C trace, and request
//! metrics by route template, method and status class. Add it with
//!
//! ```
//! # use switchyard_kit::{http::HttpServerMetrics, metrics::Registry};
//! # let registry = Registry::new();
//! # let app: axum::Router = axum::Router::new();
//! let metrics = HttpServerMetrics::register(&registry);
//! let app = app.layer(axum::middleware::from_fn_with_state(metrics, switchyard_kit::http::observe));
//! ```
//!
//! The route label is axum's matched route template (`/api/v1/chat/completions`,
//! `/api/v1/generation`), never the raw path; unmatched requests share one label.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tracing::Instrument;

use crate::metrics::{
    CounterFamily, HistogramFamily, Labels, Registry, latency_family, status_class,
};

/// Route label for requests no route matched (404s, probes of random paths).
pub const UNMATCHED: &str = "unmatched";

/// HTTP server metrics; clones share the same series.
#[derive(Clone)]
pub struct HttpServerMetrics {
    requests: CounterFamily<3>,
    duration: HistogramFamily<2>,
}

impl HttpServerMetrics {
    /// Registers `switchyard_http_server_requests_total{route,method,status}`
    /// (status as `2xx`, `4xx`, ...) and
    /// `switchyard_http_server_duration_seconds{route,method}`, measured
    /// until the response body (an SSE stream included) ends.
    pub fn register(registry: &Registry) -> HttpServerMetrics {
        let metrics = HttpServerMetrics {
            requests: CounterFamily::default(),
            duration: latency_family(),
        };
        registry.register(
            "switchyard_http_server_requests",
            "HTTP requests served, by route template, method and status class.",
            metrics.requests.clone(),
        );
        registry.register(
            "switchyard_http_server_duration_seconds",
            "HTTP request duration until the response body ended, by route template and method.",
            metrics.duration.clone(),
        );
        metrics
    }
}

/// axum middleware: the request's server span and metrics.
pub async fn observe(
    State(metrics): State<HttpServerMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http.server",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    crate::trace_context::set_parent(&span, request.headers());
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    metrics
        .requests
        .get_or_create(&[
            ("route", route.clone()),
            ("method", method.clone()),
            ("status", status_class(status).to_owned()),
        ])
        .inc();
    let end = End {
        span,
        metrics,
        labels: [("route", route), ("method", method)],
        started,
    };
    response.map(|body| {
        Body::new(TimedBody {
            inner: body,
            end: Some(end),
        })
    })
}

struct End {
    span: tracing::Span,
    metrics: HttpServerMetrics,
    labels: Labels<2>,
    started: Instant,
}

/// Closes the span and observes the duration when the body ends or the
/// client goes away.
struct TimedBody {
    inner: Body,
    end: Option<End>,
}

impl TimedBody {
    fn finish(&mut self) {
        if let Some(end) = self.end.take() {
            end.metrics
                .duration
                .get_or_create(&end.labels)
                .observe(end.started.elapsed().as_secs_f64());
            drop(end.span);
        }
    }
}

impl Drop for TimedBody {
    fn drop(&mut self) {
        self.finish();
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) {
            self.finish();
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

/// An HTTP listener whose connections have Nagle's algorithm off, so small
/// writes (SSE events, response heads) are not held for the peer's delayed
/// ACK (~40 ms). Every axum server in Switchyard serves through this.
pub fn nodelay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    })
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use tower::ServiceExt;

    use super::*;

    const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn app(registry: &Registry) -> axum::Router {
        let metrics = HttpServerMetrics::register(registry);
        axum::Router::new()
            .route(
                "/api/v1/generation/{id}",
                axum::routing::get(|| async {
                    crate::trace_context::current_trace_id().unwrap_or_default()
                }),
            )
            .layer(axum::middleware::from_fn_with_state(metrics, observe))
    }

    async fn get(app: axum::Router, uri: &str) -> (u16, String) {
        let request = http::Request::get(uri)
            .header(
                crate::trace_context::TRACEPARENT,
                format!("00-{PARENT_TRACE}-00f067aa0ba902b7-01"),
            )
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn labels_by_route_template_and_continues_the_trace() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = crate::telemetry::subscriber(
            provider.tracer("test"),
            crate::telemetry::LogFormat::Json,
            std::io::sink,
        );
        let _guard = tracing::subscriber::set_default(subscriber);
        let registry = Registry::new();
        let app = app(&registry);

        let (status, trace_id) = get(app.clone(), "/api/v1/generation/gen-secret-123").await;
        assert_eq!(status, 200);
        assert_eq!(
            trace_id, PARENT_TRACE,
            "the handler runs in the caller's trace"
        );
        let (status, _) = get(app, "/no/such/path/sk-or-v1-key").await;
        assert_eq!(status, 404);

        let text = registry.encode();
        for expected in [
            r#"switchyard_http_server_requests_total{route="/api/v1/generation/{id}",method="GET",status="2xx"} 1"#,
            r#"switchyard_http_server_requests_total{route="unmatched",method="GET",status="4xx"} 1"#,
            r#"switchyard_http_server_duration_seconds_count{route="/api/v1/generation/{id}",method="GET"} 1"#,
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
        assert!(
            !text.contains("gen-secret") && !text.contains("sk-or"),
            "{text}"
        );
    }
}
