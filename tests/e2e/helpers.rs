//! Small helpers for talking to a running stack.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::Stack;

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub fn chat_body(stream: bool) -> Value {
    json!({
        "model": "openai/gpt-4",
        "messages": [{"role": "user", "content": "Tell me about switchyards."}],
        "stream": stream,
    })
}

pub async fn post_chat(stack: &Stack, body: &Value) -> reqwest::Response {
    client()
        .post(stack.url("/api/v1/chat/completions"))
        .bearer_auth(&stack.key)
        .header("HTTP-Referer", "https://e2e.example")
        .header("X-Title", "E2E Suite")
        .json(body)
        .send()
        .await
        .expect("router reachable")
}

/// `data:` payloads and comment lines of an SSE body, in order.
pub fn sse_events(body: &str) -> (Vec<String>, Vec<String>) {
    let (mut data, mut comments) = (Vec::new(), Vec::new());
    for line in body.lines() {
        if let Some(d) = line.strip_prefix("data: ") {
            data.push(d.to_owned());
        } else if let Some(c) = line.strip_prefix(':') {
            comments.push(c.trim().to_owned());
        }
    }
    (data, comments)
}

/// Rows in `metering.generations` of the stack's database.
pub async fn count_generations(database_url: &str) -> i64 {
    let pool = sqlx::PgPool::connect(database_url).await.expect("postgres");
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM metering.generations")
        .fetch_one(&pool)
        .await
        .expect("count")
}

/// Usage reaches metering asynchronously (batched, off the hot path): wait
/// for the record, as OpenRouter clients do, up to a bound.
pub async fn wait_for_generation(stack: &Stack, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = client()
            .get(stack.url(&format!("/api/v1/generation?id={id}")))
            .bearer_auth(&stack.key)
            .send()
            .await
            .expect("router reachable");
        if response.status() == 200 {
            return response.json().await.expect("json");
        }
        assert_eq!(response.status(), 404, "unexpected status while waiting");
        assert!(
            tokio::time::Instant::now() < deadline,
            "generation {id} never recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn assert_envelope(body: &Value, status: u16, error_type: &str) {
    assert_eq!(body["error"]["code"], status, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(
        body["error"]["metadata"]["error_type"], error_type,
        "{body}"
    );
}
