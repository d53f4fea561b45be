//! What the chart tests share: helm, and the documents of deploy/install.yaml.
//!
//! A test binary pulls it in with `#[path = "chart_support/mod.rs"] mod chart_support;`.
#![allow(
    dead_code,
    reason = "each chart test binary uses a different part of these helpers"
)]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::Value;

/// The helm binary; `make test` exports it.
pub const HELM_ENV: &str = "PORTCULLIS_HELM";

/// The namespace install.yaml installs into.
pub const NAMESPACE: &str = "portcullis-system";

/// The repository root.
pub const REPO_ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `path` in the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(REPO_ROOT).join(path)
}

/// The text of the repository file `path`.
pub fn read(path: &str) -> String {
    fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The helm binary: `$PORTCULLIS_HELM`, else what `hack/build-helm.sh` has cached. Never builds
/// it (a cold build takes minutes); panics saying how to get it.
pub fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os(HELM_ENV) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{HELM_ENV}={} is not a file",
            path.display()
        );
        return path;
    }
    let output = Command::new("bash")
        .arg(repo("hack/build-helm.sh"))
        .arg("--cached-only")
        .stdin(Stdio::null())
        .output()
        .expect("hack/build-helm.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last() {
        Some(path) if output.status.success() => PathBuf::from(path),
        _ => panic!(
            "helm is not built yet. Run `make test` once (it builds helm from the Go module \
             proxy with hack/build-helm.sh, a few minutes, cached in ~/.cache/portcullis/helm), \
             or point {HELM_ENV} at a helm binary.\n{}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
}

/// Runs helm with `args` in the repository, whatever its outcome. Helm's own configuration,
/// cache and data stay in the target directory, away from the user's.
pub fn helm_output(args: &[&str]) -> Output {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
    Command::new(helm())
        .args(args)
        .current_dir(REPO_ROOT)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .output()
        .expect("helm runs")
}

/// Runs helm with `args` in the repository and returns its standard output; panics with
/// helm's output when it fails.
pub fn run_helm(args: &[&str]) -> String {
    let output = helm_output(args);
    assert!(
        output.status.success(),
        "helm {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("helm prints UTF-8")
}

/// The documents of a multi-document YAML text (comment-only documents left out).
pub fn documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .expect("valid YAML")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The documents of deploy/install.yaml.
pub fn install_yaml() -> Vec<Value> {
    documents(&read("deploy/install.yaml"))
}

/// The one document of `kind` among `documents`.
pub fn the<T: serde::de::DeserializeOwned>(documents: &[Value], kind: &str) -> T {
    let found: Vec<&Value> = documents.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    serde_json::from_value(found[0].clone()).unwrap_or_else(|e| panic!("a valid {kind}: {e}"))
}

/// The operator container's arguments.
pub fn args_of(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("a string argument").to_owned())
        .collect()
}
