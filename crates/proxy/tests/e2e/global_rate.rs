//! `rateLimit.scope: Global` as clients meet it: gateway processes sharing one real Redis count
//! together, and a Redis that stops answering gets each rule's failure mode, counted in the
//! metrics.

use http::StatusCode;
use portcullis_config::snapshot::*;

use crate::{redis_server::RedisServer, support::*};

/// A rule to upstream `a` limited to `requests` per minute per client address, shared through
/// Redis.
fn limited(route: &str, requests: u32, failure_mode: RateLimitFailureMode) -> RuleConfig {
    let mut rule = to(route, &[(Some("a"), 1)]);
    rule.policies.rate_limit = Some(RateLimitConfig {
        requests,
        period_ms: 60_000,
        burst: 0,
        key: RateLimitKeyConfig {
            kind: RateLimitKeyType::ClientIp,
            name: None,
        },
        scope: RateLimitScope::Global,
        failure_mode,
    });
    rule
}

fn with_redis(redis: &RedisServer) -> impl FnOnce(&mut Snapshot) {
    let address = redis.address();
    move |snapshot| {
        snapshot.shared_state = Some(SharedStateConfig {
            redis: RedisConfig {
                address,
                password: None,
            },
        });
    }
}

/// A gateway process serving `snapshot` on a port of its own; the port and the guard that
/// kills it.
async fn start_process(mut snapshot: Snapshot, name: &str) -> (u16, KillOnDrop) {
    let (port, admin) = (free_port().await, free_port().await);
    snapshot.listeners[0].port = port;
    snapshot.seal();
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("global-{name}-{port}.yaml"));
    std::fs::write(&file, snapshot.to_yaml().expect("yaml")).expect("write");
    let (_child, guard) = spawn_serving(&file, admin);
    assert!(
        answers_ok(format!("http://127.0.0.1:{admin}/ready")).await,
        "gateway process {name} became ready"
    );
    (port, guard)
}

fn field<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} field: {:?}", reply.headers))
}

#[tokio::test]
async fn two_gateway_processes_sharing_one_redis_admit_exactly_the_limit_together() {
    let redis = RedisServer::start();
    let a = Upstream::start("a").await;
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route(
            "*",
            prefix("/"),
            limited("orders", 5, RateLimitFailureMode::FailOpen),
        )
        .edit(with_redis(&redis))
        .build();
    let replicas = [
        start_process(snapshot.clone(), "one").await,
        start_process(snapshot, "two").await,
    ];
    let url = |n: usize| format!("http://127.0.0.1:{}/orders", replicas[n % 2].0);

    // Five requests spread over both processes: each is counted in the one shared bucket.
    for n in 0..5 {
        let served = fetch(url(n)).await.expect("an answer");
        assert_eq!(served.status, StatusCode::OK, "request {n}");
        assert_eq!(field(&served, "ratelimit-policy"), "\"default\";q=5;w=60");
        let left = field(&served, "ratelimit");
        assert!(
            left.starts_with(&format!("\"default\";r={};t=", 4 - n)),
            "request {n}: {left}"
        );
    }
    // The sixth, on either process, is over the limit.
    for n in 5..7 {
        let refused = fetch(url(n)).await.expect("an answer");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "request {n}");
        let retry_after: u64 = field(&refused, "retry-after").parse().expect("seconds");
        assert!((1..=12).contains(&retry_after), "{retry_after}");
        assert_eq!(field(&refused, "ratelimit-policy"), "\"default\";q=5;w=60");
        assert!(field(&refused, "ratelimit").starts_with("\"default\";r=0;t="));
    }
    assert_eq!(a.hits(), 5, "refused requests never reach the backend");
}

#[tokio::test]
async fn with_redis_stopped_each_rule_fails_open_or_closed_as_configured_and_it_is_counted() {
    let mut redis = RedisServer::start();
    let a = Upstream::start("a").await;
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route(
            "*",
            prefix("/open"),
            limited("open", 5, RateLimitFailureMode::FailOpen),
        )
        .route(
            "*",
            prefix("/closed"),
            limited("closed", 5, RateLimitFailureMode::FailClosed),
        )
        .edit(with_redis(&redis))
        .build();
    let gw = Gateway::start(&snapshot).await;
    for path in ["/open", "/closed"] {
        let counted = get(&gw, "shop.example", path).await;
        assert_eq!(counted.status, StatusCode::OK, "{path}");
        assert!(field(&counted, "ratelimit").starts_with("\"default\";r=4;"));
    }

    redis.stop();
    for _ in 0..3 {
        let open = get(&gw, "shop.example", "/open").await;
        assert_eq!(open.status, StatusCode::OK, "fail open admits");
        assert_eq!(field(&open, "ratelimit-policy"), "\"default\";q=5;w=60");
        assert!(
            !open.headers.contains_key("ratelimit"),
            "nothing is known of what is left"
        );

        let closed = get(&gw, "shop.example", "/closed").await;
        assert_eq!(
            closed.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "fail closed refuses"
        );
        assert_eq!(field(&closed, "retry-after"), "1");
        assert_eq!(field(&closed, "ratelimit-policy"), "\"default\";q=5;w=60");
    }
    assert_eq!(a.hits(), 2 + 3, "only the open rule reached the backend");

    let metrics = get_metrics(&gw).await;
    for (route, result) in [("open", "failed_open"), ("closed", "failed_closed")] {
        let line = format!(
            "portcullis_policy_decisions_total{{route=\"test/{route}\",policy=\"rate_limit\",result=\"{result}\"}} 3"
        );
        assert!(metrics.contains(&line), "{line}\nin:\n{metrics}");
    }
    let errors: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("portcullis_shared_state_errors_total{operation=\"rate_limit\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(
        errors, 6,
        "one per request Redis could not count:\n{metrics}"
    );

    // Redis comes back (empty, on the same port): counting resumes, and nobody restarted.
    let _redis = RedisServer::start_on(redis.port());
    assert!(
        eventually(|| async {
            let counted = get(&gw, "shop.example", "/closed").await;
            counted.status == StatusCode::OK && counted.headers.contains_key("ratelimit")
        })
        .await,
        "the closed rule serves again once Redis answers"
    );
}

async fn get_metrics(gw: &Gateway) -> String {
    fetch(gw.admin_url("/metrics"))
        .await
        .expect("the admin listener answers")
        .body
}
