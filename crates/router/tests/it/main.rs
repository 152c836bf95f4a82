//! The `switchyard-router` binary as its own process, talking gRPC to the
//! other services (here on loopback listeners in the test process), with
//! Redis stats on: startup lines, readiness, health, traffic, drain.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_kit::{Shutdown, testing};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const SEED: &str = r#"
[[providers]]
slug = "sim"
name = "Sim"
wire_format = "openai"
base_url = "SIM_URL"
credential_ref = ""

[[models]]
id = "test/echo"
name = "Test: Echo"
created = 1700000000
context_length = 4096
architecture = { modality = "text->text", input_modalities = ["text"], output_modalities = ["text"], tokenizer = "Other" }

[[endpoints]]
model = "test/echo"
provider = "sim"
upstream_model = "echo-1"
pricing = { prompt = "0.000001", completion = "0.000002" }
"#;

#[tokio::test]
async fn router_binary_serves_traffic_and_drains_on_sigterm() {
    let shutdown = Shutdown::new();
    let dir = std::env::temp_dir().join(testing::unique_name("router_bin"));
    std::fs::create_dir_all(&dir).unwrap();

    let sim = provider_sim::App::build(provider_sim::Config::ephemeral())
        .await
        .unwrap();
    let seed = dir.join("seed.toml");
    std::fs::write(
        &seed,
        SEED.replace("SIM_URL", &format!("http://{}/v1", sim.addr())),
    )
    .unwrap();
    tokio::spawn(sim.run(shutdown.clone()));

    let catalog = switchyard_catalog::App::build(switchyard_catalog::Config {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join("catalog"),
        seed: Some(seed),
        ..Default::default()
    })
    .await
    .unwrap();
    let catalog_url = format!("http://{}", catalog.grpc_addr());
    tokio::spawn(catalog.run(shutdown.clone()));

    let metering = switchyard_usage_metering::App::build(
        &switchyard_usage_metering::Config::embedded(dir.join("metering")),
    )
    .await
    .unwrap();
    let metering_url = format!("http://{}", metering.grpc_addr());
    let handle = metering.metering().clone();
    let key = handle
        .ensure_key(
            "router-bin",
            switchyard_usage_metering::KeyKind::Inference,
            None,
            switchyard_usage_metering::ledger::Billing::Postpaid,
        )
        .await
        .unwrap()
        .key_text;
    tokio::spawn(metering.run(shutdown.clone()));

    let adapter =
        switchyard_provider_adapter::App::build(switchyard_provider_adapter::Config::ephemeral())
            .await
            .unwrap();
    let adapter_url = format!("http://{}", adapter.grpc_addr());
    tokio::spawn(adapter.run(shutdown.clone()));

    let redis = [
        ("SWITCHYARD_REDIS_URL", testing::redis_url()),
        (
            "SWITCHYARD_REDIS_PREFIX",
            testing::unique_name("router_bin"),
        ),
    ];
    let (mut child, http, grpc) = spawn_router(
        &dir.join("router"),
        &catalog_url,
        &adapter_url,
        &metering_url,
        &redis,
    )
    .await;

    let channel = switchyard_kit::grpc::connect_lazy(&format!("http://{grpc}")).unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "switchyard.router.v1.RouterService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    let client = reqwest::Client::new();
    let body = json!({"model": "test/echo", "messages": [{"role": "user", "content": "hi"}]});
    let response = client
        .post(format!("{http}/api/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["provider"], "Sim");
    let id = reply["id"].as_str().unwrap().to_owned();

    // SIGTERM: the router drains, delivers usage and exits cleanly.
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let account = handle.authenticate(&key).await.unwrap().unwrap().account_id;
    let generation = handle.get_generation(&id, &account).await.unwrap();
    assert!(generation.is_some(), "usage delivered before exit");

    shutdown.trigger();
    let _ = std::fs::remove_dir_all(&dir);
}

const SLOW_MODEL: &str = r#"
[[models]]
id = "test/slow"
name = "Test: Slow"
created = 1700000000
context_length = 4096
architecture = { modality = "text->text", input_modalities = ["text"], output_modalities = ["text"], tokenizer = "Other" }

[[endpoints]]
model = "test/slow"
provider = "sim"
upstream_model = "slow-1"
pricing = { prompt = "0.000001", completion = "0.000002" }
"#;

/// Starts the router binary on `data_dir`; returns it and its base URL.
async fn spawn_router(
    data_dir: &std::path::Path,
    catalog_url: &str,
    adapter_url: &str,
    metering_url: &str,
    extra_env: &[(&str, String)],
) -> (tokio::process::Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard-router"))
        .envs(extra_env.iter().map(|(k, v)| (k, v)))
        .env("SWITCHYARD_HTTP_ADDR", "127.0.0.1:0")
        .env("SWITCHYARD_ROUTER_GRPC_ADDR", "127.0.0.1:0")
        .env("SWITCHYARD_CATALOG_URL", catalog_url)
        .env("SWITCHYARD_ADAPTER_URL", adapter_url)
        .env("SWITCHYARD_METERING_URL", metering_url)
        .env("SWITCHYARD_DATA_DIR", data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("router printed in time")
        .unwrap()
        .expect("a line");
    let http = listening
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let grpc = listening
        .rsplit("gRPC ")
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_owned();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("router ready in time")
        .unwrap()
        .expect("a line");
    assert_eq!(ready, "switchyard-router ready");
    (child, http, grpc)
}

/// `kill -9` of the router mid-stream, with usage of finished requests
/// still undelivered (metering was down): after a restart the journal is
/// replayed, every finished request is recorded and debited exactly once,
/// and the ledger balances. The stream the crash cut ended in an error, so
/// zero-completion insurance makes it free: it is not billed.
#[tokio::test]
async fn kill_9_mid_stream_then_restart_replays_usage_exactly_once() {
    let shutdown = Shutdown::new();
    let dir = std::env::temp_dir().join(testing::unique_name("router_kill"));
    std::fs::create_dir_all(&dir).unwrap();
    let sim = provider_sim::App::build(provider_sim::Config::ephemeral())
        .await
        .unwrap();
    sim.state().set_model_knobs(
        "slow-1",
        provider_sim::Knobs {
            tokens_per_second: Some(5.0),
            completion_tokens: Some(300),
            ..Default::default()
        },
    );
    let seed = dir.join("seed.toml");
    let sim_url = format!("http://{}/v1", sim.addr());
    std::fs::write(
        &seed,
        format!("{}{SLOW_MODEL}", SEED).replace("SIM_URL", &sim_url),
    )
    .unwrap();
    tokio::spawn(sim.run(shutdown.clone()));
    let catalog = switchyard_catalog::App::build(switchyard_catalog::Config {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join("catalog"),
        seed: Some(seed),
        ..Default::default()
    })
    .await
    .unwrap();
    let catalog_url = format!("http://{}", catalog.grpc_addr());
    tokio::spawn(catalog.run(shutdown.clone()));
    let adapter =
        switchyard_provider_adapter::App::build(switchyard_provider_adapter::Config::ephemeral())
            .await
            .unwrap();
    let adapter_url = format!("http://{}", adapter.grpc_addr());
    tokio::spawn(adapter.run(shutdown.clone()));

    // Metering on Postgres, so it can stop and come back on its port.
    let mut metering_config = switchyard_usage_metering::Config::embedded(dir.join("metering"));
    metering_config.database_url = Some(testing::fresh_postgres_database().await);
    let metering = switchyard_usage_metering::App::build(&metering_config)
        .await
        .unwrap();
    metering_config.grpc_addr = metering.grpc_addr();
    let metering_url = format!("http://{}", metering.grpc_addr());
    let handle = metering.metering().clone();
    let created = handle
        .ensure_key(
            "crash",
            switchyard_usage_metering::KeyKind::Inference,
            None,
            switchyard_usage_metering::ledger::Billing::Prepaid,
        )
        .await
        .unwrap();
    let (key, account) = (created.key_text.clone(), created.key.account_id.clone());
    const CREDIT: i64 = 10_000_000_000;
    handle
        .post_transfer(switchyard_proto::metering::v1::PostTransferRequest {
            account_id: account.clone(),
            kind: switchyard_proto::metering::v1::TransferKind::TopUp.into(),
            amount_nanos: CREDIT,
            idempotency_key: "crash-test".into(),
            memo: String::new(),
        })
        .await
        .unwrap();
    let metering_stop = shutdown.child();
    let metering_task = tokio::spawn(metering.run(metering_stop.clone()));

    let router_dir = dir.join("router");
    let (mut router, http, _) =
        spawn_router(&router_dir, &catalog_url, &adapter_url, &metering_url, &[]).await;
    let client = reqwest::Client::new();
    let chat = |model: &str, stream: bool| {
        client
            .post(format!("{http}/api/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({"model": model, "stream": stream, "max_tokens": 400,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    let mut finished = Vec::new();
    for _ in 0..3 {
        let response = chat("test/echo", false).await.unwrap();
        assert_eq!(response.status(), 200);
        finished.push(
            response.headers()["x-generation-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Metering goes down; requests still finish, their usage journaled.
    metering_stop.trigger();
    metering_task.await.unwrap().unwrap();
    for _ in 0..5 {
        let response = chat("test/echo", false).await.unwrap();
        assert_eq!(response.status(), 200);
        finished.push(
            response.headers()["x-generation-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    // A long stream is under way when the router is killed outright.
    let mut stream = chat("test/slow", true).await.unwrap();
    assert_eq!(stream.status(), 200);
    let cut = stream.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut seen = String::new();
    while !seen.contains("\"content\"") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let pid = router.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    router.wait().await.unwrap();
    drop(stream);

    // Restart both: the new router replays what the old one journaled.
    let metering = switchyard_usage_metering::App::build(&metering_config)
        .await
        .unwrap();
    tokio::spawn(metering.run(shutdown.clone()));
    let (_router, _http, _) =
        spawn_router(&router_dir, &catalog_url, &adapter_url, &metering_url, &[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for id in &finished {
        while handle.get_generation(id, &account).await.unwrap().is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} never replayed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Give a duplicate delivery every chance to show up, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pool = sqlx::PgPool::connect(metering_config.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM metering.generations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        rows,
        finished.len() as i64,
        "each finished request exactly once"
    );
    let debits: i64 =
        sqlx::query_scalar("SELECT count(*) FROM metering.transfers WHERE kind = 'usage'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        debits,
        finished.len() as i64,
        "one debit per finished request"
    );
    assert!(
        handle
            .get_generation(&cut, &account)
            .await
            .unwrap()
            .is_none()
    );
    let mut spent = 0;
    for id in &finished {
        spent += handle
            .get_generation(id, &account)
            .await
            .unwrap()
            .unwrap()
            .cost
            .total;
    }
    let summary = handle.account(&account).await.unwrap();
    assert_eq!(
        summary.balance_nanos,
        CREDIT - spent,
        "nothing double-billed"
    );
    let check = handle.check_ledger().await.unwrap();
    assert!(check.violations.is_empty(), "{:?}", check.violations);
    shutdown.trigger();
    let _ = std::fs::remove_dir_all(&dir);
}
