//! Helpers for the Anthropic and Gemini surfaces: requests, and parsers for
//! their event streams.

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::TestSim;

impl TestSim {
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("send request")
    }

    pub async fn post_json(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Value {
        let response = self.post(path, body, headers).await;
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.expect("json body")
    }

    /// The body of a streamed answer that must end cleanly.
    pub async fn post_stream(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
        content_type: &str,
    ) -> String {
        let response = self.post(path, body, headers).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type);
        response.text().await.expect("stream body")
    }

    /// The text received before the connection was dropped; panics if the
    /// stream ended cleanly.
    pub async fn post_cut(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> String {
        let response = self.post(path, body, headers).await;
        assert_eq!(response.status(), 200);
        let mut stream = response.bytes_stream();
        let mut received = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(bytes) => received.push_str(std::str::from_utf8(&bytes).unwrap()),
                Err(_) => return received,
            }
        }
        panic!("the stream ended cleanly: {received}");
    }
}

/// Anthropic SSE: `(event name, data)` pairs, checking that each data's
/// `type` repeats the event name.
pub fn anthropic_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            let (name, data) = event
                .strip_prefix("event: ")
                .and_then(|rest| rest.split_once("\ndata: "))
                .unwrap_or_else(|| panic!("not an Anthropic event: {event:?}"));
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "{event}");
            (name.to_owned(), data)
        })
        .collect()
}

/// Gemini SSE: `data:` payloads separated by CRLF blank lines.
pub fn gemini_events(text: &str) -> Vec<Value> {
    text.split("\r\n\r\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            let data = event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {event:?}"));
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

pub const MESSAGES: &str = "/v1/messages";

/// The conversation of `crate::hello` in Anthropic's format.
pub fn anthropic_hello(model: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 1024,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Say hello to the switchyard."}],
    })
}

pub fn gemini_path(model: &str, action: &str) -> String {
    format!("/v1beta/models/{model}:{action}")
}

pub fn gemini_stream_path(model: &str) -> String {
    format!("{}?alt=sse", gemini_path(model, "streamGenerateContent"))
}

/// The conversation of `crate::hello` in Gemini's format.
pub fn gemini_hello() -> Value {
    json!({
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "contents": [{"role": "user", "parts": [{"text": "Say hello to the switchyard."}]}],
    })
}

/// The text of `crate::hello`'s OpenAI answer, for cross-format checks.
pub async fn openai_text(sim: &TestSim, model: &str) -> String {
    let body = sim.chat_json(&crate::hello(model), &[]).await;
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}
