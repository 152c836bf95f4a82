//! Observability: one trace across client → adapter → upstream with the W3C
//! context on the upstream request, and `/metrics` after traffic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use secrecy::SecretString;
use switchyard_kit::Shutdown;
use switchyard_kit::telemetry::capture::{SpanData, SpanKind, capture_spans};
use switchyard_kit::testing::{metric_label_values, scrape_metrics};
use switchyard_proto::provider::v1::generate_response::Event;
use switchyard_proto::provider::v1::provider_adapter_service_client::ProviderAdapterServiceClient;
use switchyard_provider_adapter::{App, Config};
use tracing::Instrument;

use crate::{TestApp, collect, with_headers};

const PROMPT: &str = "Say hello to the switchyard.";
const SECRET: &str = "sk-test-secret-value";

/// A one-route OpenAI-compatible upstream that remembers request headers.
async fn recording_upstream(shutdown: Shutdown) -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |headers: HeaderMap| {
            record.lock().unwrap().push(headers);
            async {
                axum::Json(serde_json::json!({
                    "id": "chatcmpl-traced",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await
    });
    (url, seen)
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

// A current-thread runtime (the default) keeps the adapter, the upstream and
// the test on this thread, where `capture_spans` records.
#[tokio::test]
async fn one_trace_spans_client_adapter_and_upstream() {
    let capture = capture_spans();
    let shutdown = Shutdown::new();
    let (upstream_url, seen) = recording_upstream(shutdown.clone()).await;
    let mut config = Config::ephemeral();
    config.credentials = HashMap::from([(
        "TRACED_KEY".to_owned(),
        SecretString::from(SECRET.to_owned()),
    )]);
    let adapter = App::build(config).await.unwrap();
    let channel =
        switchyard_kit::grpc::connect_lazy(&format!("http://{}", adapter.grpc_addr())).unwrap();
    let adapter_shutdown = Shutdown::new();
    let server = tokio::spawn(adapter.run(adapter_shutdown.clone()));

    let mut request = TestApp::request_template(&upstream_url, "traced-model");
    request.target.as_mut().unwrap().credential_ref = "TRACED_KEY".into();
    let root = tracing::info_span!("test.root");
    let events = async {
        let mut client = ProviderAdapterServiceClient::new(channel);
        collect(client.generate(request).await.unwrap().into_inner()).await
    }
    .instrument(root)
    .await;
    assert!(matches!(events.last(), Some(Event::Usage(_))), "{events:?}");
    // Draining the server drops every response body, which ends its span.
    adapter_shutdown.trigger();
    server.await.unwrap().unwrap();
    shutdown.trigger();

    let root = capture.span("test.root").expect("root span");
    let method = "switchyard.provider.v1.ProviderAdapterService/Generate";
    let spans = capture.finished();
    let client = spans
        .iter()
        .find(|s| s.name == method && s.span_kind == SpanKind::Client)
        .expect("client span");
    let server = spans
        .iter()
        .find(|s| s.name == method && s.span_kind == SpanKind::Server)
        .expect("server span");
    let upstream = capture.span("upstream.generate").expect("upstream span");
    let trace_id = root.span_context.trace_id();
    for span in [client, server, &upstream] {
        assert_eq!(span.span_context.trace_id(), trace_id, "{}", span.name);
    }
    assert_eq!(client.parent_span_id, root.span_context.span_id());
    assert_eq!(server.parent_span_id, client.span_context.span_id());
    assert_eq!(upstream.parent_span_id, server.span_context.span_id());
    assert_eq!(upstream.span_kind, SpanKind::Client);
    assert_eq!(attribute(&upstream, "provider").as_deref(), Some("sim"));
    assert_eq!(
        attribute(&upstream, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attribute(server, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );

    // The upstream saw the adapter's client span as its parent.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let traceparent = seen[0]["traceparent"].to_str().unwrap();
    assert_eq!(
        traceparent,
        format!("00-{trace_id}-{}-01", upstream.span_context.span_id())
    );

    // Nothing sensitive in any span: no prompt, completion, key or
    // generation id.
    for span in &spans {
        for kv in &span.attributes {
            let value = kv.value.to_string();
            for secret in [PROMPT, SECRET, "gen-test", "\"hi\""] {
                assert!(
                    !value.contains(secret),
                    "span {} attribute {} leaks {secret}",
                    span.name,
                    kv.key
                );
            }
        }
    }
}

#[tokio::test]
async fn metrics_count_upstream_calls_by_provider_and_outcome() {
    let app = TestApp::start().await;
    app.generate(app.request("sim-small", true)).await;
    let limited = with_headers(
        app.request("sim-small", false),
        &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "429")],
    );
    let events = app.generate(limited).await;
    assert!(matches!(events.last(), Some(Event::Error(_))), "{events:?}");

    // Server-side gRPC metrics land when the response stream is released,
    // which may trail the client's last message by a scheduler turn.
    let grpc_line = "switchyard_grpc_server_requests_total{service=\"switchyard.provider.v1.ProviderAdapterService\",method=\"Generate\",code=\"OK\"} 2";
    let mut text = scrape_metrics(app.metrics_addr).await;
    for _ in 0..50 {
        if text.contains(grpc_line) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        text = scrape_metrics(app.metrics_addr).await;
    }
    for expected in [
        r#"switchyard_adapter_upstream_requests_total{provider="sim",outcome="ok"} 1"#,
        r#"switchyard_adapter_upstream_requests_total{provider="sim",outcome="rate_limited"} 1"#,
        r#"switchyard_adapter_upstream_ttft_seconds_count{provider="sim"} 1"#,
        r#"switchyard_adapter_upstream_duration_seconds_count{provider="sim",outcome="ok"} 1"#,
        "switchyard_grpc_server_duration_seconds_count{service=\"switchyard.provider.v1.ProviderAdapterService\",method=\"Generate\"} 2",
        grpc_line,
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    let values = metric_label_values(&text);
    assert!(values.contains(&"rate_limited".to_owned()), "{values:?}");
    for value in values {
        assert!(
            !value.contains("gen-") && !value.contains("hello") && !value.contains("sk-"),
            "suspicious label value {value}"
        );
        assert!(!value.contains("sim-small"), "model names are not labels");
    }
}
