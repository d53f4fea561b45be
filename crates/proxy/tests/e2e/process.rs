//! The data plane as a process: SIGTERM drains and the process exits 0; no snapshot content
//! stops it.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use portcullis_config::snapshot::*;

use crate::support::*;

#[tokio::test]
async fn sigterm_drains_requests_in_flight_and_the_process_exits_0() {
    let a = Upstream::start("a").await;
    let (port, admin) = (free_port().await, free_port().await);
    let mut snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), to("r", &[(Some("a"), 1)]))
        .edit(|s| {
            s.drain = DrainConfig {
                delay_ms: 300,
                timeout_ms: 10_000,
            }
        })
        .build();
    snapshot.listeners[0].port = port;
    snapshot.seal();
    let file =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sigterm-{port}.yaml"));
    std::fs::write(&file, snapshot.to_yaml().expect("yaml")).expect("write");
    let (mut child, guard) = spawn_serving(&file, admin);
    let ready = |status: StatusCode| async move {
        let req = Request::get(format!("http://127.0.0.1:{admin}/ready"))
            .body(Full::new(Bytes::new()))
            .expect("req");
        matches!(client().request(req).await, Ok(r) if r.status() == status)
    };
    assert!(
        eventually(|| ready(StatusCode::OK)).await,
        "the process became ready"
    );

    let in_flight = tokio::spawn(async move {
        let req = Request::get(format!("http://127.0.0.1:{port}/delay/1000"))
            .body(Full::new(Bytes::new()))
            .expect("req");
        read(client().request(req).await.expect("in-flight request")).await
    });
    assert!(eventually(|| async { a.hits() == 1 }).await);
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert!(
        eventually(|| ready(StatusCode::SERVICE_UNAVAILABLE)).await,
        "/ready turned 503"
    );
    assert_eq!(in_flight.await.expect("task").status, StatusCode::OK);
    let mut status = None;
    assert!(
        eventually(|| {
            status = child.try_wait().expect("wait");
            std::future::ready(status.is_some())
        })
        .await,
        "the process exited"
    );
    std::mem::forget(guard); // exited: nothing to kill
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[tokio::test]
async fn a_changed_file_is_reloaded_and_a_broken_one_is_refused_while_the_last_good_config_serves()
{
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let (port, admin) = (free_port().await, free_port().await);
    let snapshot = |backend: &str| {
        let mut s = Snap::new()
            .backend("a", &[a.addr])
            .backend("b", &[b.addr])
            .route("*", prefix("/"), to("r", &[(Some(backend), 1)]))
            .build();
        s.listeners[0].port = port;
        s.seal();
        s.to_yaml().expect("yaml")
    };
    let file =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("reload-{port}.yaml"));
    std::fs::write(&file, snapshot("a")).expect("write");
    let options = portcullis_proxy::DataPlaneOptions {
        admin: format!("127.0.0.1:{admin}").parse().expect("addr"),
        listen_host: "127.0.0.1".parse().expect("ip"),
        access_log: false,
        ..Default::default()
    };
    let served = tokio::spawn(portcullis_proxy::proxy(
        options,
        file.clone(),
        // No Secrets: a folder that does not exist.
        file.with_extension("secrets"),
    ));
    let upstream_of = move || async move {
        let req = Request::get(format!("http://127.0.0.1:{port}/"))
            .body(Full::new(Bytes::new()))
            .expect("req");
        match client().request(req).await {
            Ok(response) => read(response).await.upstream(),
            Err(_) => None,
        }
    };
    assert!(eventually(|| async { upstream_of().await.as_deref() == Some("a") }).await);

    std::fs::write(&file, snapshot("b")).expect("write");
    assert!(eventually(|| async { upstream_of().await.as_deref() == Some("b") }).await);

    std::fs::write(
        &file,
        "apiVersion: portcullis.dev/config/v1\nnot: [a snapshot",
    )
    .expect("write");
    let config = move || async move {
        let req = Request::get(format!("http://127.0.0.1:{admin}/config"))
            .body(Full::new(Bytes::new()))
            .expect("req");
        read(client().request(req).await.expect("admin"))
            .await
            .json()
    };
    assert!(eventually(|| async { !config().await["lastReloadError"].is_null() }).await);
    assert_eq!(
        upstream_of().await.as_deref(),
        Some("b"),
        "the last good config serves"
    );
    served.abort();
}

#[tokio::test]
async fn a_process_started_with_a_rule_it_cannot_serve_serves_the_others_and_answers_503_for_it() {
    let a = Upstream::start("a").await;
    let (port, admin) = (free_port().await, free_port().await);
    let mut limited = to("limited", &[(Some("a"), 1)]);
    limited.policies.rate_limit = Some(RateLimitConfig {
        requests: 20,
        period_ms: 1000,
        burst: 10,
        key: RateLimitKeyConfig {
            kind: RateLimitKeyType::ClientIp,
            name: None,
        },
        // Shared through Redis, but the snapshot names none (as only a hand-edited one can):
        // the rule cannot be served without its limit.
        scope: RateLimitScope::Global,
        failure_mode: RateLimitFailureMode::FailOpen,
    });
    let mut snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/limited"), limited)
        .route("*", prefix("/"), to("open", &[(Some("a"), 1)]))
        .build();
    snapshot.listeners[0].port = port;
    snapshot.seal();
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("unserved-rule-{port}.yaml"));
    std::fs::write(&file, snapshot.to_yaml().expect("yaml")).expect("write");
    let (mut child, _guard) = spawn_serving(&file, admin);

    let admin_url = |path: &str| format!("http://127.0.0.1:{admin}{path}");
    assert!(
        answers_ok(admin_url("/ready")).await,
        "the process became ready"
    );
    let served = fetch(format!("http://127.0.0.1:{port}/shop"))
        .await
        .expect("the open rule answers");
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.upstream().as_deref(), Some("a"));

    let refused = fetch(format!("http://127.0.0.1:{port}/limited/x"))
        .await
        .expect("the unserved rule answers");
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers["portcullis-unserved"], "Invalid");
    assert!(
        refused
            .body
            .contains("spec.rules[0].rateLimit: the rule is invalid"),
        "{}",
        refused.body
    );
    assert_eq!(
        a.hits(),
        1,
        "the rate-limited rule never reached the backend"
    );

    let metrics = fetch(admin_url("/metrics")).await.expect("metrics").body;
    assert!(
        metrics.contains(
            r#"portcullis_unserved_requests_total{route="test/limited",rule="0",reason="Invalid"} 1"#
        ),
        "{metrics}"
    );
    let config = fetch(admin_url("/config")).await.expect("config").json();
    assert_eq!(config["unservedRules"][0]["route"], "test/limited");
    let reasons = config["unservedRules"][0].to_string();
    assert!(
        reasons.contains("scope Global needs the Gateway's sharedState.redis"),
        "the operators' view says why: {reasons}"
    );
    assert!(child.try_wait().expect("wait").is_none(), "still running");
}

#[tokio::test]
async fn an_unreadable_snapshot_keeps_the_process_up_and_not_ready_and_says_why() {
    let a = Upstream::start("a").await;
    let (port, admin) = (free_port().await, free_port().await);
    let mut snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), to("r", &[(Some("a"), 1)]))
        .build();
    snapshot.listeners[0].port = port;
    snapshot.seal();
    let good = snapshot.to_yaml().expect("yaml");
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("unreadable-{port}.yaml"));
    std::fs::write(
        &file,
        good.replacen(API_VERSION, "portcullis.dev/config/v9", 1),
    )
    .expect("write");
    let (mut child, _guard) = spawn_serving(&file, admin);

    let admin_url = |path: &str| format!("http://127.0.0.1:{admin}{path}");
    assert!(
        eventually(|| async {
            fetch(admin_url("/config")).await.is_some_and(|r| {
                r.json()["lastReloadError"]
                    .as_str()
                    .is_some_and(|e| e.contains("portcullis.dev/config/v9"))
            })
        })
        .await,
        "/config says why nothing is loaded"
    );
    let ready = fetch(admin_url("/ready")).await.expect("/ready answers");
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        ready.body.contains("is not supported"),
        "/ready says why: {}",
        ready.body
    );
    assert_eq!(
        fetch(admin_url("/healthz")).await.map(|r| r.status),
        Some(StatusCode::OK)
    );
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the process is up"
    );

    // A readable snapshot later: served without a restart.
    std::fs::write(&file, good).expect("write");
    assert!(
        answers_ok(format!("http://127.0.0.1:{port}/x")).await,
        "the corrected snapshot is served"
    );
    assert_eq!(
        fetch(admin_url("/ready")).await.map(|r| r.status),
        Some(StatusCode::OK)
    );
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the same process"
    );
}
