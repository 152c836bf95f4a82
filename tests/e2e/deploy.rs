//! The deployment files (Dockerfile, docker-compose.yml, .env.example) agree
//! with the binaries they run: checked by `compat/check_deploy.py` against
//! the `--help` of the binaries this test run was built with.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>` of this test run: the test executable lives in
/// `target/<profile>/deps/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test executable under target/<profile>/deps")
        .to_path_buf()
}

#[test]
fn deploy_files_match_the_binaries_they_run() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/check_deploy.py");
    let bin_dir = bin_dir();
    let output = Command::new("python3")
        .arg(script)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .output()
        .expect("python3 must be installed (with PyYAML: tests/compat/requirements.txt)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `cargo test` builds a crate's binary only when that crate has
    // integration tests, so a fresh checkout may lack some of them.
    assert!(
        output.status.success(),
        "deployment files disagree with the binaries in {}\n\
         (a missing binary means: run `cargo build --workspace --bins` first)\n{stdout}{stderr}",
        bin_dir.display()
    );
}
