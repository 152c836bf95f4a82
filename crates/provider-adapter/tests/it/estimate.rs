//! Hosts that report no usage: the adapter still asks for it
//! (`stream_options.include_usage`), and when none comes estimates it from
//! text length and flags it `estimated`. A minimal OpenAI-compatible host
//! stands in for such a provider (provider-sim always reports usage).

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use switchyard_proto::provider::v1::generate_response::Event;

use crate::{TestApp, content, finish, reasoning, usage};

type Seen = Arc<Mutex<Vec<Value>>>;

async fn completions(State(seen): State<Seen>, Json(body): Json<Value>) -> Response {
    let stream = body["stream"] == json!(true);
    seen.lock().unwrap().push(body);
    if !stream {
        let body = json!({"id": "c1", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Hello there, friend", "reasoning": "hmm"}}]});
        return Json(body).into_response();
    }
    let chunks = [
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning": "hmm"}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "Hello there, "}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "friend"}, "finish_reason": "stop"}]}),
    ];
    let mut text: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    text.push_str("data: [DONE]\n\n");
    ([(header::CONTENT_TYPE, "text/event-stream")], text).into_response()
}

async fn host() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn missing_usage_is_estimated_and_flagged() {
    let app = TestApp::start().await;
    let (url, seen) = host().await;
    for stream in [true, false] {
        let mut request = TestApp::request_template(&url, "m");
        request.stream = stream;
        let events = app.generate(request).await;
        assert_eq!(content(&events), "Hello there, friend");
        assert_eq!(reasoning(&events), "hmm");
        assert_eq!(finish(&events).1, "stop");
        let usage = usage(&events);
        assert!(usage.estimated, "{usage:?}");
        // "Say hello to the switchyard." is 28 chars -> 7, + 3 for the message.
        assert_eq!(usage.prompt_tokens, 10);
        // 19 chars of content + 3 of reasoning -> 6.
        assert_eq!(usage.completion_tokens, 6);
        assert_eq!(usage.reasoning_tokens, 1);
    }
    let bodies = seen.lock().unwrap();
    assert_eq!(bodies[0]["stream_options"], json!({"include_usage": true}));
    assert!(bodies[1].get("stream_options").is_none());
}

#[tokio::test]
async fn excluded_reasoning_is_counted_but_not_sent() {
    let app = TestApp::start().await;
    let (url, _seen) = host().await;
    let mut request = TestApp::request_template(&url, "m");
    request.stream = true;
    request.request.as_mut().unwrap().reasoning_json =
        Some(r#"{"effort":"low","exclude":true}"#.into());
    let events = app.generate(request).await;
    assert_eq!(reasoning(&events), "");
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, Event::Delta(d) if d.reasoning.is_some())),
        "{events:?}"
    );
    assert_eq!(usage(&events).completion_tokens, 6);
}
