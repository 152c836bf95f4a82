//! One trace per request, proven with an in-memory span exporter: from the
//! client's `traceparent` through router → provider-adapter → upstream and
//! router → usage-metering.
//!
//! This test has a binary of its own: the span capture is per thread while
//! `tracing`'s callsite interest is process-wide, so other tests running at
//! the same time in the same process could make it miss spans.

use switchyard_kit::telemetry::capture::{SpanData, SpanKind, capture_spans};
use switchyard_tests::Stack;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn trace_id(s: &SpanData) -> String {
    s.span_context.trace_id().to_string()
}

fn named<'a>(spans: &'a [SpanData], name: &str, kind: SpanKind) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name && s.span_kind == kind)
        .unwrap_or_else(|| {
            panic!(
                "no {kind:?} span {name}: {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
}

// Current-thread runtime (the default): every service of the stack runs on
// this thread, where `capture_spans` records.
#[tokio::test]
async fn one_trace_from_the_client_through_every_hop() {
    let capture = capture_spans();
    let stack = Stack::start().await;
    let prompt = "a prompt that must never appear in a span";
    let response = reqwest::Client::new()
        .post(stack.url("/api/v1/chat/completions"))
        .bearer_auth(&stack.key)
        .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
        .json(&serde_json::json!({"model": "openai/gpt-4", "messages": [{"role": "user", "content": prompt}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
    let key = stack.key.clone();
    stack.stop().await;

    // The HTTP span ends when the server drops the response body, which
    // can be a moment after the client has read it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let spans = loop {
        let spans = capture.finished();
        if spans
            .iter()
            .any(|s| s.name.starts_with("POST /api/v1/chat/completions"))
            || std::time::Instant::now() > deadline
        {
            break spans;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let http = spans
        .iter()
        .find(|s| s.name.starts_with("POST /api/v1/chat/completions"))
        .unwrap_or_else(|| {
            panic!(
                "router HTTP server span: {:?}",
                spans
                    .iter()
                    .map(|s| (&s.name, s.span_kind.clone()))
                    .collect::<Vec<_>>()
            )
        });
    assert_eq!(trace_id(http), TRACE, "continues the client's trace");
    assert_eq!(http.parent_span_id.to_string(), CLIENT_SPAN);

    let generate = "switchyard.provider.v1.ProviderAdapterService/Generate";
    let call = named(&spans, generate, SpanKind::Client);
    let served = named(&spans, generate, SpanKind::Server);
    let upstream = named(&spans, "upstream.generate", SpanKind::Client);
    let auth = named(
        &spans,
        "switchyard.metering.v1.UsageMeteringService/AuthenticateKey",
        SpanKind::Server,
    );
    for span in [call, served, upstream, auth] {
        assert_eq!(
            trace_id(span),
            TRACE,
            "{} is in the request's trace",
            span.name
        );
    }
    assert_eq!(
        served.parent_span_id,
        call.span_context.span_id(),
        "adapter continues the router's call"
    );
    assert_eq!(
        upstream.parent_span_id,
        served.span_context.span_id(),
        "the upstream call is the adapter's child"
    );

    // Nothing sensitive in any span.
    for span in &spans {
        for kv in &span.attributes {
            let value = kv.value.to_string();
            assert!(!value.contains(prompt), "prompt in {}", span.name);
            assert!(!value.contains(&key), "key in {}", span.name);
        }
    }
}
