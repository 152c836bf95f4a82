//! One trace across client → adapter → upstream with the W3C context on the
//! upstream request, proven with an in-memory span exporter.
//!
//! A binary of its own: the span capture is per thread while `tracing`'s
//! callsite interest is process-wide, so tests running at the same time in
//! the same process could make it miss spans.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use secrecy::SecretString;
use switchyard_kit::Shutdown;
use switchyard_kit::telemetry::capture::{SpanData, SpanKind, capture_spans};
use switchyard_proto::provider::v1::generate_response::Event;
use switchyard_proto::provider::v1::provider_adapter_service_client::ProviderAdapterServiceClient;
use switchyard_provider_adapter::{App, Config};
use tracing::Instrument;

use switchyard_proto::common::v1::{ChatMessage, ChatRequest};
use switchyard_proto::provider::v1::{GenerateRequest, UpstreamTarget, WireFormat};
use tonic::Streaming;

const PROMPT: &str = "Say hello to the switchyard.";
const SECRET: &str = "sk-test-secret-value";

struct TestApp;

impl TestApp {
    /// A non-streaming request for `model` at the OpenAI-compatible `base_url`.
    pub fn request_template(base_url: &str, model: &str) -> GenerateRequest {
        GenerateRequest {
            target: Some(UpstreamTarget {
                provider_slug: "sim".into(),
                wire_format: WireFormat::OpenaiChat as i32,
                base_url: format!("{base_url}/"),
                upstream_model: model.into(),
                credential_ref: String::new(),
                endpoint_id: "sim/test".into(),
            }),
            request: Some(ChatRequest {
                messages: vec![ChatMessage {
                    role: "user".into(),
                    text: Some("Say hello to the switchyard.".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            stream: false,
            generation_id: "gen-test".into(),
            ..Default::default()
        }
    }
}

pub async fn collect(
    mut stream: Streaming<switchyard_proto::provider::v1::GenerateResponse>,
) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(item) = stream.message().await.expect("stream item") {
        events.push(item.event.expect("event set"));
    }
    events
}

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
