//! The Kubernetes manifests (deploy/k8s) render with kustomize, satisfy the
//! Kubernetes API schemas and agree with the binaries they run: checked by
//! `compat/check_k8s.py` against the `--help` of the binaries this test run
//! was built with. A second test breaks copies of the manifests on purpose
//! and expects the checker to say what broke.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `target/<profile>` of this test run: the test executable lives in
/// `target/<profile>/deps/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test executable under target/<profile>/deps")
        .to_path_buf()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
}

fn run_checker(extra: &[&std::ffi::OsStr]) -> Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/check_k8s.py");
    Command::new("python3")
        .arg(script)
        .arg("--bin-dir")
        .arg(bin_dir())
        .args(extra)
        .output()
        .expect(
            "python3 must be installed (with tests/compat/requirements.txt), and kubectl \
             for `kubectl kustomize`",
        )
}

#[test]
fn k8s_manifests_match_the_binaries_they_run() {
    let output = run_checker(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `cargo test` builds a crate's binary only when that crate has
    // integration tests, so a fresh checkout may lack some of them.
    assert!(
        output.status.success(),
        "deploy/k8s disagrees with the binaries in {}\n\
         (a missing binary means: run `cargo build --workspace --bins` first)\n{stdout}{stderr}",
        bin_dir().display()
    );
}

/// (file under deploy/k8s, text, replacement, what the checker must say).
const MISTAKES: &[(&str, &str, &str, &str)] = &[
    (
        "base/router.yaml",
        "SWITCHYARD_CATALOG_URL",
        "SWITCHYARD_CATALOG_ULR",
        "sets SWITCHYARD_CATALOG_ULR, which `switchyard-router --help` does not list",
    ),
    (
        "base/catalog.yaml",
        "readOnlyRootFilesystem: true",
        "readOnlyRootFileSystem: true",
        "schema (Kubernetes 1.30)",
    ),
    (
        "base/catalog.yaml",
        "value: 0.0.0.0:50054",
        "value: 0.0.0.0:50055",
        "listens on 50055 but does not declare it as a containerPort",
    ),
    (
        "base/router.yaml",
        "terminationGracePeriodSeconds: 45",
        "terminationGracePeriodSeconds: 30",
        "terminationGracePeriodSeconds 30 < preStop 5 s + drain 30 s",
    ),
    (
        "base/router.yaml",
        "    name: router\n  minReplicas",
        "    name: routr\n  minReplicas",
        "targets Deployment/routr: no such Deployment",
    ),
    (
        "base/network-policies.yaml",
        "  - from:\n        - podSelector:\n            matchLabels:\n              \
         app.kubernetes.io/name: router\n      ports:\n        - port: 50054",
        "  - ports:\n        - port: 50054",
        "only the router may be reachable from outside",
    ),
    (
        "base/router.yaml",
        "http://usage-metering:50053",
        "http://usage-metering:50054",
        "but Service usage-metering has [50053]",
    ),
];

#[test]
fn k8s_checker_catches_deliberate_mistakes() {
    let source = repo().join("deploy/k8s");
    for (file, text, replacement, expected) in MISTAKES {
        let copy = std::env::temp_dir().join(switchyard_kit::testing::unique_name("k8s"));
        let k8s = copy.join("k8s");
        copy_dir(&source, &k8s);
        let path = k8s.join(file);
        let original = std::fs::read_to_string(&path).expect("manifest readable");
        assert!(
            original.contains(text),
            "{file} no longer contains {text:?}: update MISTAKES in tests/e2e/k8s.rs"
        );
        std::fs::write(&path, original.replacen(text, replacement, 1)).expect("write copy");

        let output = run_checker(&["--k8s-dir".as_ref(), k8s.as_os_str()]);
        std::fs::remove_dir_all(&copy).expect("remove copy");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(expected),
            "replacing {text:?} in {file} should make the checker report {expected:?}:\n{stderr}"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy directory");
    for entry in std::fs::read_dir(from).expect("read manifests") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy manifest");
        }
    }
}
