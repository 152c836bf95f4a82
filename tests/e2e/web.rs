//! The web pages through the whole stack: handler checks of every page and
//! the JSON they draw from, then headless Chromium on a model page with
//! traffic generated through provider-sim (screenshots are saved under
//! `target/browser-artifacts`).

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::Stack;

use crate::helpers::{client, wait_for_generation};

async fn page(stack: &Stack, path: &str) -> (u16, String) {
    let response = client().get(stack.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8",
            "{path}"
        );
    }
    (status, response.text().await.unwrap())
}

/// Traffic for the pages: streamed and not, two apps, through provider-sim.
async fn generate_traffic(stack: &Stack) {
    let mut last = String::new();
    for i in 0..12 {
        let body = json!({
            "model": "openai/gpt-4",
            "messages": [{"role": "user", "content": "Tell me about switchyards."}],
            "stream": i % 3 == 0,
            "max_tokens": 30,
        });
        let response = client()
            .post(stack.url("/api/v1/chat/completions"))
            .bearer_auth(&stack.key)
            .header(
                "HTTP-Referer",
                if i % 2 == 0 {
                    "https://a.example"
                } else {
                    "https://b.example"
                },
            )
            .header("X-Title", if i % 2 == 0 { "Alpha App" } else { "Beta App" })
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        last = response.headers()["x-generation-id"]
            .to_str()
            .unwrap()
            .to_owned();
        response.text().await.unwrap();
    }
    wait_for_generation(stack, &last).await;
    // Stats reach Redis within a second; usage within the batch linger.
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn every_page_renders_from_live_data_and_the_json_behind_it_agrees() {
    let stack = Stack::start().await;
    // Before any traffic: explicit empty states, never broken charts.
    let (status, empty) = page(&stack, "/openai/gpt-4").await;
    assert_eq!(status, 200);
    assert!(
        empty.contains("data-empty=\"true\""),
        "empty states before traffic"
    );
    assert!(!empty.contains("data-points=\"0\""));

    generate_traffic(&stack).await;
    // The empty render above is cached for 10 s; wait it out.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (_, model) = page(&stack, "/openai/gpt-4").await;
    for id in [
        "providers",
        "performance",
        "effective-pricing",
        "apps",
        "activity",
        "uptime",
        "sample-code",
    ] {
        assert!(model.contains(&format!("id=\"{id}\"")), "#{id}");
    }
    assert!(
        model.contains("Alpha App") && model.contains("Beta App"),
        "top apps"
    );
    assert!(model.contains("SimCheap"), "providers table");
    assert!(
        model.contains(&stack.url("/api/v1")),
        "sample code base URL"
    );

    let (status, index) = page(&stack, "/models?q=gemini").await;
    assert_eq!(status, 200);
    assert!(index.contains("google/gemini-test") && !index.contains("anthropic/claude-test\""));
    let (status, rankings) = page(&stack, "/rankings?period=day").await;
    assert_eq!(status, 200);
    assert!(rankings.contains("openai/gpt-4") && rankings.contains("Alpha App"));
    let (status, provider) = page(&stack, "/providers/sim-cheap").await;
    assert_eq!(status, 200);
    assert!(provider.contains("SimCheap") && provider.contains("openai/gpt-4"));
    assert_eq!(page(&stack, "/providers/nope").await.0, 404);
    assert_eq!(page(&stack, "/nobody/nothing").await.0, 404);
    // API paths keep the JSON envelope.
    let response = client()
        .get(stack.url("/api/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 404);

    // The JSON the pages draw from says the same.
    let endpoints: Value = client()
        .get(stack.url("/api/v1/models/openai/gpt-4/endpoints"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cheap = endpoints["data"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["provider_name"] == "SimCheap")
        .unwrap()
        .clone();
    assert_eq!(cheap["uptime_last_30m"], 100.0);
    let usage = stack
        .metering
        .model_usage(&switchyard_proto::metering::v1::GetModelUsageRequest {
            model: "openai/gpt-4".into(),
            days: 30,
            now_ms: 0,
        })
        .await
        .unwrap();
    let today = usage.daily.last().unwrap();
    assert!(today.requests >= 12);
    assert_eq!(usage.top_apps.len(), 2);
    assert!(!usage.prices.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn headless_chromium_sees_every_section_with_data_and_saves_screenshots() {
    let stack = Stack::start().await;
    generate_traffic(&stack).await;
    let artifacts = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/browser-artifacts");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/check_pages.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .env("SWITCHYARD_WEB", stack.url(""))
        .env("SWITCHYARD_ARTIFACTS", artifacts)
        .output()
        .await
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser check failed (is Debian's chromium installed?)\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("browser pages: ok"), "{stdout}");
    stack.stop().await;
}
