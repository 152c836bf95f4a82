//! Anthropic Messages: body and stream shapes, limits, tools, thinking,
//! errors, auth and the safety refusal.

use provider_sim::Config;
use serde_json::{Value, json};

use crate::TestSim;
use crate::wire::{MESSAGES, anthropic_events, anthropic_hello, openai_text};

fn streaming(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

async fn events(sim: &TestSim, body: &Value, headers: &[(&str, &str)]) -> Vec<(String, Value)> {
    let text = sim
        .post_stream(
            MESSAGES,
            &streaming(body.clone()),
            headers,
            "text/event-stream",
        )
        .await;
    anthropic_events(&text)
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

/// `{"type":"error","error":{"type": kind, ..}}` with the given status.
async fn assert_error(response: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn non_streaming_message_has_anthropic_shape() {
    let sim = TestSim::start().await;
    let response = sim.post(MESSAGES, &anthropic_hello("sim-small"), &[]).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let body: Value = response.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "sim-small");
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["stop_sequence"].is_null());
    let content = body["content"].as_array().unwrap();
    assert_eq!(content.len(), 1);
    assert_eq!(content[0]["type"], "text");
    let text = content[0]["text"].as_str().unwrap();
    assert_eq!(text.split(' ').count(), 24);
    // The same conversation as the OpenAI test: same tokens, same words.
    let usage = &body["usage"];
    assert_eq!(usage["input_tokens"], 17);
    assert_eq!(usage["output_tokens"], 24);
    assert_eq!(usage["cache_creation_input_tokens"], 0);
    assert_eq!(usage["cache_read_input_tokens"], 0);
    assert_eq!(text, openai_text(&sim, "sim-small").await);
}

#[tokio::test]
async fn streaming_message_follows_the_event_sequence() {
    let sim = TestSim::start().await;
    let events = events(&sim, &anthropic_hello("sim-small"), &[]).await;
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(["content_block_delta"; 24]);
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names(&events), expected);

    let start = &events[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["role"], "assistant");
    assert!(start["stop_reason"].is_null());
    assert_eq!(start["usage"]["input_tokens"], 17);
    assert_eq!(events[1].1["index"], 0);
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = events[3..27]
        .iter()
        .map(|(_, e)| {
            assert_eq!(e["delta"]["type"], "text_delta");
            e["delta"]["text"].as_str().unwrap()
        })
        .collect();
    let delta = &events[28].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(delta["delta"]["stop_sequence"].is_null());
    assert_eq!(delta["usage"]["output_tokens"], 24);

    let whole = sim
        .post_json(MESSAGES, &anthropic_hello("sim-small"), &[])
        .await;
    assert_eq!(whole["content"][0]["text"], text.as_str());
    assert_eq!(
        start["id"].as_str().unwrap()[..20],
        whole["id"].as_str().unwrap()[..20]
    );
}

#[tokio::test]
async fn max_tokens_and_stop_sequences_end_the_answer() {
    let sim = TestSim::start().await;
    let mut body = anthropic_hello("m");
    body["max_tokens"] = json!(5);
    let answer = sim.post_json(MESSAGES, &body, &[]).await;
    assert_eq!(answer["stop_reason"], "max_tokens");
    assert_eq!(answer["usage"]["output_tokens"], 5);
    let events = events(&sim, &body, &[]).await;
    let delta = &events.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"]["output_tokens"], 5);

    let full = sim.post_json(MESSAGES, &anthropic_hello("m"), &[]).await;
    let full = full["content"][0]["text"].as_str().unwrap();
    let word = full.split(' ').nth(6).unwrap();
    let mut body = anthropic_hello("m");
    body["stop_sequences"] = json!(["never said", word]);
    let answer = sim.post_json(MESSAGES, &body, &[]).await;
    assert_eq!(answer["stop_reason"], "stop_sequence");
    assert_eq!(answer["stop_sequence"], word);
    let text = answer["content"][0]["text"].as_str().unwrap();
    assert!(full.starts_with(text) && !text.contains(word), "{text}");

    let mut missing = anthropic_hello("m");
    missing.as_object_mut().unwrap().remove("max_tokens");
    let response = sim.post(MESSAGES, &missing, &[]).await;
    let error = assert_error(response, 400, "invalid_request_error").await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );
}

fn with_tools(tool_choice: Value) -> Value {
    let mut body = anthropic_hello("m");
    body["tools"] = json!([
        {"name": "get_weather", "description": "Weather by city", "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        }},
        {"name": "get_time", "input_schema": {"type": "object"}},
    ]);
    body["tool_choice"] = tool_choice;
    body
}

#[tokio::test]
async fn forced_tool_choice_answers_with_tool_use() {
    let sim = TestSim::start().await;
    let answer = sim
        .post_json(MESSAGES, &with_tools(json!({"type": "any"})), &[])
        .await;
    assert_eq!(answer["stop_reason"], "tool_use");
    let block = &answer["content"][0];
    assert_eq!(answer["content"].as_array().unwrap().len(), 1);
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(block["name"], "get_weather");
    assert!(block["input"]["city"].is_string() && block["input"]["days"].is_u64());

    let named = json!({"type": "tool", "name": "get_time"});
    let answer = sim.post_json(MESSAGES, &with_tools(named), &[]).await;
    assert_eq!(answer["content"][0]["name"], "get_time");
    let auto = sim
        .post_json(MESSAGES, &with_tools(json!({"type": "auto"})), &[])
        .await;
    assert_eq!(auto["stop_reason"], "end_turn");
    assert_eq!(auto["content"][0]["type"], "text");

    let events = events(&sim, &with_tools(json!({"type": "any"})), &[]).await;
    let start = &events[1].1["content_block"];
    assert_eq!(start["type"], "tool_use");
    assert_eq!(start["input"], json!({}));
    assert_eq!(start["id"], block["id"]);
    let fragments: Vec<&str> = events
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .map(|(_, e)| {
            assert_eq!(e["delta"]["type"], "input_json_delta");
            e["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert!(
        fragments.iter().filter(|f| !f.is_empty()).count() >= 2,
        "{fragments:?}"
    );
    let input: Value = serde_json::from_str(&fragments.concat()).unwrap();
    assert_eq!(input, block["input"]);
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], answer_tokens(&sim).await);
}

async fn answer_tokens(sim: &TestSim) -> Value {
    let answer = sim
        .post_json(MESSAGES, &with_tools(json!({"type": "any"})), &[])
        .await;
    answer["usage"]["output_tokens"].clone()
}

fn thinking(mut body: Value, budget: u32) -> Value {
    body["max_tokens"] = json!(4096);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
    body
}

#[tokio::test]
async fn thinking_comes_first_with_a_signature() {
    let sim = TestSim::start().await;
    let answer = sim
        .post_json(MESSAGES, &thinking(anthropic_hello("m"), 2048), &[])
        .await;
    let content = answer["content"].as_array().unwrap();
    assert_eq!(content.len(), 2);
    assert_eq!(content[0]["type"], "thinking");
    assert!(!content[0]["thinking"].as_str().unwrap().is_empty());
    assert!(!content[0]["signature"].as_str().unwrap().is_empty());
    assert_eq!(content[1]["type"], "text");
    assert_eq!(content[1]["text"], openai_text(&sim, "m").await.as_str());
    assert_eq!(answer["usage"]["output_tokens"], 48);

    let events = events(&sim, &thinking(anthropic_hello("m"), 2048), &[]).await;
    let blocks: Vec<(&str, Value)> = events
        .iter()
        .filter(|(name, _)| name == "content_block_start")
        .map(|(_, e)| {
            (
                e["content_block"]["type"].as_str().unwrap(),
                e["index"].clone(),
            )
        })
        .collect();
    assert_eq!(blocks, [("thinking", json!(0)), ("text", json!(1))]);
    let deltas = |index: u64, kind: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|(_, e)| e["index"] == index && e["delta"]["type"] == kind)
            .map(|(_, e)| e["delta"].clone())
            .collect()
    };
    let thought: String = deltas(0, "thinking_delta")
        .iter()
        .map(|d| d["thinking"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(thought, content[0]["thinking"].as_str().unwrap());
    let signatures = deltas(0, "signature_delta");
    assert_eq!(signatures.len(), 1);
    assert_eq!(signatures[0]["signature"], content[0]["signature"]);
    assert_eq!(deltas(1, "text_delta").len(), 24);

    let small = sim
        .post(MESSAGES, &thinking(anthropic_hello("m"), 100), &[])
        .await;
    assert_error(small, 400, "invalid_request_error").await;
    let forced = thinking(with_tools(json!({"type": "any"})), 2048);
    let forced = sim.post(MESSAGES, &forced, &[]).await;
    assert_error(forced, 400, "invalid_request_error").await;
}

#[tokio::test]
async fn faults_use_anthropic_error_shapes() {
    let sim = TestSim::start().await;
    let body = anthropic_hello("m");
    let failed = sim.post(MESSAGES, &body, &[("x-sim-fail-rate", "1")]).await;
    assert_error(failed, 500, "api_error").await;
    let overloaded = [("x-sim-fail-rate", "1"), ("x-sim-fail-status", "529")];
    let overloaded = sim.post(MESSAGES, &body, &overloaded).await;
    assert_error(overloaded, 529, "overloaded_error").await;

    let limited = sim
        .post(MESSAGES, &body, &[("x-sim-rate-limit-after-secs", "7")])
        .await;
    assert_eq!(limited.headers()["retry-after"], "7");
    assert_error(limited, 429, "rate_limit_error").await;

    let long = sim
        .post(MESSAGES, &body, &[("x-sim-context-length", "10")])
        .await;
    let error = assert_error(long, 400, "invalid_request_error").await;
    assert_eq!(
        error["error"]["message"],
        "prompt is too long: 17 tokens > 10 maximum"
    );

    let bad = sim
        .post(MESSAGES, &body, &[("x-sim-ttft-ms", "soon")])
        .await;
    assert_error(bad, 400, "invalid_request_error").await;
    let role = json!({"model": "m", "max_tokens": 5,
        "messages": [{"role": "system", "content": "x"}]});
    let role = sim.post(MESSAGES, &role, &[]).await;
    assert_error(role, 400, "invalid_request_error").await;
}

#[tokio::test]
async fn cut_streams_drop_or_end_with_an_error_event() {
    let sim = TestSim::start().await;
    let body = streaming(anthropic_hello("m"));
    let received = sim
        .post_cut(MESSAGES, &body, &[("x-sim-cut-after-chunks", "4")])
        .await;
    assert_eq!(received.matches("event: ").count(), 4);

    let headers = [
        ("x-sim-cut-after-chunks", "4"),
        ("x-sim-cut-with-error", "true"),
    ];
    let text = sim
        .post_stream(MESSAGES, &body, &headers, "text/event-stream")
        .await;
    let events = anthropic_events(&text);
    assert_eq!(events.len(), 5);
    let (name, error) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(error["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn safety_block_is_a_refusal() {
    let sim = TestSim::start().await;
    let headers = [("x-sim-safety-block", "true")];
    let answer = sim
        .post_json(MESSAGES, &anthropic_hello("m"), &headers)
        .await;
    assert_eq!(answer["stop_reason"], "refusal");
    assert_eq!(answer["content"], json!([]));
    assert_eq!(answer["usage"]["output_tokens"], 0);
    let events = events(&sim, &anthropic_hello("m"), &headers).await;
    assert_eq!(
        names(&events),
        ["message_start", "ping", "message_delta", "message_stop"]
    );
    assert_eq!(events[2].1["delta"]["stop_reason"], "refusal");
}

#[tokio::test]
async fn api_key_is_taken_from_x_api_key_or_bearer() {
    let sim = TestSim::start_with(Config {
        api_key: Some("sk-ant-sim".to_owned()),
        ..Config::ephemeral()
    })
    .await;
    let body = anthropic_hello("m");
    let missing = sim.post(MESSAGES, &body, &[]).await;
    assert_error(missing, 401, "authentication_error").await;
    let wrong = sim.post(MESSAGES, &body, &[("x-api-key", "nope")]).await;
    assert_error(wrong, 401, "authentication_error").await;
    let headers = [
        ("x-api-key", "sk-ant-sim"),
        ("anthropic-version", "2023-06-01"),
    ];
    assert_eq!(sim.post(MESSAGES, &body, &headers).await.status(), 200);
    let bearer = [("authorization", "Bearer sk-ant-sim")];
    assert_eq!(sim.post(MESSAGES, &body, &bearer).await.status(), 200);
    // The OpenAI route keeps its own (bearer) scheme.
    let openai = sim
        .chat(&crate::hello("m"), &[("x-api-key", "sk-ant-sim")])
        .await;
    assert_eq!(openai.status(), 401);
}

#[tokio::test]
async fn count_tokens_matches_the_billed_input() {
    let sim = TestSim::start().await;
    let mut body = anthropic_hello("m");
    body.as_object_mut().unwrap().remove("max_tokens");
    let count = sim.post_json("/v1/messages/count_tokens", &body, &[]).await;
    assert_eq!(count, json!({"input_tokens": 17}));
    assert!(sim.stats().await.models.is_empty());
}
