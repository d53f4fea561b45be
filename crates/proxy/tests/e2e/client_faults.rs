//! A client's fault is the client's: a malformed, abandoned or oversized request body gets its
//! 4xx and counts nowhere against the endpoint; and the safe defaults that keep a backend or a
//! mirror from holding the gateway: `backendIdle`, the body limit, bounded mirrors.

use std::time::Duration;

use http::StatusCode;
use portcullis_config::snapshot::OutlierDetectionConfig;
use tokio::io::AsyncWriteExt;

use crate::support::*;

/// One endpoint that a single gateway error or 5xx would eject for a minute, with no failover:
/// if a client's fault counted against it, the next request would get 503.
async fn fragile(
    edit: impl FnOnce(&mut portcullis_config::snapshot::RuleConfig),
) -> (Upstream, Gateway) {
    let a = Upstream::start("a").await;
    let mut rule = to("r", &[(Some("pool"), 1)]);
    edit(&mut rule);
    let snapshot = Snap::new()
        .backend_with("pool", &[a.addr], |b| {
            b.outlier_detection = Some(OutlierDetectionConfig {
                consecutive_5xx: 1,
                consecutive_gateway_errors: 1,
                ejection_time_ms: 60_000,
                max_ejection_percent: 100,
            });
        })
        .route("*", prefix("/"), rule)
        .build();
    (a, Gateway::start(&snapshot).await)
}

/// Nothing in the gateway's metrics blames the backend.
async fn backend_blameless(gw: &Gateway) {
    let metrics = send(admin_get(gw, "/metrics")).await.body;
    assert!(
        !metrics.contains("portcullis_upstream_errors_total{"),
        "{metrics}"
    );
    assert!(!metrics.contains("code=\"5xx\""), "{metrics}");
}

#[tokio::test]
async fn malformed_and_abandoned_request_bodies_never_eject_a_healthy_endpoint() {
    let (_a, gw) = fragile(|_| {}).await;
    for _ in 0..5 {
        // A chunk size that is no number, after the body started to flow upstream.
        let reply = raw(
            &gw,
            b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n",
        )
        .await;
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
            "{reply}"
        );
        // A body the client abandons midway.
        let mut stream = connect(&gw).await;
        stream
            .write_all(
                b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            )
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reply = get(&gw, "h", "/after").await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the endpoint is still in: {}",
        reply.body
    );
    backend_blameless(&gw).await;
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_at_once_or_as_it_streams() {
    let (a, gw) = fragile(|rule| rule.policies.max_request_body_bytes = Some(1000)).await;
    // Declared too large: refused before anything is read or forwarded.
    let reply = raw(
        &gw,
        format!(
            "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n{}",
            "x".repeat(5000)
        )
        .as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(
        reply.to_lowercase().contains("connection: close"),
        "{reply}"
    );
    assert_eq!(a.hits(), 0);
    // Chunked: stopped once the limit is passed.
    let chunk = format!("258\r\n{}\r\n", "y".repeat(600));
    let reply = raw(
        &gw,
        format!(
            "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}{chunk}0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    // Within the limit: served, and the endpoint was never blamed.
    let reply = raw(
        &gw,
        format!(
            "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk}0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    backend_blameless(&gw).await;
}

#[tokio::test]
async fn a_silent_backend_gets_504_after_backend_idle_and_a_stalled_body_is_cut_off() {
    let a = Upstream::start("a").await;
    let mut rule = to("r", &[(Some("a"), 1)]);
    rule.policies.timeouts.backend_idle_ms = Some(300);
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), rule)
        .build();
    let gw = Gateway::start(&snapshot).await;
    // No head within backendIdle.
    let reply = get(&gw, "h", "/delay/5000").await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    // A head in time, then silence: the body is cut off, not held open.
    let reply = raw(&gw, b"GET /stall/5000 HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("head arrives in time"), "{reply}");
    assert!(
        !reply.ends_with("0\r\n\r\n"),
        "the body never ended: {reply}"
    );
    // Quicker than backendIdle between pieces: served whole.
    assert_eq!(get(&gw, "h", "/delay/100").await.status, StatusCode::OK);
}

#[tokio::test]
async fn mirrors_in_flight_are_bounded_and_the_rest_dropped_and_counted() {
    let (primary, shadow, gw) = mirrored(2).await;
    // Ten at once, each (and its copy) taking a second: two copies go, eight are dropped.
    let answers = futures::future::join_all((0..10).map(|_| get(&gw, "h", "/delay/1000"))).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(primary.hits(), 10);
    assert!(eventually(|| async { shadow.hits() == 2 }).await);
    let metrics = send(admin_get(&gw, "/metrics")).await.body;
    assert!(
        metrics.contains("portcullis_mirrors_dropped_total{backend=\"test/shadow\"} 8"),
        "{metrics}"
    );
}
