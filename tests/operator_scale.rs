//! Measurements of the operator at scale, against the real API server, with the real binary
//! (`portcullis controller`) so that its memory is its own.
//!
//! Ignored by default (a minute or two on two cores); run with
//! `cargo test --release --test operator_scale -- --ignored --nocapture`. Set
//! `PORTCULLIS_BIN` to measure another build of the binary, and `PORTCULLIS_SCALE_ROUTES` for
//! another number of Routes (default 1,000). Prints the figures; asserts only behaviour (every
//! Route Accepted and served, no write in a converged resync), never timings.

#[path = "operator_support/mod.rs"]
mod operator_support;
mod support;

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, api::ListParams};
use operator_support::*;
use portcullis_api::Route;
use serde_json::json;
use support::control_plane::{TestContext, eventually};

/// Kills the operator process when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// Resident and peak resident memory, in KiB, from `/proc/<pid>/status`.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .expect("the operator's /proc status reads");
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

/// The sum of `portcullis_controller_api_writes_total` over every resource but leases.
async fn writes(metrics_url: &str) -> u64 {
    let body = http_get(metrics_url).await;
    body.lines()
        .filter(|l| l.starts_with("portcullis_controller_api_writes_total{"))
        .filter(|l| !l.contains("resource=\"leases"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// `portcullis_controller_reconciles_total{controller="gateway"}`.
async fn reconciles(metrics_url: &str) -> u64 {
    let body = http_get(metrics_url).await;
    body.lines()
        .find(|l| l.starts_with("portcullis_controller_reconciles_total{controller=\"gateway\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// A plain HTTP/1.0 GET on loopback.
async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (addr, path) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .expect("an http URL");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    stream
        .write_all(format!("GET /{path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("writes");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("reads");
    body
}

fn route(namespace: &str, index: usize) -> serde_json::Value {
    json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "Route",
        "metadata": { "name": format!("r{index:04}"), "namespace": namespace },
        "spec": {
            "parentRefs": [{ "name": "edge" }],
            "rules": [{
                "matches": [{ "path": { "type": "PathPrefix", "value": format!("/r{index}") } }],
                "backendRefs": [{ "name": "orders" }],
            }],
        },
    })
}

#[tokio::test]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn a_thousand_routes() {
    let count: usize = std::env::var("PORTCULLIS_SCALE_ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let ctx = TestContext::new("scale").await;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let binary = std::env::var("PORTCULLIS_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_portcullis").to_owned());
    let operator = Process(
        Command::new(&binary)
            .args([
                "controller",
                "--leader-election=false",
                "--namespace",
                &ctx.namespace,
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
                "--resync",
                "3",
            ])
            .env("KUBECONFIG", ctx.control_plane.kubeconfig())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("the operator starts"),
    );
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let (idle_rss, _) = {
        tokio::time::sleep(Duration::from_secs(2)).await;
        operator.memory()
    };

    let documents: Vec<_> = examples(&ctx.namespace)
        .into_iter()
        .filter(|d| d["kind"] != "Route")
        .collect();
    apply_all(&ctx.client, &documents).await;
    await_programmed(&ctx, "edge").await;

    let started = Instant::now();
    let indexes: Vec<usize> = (0..count).collect();
    for batch in indexes.chunks(16) {
        let mut applies = tokio::task::JoinSet::new();
        for &i in batch {
            let client = ctx.client.clone();
            let document = route(&ctx.namespace, i);
            applies.spawn(async move { apply(&client, &document).await });
        }
        while let Some(done) = applies.join_next().await {
            done.expect("an apply task");
        }
    }
    let created = started.elapsed();

    let routes: Api<Route> = ctx.api();
    eventually(
        &format!("{count} Routes Accepted"),
        Duration::from_secs(600),
        || async {
            let list = routes.list(&ListParams::default()).await.ok()?;
            let accepted = list
                .items
                .iter()
                .filter(|r| {
                    r.status.as_ref().is_some_and(|s| {
                        s.parents.iter().any(|p| {
                            condition(&p.conditions, "Accepted").is_some_and(|c| c.status == "True")
                        })
                    })
                })
                .count();
            (accepted == count).then_some(())
        },
    )
    .await;
    let accepted = started.elapsed();

    let config_maps: Api<ConfigMap> = ctx.api();
    let size = eventually(
        "every Route in the served config",
        Duration::from_secs(600),
        || async {
            let config_map = config_maps.get("edge-config").await.ok()?;
            let config = config_map.data?.remove("config.yaml")?;
            let rules = portcullis_config::Snapshot::from_yaml(&config)
                .ok()?
                .rules
                .len();
            (rules == count).then_some(config.len())
        },
    )
    .await;
    let served = started.elapsed();

    // Converged: a window of resyncs without a write, then another one measured.
    eventually("a quiet window", Duration::from_secs(300), || async {
        let before = writes(&metrics_url).await;
        let start = reconciles(&metrics_url).await;
        while reconciles(&metrics_url).await < start + 2 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (writes(&metrics_url).await == before).then_some(())
    })
    .await;
    let before = writes(&metrics_url).await;
    let start = reconciles(&metrics_url).await;
    while reconciles(&metrics_url).await < start + 3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resync_writes = writes(&metrics_url).await - before;
    let (rss, peak) = operator.memory();

    println!("operator scale figures ({count} Routes, binary {binary}):");
    println!("  created (16 applies at a time):   {created:.2?}");
    println!(
        "  all Accepted:                      {accepted:.2?} after the first create, {:.2?} after the last",
        accepted - created
    );
    println!("  all in the served config:          {served:.2?} ({size} bytes of YAML)");
    println!("  controller RSS idle:               {} KiB", idle_rss);
    println!("  controller RSS converged / peak:   {rss} KiB / {peak} KiB");
    println!("  writes in 3 converged resyncs:     {resync_writes}");
    assert_eq!(resync_writes, 0, "a converged resync must not write");
}
