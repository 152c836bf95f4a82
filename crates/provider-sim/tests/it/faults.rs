//! Each fault knob, set by header and per model.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use provider_sim::Config;
use serde_json::{Value, json};

use crate::{TestSim, hello, streaming};

async fn error_body(response: reqwest::Response) -> Value {
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn fail_rate_one_fails_with_the_given_status() {
    let sim = TestSim::start().await;
    let response = sim.chat(&hello("m"), &[("x-sim-fail-rate", "1")]).await;
    assert_eq!(response.status(), 500);
    let body = error_body(response).await;
    assert_eq!(body["error"]["type"], "server_error");
    let response = sim
        .chat(
            &hello("m"),
            &[("x-sim-fail-rate", "1"), ("x-sim-fail-status", "503")],
        )
        .await;
    assert_eq!(response.status(), 503);
    let response = sim.chat(&hello("m"), &[("x-sim-fail-rate", "0")]).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn fail_rate_is_random_but_reproducible() {
    let statuses = |sim: TestSim| async move {
        let mut out = Vec::new();
        for _ in 0..30 {
            out.push(
                sim.chat(&hello("m"), &[("x-sim-fail-rate", "0.5")])
                    .await
                    .status()
                    .as_u16(),
            );
        }
        out
    };
    let first = statuses(TestSim::start().await).await;
    let second = statuses(TestSim::start().await).await;
    assert_eq!(first, second);
    assert!(first.contains(&200) && first.contains(&500), "{first:?}");
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let sim = TestSim::start().await;
    let response = sim
        .chat(&hello("m"), &[("x-sim-rate-limit-after-secs", "7")])
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let body = error_body(response).await;
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn context_length_overflow_is_a_400() {
    let sim = TestSim::start().await;
    let response = sim
        .chat(&hello("m"), &[("x-sim-context-length", "10")])
        .await;
    assert_eq!(response.status(), 400);
    let body = error_body(response).await;
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let response = sim
        .chat(&hello("m"), &[("x-sim-context-length", "17")])
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn hang_never_answers() {
    let sim = TestSim::start().await;
    let request = sim
        .client
        .post(sim.url("/v1/chat/completions"))
        .header("x-sim-hang", "true")
        .timeout(Duration::from_millis(300));
    let err = request.json(&hello("m")).send().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");

    // Streaming: headers arrive, tokens never do.
    let response = sim
        .chat(&streaming(hello("m")), &[("x-sim-hang", "1")])
        .await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let next = tokio::time::timeout(Duration::from_millis(300), body.next()).await;
    assert!(next.is_err(), "got {next:?}");
}

#[tokio::test]
async fn cut_after_chunks_drops_the_connection() {
    let sim = TestSim::start().await;
    let response = sim
        .chat(&streaming(hello("m")), &[("x-sim-cut-after-chunks", "3")])
        .await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut received = String::new();
    let mut failed = false;
    while let Some(item) = body.next().await {
        match item {
            Ok(bytes) => received.push_str(std::str::from_utf8(&bytes).unwrap()),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the stream ended cleanly: {received}");
    assert_eq!(received.matches("data: ").count(), 3);
    assert!(!received.contains("[DONE]"));

    let response = sim
        .chat(&hello("m"), &[("x-sim-cut-after-chunks", "0")])
        .await;
    assert!(response.bytes().await.is_err());
}

#[tokio::test]
async fn ttft_and_tokens_per_second_pace_the_stream() {
    let sim = TestSim::start().await;
    let started = Instant::now();
    sim.chat_json(&hello("m"), &[("x-sim-ttft-ms", "300")])
        .await;
    assert!(started.elapsed() >= Duration::from_millis(300));

    let started = Instant::now();
    let headers = [
        ("x-sim-tokens-per-second", "50"),
        ("x-sim-completion-tokens", "11"),
    ];
    let events = sim.chat_events(&streaming(hello("m")), &headers).await;
    assert_eq!(events.len(), 1 + 11 + 2 + 1);
    // 10 gaps of 20 ms after the first token.
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn per_model_knobs_apply_and_headers_override_them() {
    let sim = TestSim::start().await;
    sim.put_knobs("flaky", json!({"fail_rate": 1.0, "fail_status": 502}))
        .await;
    assert_eq!(sim.chat(&hello("flaky"), &[]).await.status(), 502);
    assert_eq!(sim.chat(&hello("other"), &[]).await.status(), 200);
    let overridden = sim.chat(&hello("flaky"), &[("x-sim-fail-rate", "0")]).await;
    assert_eq!(overridden.status(), 200);

    let knobs: Value = sim
        .client
        .get(sim.url("/sim/models/flaky"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(knobs["fail_status"], 502);
    let models: Value = reqwest::get(sim.url("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "flaky")
    );

    let deleted = sim
        .client
        .delete(sim.url("/sim/models/flaky"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(sim.chat(&hello("flaky"), &[]).await.status(), 200);

    let bad = sim
        .client
        .put(sim.url("/sim/models/flaky"))
        .json(&json!({"fail_rate": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn bad_knob_headers_are_rejected() {
    let sim = TestSim::start().await;
    let response = sim.chat(&hello("m"), &[("x-sim-ttft-ms", "soon")]).await;
    assert_eq!(response.status(), 400);
    error_body(response).await;
}

#[tokio::test]
async fn behaviour_file_sets_per_model_and_default_knobs() {
    let path = std::env::temp_dir().join(format!(
        "provider-sim-behaviour-{}-{}.toml",
        std::process::id(),
        line!()
    ));
    std::fs::write(
        &path,
        "[tiny-context]\ncontext_length = 5\n\n[\"*\"]\ncompletion_tokens = 2\n",
    )
    .unwrap();
    let sim = TestSim::start_with(Config {
        behaviour_file: Some(path.clone()),
        ..Config::ephemeral()
    })
    .await;
    std::fs::remove_file(&path).unwrap();
    assert_eq!(sim.chat(&hello("tiny-context"), &[]).await.status(), 400);
    let answer = sim.chat_json(&hello("anything"), &[]).await;
    assert_eq!(answer["usage"]["completion_tokens"], 2);

    sim.put_knobs("tiny-context", json!({})).await;
    assert_eq!(sim.chat(&hello("tiny-context"), &[]).await.status(), 200);
    sim.client
        .delete(sim.url("/sim/models/tiny-context"))
        .send()
        .await
        .unwrap();
    assert_eq!(sim.chat(&hello("tiny-context"), &[]).await.status(), 400);
}

#[tokio::test]
async fn api_key_is_enforced() {
    let sim = TestSim::start_with(Config {
        api_key: Some("sk-sim-test".to_owned()),
        ..Config::ephemeral()
    })
    .await;
    let response = sim.chat(&hello("m"), &[]).await;
    assert_eq!(response.status(), 401);
    let body = error_body(response).await;
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let wrong = sim
        .chat(&hello("m"), &[("authorization", "Bearer nope")])
        .await;
    assert_eq!(wrong.status(), 401);
    let right = sim
        .chat(&hello("m"), &[("authorization", "Bearer sk-sim-test")])
        .await;
    assert_eq!(right.status(), 200);
    let health = reqwest::get(sim.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}
