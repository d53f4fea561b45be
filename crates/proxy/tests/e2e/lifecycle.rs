//! Reloads, rules failing closed, drain and the admin endpoints.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use portcullis_config::snapshot::*;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_flipping_50_times_under_load_fails_no_request() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let to_a = Snap::new()
        .backend("a", &[a.addr])
        .backend("b", &[b.addr])
        .route("*", prefix("/"), to("r", &[(Some("a"), 1)]))
        .build();
    let to_b = Snap::new()
        .backend("a", &[a.addr])
        .backend("b", &[b.addr])
        .route("*", prefix("/"), to("r", &[(Some("b"), 1)]))
        .route("*", prefix("/extra"), to("x", &[(Some("a"), 1)]))
        .build();
    let gw = Arc::new(Gateway::start(&to_a).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (gw, stop, ok, failed) = (gw.clone(), stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let client = client();
            while !stop.load(Ordering::SeqCst) {
                let req = request(&gw, "GET", "h", "/x");
                match client.request(req).await {
                    Ok(r) if r.status() == StatusCode::OK => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        }));
    }
    for flip in 0..50 {
        let next = if flip % 2 == 0 { &to_b } else { &to_a };
        gw.reload(next);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.expect("client");
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(ok.load(Ordering::SeqCst) > 50);
    assert!(a.hits() > 0 && b.hits() > 0, "both configs served");
}

#[tokio::test]
async fn a_reload_with_a_rule_whose_protection_cannot_be_built_serves_every_other_rule() {
    let a = Upstream::start("a").await;
    let good = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), to("good", &[(Some("a"), 1)]))
        .build();
    let mut guarded = to("guarded", &[(Some("a"), 1)]);
    // API keys from a Secret the replica does not have.
    guarded.policies.auth = Some(AuthConfig::ApiKey {
        keys: SecretFile::new("lifecycle", "never-mounted", "keys"),
        location: ApiKeyLocation::Header("x-api-key".to_owned()),
        keep_credential: false,
    });
    // Entries in precedence order: the longer prefix first.
    let next = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/guarded"), guarded)
        .route("*", prefix("/"), to("good", &[(Some("a"), 1)]))
        .build();
    let gw = Gateway::start(&good).await;
    gw.reload(&next);
    let refused = get(&gw, "h", "/guarded/x").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        refused.body.contains(
            "spec.rules[0].auth.apiKey.secretRef: a Secret it needs is missing or invalid"
        ),
        "{}",
        refused.body
    );
    assert_eq!(a.hits(), 0, "the unprotected backend was never called");
    assert_eq!(get(&gw, "h", "/other").await.status, StatusCode::OK);
    let config = send(admin_get(&gw, "/config")).await.json();
    assert_eq!(config["revision"], next.revision.as_str());
    assert_eq!(config["lastReloadError"], serde_json::Value::Null);
    assert_eq!(config["unservedRules"][0]["route"], "test/guarded");
    assert_eq!(config["unservedRules"][0]["rule"], 0);
}

#[tokio::test]
async fn drain_turns_ready_503_at_once_and_lets_requests_in_flight_finish() {
    let a = Upstream::start("a").await;
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), to("r", &[(Some("a"), 1)]))
        .edit(|s| {
            s.drain = DrainConfig {
                delay_ms: 300,
                timeout_ms: 10_000,
            }
        })
        .build();
    let gw = Arc::new(Gateway::start(&snapshot).await);
    assert_eq!(send(admin_get(&gw, "/ready")).await.status, StatusCode::OK);

    let in_flight = {
        let gw = gw.clone();
        tokio::spawn(async move { get(&gw, "h", "/delay/800").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let drain = {
        let gw = gw.clone();
        tokio::spawn(async move { gw.plane.drain().await })
    };
    assert!(
        eventually(|| async {
            send(admin_get(&gw, "/ready")).await.status == StatusCode::SERVICE_UNAVAILABLE
        })
        .await
    );
    // Still accepting during the delay.
    let during = request(&gw, "GET", "h", "/");
    let fresh = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    assert_eq!(
        read(fresh.request(during).await.expect("accepted"))
            .await
            .status,
        StatusCode::OK
    );

    assert_eq!(in_flight.await.expect("task").status, StatusCode::OK);
    assert_eq!(drain.await.expect("drain"), 0, "every connection finished");
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn admin_reports_health_metrics_and_config() {
    let a = Upstream::start("a").await;
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), to("metered", &[(Some("a"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;
    get(&gw, "h", "/").await;
    get(&gw, "h", "/").await;
    assert_eq!(
        send(admin_get(&gw, "/healthz")).await.status,
        StatusCode::OK
    );
    let metrics = send(admin_get(&gw, "/metrics")).await.body;
    assert!(
        metrics.contains(
            r#"portcullis_requests_total{route="test/metered",backend="test/a",code="2xx"} 2"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("portcullis_request_duration_seconds_bucket"));
    assert!(metrics.contains(&format!(
        "portcullis_config_revision{{revision=\"{}\"}} 1",
        snapshot.revision
    )));
    assert!(metrics.contains(&format!(
        "portcullis_endpoint_healthy{{backend=\"test/a\",endpoint=\"{}\"}} 1",
        a.addr
    )));
    let config = send(admin_get(&gw, "/config")).await.json();
    assert_eq!(config["routeEntries"], 1);
    assert_eq!(
        config["backends"]["test/a"]["endpoints"][0]["healthy"],
        true
    );
}
