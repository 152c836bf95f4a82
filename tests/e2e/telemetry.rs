//! The router's `/metrics` (the span tree has its own test binary,
//! `tests/trace`).

use switchyard_tests::Stack;

use crate::helpers::*;

#[tokio::test]
async fn router_metrics_cover_requests_attempts_and_cost_with_low_cardinality_labels() {
    let stack = Stack::start().await;
    for stream in [false, true] {
        let r = post_chat(&stack, &chat_body(stream)).await;
        assert_eq!(r.status(), 200);
        r.text().await.unwrap();
    }
    let mut unknown = chat_body(false);
    unknown["model"] = serde_json::json!("nobody/nothing");
    assert_eq!(post_chat(&stack, &unknown).await.status(), 404);
    let text = client()
        .get(stack.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "switchyard_router_completions_total{",
        "switchyard_router_attempts_total{provider=\"sim-cheap\",outcome=\"ok\"}",
        "switchyard_router_errors_total{error_type=\"not_found\"} 1",
        "switchyard_router_ttft_seconds_bucket",
        "switchyard_router_duration_seconds_bucket",
        "switchyard_router_cost_nanodollars_total",
        "switchyard_router_usage_spool_frames 0",
        "switchyard_http_server_requests_total{route=\"/api/v1/chat/completions\",method=\"POST\",status=\"2xx\"} 2",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    assert!(!text.contains(&stack.key), "no key in metrics");
    assert!(!text.contains("gen-"), "no generation ids in metrics");
    assert!(
        !text.contains("nobody/nothing"),
        "no user-supplied model ids in metrics"
    );
    stack.stop().await;
}
