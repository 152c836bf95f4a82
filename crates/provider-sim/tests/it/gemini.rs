//! Gemini generateContent: body and stream shapes (SSE and JSON array),
//! limits, function calls, thoughts, JSON mode, errors, auth and safety.

use provider_sim::Config;
use serde_json::{Value, json};

use crate::TestSim;
use crate::wire::{gemini_events, gemini_hello, gemini_path, gemini_stream_path, openai_text};

fn generate(model: &str) -> String {
    gemini_path(model, "generateContent")
}

async fn sse(sim: &TestSim, body: &Value, headers: &[(&str, &str)]) -> Vec<Value> {
    let text = sim
        .post_stream(&gemini_stream_path("m"), body, headers, "text/event-stream")
        .await;
    gemini_events(&text)
}

fn parts(response: &Value) -> &Vec<Value> {
    response["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
}

fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .flat_map(|c| parts(c).iter())
        .filter(|p| p.get("thought").is_none())
        .filter_map(|p| p["text"].as_str())
        .collect()
}

/// `{"error":{"code","message","status"}}` with the given status.
async fn assert_error(response: reqwest::Response, code: u16, status: &str) -> Value {
    assert_eq!(response.status(), code);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["status"], status, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn non_streaming_response_has_gemini_shape() {
    let sim = TestSim::start().await;
    let body = sim
        .post_json(&generate("sim-small"), &gemini_hello(), &[])
        .await;
    let candidate = &body["candidates"][0];
    assert_eq!(candidate["index"], 0);
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(candidate["content"]["role"], "model");
    let text = parts(&body)[0]["text"].as_str().unwrap();
    assert_eq!(parts(&body).len(), 1);
    assert_eq!(text, openai_text(&sim, "sim-small").await);
    let usage = &body["usageMetadata"];
    assert_eq!(usage["promptTokenCount"], 17);
    assert_eq!(usage["candidatesTokenCount"], 24);
    assert_eq!(usage["totalTokenCount"], 41);
    assert!(usage.get("thoughtsTokenCount").is_none());
    assert_eq!(body["modelVersion"], "sim-small");
    assert!(body["responseId"].is_string());
}

#[tokio::test]
async fn sse_and_json_array_streams_carry_the_same_text() {
    let sim = TestSim::start().await;
    let whole = sim.post_json(&generate("m"), &gemini_hello(), &[]).await;
    let chunks = sse(&sim, &gemini_hello(), &[]).await;
    assert_eq!(chunks.len(), 24);
    for chunk in &chunks[..23] {
        assert!(
            chunk["candidates"][0].get("finishReason").is_none(),
            "{chunk}"
        );
        assert!(chunk.get("usageMetadata").is_none(), "{chunk}");
        assert_eq!(chunk["responseId"], chunks[0]["responseId"]);
    }
    let last = &chunks[23];
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"], whole["usageMetadata"]);
    assert_eq!(
        streamed_text(&chunks),
        parts(&whole)[0]["text"].as_str().unwrap()
    );

    let path = gemini_path("m", "streamGenerateContent");
    let array = sim
        .post_stream(&path, &gemini_hello(), &[], "application/json")
        .await;
    let array: Vec<Value> = serde_json::from_str(&array).unwrap();
    assert_eq!(array.len(), 24);
    assert_eq!(streamed_text(&array), streamed_text(&chunks));
}

#[tokio::test]
async fn max_output_tokens_and_stop_sequences_end_the_answer() {
    let sim = TestSim::start().await;
    let mut body = gemini_hello();
    body["generationConfig"] = json!({"maxOutputTokens": 5});
    let answer = sim.post_json(&generate("m"), &body, &[]).await;
    assert_eq!(answer["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(answer["usageMetadata"]["candidatesTokenCount"], 5);
    let chunks = sse(&sim, &body, &[]).await;
    assert_eq!(chunks.len(), 5);
    assert_eq!(chunks[4]["candidates"][0]["finishReason"], "MAX_TOKENS");

    let full = sim.post_json(&generate("m"), &gemini_hello(), &[]).await;
    let full = parts(&full)[0]["text"].as_str().unwrap().to_owned();
    let word = full.split(' ').nth(6).unwrap();
    body["generationConfig"] = json!({"stopSequences": [word]});
    let answer = sim.post_json(&generate("m"), &body, &[]).await;
    assert_eq!(answer["candidates"][0]["finishReason"], "STOP");
    let text = parts(&answer)[0]["text"].as_str().unwrap();
    assert!(full.starts_with(text) && !text.contains(word), "{text}");
}

fn with_functions(mode: &str, allowed: &[&str]) -> Value {
    let mut body = gemini_hello();
    body["tools"] = json!([{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather by city", "parameters": {
            "type": "OBJECT",
            "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER"}},
        }},
        {"name": "get_time"},
    ]}]);
    let mut config = json!({"mode": mode});
    if !allowed.is_empty() {
        config["allowedFunctionNames"] = json!(allowed);
    }
    body["toolConfig"] = json!({"functionCallingConfig": config});
    body
}

#[tokio::test]
async fn mode_any_answers_with_a_function_call() {
    let sim = TestSim::start().await;
    let answer = sim
        .post_json(&generate("m"), &with_functions("ANY", &[]), &[])
        .await;
    assert_eq!(answer["candidates"][0]["finishReason"], "STOP");
    let call = &parts(&answer)[0]["functionCall"];
    assert_eq!(call["name"], "get_weather");
    assert!(call["args"]["city"].is_string() && call["args"]["days"].is_u64());
    assert!(
        answer["usageMetadata"]["candidatesTokenCount"]
            .as_u64()
            .unwrap()
            > 0
    );

    let allowed = with_functions("ANY", &["get_time"]);
    let answer = sim.post_json(&generate("m"), &allowed, &[]).await;
    assert_eq!(parts(&answer)[0]["functionCall"]["name"], "get_time");
    let auto = sim
        .post_json(&generate("m"), &with_functions("AUTO", &[]), &[])
        .await;
    assert!(parts(&auto)[0]["text"].is_string());

    let chunks = sse(&sim, &with_functions("ANY", &[]), &[]).await;
    assert_eq!(chunks.len(), 1);
    assert_eq!(parts(&chunks[0])[0]["functionCall"], *call);
    assert_eq!(chunks[0]["usageMetadata"], answer_usage(&sim).await);
}

async fn answer_usage(sim: &TestSim) -> Value {
    let answer = sim
        .post_json(&generate("m"), &with_functions("ANY", &[]), &[])
        .await;
    answer["usageMetadata"].clone()
}

fn thinking(include_thoughts: bool) -> Value {
    let mut body = gemini_hello();
    body["generationConfig"] = json!({"thinkingConfig": {
        "thinkingBudget": 1024, "includeThoughts": include_thoughts,
    }});
    body
}

#[tokio::test]
async fn thoughts_are_counted_and_shown_when_asked() {
    let sim = TestSim::start().await;
    let answer = sim.post_json(&generate("m"), &thinking(true), &[]).await;
    let shown = parts(&answer);
    assert_eq!(shown.len(), 2);
    assert_eq!(shown[0]["thought"], true);
    assert!(!shown[0]["text"].as_str().unwrap().is_empty());
    assert!(shown[1].get("thought").is_none());
    assert_eq!(shown[1]["text"], openai_text(&sim, "m").await.as_str());
    let usage = &answer["usageMetadata"];
    assert_eq!(usage["thoughtsTokenCount"], 24);
    assert_eq!(usage["candidatesTokenCount"], 24);
    assert_eq!(usage["totalTokenCount"], 17 + 48);

    let hidden = sim.post_json(&generate("m"), &thinking(false), &[]).await;
    assert_eq!(parts(&hidden).len(), 1);
    assert_eq!(hidden["usageMetadata"], *usage);

    let chunks = sse(&sim, &thinking(true), &[]).await;
    assert_eq!(chunks.len(), 48);
    assert!(chunks[..24].iter().all(|c| parts(c)[0]["thought"] == true));
    assert!(
        chunks[24..]
            .iter()
            .all(|c| parts(c)[0].get("thought").is_none())
    );
}

#[tokio::test]
async fn json_mode_answers_with_schema_shaped_json() {
    let sim = TestSim::start().await;
    let mut body = gemini_hello();
    body["generationConfig"] = json!({
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {
            "greeting": {"type": "STRING"}, "count": {"type": "INTEGER"},
        }},
    });
    let answer = sim.post_json(&generate("m"), &body, &[]).await;
    let json: Value = serde_json::from_str(parts(&answer)[0]["text"].as_str().unwrap()).unwrap();
    assert!(
        json["greeting"].is_string() && json["count"].is_u64(),
        "{json}"
    );
}

#[tokio::test]
async fn faults_use_google_error_shapes() {
    let sim = TestSim::start().await;
    let path = generate("m");
    let body = gemini_hello();
    let failed = sim.post(&path, &body, &[("x-sim-fail-rate", "1")]).await;
    assert_error(failed, 500, "INTERNAL").await;
    let unavailable = [("x-sim-fail-rate", "1"), ("x-sim-fail-status", "503")];
    let unavailable = sim.post(&path, &body, &unavailable).await;
    assert_error(unavailable, 503, "UNAVAILABLE").await;

    let limited = sim
        .post(&path, &body, &[("x-sim-rate-limit-after-secs", "7")])
        .await;
    let error = assert_error(limited, 429, "RESOURCE_EXHAUSTED").await;
    let retry = &error["error"]["details"][0];
    assert_eq!(retry["@type"], "type.googleapis.com/google.rpc.RetryInfo");
    assert_eq!(retry["retryDelay"], "7s");

    let long = sim
        .post(&path, &body, &[("x-sim-context-length", "10")])
        .await;
    let error = assert_error(long, 400, "INVALID_ARGUMENT").await;
    assert!(error["error"]["message"].as_str().unwrap().contains("(17)"));

    let empty = sim.post(&path, &json!({"contents": []}), &[]).await;
    assert_error(empty, 400, "INVALID_ARGUMENT").await;
    let unknown = sim
        .post(&gemini_path("m", "embedEverything"), &body, &[])
        .await;
    assert_error(unknown, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn cut_streams_drop_or_end_with_an_error_chunk() {
    let sim = TestSim::start().await;
    let path = gemini_stream_path("m");
    let received = sim
        .post_cut(&path, &gemini_hello(), &[("x-sim-cut-after-chunks", "3")])
        .await;
    assert_eq!(received.matches("data: ").count(), 3);

    let headers = [
        ("x-sim-cut-after-chunks", "3"),
        ("x-sim-cut-with-error", "1"),
    ];
    let chunks = sse(&sim, &gemini_hello(), &headers).await;
    assert_eq!(chunks.len(), 4);
    assert_eq!(chunks[3]["error"]["status"], "UNAVAILABLE");
}

#[tokio::test]
async fn safety_block_is_reported_as_prompt_feedback() {
    let sim = TestSim::start().await;
    let headers = [("x-sim-safety-block", "true")];
    let answer = sim
        .post_json(&generate("m"), &gemini_hello(), &headers)
        .await;
    assert_eq!(answer["promptFeedback"]["blockReason"], "SAFETY");
    assert!(answer.get("candidates").is_none());
    assert_eq!(answer["usageMetadata"]["promptTokenCount"], 17);
    let chunks = sse(&sim, &gemini_hello(), &headers).await;
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0]["promptFeedback"]["blockReason"], "SAFETY");
}

#[tokio::test]
async fn api_key_is_taken_from_header_or_query() {
    let sim = TestSim::start_with(Config {
        api_key: Some("goog-sim".to_owned()),
        ..Config::ephemeral()
    })
    .await;
    let path = generate("m");
    let body = gemini_hello();
    let missing = sim.post(&path, &body, &[]).await;
    assert_error(missing, 403, "PERMISSION_DENIED").await;
    let wrong = sim.post(&path, &body, &[("x-goog-api-key", "nope")]).await;
    let error = assert_error(wrong, 400, "INVALID_ARGUMENT").await;
    assert_eq!(error["error"]["details"][0]["reason"], "API_KEY_INVALID");
    let right = sim
        .post(&path, &body, &[("x-goog-api-key", "goog-sim")])
        .await;
    assert_eq!(right.status(), 200);
    let query = sim.post(&format!("{path}?key=goog-sim"), &body, &[]).await;
    assert_eq!(query.status(), 200);
    let stream = format!("{}&key=goog-sim", gemini_stream_path("m"));
    assert_eq!(sim.post(&stream, &body, &[]).await.status(), 200);
}

#[tokio::test]
async fn count_tokens_and_model_list() {
    let sim = TestSim::start().await;
    let count = sim
        .post_json(&gemini_path("m", "countTokens"), &gemini_hello(), &[])
        .await;
    assert_eq!(count["totalTokens"], 17);
    assert!(sim.stats().await.models.is_empty());
    let models: Value = reqwest::get(sim.url("/v1beta/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["models"][0]["name"], "models/sim-large");
}
