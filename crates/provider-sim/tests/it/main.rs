//! provider-sim integration tests: a real server on port 0, called over HTTP.

mod anthropic;
mod completions;
mod faults;
mod gemini;
mod shared;
mod stats;
mod wire;

use provider_sim::{App, Config, StatsSnapshot};
use serde_json::{Value, json};
use switchyard_kit::Shutdown;

pub struct TestSim {
    base: String,
    client: reqwest::Client,
    shutdown: Shutdown,
}

impl TestSim {
    pub async fn start() -> TestSim {
        TestSim::start_with(Config::ephemeral()).await
    }

    pub async fn start_with(config: Config) -> TestSim {
        let app = App::build(config).await.expect("build sim");
        let base = format!("http://{}", app.addr());
        let shutdown = Shutdown::new();
        tokio::spawn(app.run(shutdown.clone()));
        TestSim {
            base,
            client: reqwest::Client::new(),
            shutdown,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn chat(&self, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/v1/chat/completions"))
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("send chat request")
    }

    pub async fn chat_json(&self, body: &Value, headers: &[(&str, &str)]) -> Value {
        let response = self.chat(body, headers).await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("json body")
    }

    /// The `data:` payloads of a complete SSE response.
    pub async fn chat_events(&self, body: &Value, headers: &[(&str, &str)]) -> Vec<String> {
        let response = self.chat(body, headers).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        sse_data(&response.text().await.expect("stream body"))
    }

    pub async fn stats(&self) -> StatsSnapshot {
        self.client
            .get(self.url("/sim/stats"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json")
    }

    pub async fn put_knobs(&self, model: &str, knobs: Value) {
        let response = self
            .client
            .put(self.url(&format!("/sim/models/{model}")))
            .json(&knobs)
            .send()
            .await
            .expect("put knobs");
        assert_eq!(
            response.status(),
            200,
            "{}",
            response.text().await.unwrap_or_default()
        );
    }
}

impl Drop for TestSim {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {event:?}"))
                .to_owned()
        })
        .collect()
}

pub fn hello(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello to the switchyard."},
        ],
    })
}

pub fn streaming(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body
}
