//! Bad input gets the right status in OpenRouter's envelope and leaves no
//! usage record behind.

use serde_json::{Value, json};
use switchyard_tests::{Options, Stack};

use crate::helpers::*;

async fn send(stack: &Stack, key: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut request = client()
        .post(stack.url("/api/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/json");
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn bad_requests_get_the_right_status_and_no_usage_record() {
    let stack = Stack::start_with(Options {
        max_body_bytes: 64 * 1024,
        ..Default::default()
    })
    .await;
    let key = stack.key.clone();
    let valid = serde_json::to_vec(&chat_body(false)).unwrap();
    /// (what, key, body, expected status, expected error_type)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("malformed JSON", Some(&key), b"{\"model\": \"openai/gpt-4\", ".to_vec(), 400, "invalid_request"),
        ("missing messages", Some(&key), br#"{"model":"openai/gpt-4"}"#.to_vec(), 400, "invalid_request"),
        ("wrong type", Some(&key), br#"{"model":"openai/gpt-4","messages":"hi"}"#.to_vec(), 400, "invalid_request"),
        (
            "unknown model",
            Some(&key),
            serde_json::to_vec(&json!({"model": "nobody/nothing", "messages": [{"role": "user", "content": "x"}]})).unwrap(),
            404,
            "not_found",
        ),
        ("missing key", None, valid.clone(), 401, "authentication"),
        ("invalid key", Some("sk-sy-v1-0000000000000000000000000000000000000000000000000000000000000000"), valid.clone(), 401, "authentication"),
        (
            "oversized body",
            Some(&key),
            serde_json::to_vec(&json!({"model": "openai/gpt-4", "messages": [{"role": "user", "content": "x".repeat(100 * 1024)}]})).unwrap(),
            413,
            "payload_too_large",
        ),
    ];
    for (name, key, body, status, error_type) in cases {
        let (got, body) = send(&stack, key, body).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_envelope(&body, status, error_type);
    }
    // A management key cannot run inference.
    let management = stack
        .metering
        .ensure_key(
            "admin",
            switchyard_usage_metering::KeyKind::Management,
            None,
            switchyard_usage_metering::ledger::Billing::Postpaid,
        )
        .await
        .unwrap()
        .key_text;
    let (got, body) = send(&stack, Some(&management), valid).await;
    assert_eq!(got, 403);
    assert_envelope(&body, 403, "permission_denied");

    // No request above reached a provider or produced a usage record.
    assert!(stack.sim.stats().models.is_empty(), "no upstream calls");
    let db_url = stack.database_url.clone();
    stack.stop().await;
    assert_eq!(count_generations(&db_url).await, 0);
}

#[tokio::test]
async fn unknown_routes_and_generation_errors_use_the_envelope() {
    let stack = Stack::start().await;
    let response = client()
        .get(stack.url("/api/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_envelope(&response.json().await.unwrap(), 404, "not_found");
    let response = client()
        .get(stack.url("/api/v1/generation"))
        .bearer_auth(&stack.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = client()
        .get(stack.url("/api/v1/generation?id=gen-1-nothing"))
        .bearer_auth(&stack.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    stack.stop().await;
}

#[tokio::test]
async fn a_50_mb_body_is_refused_with_413_and_nothing_else_happens() {
    let stack = Stack::start_with(Options {
        max_body_bytes: 32 * 1024 * 1024,
        ..Default::default()
    })
    .await;
    let huge = serde_json::to_vec(&json!({
        "model": "openai/gpt-4",
        "messages": [{"role": "user", "content": "x".repeat(50 * 1024 * 1024)}],
    }))
    .unwrap();
    for declared in [true, false] {
        let mut request = client()
            .post(stack.url("/api/v1/chat/completions"))
            .bearer_auth(&stack.key)
            .header("content-type", "application/json");
        request = if declared {
            request.body(huge.clone())
        } else {
            // Chunked: no Content-Length to reject early.
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                huge.chunks(1 << 20).map(|c| Ok(c.to_vec())).collect();
            request.body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
        };
        let response = request
            .send()
            .await
            .expect("the router answers instead of dropping the connection");
        assert_eq!(response.status(), 413, "declared length: {declared}");
        assert_envelope(&response.json().await.unwrap(), 413, "payload_too_large");
    }
    // Still serving.
    assert_eq!(post_chat(&stack, &chat_body(false)).await.status(), 200);
    let db_url = stack.database_url.clone();
    stack.stop().await;
    assert_eq!(
        count_generations(&db_url).await,
        1,
        "only the normal request was recorded"
    );
}
