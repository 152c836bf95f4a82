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

    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard-router"))
        .env("SWITCHYARD_HTTP_ADDR", "127.0.0.1:0")
        .env("SWITCHYARD_ROUTER_GRPC_ADDR", "127.0.0.1:0")
        .env("SWITCHYARD_CATALOG_URL", &catalog_url)
        .env("SWITCHYARD_ADAPTER_URL", &adapter_url)
        .env("SWITCHYARD_METERING_URL", &metering_url)
        .env("SWITCHYARD_DATA_DIR", dir.join("router"))
        .env("SWITCHYARD_REDIS_URL", testing::redis_url())
        .env(
            "SWITCHYARD_REDIS_PREFIX",
            testing::unique_name("router_bin"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let next = async |lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>| {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("router printed in time")
            .unwrap()
            .expect("a line")
    };
    let listening = next(&mut lines).await;
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
    assert_eq!(next(&mut lines).await, "switchyard-router ready");

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
