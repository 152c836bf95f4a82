//! The `switchyard` binary as a newcomer runs it: one command, embedded
//! storage, the seed catalog, the built-in simulator, a dev key. Started as
//! a real process on free ports; it announces its address on stdout.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const DEV_KEY: &str = "dev-key-for-the-binary-test-0123";

struct Running {
    child: Child,
    base: String,
    grpc: String,
}

async fn start(data_dir: &Path) -> Running {
    start_with(data_dir, None, &[]).await
}

async fn start_logging(data_dir: &Path, log_file: Option<&Path>) -> Running {
    start_with(data_dir, log_file, &[]).await
}

/// Starts the binary; with `log_file`, logs every level as JSON into it.
async fn start_with(data_dir: &Path, log_file: Option<&Path>, env: &[(&str, &str)]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command.envs(env.iter().copied());
    match log_file {
        Some(path) => {
            command
                .env("RUST_LOG", "trace")
                .env("SWITCHYARD_LOG_FORMAT", "json")
                .stderr(std::fs::File::create(path).unwrap());
        }
        None => {
            command.stderr(Stdio::null());
        }
    }
    let mut child = command
        .env("SWITCHYARD_HTTP_ADDR", "127.0.0.1:0")
        .env("SWITCHYARD_ROUTER_GRPC_ADDR", "127.0.0.1:0")
        .env("SWITCHYARD_DATA_DIR", data_dir)
        .env("SWITCHYARD_DEV_KEY", DEV_KEY)
        // Real provider keys from the developer's shell must not leak in.
        .env_remove("OPENAI_API_KEY")
        .env_remove("SWITCHYARD_DATABASE_URL")
        .env_remove("SWITCHYARD_REDIS_URL")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("switchyard binary");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("switchyard announced itself in time")
        .expect("stdout readable")
        .expect("a first line");
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("address in the first line")
        .to_owned();
    let grpc = first
        .rsplit("gRPC ")
        .next()
        .map(|s| s.trim_end_matches(')').to_owned())
        .expect("gRPC address in the first line");
    let key_line = lines.next_line().await.unwrap().unwrap();
    assert_eq!(key_line, format!("development key: {DEV_KEY}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Running { child, base, grpc }
}

async fn stop(mut running: Running) {
    let pid = running.child.id().expect("running");
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), running.child.wait())
        .await
        .expect("drained and exited after SIGTERM")
        .unwrap();
    assert!(exit.success(), "clean exit: {exit:?}");
}

fn chat(stream: bool) -> Value {
    json!({"model": "openai/gpt-4", "stream": stream,
           "messages": [{"role": "user", "content": "hello from the binary test"}]})
}

#[tokio::test]
async fn one_command_serves_the_catalog_with_a_dev_key_and_keeps_its_data() {
    let data_dir = std::env::temp_dir().join(format!("switchyard-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let http = reqwest::Client::new();

    let running = start(&data_dir).await;
    for probe in [
        vec![
            "health".to_owned(),
            "--http".into(),
            format!("{}/readyz", running.base.trim_end_matches("/api/v1")),
        ],
        vec![
            "health".to_owned(),
            "--grpc".into(),
            format!("http://{}", running.grpc),
        ],
    ] {
        let status = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(&probe)
            .status()
            .await
            .unwrap();
        assert!(status.success(), "{probe:?}");
    }
    let dead = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["health", "--grpc", "http://127.0.0.1:1"])
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(!dead.success(), "a closed port is unhealthy");
    let models: Value = http
        .get(format!("{}/models", running.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"openai/gpt-4") && ids.contains(&"openai/gpt-4-1106-preview"),
        "{ids:?}"
    );
    let gpt4 = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "openai/gpt-4")
        .unwrap();
    assert_eq!(gpt4["pricing"]["prompt"], "0.00003");
    assert_eq!(gpt4["pricing"]["completion"], "0.00006");
    assert_eq!(gpt4["context_length"], 8191);

    let response = http
        .post(format!("{}/chat/completions", running.base))
        .bearer_auth(DEV_KEY)
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(body["usage"]["cost"].as_f64().unwrap() > 0.0);
    assert!(
        !body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );

    let streamed = http
        .post(format!("{}/chat/completions", running.base))
        .bearer_auth(DEV_KEY)
        .json(&chat(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(streamed.trim_end().ends_with("data: [DONE]"), "{streamed}");

    let unauthorized = http
        .post(format!("{}/chat/completions", running.base))
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    stop(running).await;

    // Restart on the same data directory: the key and the usage survive.
    let running = start(&data_dir).await;
    let generation = http
        .get(format!("{}/generation?id={id}", running.base))
        .bearer_auth(DEV_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        generation.status(),
        200,
        "usage recorded before shutdown is still there"
    );
    let generation: Value = generation.json().await.unwrap();
    assert_eq!(generation["data"]["model"], "openai/gpt-4");
    stop(running).await;
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// Redaction canary: at the most verbose log level, neither the API key nor
/// the prompt nor the completion text may appear anywhere in the logs.
#[tokio::test]
async fn logs_never_contain_keys_prompts_or_completions() {
    let data_dir = std::env::temp_dir().join(format!("switchyard-canary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).unwrap();
    let log = data_dir.join("log.jsonl");
    let running = start_logging(&data_dir, Some(&log)).await;
    let canary = "canary-prompt-7f3a9c";
    let http = reqwest::Client::new();
    let mut completion = String::new();
    for stream in [false, true] {
        let body = json!({"model": "openai/gpt-4", "stream": stream,
                          "messages": [{"role": "user", "content": canary}]});
        let response = http
            .post(format!("{}/chat/completions", running.base))
            .bearer_auth(DEV_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        if !stream {
            let v: Value = serde_json::from_str(&text).unwrap();
            completion = v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned();
        }
    }
    // The management API: the management key and a key it creates (shown
    // once, in the response) must not reach the logs either.
    let management = std::fs::read_to_string(data_dir.join("dev-management-key")).unwrap();
    let created: Value = http
        .post(format!("{}/keys", running.base))
        .bearer_auth(management.trim())
        .json(&json!({"name": "canary key", "limit": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_key = created["key"].as_str().expect("created key").to_owned();
    let hash = created["data"]["hash"].as_str().unwrap().to_owned();
    let response = http
        .post(format!("{}/chat/completions", running.base))
        .bearer_auth(&new_key)
        .json(&json!({"model": "openai/gpt-4", "messages": [{"role": "user", "content": canary}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = http
        .patch(format!("{}/keys/{hash}", running.base))
        .bearer_auth(management.trim())
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    stop(running).await;
    let logs = std::fs::read_to_string(&log).unwrap();
    for (what, secret) in [
        ("management key", management.trim()),
        ("created key", new_key.as_str()),
    ] {
        assert!(!logs.contains(secret), "the {what} leaked into logs");
        assert!(
            !logs.contains(&secret[secret.len() - 16..]),
            "part of the {what} leaked into logs"
        );
    }
    assert!(logs.lines().count() > 10, "trace logging was on");
    assert!(
        logs.contains("trace_id") || logs.contains("\"level\""),
        "JSON lines"
    );
    assert!(!logs.contains(DEV_KEY), "the API key leaked into logs");
    assert!(
        !logs.contains(&DEV_KEY[DEV_KEY.len() - 16..]),
        "part of the API key leaked into logs"
    );
    assert!(!logs.contains(canary), "the prompt leaked into logs");
    assert!(
        !logs.contains(&completion),
        "the completion leaked into logs"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// In the all-in-one the router calls provider-adapter's service in-process
/// rather than over gRPC. A client that leaves a stream must still cancel
/// the provider's request at once, and the usage must still be recorded.
#[tokio::test]
async fn a_client_leaving_a_stream_cancels_the_provider_request_in_process() {
    let data_dir = std::env::temp_dir().join(format!("switchyard-cancel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).unwrap();
    let sim = provider_sim::App::build(provider_sim::Config::ephemeral())
        .await
        .unwrap();
    let sim_addr = sim.addr();
    let sim_shutdown = switchyard_kit::Shutdown::new();
    tokio::spawn(sim.run(sim_shutdown.clone()));
    let http = reqwest::Client::new();
    // 400 tokens at 20 per second: a stream of 20 seconds unless cancelled.
    let knobs = http
        .put(format!("http://{sim_addr}/sim/models/sim-small"))
        .json(&json!({"tokens_per_second": 20, "completion_tokens": 400}))
        .send()
        .await
        .unwrap();
    assert!(knobs.status().is_success(), "{}", knobs.status());
    let seed = data_dir.join("seed.toml");
    std::fs::write(
        &seed,
        format!(
            r#"
[[providers]]
slug = "slow-sim"
name = "Slow Sim"
wire_format = "openai"
base_url = "http://{sim_addr}/v1"
credential_ref = ""

[[models]]
id = "test/slow"
name = "Test: slow"
created = 1732233600
context_length = 8192
architecture = {{ modality = "text->text", input_modalities = ["text"], output_modalities = ["text"], tokenizer = "Other" }}

[[endpoints]]
model = "test/slow"
provider = "slow-sim"
upstream_model = "sim-small"
pricing = {{ prompt = "0.000001", completion = "0.000002" }}
"#
        ),
    )
    .unwrap();
    let running = start_with(
        &data_dir,
        None,
        &[
            ("SWITCHYARD_NO_SIMULATOR", "true"),
            ("SWITCHYARD_CATALOG_SEED", seed.to_str().unwrap()),
        ],
    )
    .await;

    let mut response = http
        .post(format!("{}/chat/completions", running.base))
        .bearer_auth(DEV_KEY)
        .json(&json!({"model": "test/slow", "stream": true,
                      "messages": [{"role": "user", "content": "take your time"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut seen = String::new();
    while !seen.contains("\"content\"") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("a first token in time")
            .unwrap()
            .expect("the stream is still open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);

    let cancelled_upstream = async {
        loop {
            let stats: Value = http
                .get(format!("http://{sim_addr}/sim/stats"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if stats["models"]["sim-small"]["cancelled"] == 1 {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let stats = tokio::time::timeout(Duration::from_secs(5), cancelled_upstream)
        .await
        .expect("the provider saw its stream cancelled within 5 s (it had 20 s to go)");
    assert!(
        stats["models"]["sim-small"]["completion_tokens"]
            .as_u64()
            .unwrap()
            < 400,
        "{stats}"
    );

    let recorded = async {
        loop {
            let generation = http
                .get(format!("{}/generation?id={id}", running.base))
                .bearer_auth(DEV_KEY)
                .send()
                .await
                .unwrap();
            if generation.status() == 200 {
                return generation.json::<Value>().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let generation = tokio::time::timeout(Duration::from_secs(10), recorded)
        .await
        .expect("the cancelled generation is recorded");
    assert_eq!(generation["data"]["cancelled"], true, "{generation}");
    assert_eq!(generation["data"]["model"], "test/slow");
    stop(running).await;
    sim_shutdown.trigger();
    let _ = std::fs::remove_dir_all(&data_dir);
}
