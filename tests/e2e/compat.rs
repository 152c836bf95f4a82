//! The official SDKs (Python `openai` and `openrouter`) against the running
//! stack. They must be installed: `pip install -r tests/compat/requirements.txt`.

use switchyard_tests::Stack;

#[tokio::test]
async fn official_python_sdks_work_unchanged() {
    let stack = Stack::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/sdk_compat.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .env("SWITCHYARD_BASE_URL", stack.url("/api/v1"))
        .env("SWITCHYARD_KEY", &stack.key)
        .env("SWITCHYARD_MODEL", "openai/gpt-4")
        .output()
        .await
        .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK compatibility failed (did you `pip install -r tests/compat/requirements.txt`?)\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("openai SDK: ok")
            && stdout.contains("openrouter SDK: ok")
            && stdout.contains("anthropic SDK: ok"),
        "{stdout}"
    );
    stack.stop().await;
}
