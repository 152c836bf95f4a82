//! Credits, keys and limits through the whole stack: admission against a
//! shared balance under concurrency, the management API (with the official
//! SDK), revocation, rate limits, and a metering outage under steady load.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_proto::metering::v1 as pb;
use switchyard_tests::Stack;
use switchyard_usage_metering::KeyKind;
use switchyard_usage_metering::ledger::Billing;

use crate::helpers::{assert_envelope, client, count_generations};

fn small_chat() -> Value {
    json!({
        "model": "openai/gpt-4",
        "messages": [{"role": "user", "content": "Tell me about switchyards."}],
        "max_tokens": 20,
    })
}

async fn chat_with(stack: &Stack, key: &str, body: &Value) -> reqwest::Response {
    client()
        .post(stack.url("/api/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("router reachable")
}

async fn top_up(stack: &Stack, account: &str, nanos: i64, idem: &str) {
    stack
        .metering
        .post_transfer(pb::PostTransferRequest {
            account_id: account.into(),
            kind: pb::TransferKind::TopUp.into(),
            amount_nanos: nanos,
            idempotency_key: idem.into(),
            memo: String::new(),
        })
        .await
        .expect("top-up");
}

async fn assert_ledger_balances(stack: &Stack) {
    let check = stack.metering.check_ledger().await.unwrap();
    assert!(check.violations.is_empty(), "{:?}", check.violations);
    assert_eq!(check.entries_sum_nanos, 0);
}

/// Waits until metering has every listed generation recorded.
async fn wait_recorded(stack: &Stack, account: &str, ids: &[String]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for id in ids {
        while stack
            .metering
            .get_generation(id, account)
            .await
            .unwrap()
            .is_none()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} never recorded"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn credit_for_ten_requests_admits_ten_of_a_hundred_and_the_ledger_balances() {
    let stack = Stack::start().await;
    let created = stack
        .metering
        .ensure_key("ten", KeyKind::Inference, None, Billing::Prepaid)
        .await
        .unwrap();
    let (key, account) = (created.key_text.clone(), created.key.account_id.clone());

    // No credit: 402 in the documented envelope, which names the worst case.
    let response = chat_with(&stack, &key, &small_chat()).await;
    assert_eq!(response.status(), 402);
    let body: Value = response.json().await.unwrap();
    assert_envelope(&body, 402, "payment_required");
    let worst_usd = body["error"]["metadata"]["required"].as_f64().unwrap();
    assert!(worst_usd > 0.0);
    let worst = (worst_usd * 1e9).round() as i64;

    top_up(&stack, &account, 10 * worst, "ten-requests").await;
    // A fresh lease is taken on the next request (the denial is cached 1 s).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (url, key) = (stack.url("/api/v1/chat/completions"), key.clone());
        tasks.push(tokio::spawn(async move {
            let response = client()
                .post(url)
                .bearer_auth(key)
                .json(&small_chat())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let id = response
                .headers()
                .get("x-generation-id")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            (status, id, body)
        }));
    }
    let mut admitted = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (status, id, body) = task.await.unwrap();
        match status {
            200 => admitted.push(id.unwrap()),
            402 => {
                assert_envelope(&body, 402, "payment_required");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    // The bound: never more than the credit covers at the worst case.
    // The bound: a request is admitted only while the credit not yet spent
    // or reserved covers its worst case. All ten worst cases fit; requests
    // that finished below their worst case free room for a few more; the
    // spend can never exceed the credit.
    assert!(
        admitted.len() >= 10,
        "credit for ten admits at least ten: {}",
        admitted.len()
    );
    assert!(refused > 0, "the rest are refused");
    assert_eq!(admitted.len() + refused, 100);

    wait_recorded(&stack, &account, &admitted).await;
    let mut spent = 0;
    for id in &admitted {
        spent += stack
            .metering
            .get_generation(id, &account)
            .await
            .unwrap()
            .unwrap()
            .cost
            .total;
    }
    let summary = stack.metering.account(&account).await.unwrap();
    assert!(
        spent <= 10 * worst,
        "spent {spent} of a credit of {}",
        10 * worst
    );
    assert_eq!(
        summary.balance_nanos,
        10 * worst - spent,
        "balance = credit - usage"
    );
    assert!(summary.balance_nanos >= 0, "never below zero");
    assert_eq!(summary.total_usage_nanos, spent);
    assert_ledger_balances(&stack).await;
    stack.stop().await;
}

#[tokio::test]
async fn the_management_api_creates_limits_revokes_and_deletes_keys() {
    let stack = Stack::start().await;
    let (management, inference) = stack
        .metering
        .bootstrap("ops", Billing::Prepaid, 20_000_000_000)
        .await
        .unwrap();
    let admin = management.key_text.clone();
    let get = |path: &str, key: &str| {
        client()
            .get(stack.url(path))
            .bearer_auth(key.to_owned())
            .send()
    };

    // Scope: inference keys cannot manage, management keys cannot infer.
    let response = get("/api/v1/keys", &inference.key_text).await.unwrap();
    assert_eq!(response.status(), 403);
    assert_envelope(&response.json().await.unwrap(), 403, "permission_denied");
    let response = chat_with(&stack, &admin, &small_chat()).await;
    assert_eq!(response.status(), 403);
    // A key in our format with a bad checksum is refused without a lookup.
    let mut corrupt = inference.key_text.clone();
    corrupt.replace_range(20..21, if &corrupt[20..21] == "a" { "b" } else { "a" });
    assert_eq!(
        chat_with(&stack, &corrupt, &small_chat()).await.status(),
        401
    );

    // Create a key with a limit; it answers once, with its text.
    let response = client()
        .post(stack.url("/api/v1/keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "ci", "limit": 0.01, "limit_reset": "daily", "rate_limit_rpm": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let new_key = body["key"].as_str().unwrap().to_owned();
    let hash = body["data"]["hash"].as_str().unwrap().to_owned();
    assert!(new_key.starts_with("sk-sy-v1-"));
    assert_eq!(body["data"]["limit"], 0.01);
    assert_eq!(body["data"]["limit_reset"], "daily");
    assert!(!body.to_string().contains("key_text"));
    for bad in [
        json!({}),
        json!({"name": "x", "limit": -1}),
        json!({"name": "x", "limit_reset": "hourly"}),
    ] {
        let response = client()
            .post(stack.url("/api/v1/keys"))
            .bearer_auth(&admin)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
    }

    // It calls models until its $0.01 limit runs out: then 402 (key limit).
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = chat_with(&stack, &new_key, &small_chat()).await;
        statuses.push(response.status().as_u16());
        if response.status() == 402 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["metadata"]["reason"], "key_limit");
            break;
        }
    }
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert_eq!(*statuses.last().unwrap(), 402, "{statuses:?}");

    // /key describes the calling key; /keys lists the account's keys.
    let me: Value = get("/api/v1/key", &new_key)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["limit"], 0.01);
    assert_eq!(me["data"]["is_management_key"], false);
    assert_eq!(me["data"]["rate_limit"]["requests"], 1000);
    let listed: Value = get("/api/v1/keys", &admin)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hashes: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["hash"].as_str().unwrap())
        .collect();
    assert!(
        hashes.contains(&hash.as_str()) && hashes.len() == 3,
        "{hashes:?}"
    );
    // Usage is recorded in batches, off the request path: wait for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let credits = loop {
        let credits: Value = get("/api/v1/credits", &admin)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if credits["data"]["total_usage"].as_f64().unwrap() > 0.0 {
            break credits;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "usage never reached the ledger: {credits}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(credits["data"]["total_credits"], 20.0);
    let activity = get("/api/v1/activity", &admin).await.unwrap();
    assert_eq!(activity.status(), 200);
    assert!(activity.json::<Value>().await.unwrap()["data"].is_array());

    // Another account's management key cannot see or touch this key.
    let (other_admin, _) = stack
        .metering
        .bootstrap("other", Billing::Prepaid, 0)
        .await
        .unwrap();
    let response = get(&format!("/api/v1/keys/{hash}"), &other_admin.key_text)
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // PATCH: nothing to update is a 400; disabling stops the key within
    // seconds (the routers' key cache lives 5 s).
    let patch = |body: Value| {
        client()
            .patch(stack.url(&format!("/api/v1/keys/{hash}")))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    assert_eq!(patch(json!({})).await.unwrap().status(), 400);
    let response = patch(json!({"limit": null})).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["data"]["limit"],
        Value::Null
    );
    // A refusal is remembered for a second before the lease is asked again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        chat_with(&stack, &new_key, &small_chat()).await.status(),
        200
    );
    let response = patch(json!({"disabled": true})).await.unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap()["data"]["disabled"],
        true
    );
    let revoked_at = tokio::time::Instant::now();
    loop {
        let status = chat_with(&stack, &new_key, &small_chat()).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(8),
            "still accepted after 8 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // DELETE: gone from the listing, and its hash is unknown afterwards.
    let response = client()
        .delete(stack.url(&format!("/api/v1/keys/{hash}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"deleted": true})
    );
    assert_eq!(
        get(&format!("/api/v1/keys/{hash}"), &admin)
            .await
            .unwrap()
            .status(),
        404
    );

    // Datasets: any key, OpenRouter's shapes.
    let rankings: Value = get("/api/v1/datasets/rankings-daily", &inference.key_text)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(rankings["data"].is_array() && rankings["meta"]["version"] == "v1");
    let apps = get("/api/v1/datasets/app-rankings?sort=trending", &admin)
        .await
        .unwrap();
    assert_eq!(apps.status(), 200);
    let bad = get("/api/v1/datasets/rankings-daily?period=hour", &admin)
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_ledger_balances(&stack).await;
    stack.stop().await;
}

#[tokio::test]
async fn the_official_openrouter_sdk_manages_keys() {
    let stack = Stack::start().await;
    let (management, _) = stack
        .metering
        .bootstrap("sdk", Billing::Prepaid, 10_000_000_000)
        .await
        .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/management_compat.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .env("SWITCHYARD_BASE_URL", stack.url("/api/v1"))
        .env("SWITCHYARD_MANAGEMENT_KEY", &management.key_text)
        .env("SWITCHYARD_MODEL", "openai/gpt-4")
        .output()
        .await
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("openrouter management SDK: ok"), "{stdout}");
    stack.stop().await;
}

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after_and_headers() {
    let stack = Stack::start().await;
    let (management, _) = stack
        .metering
        .bootstrap("rl", Billing::Prepaid, 10_000_000_000)
        .await
        .unwrap();
    let created: Value = client()
        .post(stack.url("/api/v1/keys"))
        .bearer_auth(&management.key_text)
        .json(&json!({"name": "slow", "rate_limit_rpm": 20}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    // 20/min allows a burst of 2, shared through Redis.
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..4 {
        let response = chat_with(&stack, &key, &small_chat()).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
    let response = limited.unwrap();
    let headers = response.headers().clone();
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "retry-after {retry}");
    assert_eq!(headers["x-ratelimit-limit"], "20");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    assert!(headers.contains_key("x-ratelimit-reset"));
    assert_envelope(&response.json().await.unwrap(), 429, "rate_limit_exceeded");
    // The counter lives in Redis under the stack's prefix.
    let redis = redis::Client::open(switchyard_kit::testing::redis_url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:ratelimit:*", stack.redis_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    stack.stop().await;
}

/// Metering down for a minute under steady load: no request fails (the
/// key cache and the credit lease carry on), and every usage record
/// arrives exactly once after it returns.
#[tokio::test]
async fn a_minute_long_metering_outage_fails_no_request_and_loses_no_usage() {
    let mut stack = Stack::start().await;
    let account = stack
        .metering
        .authenticate(&stack.key)
        .await
        .unwrap()
        .expect("the stack's key")
        .account_id;
    let mut ids = Vec::new();
    // Warm the key cache and the lease.
    for _ in 0..3 {
        let response = chat_with(&stack, &stack.key, &small_chat()).await;
        assert_eq!(response.status(), 200);
        ids.push(
            response.headers()["x-generation-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    stack.stop_metering().await;
    let outage = tokio::time::Instant::now();
    let mut failures = Vec::new();
    while outage.elapsed() < Duration::from_secs(62) {
        let response = chat_with(&stack, &stack.key, &small_chat()).await;
        if response.status() == 200 {
            ids.push(
                response.headers()["x-generation-id"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
        } else {
            failures.push(response.status().as_u16());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        failures.is_empty(),
        "failed during the outage: {failures:?}"
    );
    assert!(ids.len() > 200, "steady load: {}", ids.len());
    stack.restart_metering().await;
    wait_recorded(&stack, &account, &ids).await;
    let db_url = stack.database_url.clone();
    // Exactly once: as many rows as successful requests, and every debit.
    assert_eq!(count_generations(&db_url).await, ids.len() as i64);
    assert_ledger_balances(&stack).await;
    stack.stop().await;
}
