//! What the three formats share: one model's stats across formats, per-model
//! knobs, pacing and hangs everywhere, and the new knobs on the OpenAI side.

use std::time::{Duration, Instant};

use provider_sim::ModelStats;
use serde_json::{Value, json};

use crate::wire::{MESSAGES, anthropic_hello, gemini_hello, gemini_path, gemini_stream_path};
use crate::{TestSim, hello, sse_data, streaming};

#[tokio::test]
async fn stats_count_every_format_under_one_model() {
    let sim = TestSim::start().await;
    let mut anthropic = anthropic_hello("m");
    sim.chat_json(&hello("m"), &[]).await;
    sim.post_json(MESSAGES, &anthropic, &[]).await;
    anthropic["stream"] = json!(true);
    sim.post_stream(MESSAGES, &anthropic, &[], "text/event-stream")
        .await;
    sim.post_json(&gemini_path("m", "generateContent"), &gemini_hello(), &[])
        .await;
    sim.post_stream(
        &gemini_stream_path("m"),
        &gemini_hello(),
        &[],
        "text/event-stream",
    )
    .await;
    let failed = sim
        .post(MESSAGES, &anthropic, &[("x-sim-fail-rate", "1")])
        .await;
    assert_eq!(failed.status(), 500);
    let limited = [("x-sim-rate-limit-after-secs", "1")];
    let gemini = gemini_path("m", "generateContent");
    let limited = sim.post(&gemini, &gemini_hello(), &limited).await;
    assert_eq!(limited.status(), 429);
    // Anthropic stream cut after message_start, block start, ping and 2 tokens.
    sim.post_cut(MESSAGES, &anthropic, &[("x-sim-cut-after-chunks", "5")])
        .await;

    let stats = sim.stats().await;
    assert_eq!(
        stats.models["m"],
        ModelStats {
            requests: 8,
            successful: 5,
            failed: 3,
            prompt_tokens: 6 * 17,
            completion_tokens: 5 * 24 + 2,
            cancelled: 0,
        }
    );
}

#[tokio::test]
async fn per_model_knobs_apply_to_every_format() {
    let sim = TestSim::start().await;
    sim.put_knobs(
        "slow",
        json!({"completion_tokens": 3, "fail_rate": 1.0, "fail_status": 503}),
    )
    .await;
    assert_eq!(sim.chat(&hello("slow"), &[]).await.status(), 503);
    let anthropic = sim.post(MESSAGES, &anthropic_hello("slow"), &[]).await;
    assert_eq!(anthropic.status(), 503);
    let gemini = gemini_path("slow", "generateContent");
    assert_eq!(sim.post(&gemini, &gemini_hello(), &[]).await.status(), 503);

    let ok = [("x-sim-fail-rate", "0")];
    let answer = sim.post_json(MESSAGES, &anthropic_hello("slow"), &ok).await;
    assert_eq!(answer["usage"]["output_tokens"], 3);
    let answer = sim.post_json(&gemini, &gemini_hello(), &ok).await;
    assert_eq!(answer["usageMetadata"]["candidatesTokenCount"], 3);
}

#[tokio::test]
async fn ttft_and_hang_apply_to_every_format() {
    let sim = TestSim::start().await;
    let started = Instant::now();
    sim.post_json(MESSAGES, &anthropic_hello("m"), &[("x-sim-ttft-ms", "200")])
        .await;
    let gemini = gemini_path("m", "generateContent");
    sim.post_json(&gemini, &gemini_hello(), &[("x-sim-ttft-ms", "200")])
        .await;
    assert!(started.elapsed() >= Duration::from_millis(400));

    for (path, body) in [
        (MESSAGES.to_owned(), anthropic_hello("m")),
        (gemini, gemini_hello()),
    ] {
        let request = sim
            .client
            .post(sim.url(&path))
            .header("x-sim-hang", "true")
            .timeout(Duration::from_millis(300));
        let err = request.json(&body).send().await.unwrap_err();
        assert!(err.is_timeout(), "{path}: {err}");
    }
}

#[tokio::test]
async fn openai_safety_block_is_a_content_filter_finish() {
    let sim = TestSim::start().await;
    let headers = [("x-sim-safety-block", "true")];
    let answer = sim.chat_json(&hello("m"), &headers).await;
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "content_filter");
    assert!(choice["message"]["content"].is_null());
    assert_eq!(answer["usage"]["completion_tokens"], 0);

    let events = sim.chat_events(&streaming(hello("m")), &headers).await;
    let finish: Value = serde_json::from_str(&events[1]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "content_filter");
}

#[tokio::test]
async fn openai_cut_with_error_ends_with_an_error_event() {
    let sim = TestSim::start().await;
    let headers = [
        ("x-sim-cut-after-chunks", "3"),
        ("x-sim-cut-with-error", "true"),
    ];
    let response = sim.chat(&streaming(hello("m")), &headers).await;
    assert_eq!(response.status(), 200);
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.len(), 4);
    let error: Value = serde_json::from_str(&events[3]).unwrap();
    assert_eq!(error["error"]["type"], "server_error");
    assert_eq!(sim.stats().await.models["m"].failed, 1);
}

#[tokio::test]
async fn openai_stop_ends_before_the_sequence() {
    let sim = TestSim::start().await;
    let full = sim.chat_json(&hello("m"), &[]).await;
    let full = full["choices"][0]["message"]["content"].as_str().unwrap();
    let word = full.split(' ').nth(4).unwrap();
    let mut body = hello("m");
    body["stop"] = json!(word);
    let answer = sim.chat_json(&body, &[]).await;
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(full.starts_with(text) && !text.contains(word), "{text}");
}
