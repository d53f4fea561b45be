//! Leadership changes with real `portcullis controller` processes: the leader is killed with
//! SIGKILL (it never releases the Lease), a Route of every Gateway is edited at once, and the
//! standby that takes the Lease must reconcile every Gateway, ten times over.
//!
//! This is the start of leadership with several Gateways: every Gateway is queued at once while
//! the new leader's watches are still listing, so every reconcile waits for the same stores.
//! `PORTCULLIS_BIN` runs another build of the binary (e.g. a release build, or an older one).

#[path = "operator_support/mod.rs"]
mod operator_support;
mod support;

use std::{
    fs,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::{coordination::v1::Lease, core::v1::ConfigMap};
use kube::Api;
use operator_support::*;
use portcullis_config::configmap::snapshot_from_configmap;
use serde_json::{Value, json};
use support::control_plane::{TestContext, eventually};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The Gateways: enough that several reconciles wait at the start of every leadership.
const GATEWAYS: [&str; 3] = ["east", "west", "north"];

/// Kill-and-take-over cycles.
const CYCLES: usize = 10;

/// The Lease: short, so that the cycles take seconds each.
const LEASE_SECONDS: u64 = 6;

const LEASE: &str = "portcullis-controller";

/// A `portcullis controller` process watching the test's namespace.
struct Controller {
    identity: String,
    child: Child,
    metrics: SocketAddr,
    log: PathBuf,
}

impl Controller {
    fn start(ctx: &TestContext, dir: &tempfile::TempDir, identity: &str) -> Self {
        let metrics = free_addr();
        let log = dir.path().join(format!("{identity}.log"));
        let binary = std::env::var("PORTCULLIS_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_portcullis").to_owned());
        let child = Command::new(binary)
            .arg("controller")
            .args(["--namespace", &ctx.namespace])
            .args(["--lease-namespace", &ctx.namespace, "--lease-name", LEASE])
            .args(["--lease-duration", &LEASE_SECONDS.to_string()])
            .args(["--resync", "10", "--identity", identity])
            .args(["--metrics-addr", &metrics.to_string()])
            .env("KUBECONFIG", ctx.control_plane.kubeconfig())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("the controller log"))
            .spawn()
            .expect("portcullis controller starts");
        Self {
            identity: identity.to_owned(),
            child,
            metrics,
            log,
        }
    }

    /// Gateway reconciles this instance has started, from its `/metrics`.
    async fn reconciles(&self) -> Option<u64> {
        let mut stream = tokio::net::TcpStream::connect(self.metrics).await.ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await.ok()?;
        text.lines()
            .find(|l| {
                l.starts_with("portcullis_controller_reconciles_total{controller=\"gateway\"}")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .or(Some(0))
    }

    /// SIGKILL: the Lease is never released, as when a node dies.
    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

fn gateway(namespace: &str, name: &str, port: u16) -> Value {
    json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "Gateway",
        "metadata": { "name": name, "namespace": namespace },
        "spec": { "listeners": [{ "name": "http", "port": port, "protocol": "HTTP" }] },
    })
}

fn backend(namespace: &str) -> Value {
    json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "ServiceBackend",
        "metadata": { "name": "web", "namespace": namespace },
        "spec": { "endpoints": [{ "address": "127.0.0.1", "port": 9 }] },
    })
}

/// The Route of Gateway `gateway`, sending `path` to `web`.
fn route(namespace: &str, gateway: &str, path: &str) -> Value {
    json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "Route",
        "metadata": { "name": gateway, "namespace": namespace },
        "spec": {
            "parentRefs": [{ "name": gateway }],
            "rules": [{
                "matches": [{ "path": { "type": "PathPrefix", "value": path } }],
                "backendRefs": [{ "name": "web" }],
            }],
        },
    })
}

/// Whether Gateway `gateway`'s ConfigMap serves `path`.
async fn serves(config_maps: &Api<ConfigMap>, gateway: &str, path: &str) -> bool {
    let Ok(Some(config_map)) = config_maps.get_opt(&format!("{gateway}-config")).await else {
        return false;
    };
    snapshot_from_configmap(&config_map).is_ok_and(|snapshot| {
        snapshot.listeners.iter().any(|listener| {
            listener.virtual_hosts.iter().any(|vhost| {
                vhost
                    .routes
                    .iter()
                    .any(|entry| entry.r#match.path.value == path)
            })
        })
    })
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases.get_opt(LEASE).await.ok()??.spec?.holder_identity
}

#[tokio::test]
async fn every_gateway_is_reconciled_after_every_leader_change() {
    let ctx = TestContext::new("leader-takeover").await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config_maps: Api<ConfigMap> = ctx.api();
    let leases: Api<Lease> = ctx.api();

    let mut documents = vec![backend(&ctx.namespace)];
    for name in GATEWAYS {
        documents.push(gateway(&ctx.namespace, name, free_addr().port()));
        documents.push(route(&ctx.namespace, name, "/generation-0"));
    }
    apply_all(&ctx.client, &documents).await;

    let mut started = 0;
    let mut spawn = |ctx: &TestContext| {
        started += 1;
        Controller::start(ctx, &dir, &format!("controller-{started}"))
    };
    let mut controllers = vec![spawn(&ctx), spawn(&ctx)];
    for name in GATEWAYS {
        eventually(&format!("Gateway {name} to be served"), TIMEOUT, || async {
            serves(&config_maps, name, "/generation-0")
                .await
                .then_some(())
        })
        .await;
    }

    let mut takeovers = Vec::new();
    for cycle in 1..=CYCLES {
        let leader = eventually("a leader", TIMEOUT, || holder(&leases)).await;
        let index = controllers
            .iter()
            .position(|c| c.identity == leader)
            .unwrap_or_else(|| {
                panic!("the Lease holder {leader} is one of the test's controllers")
            });
        let killed_at = Instant::now();
        controllers.remove(index).kill();
        let path = format!("/generation-{cycle}");
        for name in GATEWAYS {
            apply(&ctx.client, &route(&ctx.namespace, name, &path)).await;
        }
        // A fresh standby, as the Deployment would start after the kill.
        controllers.push(spawn(&ctx));

        // Time the first reconcile of whichever instance takes the Lease.
        let first_reconcile = eventually("the new leader's first reconcile", TIMEOUT, || async {
            let holder = holder(&leases).await.filter(|h| *h != leader)?;
            let new_leader = controllers.iter().find(|c| c.identity == holder)?;
            (new_leader.reconciles().await? > 0).then(|| killed_at.elapsed())
        })
        .await;
        takeovers.push(first_reconcile);
        for name in GATEWAYS {
            let what = format!("cycle {cycle}: {path} to reach Gateway {name}'s ConfigMap");
            let served = tokio::time::timeout(TIMEOUT, async {
                while !serves(&config_maps, name, &path).await {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await;
            if served.is_err() {
                let logs: Vec<String> = controllers
                    .drain(..)
                    .map(|c| format!("--- {} ---\n{}", c.identity.clone(), c.kill()))
                    .collect();
                panic!("{what} did not happen in {TIMEOUT:?}\n{}", logs.join("\n"));
            }
        }
    }

    takeovers.sort();
    println!(
        "leader killed -> first reconcile by the standby, over {CYCLES} takeovers (Lease \
         {LEASE_SECONDS} s): median {:?}, max {:?}",
        takeovers[takeovers.len() / 2],
        takeovers[takeovers.len() - 1],
    );
}
