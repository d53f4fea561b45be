//! Forwarding: retries, timeouts, failover, consistent hashing, upgrades, HTTP/2.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use portcullis_config::snapshot::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// An address nothing listens on.
async fn dead_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

fn retry(attempts: u32, retry_on: Vec<RetryOn>) -> Option<RetryConfig> {
    Some(RetryConfig {
        attempts,
        retry_on,
        codes: Vec::new(),
        backoff_ms: 1,
        budget_percent: 100,
        non_idempotent: false,
    })
}

#[tokio::test]
async fn connect_failure_is_retried_on_another_endpoint() {
    let live = Upstream::start("live").await;
    let dead = dead_addr().await;
    let mut rule = to("r", &[(Some("pool"), 1)]);
    rule.policies.retry = retry(2, vec![RetryOn::ConnectFailure]);
    let snapshot = Snap::new()
        .backend("pool", &[dead, live.addr])
        .route("*", prefix("/"), rule)
        .build();
    let gw = Gateway::start(&snapshot).await;
    for _ in 0..20 {
        let post = request(&gw, "POST", "h", "/");
        assert_eq!(send(post).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn slow_backend_gets_504_and_fast_one_200() {
    let a = Upstream::start("a").await;
    let mut per_try = to("per-try", &[(Some("a"), 1)]);
    per_try.policies.timeouts.backend_request_ms = Some(200);
    let mut whole = to("whole", &[(Some("a"), 1)]);
    whole.policies.timeouts.request_ms = Some(200);
    let mut disabled = to("disabled", &[(Some("a"), 1)]);
    disabled.policies.timeouts.request_ms = Some(0);
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("per-try.example", prefix("/"), per_try)
        .route("whole.example", prefix("/"), whole)
        .route("disabled.example", prefix("/"), disabled)
        .build();
    let gw = Gateway::start(&snapshot).await;
    for host in ["per-try.example", "whole.example"] {
        assert_eq!(
            get(&gw, host, "/delay/1500").await.status,
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(get(&gw, host, "/fast").await.status, StatusCode::OK);
    }
    assert_eq!(
        get(&gw, "disabled.example", "/delay/400").await.status,
        StatusCode::OK
    );
}

/// A gateway sending every request to `rule`, whose backend `a` is the upstream `a`.
async fn only_backend_a(a: &Upstream, rule: RuleConfig) -> Gateway {
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), rule)
        .build();
    Gateway::start(&snapshot).await
}

#[tokio::test]
async fn retries_return_the_last_status_when_exhausted_and_5xx_is_retried_when_asked() {
    let a = Upstream::start("a").await;
    let mut rule = to("r", &[(Some("a"), 1)]);
    rule.policies.retry = retry(2, vec![RetryOn::ServerError]);
    let gw = only_backend_a(&a, rule).await;
    assert_eq!(
        get(&gw, "h", "/status/500").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(a.hits(), 3, "first try and two retries");
}

#[tokio::test]
async fn listed_codes_are_retried_and_other_statuses_are_not() {
    let a = Upstream::start("a").await;
    let mut rule = to("r", &[(Some("a"), 1)]);
    rule.policies.retry = Some(RetryConfig {
        codes: vec![429, 500],
        ..retry(2, vec![RetryOn::ConnectFailure]).expect("retry")
    });
    let gw = only_backend_a(&a, rule).await;
    assert_eq!(
        get(&gw, "h", "/status/429").await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the last status once the retries are spent"
    );
    assert_eq!(a.hits(), 3, "first try and two retries");
    assert_eq!(
        get(&gw, "h", "/status/503").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(a.hits(), 4, "503 is not listed: one try");
    let post = request(&gw, "POST", "h", "/status/500");
    assert_eq!(send(post).await.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a.hits(), 5, "a POST is not retried");
}

#[tokio::test]
async fn traffic_moves_off_a_stopped_endpoint() {
    let (one, two) = (Upstream::start("one").await, Upstream::start("two").await);
    let mut rule = to("r", &[(Some("pool"), 1)]);
    rule.policies.retry = retry(1, vec![RetryOn::ConnectFailure]);
    let snapshot = Snap::new()
        .backend_with("pool", &[one.addr, two.addr], |b| {
            b.outlier_detection = Some(OutlierDetectionConfig {
                consecutive_5xx: 5,
                consecutive_gateway_errors: 1,
                ejection_time_ms: 60_000,
                max_ejection_percent: 50,
            });
        })
        .route("*", prefix("/"), rule)
        .build();
    let gw = Gateway::start(&snapshot).await;
    one.stop();
    // New connections to `one` are refused; pooled ones may still answer for a moment.
    let moved = eventually(|| async {
        let mut all_two = true;
        for _ in 0..10 {
            let r = get(&gw, "h", "/").await;
            all_two &= r.status == StatusCode::OK && r.upstream().as_deref() == Some("two");
        }
        all_two
    })
    .await;
    assert!(moved, "traffic moved to the remaining endpoint");
    for _ in 0..20 {
        assert_eq!(get(&gw, "h", "/").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn failover_backend_serves_when_every_endpoint_is_down() {
    let (primary, backup) = (
        Upstream::start("primary").await,
        Upstream::start("backup").await,
    );
    let snapshot = Snap::new()
        .backend_with("primary", &[primary.addr], |b| {
            b.health_check = Some(HealthCheckConfig {
                path: "/healthz".into(),
                interval_ms: 50,
                timeout_ms: 200,
                healthy_threshold: 1,
                unhealthy_threshold: 1,
                ends_ejection: true,
            });
            b.failover = vec!["test/backup".into()];
        })
        .backend("backup", &[backup.addr])
        .route("*", prefix("/"), to("r", &[(Some("primary"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;
    assert_eq!(
        get(&gw, "h", "/").await.upstream().as_deref(),
        Some("primary")
    );
    primary.stop();
    let failed_over =
        eventually(|| async { get(&gw, "h", "/").await.upstream().as_deref() == Some("backup") })
            .await;
    assert!(failed_over);
    let health = send(
        Request::get(gw.admin_url("/config"))
            .body(Full::new(Bytes::new()))
            .expect("req"),
    )
    .await;
    assert_eq!(
        health.json()["backends"]["test/primary"]["endpoints"][0]["healthy"],
        false
    );
}

#[tokio::test]
async fn no_available_endpoint_and_no_failover_answers_503() {
    let dead = dead_addr().await;
    let snapshot = Snap::new()
        .backend_with("pool", &[dead], |b| {
            b.outlier_detection = Some(OutlierDetectionConfig {
                consecutive_5xx: 1,
                consecutive_gateway_errors: 1,
                ejection_time_ms: 60_000,
                max_ejection_percent: 100,
            });
        })
        .route("*", prefix("/"), to("r", &[(Some("pool"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;
    assert_eq!(
        get(&gw, "h", "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(&gw, "h", "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn consistent_hash_keeps_a_key_on_one_endpoint() {
    let ups = [
        Upstream::start("u1").await,
        Upstream::start("u2").await,
        Upstream::start("u3").await,
    ];
    let addrs: Vec<_> = ups.iter().map(|u| u.addr).collect();
    let snapshot = Snap::new()
        .backend_with("pool", &addrs, |b| {
            b.load_balancer = LoadBalancerConfig {
                policy: LoadBalancerPolicy::ConsistentHash,
                hash_on: Some(HashOn::Header {
                    name: "x-user".into(),
                }),
            };
        })
        .route("*", prefix("/"), to("r", &[(Some("pool"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;
    let mut owners = std::collections::HashSet::new();
    for user in 0..30 {
        let mut first = None;
        for _ in 0..5 {
            let mut req = request(&gw, "GET", "h", "/");
            req.headers_mut()
                .insert("x-user", format!("user-{user}").parse().expect("v"));
            let owner = send(req).await.upstream();
            assert!(owner.is_some());
            match &first {
                None => first = owner,
                Some(f) => assert_eq!(owner.as_ref(), Some(f), "user-{user} stays put"),
            }
        }
        owners.extend(first);
    }
    assert_eq!(owners.len(), 3, "keys spread over every endpoint");
}

#[tokio::test]
async fn websocket_upgrade_is_spliced_through() {
    let a = Upstream::start("a").await;
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), to("ws", &[(Some("a"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;
    let mut stream = connect(&gw).await;
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.expect("read head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    stream
        .write_all(b"ping through the gateway")
        .await
        .expect("write");
    let mut echoed = [0u8; 24];
    stream.read_exact(&mut echoed).await.expect("echo");
    assert_eq!(&echoed, b"ping through the gateway");
}

#[tokio::test]
async fn an_h2c_upgrade_is_never_tunnelled_and_the_request_is_served_as_http1() {
    // RFC 9113 §3.2's h2c upgrade would hand the client an HTTP/2 session with the backend,
    // past every route rule: the gateway ignores the offer (RFC 9110 §7.8) and answers the
    // request itself, without the upgrade fields reaching the backend.
    let a = Upstream::start("a").await;
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), to("h2c", &[(Some("a"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;
    let reply = raw(
        &gw,
        b"GET /items HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let seen = reply.to_lowercase();
    let body = &seen[seen.find("\r\n\r\n").expect("a head") + 4..];
    assert!(body.contains("\"path\":\"/items\""), "{reply}");
    for field in ["upgrade", "http2-settings"] {
        assert!(
            !body.contains(&format!("\"{field}\"")),
            "{field} reached the backend: {reply}"
        );
    }
}

#[tokio::test]
async fn http2_clients_and_http2_backends_are_served() {
    let h2 = Upstream::start_h2("h2").await;
    let snapshot = Snap::new()
        .backend_with("h2", &[h2.addr], |b| b.protocol = UpstreamProtocol::Http2)
        .route("*", prefix("/"), to("r", &[(Some("h2"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    // The authority travels as `:authority`; a Host naming another would be refused.
    let req = Request::get(gw.url("/h2?x=1"))
        .body(Full::new(Bytes::new()))
        .expect("req");
    let reply = read(client.request(req).await.expect("h2 request")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["version"], "HTTP/2.0");
    assert_eq!(reply.seen_path().as_deref(), Some("/h2"));
    assert_eq!(
        reply.upstream().as_deref(),
        Some("h2"),
        "the HTTP/2 backend answered"
    );
    assert_eq!(reply.json()["query"], "x=1", "the query string arrived");
}

#[tokio::test]
async fn requests_over_the_circuit_breaker_limit_get_503_at_once() {
    let a = Upstream::start("a").await;
    let snapshot = Snap::new()
        .backend_with("a", &[a.addr], one_at_a_time)
        .route("*", prefix("/"), to("r", &[(Some("a"), 1)]))
        .build();
    let gw = std::sync::Arc::new(Gateway::start(&snapshot).await);
    let slow = {
        let gw = gw.clone();
        tokio::spawn(async move { get(&gw, "h", "/delay/1000").await })
    };
    assert!(eventually(|| async { a.hits() == 1 }).await);
    assert_eq!(
        get(&gw, "h", "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(slow.await.expect("task").status, StatusCode::OK);
    assert_eq!(get(&gw, "h", "/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_backend_that_stalls_its_body_past_the_timeout_is_cut_off() {
    let a = Upstream::start("a").await;
    let mut rule = to("r", &[(Some("a"), 1)]);
    rule.policies.timeouts.backend_request_ms = Some(300);
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), rule)
        .build();
    let gw = Gateway::start(&snapshot).await;
    let response = client()
        .request(request(&gw, "GET", "h", "/stall/5000"))
        .await
        .expect("the head arrives in time");
    assert_eq!(response.status(), StatusCode::OK);
    let body = tokio::time::timeout(
        std::time::Duration::from_secs(4),
        http_body_util::BodyExt::collect(response.into_body()),
    )
    .await
    .expect("cut off well before the backend's 5 s");
    assert!(
        body.is_err(),
        "the body ends in an error, not a complete response"
    );
    // A body that ends in time is untouched, and so are the endpoint's fields.
    assert_eq!(
        get(&gw, "h", "/stall/10").await.body,
        "head arrives in time; "
    );
    assert_eq!(get(&gw, "h", "/").await.upstream().as_deref(), Some("a"));
}

/// `primary` (one endpoint, ejected for a minute by a single gateway error, checked every
/// 50 ms) failing over to `backup`.
async fn ejectable(ends_ejection: bool) -> (Upstream, Upstream, Gateway) {
    let (primary, backup) = (
        Upstream::start("primary").await,
        Upstream::start("backup").await,
    );
    let snapshot = Snap::new()
        .backend_with("primary", &[primary.addr], |b| {
            b.health_check = Some(HealthCheckConfig {
                path: "/healthz".into(),
                interval_ms: 50,
                timeout_ms: 200,
                healthy_threshold: 1,
                unhealthy_threshold: 1,
                ends_ejection,
            });
            b.outlier_detection = Some(OutlierDetectionConfig {
                consecutive_5xx: 1,
                consecutive_gateway_errors: 1,
                ejection_time_ms: 60_000,
                max_ejection_percent: 100,
            });
            b.failover = vec!["test/backup".into()];
        })
        .backend("backup", &[backup.addr])
        .route("*", prefix("/"), to("r", &[(Some("primary"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;
    (primary, backup, gw)
}

#[tokio::test]
async fn a_passing_health_check_ends_an_ejection_unless_told_not_to() {
    let (_primary, _backup, gw) = ejectable(true).await;
    // One 502 ejects the only endpoint for a minute; the backup serves meanwhile.
    assert_eq!(
        get(&gw, "h", "/status/502").await.status,
        StatusCode::BAD_GATEWAY
    );
    // The next health check passes, and the primary is back long before the minute is out.
    let back =
        eventually(|| async { get(&gw, "h", "/").await.upstream().as_deref() == Some("primary") })
            .await;
    assert!(back, "a passing check ended the ejection");

    let (_primary, _backup, gw) = ejectable(false).await;
    assert_eq!(
        get(&gw, "h", "/status/502").await.status,
        StatusCode::BAD_GATEWAY
    );
    // Many checks pass meanwhile; the ejection holds.
    for _ in 0..10 {
        assert_eq!(
            get(&gw, "h", "/").await.upstream().as_deref(),
            Some("backup")
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn only_the_upgrades_a_rule_allows_are_tunnelled() {
    let a = Upstream::start("a").await;
    let mut mqtt = to("mqtt", &[(Some("a"), 1)]);
    mqtt.upgrades = Some(vec!["mqtt".into()]);
    let mut none = to("none", &[(Some("a"), 1)]);
    none.upgrades = Some(Vec::new());
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/none"), none)
        .route("*", prefix("/"), mqtt)
        .build();
    let gw = Gateway::start(&snapshot).await;
    // A protocol the rule opted in to is tunnelled.
    let mut stream = connect(&gw).await;
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: mqtt\r\n\r\n")
        .await
        .expect("write");
    let head = read_until(&mut stream, |r| r.ends_with(b"\r\n\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Anything else, WebSocket included once a rule lists its own, is served as HTTP/1.1
    // without the upgrade fields reaching the backend.
    for (path, protocol) in [("/items", "websocket"), ("/none/items", "websocket")] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
        );
        let reply = raw(&gw, request.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{path}: {reply}");
        assert!(
            !reply.to_lowercase().contains("\"upgrade\""),
            "{path}: {reply}"
        );
    }
}
