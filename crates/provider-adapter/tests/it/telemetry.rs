//! Observability: `/metrics` after traffic (the span tree has its own test
//! binary, `tests/trace.rs`).

use switchyard_kit::testing::{metric_label_values, scrape_metrics};
use switchyard_proto::provider::v1::generate_response::Event;

use crate::{TestApp, with_headers};

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
