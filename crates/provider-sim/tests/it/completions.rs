//! The answer itself: shapes, streaming, determinism, limits, tool calls.

use serde_json::{Value, json};

use crate::{TestSim, hello, streaming};

#[tokio::test]
async fn non_streaming_completion_has_openai_shape() {
    let sim = TestSim::start().await;
    let body = sim.chat_json(&hello("sim-small"), &[]).await;
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "sim-small");
    assert!(body["created"].is_u64());
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["role"], "assistant");
    let content = choice["message"]["content"].as_str().unwrap();
    assert_eq!(content.split(' ').count(), 24);
    // "You are terse." (14) + "Say hello to the switchyard." (28) = 42 chars -> 11, + 2 * 3.
    assert_eq!(body["usage"]["prompt_tokens"], 17);
    assert_eq!(body["usage"]["completion_tokens"], 24);
    assert_eq!(body["usage"]["total_tokens"], 41);
}

#[tokio::test]
async fn streaming_completion_has_openai_shape() {
    let sim = TestSim::start().await;
    let events = sim.chat_events(&streaming(hello("sim-small")), &[]).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    // role, 24 tokens, finish, usage
    assert_eq!(chunks.len(), 27);
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], chunks[0]["id"]);
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks[1..25]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    let finish = &chunks[25]["choices"][0];
    assert_eq!(finish["finish_reason"], "stop");
    assert_eq!(finish["delta"], json!({}));
    let usage = &chunks[26];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 24);
    assert_eq!(usage["usage"]["prompt_tokens"], 17);

    let whole = sim.chat_json(&hello("sim-small"), &[]).await;
    assert_eq!(whole["choices"][0]["message"]["content"], text.as_str());
}

#[tokio::test]
async fn streaming_without_include_usage_has_no_usage_chunk() {
    let sim = TestSim::start().await;
    let mut body = hello("sim-small");
    body["stream"] = json!(true);
    let events = sim.chat_events(&body, &[]).await;
    assert_eq!(events.len(), 1 + 24 + 1 + 1);
    assert!(!events.iter().any(|e| e.contains("\"usage\"")));
}

#[tokio::test]
async fn same_request_same_answer_different_request_different_answer() {
    let sim = TestSim::start().await;
    let text = |body: Value| {
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let a = text(sim.chat_json(&hello("sim-small"), &[]).await);
    let b = text(sim.chat_json(&hello("sim-small"), &[]).await);
    let other = TestSim::start().await;
    let c = text(other.chat_json(&hello("sim-small"), &[]).await);
    let mut changed = hello("sim-small");
    changed["messages"][1]["content"] = json!("Say goodbye.");
    let d = text(sim.chat_json(&changed, &[]).await);
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_ne!(a, d);
}

#[tokio::test]
async fn max_tokens_stops_with_length() {
    let sim = TestSim::start().await;
    for field in ["max_tokens", "max_completion_tokens"] {
        let mut body = hello("sim-small");
        body[field] = json!(5);
        let answer = sim.chat_json(&body, &[]).await;
        assert_eq!(answer["choices"][0]["finish_reason"], "length");
        assert_eq!(answer["usage"]["completion_tokens"], 5);
        let events = sim.chat_events(&streaming(body), &[]).await;
        let finish: Value = serde_json::from_str(&events[6]).unwrap();
        assert_eq!(finish["choices"][0]["finish_reason"], "length");
    }
    let answer = sim
        .chat_json(&hello("sim-small"), &[("x-sim-completion-tokens", "3")])
        .await;
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["completion_tokens"], 3);
}

fn with_tools(tool_choice: Value) -> Value {
    let mut body = hello("sim-small");
    body["tools"] = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        }}},
        {"type": "function", "function": {"name": "get_time"}},
    ]);
    body["tool_choice"] = tool_choice;
    body
}

#[tokio::test]
async fn required_tool_choice_answers_with_a_tool_call() {
    let sim = TestSim::start().await;
    let answer = sim.chat_json(&with_tools(json!("required")), &[]).await;
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].is_string() && args["days"].is_u64());

    let named = json!({"type": "function", "function": {"name": "get_time"}});
    let answer = sim.chat_json(&with_tools(named), &[]).await;
    assert_eq!(
        answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_time"
    );

    let answer = sim.chat_json(&with_tools(json!("auto")), &[]).await;
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn streamed_tool_call_arrives_in_fragments() {
    let sim = TestSim::start().await;
    let whole = sim.chat_json(&with_tools(json!("required")), &[]).await;
    let events = sim
        .chat_events(&streaming(with_tools(json!("required"))), &[])
        .await;
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let head = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(head["index"], 0);
    assert_eq!(head["function"]["name"], "get_weather");
    let fragments: Vec<&str> = chunks[1..]
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(fragments.len() >= 2, "{fragments:?}");
    let expected = &whole["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(
        fragments.concat(),
        expected["function"]["arguments"].as_str().unwrap()
    );
    assert_eq!(head["id"], expected["id"]);
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("tool_calls"));
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage, &whole["usage"]);
}

#[tokio::test]
async fn models_and_health() {
    let sim = TestSim::start().await;
    let health = reqwest::get(sim.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let models: Value = reqwest::get(sim.url("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["sim-large", "sim-small"]);
}
