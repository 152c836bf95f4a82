use std::convert::Infallible;

use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tower::ServiceExt;
use tracing::Instrument;

use super::*;
use crate::metrics::Registry;

/// A stand-in generated server: answers every call "trailers-only" with
/// the status in the headers, and echoes the `traceparent` it received.
fn server(
    code: tonic::Code,
) -> impl tower::Service<
    http::Request<Body>,
    Response = http::Response<Body>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(move |request: http::Request<Body>| async move {
        let mut response = http::Response::new(Body::empty());
        response
            .headers_mut()
            .insert("grpc-status", (code as i32).to_string().parse().unwrap());
        if let Some(parent) = request.headers().get("traceparent") {
            response.headers_mut().insert("x-parent", parent.clone());
        }
        Ok::<_, Infallible>(response)
    })
}

async fn call(channel: InternalChannel, path: &str) -> http::Response<Body> {
    let request = http::Request::post(format!("http://in-process{path}"))
        .body(Body::empty())
        .unwrap();
    let response = channel.oneshot(request).await.unwrap();
    // Releasing the body ends the server span, as a finished call does.
    let (parts, body) = response.into_parts();
    drop(body);
    http::Response::from_parts(parts, Body::empty())
}

#[tokio::test]
async fn in_process_calls_are_traced_and_counted() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = crate::telemetry::subscriber(
        provider.tracer("test"),
        crate::telemetry::LogFormat::Json,
        std::io::sink,
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let registry = Registry::new();
    let metrics = GrpcServerMetrics::register(&registry);

    let ok = in_process_with(server(tonic::Code::Ok), Some(metrics.clone()));
    let root = tracing::info_span!("root");
    let response = call(ok, "/demo.v1.Demo/Call").instrument(root).await;
    let failing = in_process_with(server(tonic::Code::Unavailable), Some(metrics));
    call(failing, "/demo.v1.Demo/Other").await;

    let spans = exporter.get_finished_spans().unwrap();
    let find = |kind: SpanKind| {
        spans
            .iter()
            .find(|s| s.name == "demo.v1.Demo/Call" && s.span_kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} span in {spans:?}"))
    };
    let (client, server) = (find(SpanKind::Client), find(SpanKind::Server));
    let root = spans.iter().find(|s| s.name == "root").expect("root span");
    assert_eq!(client.parent_span_id, root.span_context.span_id());
    assert_eq!(server.parent_span_id, client.span_context.span_id());
    assert_eq!(server.span_context.trace_id(), root.span_context.trace_id());
    let parent = response.headers()["x-parent"].to_str().unwrap();
    assert!(parent.contains(&client.span_context.span_id().to_string()));

    let text = registry.encode();
    for expected in [
        r#"switchyard_grpc_server_requests_total{service="demo.v1.Demo",method="Call",code="OK"} 1"#,
        r#"switchyard_grpc_server_requests_total{service="demo.v1.Demo",method="Other",code="UNAVAILABLE"} 1"#,
        r#"switchyard_grpc_server_duration_seconds_count{service="demo.v1.Demo",method="Call"} 1"#,
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
}

#[test]
fn code_names_are_canonical() {
    assert_eq!(code_name(0), "OK");
    assert_eq!(code_name(14), "UNAVAILABLE");
    assert_eq!(code_name(99), "UNKNOWN");
}
