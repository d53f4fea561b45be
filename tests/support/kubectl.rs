//! The real `kubectl`, for tests that apply manifests the way a user does: kubectl reads YAML
//! 1.1 and decodes strictly, so a manifest it refuses is refused here too.
//!
//! **Binary.** `$PORTCULLIS_KUBECTL` (a path) when set, as `KUBEBUILDER_ASSETS` overrides the
//! control plane; otherwise the `kubectl` that `hack/build-test-control-plane.sh` builds from the
//! same `k8s.io/kubernetes` module as the test API server, next to it.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use super::control_plane::{ControlPlane, binary_dir};

/// Overrides the kubectl the tests run (a path to the binary).
pub const KUBECTL_ENV: &str = "PORTCULLIS_KUBECTL";

/// The path of the kubectl the tests run.
///
/// # Panics
/// If there is none: the message says how to get one.
pub fn kubectl_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(KUBECTL_ENV) {
        return PathBuf::from(path);
    }
    let dir = binary_dir().unwrap_or_else(|e| panic!("{e:#}"));
    let path = dir.join("kubectl");
    assert!(
        path.is_file(),
        "{} has no kubectl: rebuild the test control plane with `make test` (its build script \
         builds kubectl too), or point {KUBECTL_ENV} at a kubectl of the same release as the \
         API server",
        dir.display()
    );
    path
}

/// kubectl against the test control plane, as cluster admin.
#[derive(Debug, Clone)]
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

/// What a kubectl run printed, and whether it succeeded.
#[derive(Debug)]
pub struct Run {
    /// Exit status 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Kubectl {
    /// kubectl for `control_plane`.
    pub fn new(control_plane: &ControlPlane) -> Self {
        Self {
            binary: kubectl_binary(),
            kubeconfig: control_plane.kubeconfig().to_owned(),
        }
    }

    /// Runs kubectl with `args` and, when given, `stdin` as its standard input.
    ///
    /// # Panics
    /// If kubectl cannot be started at all.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = self.command(args);
        let input = stdin.map(str::to_owned);
        let binary = self.binary.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            command
                .stdin(if input.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
                pipe.write_all(input.as_bytes())
                    .expect("kubectl reads its input");
            }
            Run::from(child.wait_with_output().expect("kubectl finishes"))
        })
        .await
        .expect("the kubectl thread finishes")
    }

    /// `kubectl apply -n NAMESPACE -f PATH` (client-side), or with `--server-side`.
    pub async fn apply(&self, namespace: &str, path: &Path, server_side: bool) -> Run {
        let path = path.to_string_lossy();
        let mut args = vec!["apply", "-n", namespace, "-f", &path];
        if server_side {
            args.push("--server-side");
        }
        self.run(&args, None).await
    }

    /// `kubectl apply -n NAMESPACE -f -` with `manifest` on standard input.
    pub async fn apply_stdin(&self, namespace: &str, manifest: &str, server_side: bool) -> Run {
        let mut args = vec!["apply", "-n", namespace, "-f", "-"];
        if server_side {
            args.push("--server-side");
        }
        self.run(&args, Some(manifest)).await
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        command
    }
}
