//! Routing under faults, driven by provider-sim: breakers, 429 cooldowns,
//! first-token timeouts, streams cut mid-way, Redis going away, and the
//! endpoints API reporting what the simulator was told to do.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::{CHEAP_UPSTREAM, MID_UPSTREAM, Options, PRICEY_UPSTREAM, Stack};

use crate::helpers::*;

fn knobs(f: impl FnOnce(&mut provider_sim::Knobs)) -> provider_sim::Knobs {
    let mut k = provider_sim::Knobs::default();
    f(&mut k);
    k
}

fn with_provider(mut body: Value, provider: Value) -> Value {
    body["provider"] = provider;
    body
}

#[tokio::test]
async fn a_failing_provider_is_ejected_after_five_failures_and_clients_never_notice() {
    let stack = Stack::start_with(Options {
        three_providers: true,
        ..Default::default()
    })
    .await;
    stack.sim.set_model_knobs(
        CHEAP_UPSTREAM,
        knobs(|k| {
            k.fail_rate = Some(1.0);
            k.fail_status = Some(503);
        }),
    );
    // Price order puts the failing provider first every time, so only the
    // breaker can keep traffic away from it.
    let body = with_provider(chat_body(false), json!({"sort": "price"}));
    let started = Instant::now();
    let mut ejected_after = None;
    for i in 0..40 {
        let response = post_chat(&stack, &body).await;
        assert_eq!(
            response.status(),
            200,
            "request {i}: fallback hides the outage"
        );
        let trail = response.headers()["x-switchyard-attempts"]
            .to_str()
            .unwrap()
            .to_owned();
        if ejected_after.is_none() && !trail.contains("SimCheap") {
            ejected_after = Some((i, started.elapsed()));
        }
        response.text().await.unwrap();
    }
    let (first_skip, elapsed) = ejected_after.expect("breaker never opened");
    assert_eq!(
        first_skip, 5,
        "open after exactly five consecutive failures"
    );
    assert!(
        elapsed < Duration::from_secs(1),
        "opened within a second ({elapsed:?})"
    );
    let sim = stack.sim.stats();
    assert_eq!(
        sim.models[CHEAP_UPSTREAM].requests, 5,
        "no traffic to an open breaker"
    );
    assert_eq!(sim.models[MID_UPSTREAM].successful, 40);
    stack.stop().await;
}

#[tokio::test]
async fn rate_limited_providers_are_left_alone_for_retry_after() {
    let stack = Stack::start().await;
    stack
        .sim
        .set_model_knobs(CHEAP_UPSTREAM, knobs(|k| k.rate_limit_after_secs = Some(2)));
    let body = with_provider(chat_body(false), json!({"sort": "price"}));
    let first = post_chat(&stack, &body).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        first.headers()["x-switchyard-attempts"],
        "SimCheap=429, SimPricey=200"
    );
    let cooled_at = Instant::now();
    for _ in 0..10 {
        let r = post_chat(&stack, &body).await;
        assert_eq!(r.headers()["x-switchyard-attempts"], "SimPricey=200");
    }
    assert!(
        cooled_at.elapsed() < Duration::from_secs(2),
        "the loop ran inside the cooldown"
    );
    assert_eq!(
        stack.sim.stats().models[CHEAP_UPSTREAM].requests,
        1,
        "Retry-After respected"
    );
    // After Retry-After the provider is tried again; 429s never opened a breaker.
    tokio::time::sleep(
        Duration::from_secs(2).saturating_sub(cooled_at.elapsed()) + Duration::from_millis(100),
    )
    .await;
    stack.sim.reset_model_knobs(CHEAP_UPSTREAM);
    let r = post_chat(&stack, &body).await;
    assert_eq!(r.headers()["x-switchyard-attempts"], "SimCheap=200");
    stack.stop().await;
}

#[tokio::test]
async fn a_hang_before_the_first_token_falls_back_after_the_timeout() {
    let stack = Stack::start_with(Options {
        first_token_timeout_ms: 400,
        ..Default::default()
    })
    .await;
    stack
        .sim
        .set_model_knobs(CHEAP_UPSTREAM, knobs(|k| k.hang = Some(true)));
    let body = with_provider(chat_body(true), json!({"sort": "price"}));
    let started = Instant::now();
    let response = post_chat(&stack, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-attempts"],
        "SimCheap=408, SimPricey=200"
    );
    let text = response.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"));
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "waited for the first-token timeout"
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_stream_cut_mid_way_ends_in_band_and_is_not_charged() {
    let stack = Stack::start().await;
    stack
        .sim
        .set_model_knobs(CHEAP_UPSTREAM, knobs(|k| k.cut_after_chunks = Some(6)));
    let body = with_provider(chat_body(true), json!({"only": ["sim-cheap"]}));
    let response = post_chat(&stack, &body).await;
    assert_eq!(response.status(), 200, "the stream had started");
    let id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    let (data, _) = sse_events(&text);
    assert!(
        !data.iter().any(|d| d == "[DONE]"),
        "no [DONE] after an in-band error"
    );
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "error");
    assert_eq!(last["error"]["code"], 502);
    let content: String = data[..data.len() - 1]
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(!content.is_empty(), "some content arrived before the cut");

    let generation = wait_for_generation(&stack, &id).await;
    let data = &generation["data"];
    assert_eq!(data["finish_reason"], "error");
    let recorded = data["tokens_completion"].as_u64().unwrap();
    assert!(recorded > 0 && recorded < 24, "partial: {recorded}");
    assert_eq!(
        data["total_cost"].as_f64().unwrap(),
        0.0,
        "a request that ended in an error is insured: the tokens are recorded, not charged"
    );
    stack.stop().await;
}

/// A private Redis on a free port, for tests that stop it.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: Option<u16>) -> PrivateRedis {
        let port = port.unwrap_or_else(|| {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "private Redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn redis_going_away_fails_no_request_and_stats_resume_when_it_returns() {
    let redis = PrivateRedis::start(None);
    let port = redis.port;
    let stack = Stack::start_with(Options {
        redis_url: Some(redis.url()),
        ..Default::default()
    })
    .await;
    for stream in [false, true] {
        assert_eq!(post_chat(&stack, &chat_body(stream)).await.status(), 200);
    }
    drop(redis);
    for i in 0..20 {
        let response = post_chat(&stack, &chat_body(i % 2 == 0)).await;
        assert_eq!(response.status(), 200, "request {i} with Redis down");
        response.text().await.unwrap();
    }
    // Give the flusher and the snapshot refresher a few rounds without Redis.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(post_chat(&stack, &chat_body(false)).await.status(), 200);

    let redis = PrivateRedis::start(Some(port));
    assert_eq!(post_chat(&stack, &chat_body(false)).await.status(), 200);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:stats:*", stack.redis_prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stats never resumed after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.stop().await;
}

#[tokio::test]
async fn endpoints_api_reports_what_the_simulator_was_told() {
    let stack = Stack::start().await;
    stack.sim.set_model_knobs(
        CHEAP_UPSTREAM,
        knobs(|k| {
            k.ttft_ms = Some(80);
            k.tokens_per_second = Some(100.0);
        }),
    );
    stack.sim.set_model_knobs(
        PRICEY_UPSTREAM,
        knobs(|k| {
            k.ttft_ms = Some(250);
            k.tokens_per_second = Some(50.0);
        }),
    );
    for (only, n) in [("sim-cheap", 6), ("sim-pricey", 4)] {
        for _ in 0..n {
            let body = with_provider(chat_body(true), json!({"only": [only]}));
            let r = post_chat(&stack, &body).await;
            assert_eq!(r.status(), 200);
            r.text().await.unwrap();
        }
    }
    // One failure on the cheap endpoint: uptime 6/7.
    stack.sim.set_model_knobs(
        CHEAP_UPSTREAM,
        knobs(|k| {
            k.fail_rate = Some(1.0);
            k.fail_status = Some(500);
        }),
    );
    let body = with_provider(chat_body(false), json!({"only": ["sim-cheap"]}));
    assert_eq!(post_chat(&stack, &body).await.status(), 502);

    // Stats reach Redis within a flush interval; wait for all eleven.
    let deadline = Instant::now() + Duration::from_secs(10);
    let endpoints = loop {
        let body: Value = client()
            .get(stack.url("/api/v1/models/openai/gpt-4/endpoints"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let endpoints = body["data"]["endpoints"].as_array().unwrap().clone();
        let cheap = endpoints.iter().find(|e| e["tag"] == "sim-cheap").unwrap();
        if cheap["uptime_last_5m"].as_f64().is_some_and(|u| u < 100.0) {
            break endpoints;
        }
        assert!(Instant::now() < deadline, "stats never showed up: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cheap = endpoints.iter().find(|e| e["tag"] == "sim-cheap").unwrap();
    let pricey = endpoints.iter().find(|e| e["tag"] == "sim-pricey").unwrap();
    let close = |got: &Value, want: f64, tolerance: f64| {
        let got = got.as_f64().unwrap();
        assert!((got - want).abs() / want <= tolerance, "{got} vs {want}");
    };
    close(&cheap["uptime_last_5m"], 600.0 / 7.0, 0.001);
    close(&cheap["uptime_last_1d"], 600.0 / 7.0, 0.001);
    close(&pricey["uptime_last_30m"], 100.0, 0.0);
    // Time to first token in milliseconds: the simulator's delay plus a
    // little routing and loopback time; sketches are within 2%.
    close(&cheap["latency_last_30m"]["p50"], 80.0, 0.15);
    close(&pricey["latency_last_30m"]["p50"], 250.0, 0.10);
    // Tokens per second after the first token.
    close(&cheap["throughput_last_30m"]["p50"], 100.0, 0.25);
    close(&pricey["throughput_last_30m"]["p50"], 50.0, 0.25);
    assert_eq!(cheap["pricing"]["prompt"], "0.00003");
    assert_eq!(cheap["provider_name"], "SimCheap");

    let providers: Value = client()
        .get(stack.url("/api/v1/providers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let slugs: Vec<&str> = providers["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap())
        .collect();
    assert_eq!(
        slugs,
        ["sim-anthropic", "sim-cheap", "sim-gemini", "sim-pricey"]
    );
    stack.stop().await;
}

#[tokio::test]
async fn preferences_that_exclude_everything_are_a_404_with_reasons() {
    let stack = Stack::start().await;
    let body = with_provider(chat_body(false), json!({"max_price": {"prompt": 0.001}}));
    let response = post_chat(&stack, &body).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_envelope(&body, 404, "not_found");
    assert_eq!(
        body["error"]["availability"]["excluded_by"],
        json!(["max_price"])
    );
    let bad = with_provider(chat_body(false), json!({"sort": "fastest"}));
    assert_eq!(post_chat(&stack, &bad).await.status(), 400);
    // Model fallbacks: an unknown first model moves on to the next.
    let mut body = chat_body(false);
    body["model"] = json!("nobody/nothing");
    body["models"] = json!(["openai/gpt-4"]);
    let response = post_chat(&stack, &body).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["model"], "openai/gpt-4");
    stack.stop().await;
}

#[tokio::test]
async fn a_conversation_sticks_to_the_endpoint_that_has_its_cache() {
    let stack = Stack::start().await;
    // The first turn is pinned to SimPricey (which cheap-first routing would
    // almost never pick); later turns of the session follow it there.
    let mut first = with_provider(chat_body(false), json!({"order": ["sim-pricey"]}));
    first["session_id"] = json!("conversation-1");
    let r = post_chat(&stack, &first).await;
    assert_eq!(r.headers()["x-switchyard-provider"], "SimPricey");
    for _ in 0..5 {
        let mut next = chat_body(false);
        next["session_id"] = json!("conversation-1");
        let r = post_chat(&stack, &next).await;
        assert_eq!(r.headers()["x-switchyard-provider"], "SimPricey", "sticky");
    }
    // Another conversation is routed normally.
    let mut other = chat_body(false);
    other["session_id"] = json!("conversation-2");
    let r = post_chat(&stack, &other).await;
    assert_eq!(r.headers()["x-switchyard-provider"], "SimCheap");
    stack.stop().await;
}
