//! Completions through the whole stack: shapes, fallback, usage, stats.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::Value;
use switchyard_tests::{CHEAP_UPSTREAM, PRICEY_UPSTREAM, Stack};

use crate::helpers::*;

fn expected_cost(usage: &Value, prompt_per_m: f64, completion_per_m: f64) -> f64 {
    let p = usage["prompt_tokens"].as_f64().unwrap();
    let c = usage["completion_tokens"].as_f64().unwrap();
    (p * prompt_per_m + c * completion_per_m) / 1e6
}

#[tokio::test]
async fn non_streamed_completion_has_openrouter_shape_and_is_billed_once() {
    let stack = Stack::start().await;
    let response = post_chat(&stack, &chat_body(false)).await;
    assert_eq!(response.status(), 200);
    let header_id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();

    let id = body["id"].as_str().unwrap();
    assert_eq!(id, header_id);
    let parts: Vec<&str> = id.splitn(3, '-').collect();
    assert_eq!(parts[0], "gen");
    assert!(parts[1].parse::<i64>().is_ok());
    assert_eq!(parts[2].len(), 20);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "openai/gpt-4");
    assert_eq!(body["provider"], "SimCheap");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(!choice["message"]["content"].as_str().unwrap().is_empty());
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["native_finish_reason"], "stop");

    let usage = &body["usage"];
    let sim = stack.sim.stats();
    let truth = &sim.models[CHEAP_UPSTREAM];
    assert_eq!(
        usage["prompt_tokens"], truth.prompt_tokens,
        "billed prompt = simulator ground truth"
    );
    assert_eq!(usage["completion_tokens"], truth.completion_tokens);
    assert_eq!(
        usage["total_tokens"],
        truth.prompt_tokens + truth.completion_tokens
    );
    let cost = usage["cost"].as_f64().unwrap();
    assert!(
        (cost - expected_cost(usage, 30.0, 60.0)).abs() < 1e-12,
        "{usage}"
    );

    let generation = wait_for_generation(&stack, id).await;
    let data = &generation["data"];
    assert_eq!(data["id"], id);
    assert_eq!(data["model"], "openai/gpt-4");
    assert_eq!(data["provider_name"], "SimCheap");
    assert_eq!(data["streamed"], false);
    assert_eq!(data["cancelled"], false);
    assert_eq!(data["finish_reason"], "stop");
    assert_eq!(data["tokens_prompt"], usage["prompt_tokens"]);
    assert_eq!(data["tokens_completion"], usage["completion_tokens"]);
    assert_eq!(data["http_referer"], "https://e2e.example");
    assert!(data["app_id"].as_i64().is_some());
    assert!((data["total_cost"].as_f64().unwrap() - cost).abs() < 1e-12);
    assert!(data["latency"].as_u64().is_some());
    assert!(
        data["upstream_id"]
            .as_str()
            .is_some_and(|u| u.starts_with("chatcmpl-"))
    );

    // Exactly one record, even after the router shuts down and flushes.
    let db_url = stack.database_url.clone();
    stack.stop().await;
    assert_eq!(count_generations(&db_url).await, 1);
}

#[tokio::test]
async fn streamed_completion_has_openrouter_sse_shape() {
    let stack = Stack::start().await;
    let response = post_chat(&stack, &chat_body(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let header_id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    assert!(text.starts_with(": OPENROUTER PROCESSING\n\n"), "{text}");
    let (data, _) = sse_events(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let mut content = String::new();
    for chunk in &chunks {
        assert_eq!(chunk["id"], header_id.as_str());
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "openai/gpt-4");
        assert_eq!(chunk["provider"], "SimCheap");
        if let Some(c) = chunk["choices"][0]["delta"]["content"].as_str() {
            content.push_str(c);
        }
    }
    assert!(content.split_whitespace().count() > 3, "{content}");
    let finish = chunks
        .iter()
        .find(|c| !c["choices"][0]["finish_reason"].is_null())
        .unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let last = chunks.last().unwrap();
    assert_eq!(
        last["choices"],
        serde_json::json!([]),
        "usage chunk has empty choices"
    );
    let usage = &last["usage"];
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0);
    assert!((usage["cost"].as_f64().unwrap() - expected_cost(usage, 30.0, 60.0)).abs() < 1e-12);

    let generation = wait_for_generation(&stack, &header_id).await;
    assert_eq!(generation["data"]["streamed"], true);
    assert!(generation["data"]["generation_time"].as_u64().is_some());
    stack.stop().await;
}

#[tokio::test]
async fn falls_back_to_the_next_endpoint_when_the_first_returns_500() {
    let stack = Stack::start().await;
    stack.sim.set_model_knobs(
        CHEAP_UPSTREAM,
        provider_sim::Knobs {
            fail_rate: Some(1.0),
            fail_status: Some(500),
            ..Default::default()
        },
    );
    // The first request tries SimCheap, fails over; the second routes around
    // it straight away (it failed in the last 30 s).
    for (stream, trail) in [
        (false, "SimCheap=500, SimPricey=200"),
        (true, "SimPricey=200"),
    ] {
        let response = post_chat(&stack, &chat_body(stream)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-switchyard-provider"], "SimPricey");
        assert_eq!(response.headers()["x-switchyard-attempts"], trail);
        let id = response.headers()["x-generation-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let text = response.text().await.unwrap();
        assert!(text.contains("SimPricey"));
        // Billed at the price of the endpoint that served.
        let generation = wait_for_generation(&stack, &id).await;
        let data = &generation["data"];
        assert_eq!(data["provider_name"], "SimPricey");
        let statuses: Vec<u64> = data["provider_responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["status"].as_u64().unwrap())
            .collect();
        let expected: &[u64] = if stream { &[200] } else { &[500, 200] };
        assert_eq!(statuses, expected);
        let p = data["tokens_prompt"].as_f64().unwrap();
        let c = data["tokens_completion"].as_f64().unwrap();
        let expected = (p * 30_000.0 + c * 60_000.0) / 1e6;
        assert!((data["total_cost"].as_f64().unwrap() - expected).abs() < 1e-9);
    }
    let sim = stack.sim.stats();
    assert_eq!(sim.models[CHEAP_UPSTREAM].failed, 1);
    assert_eq!(sim.models[PRICEY_UPSTREAM].successful, 2);
    stack.stop().await;
}

#[tokio::test]
async fn every_endpoint_failing_is_a_502_with_the_attempts() {
    let stack = Stack::start().await;
    for model in [CHEAP_UPSTREAM, PRICEY_UPSTREAM] {
        stack.sim.set_model_knobs(
            model,
            provider_sim::Knobs {
                fail_rate: Some(1.0),
                fail_status: Some(500),
                ..Default::default()
            },
        );
    }
    let response = post_chat(&stack, &chat_body(false)).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_envelope(&body, 502, "provider_unavailable");
    let previous: Vec<&str> = body["error"]["metadata"]["previous_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["provider"].as_str().unwrap())
        .collect();
    assert_eq!(previous, ["SimCheap", "SimPricey"]);

    // Rate limits upstream surface as 429 with Retry-After.
    for model in [CHEAP_UPSTREAM, PRICEY_UPSTREAM] {
        stack.sim.set_model_knobs(
            model,
            provider_sim::Knobs {
                rate_limit_after_secs: Some(7),
                ..Default::default()
            },
        );
    }
    let response = post_chat(&stack, &chat_body(true)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_envelope(&body, 429, "rate_limit_exceeded");
    stack.stop().await;
    // Nothing was generated, so nothing was billed.
}

#[tokio::test]
async fn endpoint_stats_reach_redis_in_time_buckets_with_ttls() {
    let stack = Stack::start().await;
    for _ in 0..3 {
        assert_eq!(post_chat(&stack, &chat_body(false)).await.status(), 200);
    }
    let client = redis::Client::open(switchyard_kit::testing::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!("{}:stats:*", stack.redis_prefix);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let keys: Vec<String> = loop {
        let keys: Vec<String> = conn.keys(&pattern).await.unwrap();
        if keys.len() >= 2 {
            break keys;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no stats in Redis: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let endpoint = "{sim-cheap:openai/gpt-4}";
    let five = keys
        .iter()
        .find(|k| k.contains(endpoint) && k.contains(":5s:"))
        .expect("5s bucket");
    let minute = keys
        .iter()
        .find(|k| k.contains(endpoint) && k.contains(":1m:"))
        .expect("1m bucket");
    for key in [five, minute] {
        let ttl: i64 = conn.ttl(key).await.unwrap();
        assert!(ttl > 0, "{key} has no TTL");
    }
    let ok: u64 = conn.hget(minute, "ok").await.unwrap();
    assert!(ok >= 1);
    let ttft_n: u64 = conn.hget(minute, "ttft_n").await.unwrap();
    assert!(ttft_n >= 1);
    let fields: Vec<String> = conn.hkeys(minute).await.unwrap();
    assert!(fields.iter().any(|f| f.starts_with("ttft_b")), "{fields:?}");
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    stack.stop().await;
}

#[tokio::test]
async fn generations_are_private_to_their_account() {
    let stack = Stack::start().await;
    let response = post_chat(&stack, &chat_body(false)).await;
    let id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    wait_for_generation(&stack, &id).await;
    let other = stack
        .metering
        .ensure_key(
            "other",
            switchyard_usage_metering::KeyKind::Inference,
            None,
            switchyard_usage_metering::ledger::Billing::Postpaid,
        )
        .await
        .unwrap()
        .key_text;
    let response = client()
        .get(stack.url(&format!("/api/v1/generation?id={id}")))
        .bearer_auth(other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_envelope(&response.json().await.unwrap(), 404, "not_found");
    stack.stop().await;
}

#[tokio::test]
async fn models_endpoint_lists_the_catalog_in_openrouter_schema() {
    let stack = Stack::start().await;
    let body: Value = client()
        .get(stack.url("/api/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let model = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "openai/gpt-4")
        .unwrap();
    assert_eq!(model["id"], "openai/gpt-4");
    assert_eq!(model["context_length"], 8191);
    assert_eq!(model["created"], 1685232000);
    assert_eq!(model["pricing"]["prompt"], "0.00003");
    assert_eq!(model["pricing"]["completion"], "0.00006");
    assert_eq!(model["architecture"]["input_modalities"][0], "text");
    assert_eq!(
        model["links"]["details"],
        "/api/v1/models/openai/gpt-4/endpoints"
    );
    assert_eq!(body["total_count"], 3);

    for (query, expected) in [
        ("?q=GPT", 1),
        ("?q=claude", 1),
        ("?q=mistral", 0),
        ("?supported_parameters=tools,tool_choice", 3),
        ("?supported_parameters=reasoning", 2),
        ("?supported_parameters=tools,min_p", 0),
    ] {
        let body: Value = client()
            .get(stack.url(&format!("/api/v1/models{query}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["data"].as_array().unwrap().len(), expected, "{query}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn usage_survives_a_metering_outage_via_the_spool() {
    let mut stack = Stack::start().await;
    // Warm the key cache, then take metering down.
    assert_eq!(post_chat(&stack, &chat_body(false)).await.status(), 200);
    stack.stop_metering().await;
    let mut ids = Vec::new();
    for stream in [false, true, false] {
        let response = post_chat(&stack, &chat_body(stream)).await;
        assert_eq!(
            response.status(),
            200,
            "serving continues while metering is down"
        );
        ids.push(
            response.headers()["x-generation-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        response.text().await.unwrap();
    }
    // The journal holds them on disk until metering is back...
    let journal = stack.data_dir.join("router/usage-journal");
    let journaled: u64 = std::fs::read_dir(&journal)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "wal"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(journaled > 0, "usage is journaled before delivery");
    stack.restart_metering().await;
    // ...then replays them, each exactly once.
    for id in &ids {
        wait_for_generation(&stack, id).await;
    }
    let db_url = stack.database_url.clone();
    stack.stop().await;
    assert_eq!(count_generations(&db_url).await, 4);
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_upstream_and_is_billed_for_what_was_generated() {
    let stack = Stack::start().await;
    stack.sim.set_model_knobs(
        CHEAP_UPSTREAM,
        provider_sim::Knobs {
            tokens_per_second: Some(20.0),
            completion_tokens: Some(400),
            ..Default::default()
        },
    );
    let mut response = post_chat(&stack, &chat_body(true)).await;
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // Read until real content has arrived, then hang up.
    let mut seen = String::new();
    while !seen.contains("\"content\":\"") || seen.matches("data: ").count() < 3 {
        let chunk = response.chunk().await.unwrap().expect("stream still open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);

    let generation = wait_for_generation(&stack, &id).await;
    let data = &generation["data"];
    assert_eq!(data["cancelled"], true);
    assert_eq!(data["streamed"], true);
    let billed = data["tokens_completion"].as_u64().unwrap();
    assert!(billed > 0 && billed < 400, "billed {billed} of 400 tokens");
    assert!(data["total_cost"].as_f64().unwrap() > 0.0);
    // The simulator saw the upstream stream dropped, long before 400 tokens.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stack.sim.stats().models[CHEAP_UPSTREAM].cancelled == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "upstream never cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.stop().await;
}

#[tokio::test]
async fn all_three_wire_formats_work_through_the_whole_stack() {
    let stack = Stack::start().await;
    for (model, provider, format) in [
        ("openai/gpt-4", "SimCheap", "unknown"),
        (
            "anthropic/claude-test",
            "SimAnthropic",
            "anthropic-claude-v1",
        ),
        ("google/gemini-test", "SimGemini", "google-gemini-v1"),
    ] {
        let mut body = serde_json::json!({
            "model": model,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Explain rail yards."}],
            "max_tokens": 4096,
        });
        if format != "unknown" {
            body["reasoning"] = serde_json::json!({"max_tokens": 2048});
        }
        let response = post_chat(&stack, &body).await;
        assert_eq!(response.status(), 200, "{model}");
        let v: Value = response.json().await.unwrap();
        assert_eq!(v["provider"], provider);
        let message = &v["choices"][0]["message"];
        assert!(
            !message["content"].as_str().unwrap().is_empty(),
            "{model}: {v}"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{model}");
        assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);
        assert!(v["usage"]["cost"].as_f64().unwrap() > 0.0);
        if format != "unknown" {
            assert!(
                message["reasoning"].as_str().is_some_and(|r| !r.is_empty()),
                "{model}: reasoning"
            );
            assert_eq!(message["reasoning_details"][0]["format"], format);
            assert_eq!(message["reasoning_details"][0]["type"], "reasoning.text");
        }

        body["stream"] = serde_json::json!(true);
        let text = post_chat(&stack, &body).await.text().await.unwrap();
        let (data, _) = sse_events(&text);
        assert_eq!(data.last().unwrap(), "[DONE]", "{model}");
        let content: String = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(
            content,
            message["content"].as_str().unwrap(),
            "{model}: same text streamed"
        );

        // Tools, forced: one call with JSON arguments in every format.
        let tools = serde_json::json!([{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
        let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Weather?"}],
            "tools": tools, "tool_choice": "required", "max_tokens": 256});
        let v: Value = post_chat(&stack, &body).await.json().await.unwrap();
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather", "{model}: {v}");
        assert!(
            serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).is_ok()
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{model}");
    }
    stack.stop().await;
}
