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
    start_logging(data_dir, None).await
}

/// Starts the binary; with `log_file`, logs every level as JSON into it.
async fn start_logging(data_dir: &Path, log_file: Option<&Path>) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
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
