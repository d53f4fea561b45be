//! The global limiter against a real redis-server: counts, not timings.

use std::{future::Future, task::Poll, time::Duration};

use super::*;
use crate::{rate::Decision, redis_server::RedisServer, shared::DEFAULT_TIMEOUT};

const MINUTE: Duration = Duration::from_secs(60);

/// Generous: a check bounded by the store's timeout never comes near it.
const HANG: Duration = Duration::from_secs(10);

/// A store timeout no answer misses on a loaded test machine: a take whose answer comes too
/// late has still taken its tokens in Redis (lost, which only makes the limit stricter), and
/// these tests count tokens.
const PATIENT: Duration = Duration::from_secs(5);

/// A replica's limiter: its own connection to `address`.
fn replica(
    address: &str,
    requests: u32,
    period: Duration,
    mode: FailureMode,
) -> Arc<GlobalLimiter> {
    let store = Arc::new(SharedStore::new(address, None, PATIENT).unwrap());
    let limiter = GlobalLimiter::new(
        store,
        "test/gw:test/route:0:ClientIP",
        requests,
        period,
        0,
        mode,
        1024,
    );
    Arc::new(limiter.unwrap())
}

async fn check(limiter: &Arc<GlobalLimiter>, key: &[u8]) -> Checked {
    tokio::time::timeout(HANG, limiter.check(key))
        .await
        .expect("a check never hangs")
}

fn allowed(decision: &Checked) -> bool {
    matches!(decision, Checked::Counted(d) if d.is_allowed())
}

/// The tokens `limiter` holds, once no lease is on its way any more.
async fn held_when_settled(limiter: &GlobalLimiter) -> u32 {
    let settled = || limiter.leases.iter().all(|lease| !lease.in_flight());
    let deadline = tokio::time::Instant::now() + HANG;
    while !settled() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(settled(), "a background lease never landed");
    limiter.leases.iter().map(|lease| lease.held()).sum()
}

/// Script calls Redis has run since it started.
fn script_calls(server: &RedisServer) -> u64 {
    server
        .command("INFO commandstats")
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test]
async fn admits_exactly_its_requests_then_refuses_with_the_wait_for_the_next_token() {
    let server = RedisServer::start();
    let limiter = replica(&server.address(), 5, MINUTE, FailureMode::Open);
    assert_eq!(
        limiter.max_batch(),
        1,
        "a small bucket is never leased ahead"
    );
    for n in 0..5 {
        let decision = check(&limiter, b"4:1.2.3.4").await;
        let Checked::Counted(Decision::Allowed { remaining, .. }) = decision else {
            panic!("request {n}: {decision:?}");
        };
        assert_eq!(remaining, 4 - n);
    }
    let Checked::Counted(Decision::Limited { retry_after, reset }) =
        check(&limiter, b"4:1.2.3.4").await
    else {
        panic!("the sixth request is refused");
    };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(12));
    assert!(reset > retry_after && reset <= MINUTE);
    assert!(
        allowed(&check(&limiter, b"4:5.6.7.8").await),
        "another caller"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_one_redis_admit_exactly_the_limit_together() {
    let server = RedisServer::start();
    let period = Duration::from_secs(3600);
    let (a, b) = (
        replica(&server.address(), 20, period, FailureMode::Open),
        replica(&server.address(), 20, period, FailureMode::Open),
    );
    // Both replicas at once, interleaved: 60 requests for a limit of 20.
    let requests = (0..30).flat_map(|_| [a.clone(), b.clone()]).map(|limiter| {
        tokio::spawn(async move { allowed(&check(&limiter, b"u:storefront").await) })
    });
    let mut admitted = 0;
    for request in requests.collect::<Vec<_>>() {
        admitted += u32::from(request.await.unwrap());
    }
    assert_eq!(admitted, 20, "the bound is 0 for a bucket under 100 tokens");
}

#[tokio::test]
async fn a_refused_caller_is_admitted_again_once_told_retry_after_has_passed() {
    let server = RedisServer::start();
    let limiter = replica(
        &server.address(),
        2,
        Duration::from_secs(1),
        FailureMode::Open,
    );
    assert!(allowed(&check(&limiter, b"k").await));
    assert!(allowed(&check(&limiter, b"k").await));
    let Checked::Counted(Decision::Limited { retry_after, .. }) = check(&limiter, b"k").await
    else {
        panic!("the third request in the period is refused");
    };
    tokio::time::sleep(retry_after + Duration::from_millis(50)).await;
    assert!(allowed(&check(&limiter, b"k").await), "a token came back");
    assert!(!allowed(&check(&limiter, b"k").await), "one token only");
}

#[tokio::test]
async fn a_busy_caller_spends_leased_tokens_without_a_round_trip_each() {
    let server = RedisServer::start();
    let limiter = replica(&server.address(), 10_000, MINUTE, FailureMode::Closed);
    assert_eq!(limiter.max_batch(), 200);
    let before = script_calls(&server);
    for n in 0..2000 {
        assert!(allowed(&check(&limiter, b"4:1.2.3.4").await), "request {n}");
    }
    let calls = script_calls(&server) - before;
    assert!(calls < 100, "{calls} round trips for 2000 requests");

    // Held tokens are this replica's: they are spent while Redis is down, even failing closed.
    let held = held_when_settled(&limiter).await;
    assert!(held > 0 && held <= limiter.max_batch(), "{held}");
    drop(server);
    for _ in 0..held {
        assert!(allowed(&check(&limiter, b"4:1.2.3.4").await));
    }
}

#[tokio::test]
async fn a_request_dropped_while_it_carries_the_lease_does_not_leave_it_in_flight() {
    let server = RedisServer::start();
    let limiter = replica(&server.address(), 10_000, MINUTE, FailureMode::Open);
    // The first request takes its own token; the second, soon after, leases a batch.
    assert!(allowed(&check(&limiter, b"k").await));
    // Its client goes away before Redis answers: the request's future is dropped after its
    // first poll, which sent the take.
    let mut waiting = Box::pin(limiter.check(b"k"));
    let first = std::future::poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "waiting on Redis: {first:?}");
    assert!(limiter.leases.iter().any(|lease| lease.in_flight()));
    drop(waiting);
    assert!(
        limiter.leases.iter().all(|lease| !lease.in_flight()),
        "the lease is no longer in flight"
    );
    // So the key leases again: far fewer round trips than requests.
    let before = script_calls(&server);
    for _ in 0..300 {
        assert!(allowed(&check(&limiter, b"k").await));
    }
    let calls = script_calls(&server) - before;
    assert!(calls < 50, "{calls} round trips for 300 requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leasing_replicas_together_stay_within_the_documented_bound() {
    let server = RedisServer::start();
    // A day's period: the bucket gains no token while the test runs.
    let period = Duration::from_secs(86_400);
    let replicas = [
        replica(&server.address(), 500, period, FailureMode::Open),
        replica(&server.address(), 500, period, FailureMode::Open),
    ];
    assert_eq!(replicas[0].max_batch(), 10);
    let requests = (0..600)
        .flat_map(|_| replicas.clone())
        .map(|limiter| tokio::spawn(async move { allowed(&check(&limiter, b"c:tenant-7").await) }));
    let mut admitted = 0;
    for request in requests.collect::<Vec<_>>() {
        admitted += u32::from(request.await.unwrap());
    }
    let held = held_when_settled(&replicas[0]).await + held_when_settled(&replicas[1]).await;
    assert_eq!(
        admitted + held,
        500,
        "every token is spent once or still held"
    );
    assert!(held <= 2 * 10, "at most replicas × max_batch held: {held}");
}

#[tokio::test]
async fn with_redis_stopped_fail_open_admits_and_fail_closed_refuses() {
    let mut server = RedisServer::start();
    let store = Arc::new(SharedStore::new(&server.address(), None, DEFAULT_TIMEOUT).unwrap());
    let rule = |mode| {
        let limiter = GlobalLimiter::new(
            store.clone(),
            &format!("test/gw:test/route:0:{mode:?}"),
            5,
            MINUTE,
            0,
            mode,
            1024,
        );
        Arc::new(limiter.unwrap())
    };
    let (open, closed) = (rule(FailureMode::Open), rule(FailureMode::Closed));
    assert!(allowed(&check(&open, b"k").await));
    assert!(allowed(&check(&closed, b"k").await));

    server.stop();
    let Checked::Uncounted { admitted, error } = check(&closed, b"k").await else {
        panic!("no count without Redis");
    };
    assert!(!admitted, "fail closed refuses");
    assert_eq!(error, "error", "the failure itself");
    // Within the store's back-off, the answer comes at once, and the rule's mode decides.
    assert_eq!(
        check(&open, b"k").await,
        Checked::Uncounted {
            admitted: true,
            error: "unavailable"
        }
    );
    assert_eq!(
        check(&closed, b"other").await,
        Checked::Uncounted {
            admitted: false,
            error: "unavailable"
        }
    );
}

#[tokio::test]
async fn a_redis_that_never_answers_costs_one_timeout_then_fails_at_once() {
    // A listener that accepts and never replies stands in for a hung Redis.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let store = Arc::new(SharedStore::new(&address, None, DEFAULT_TIMEOUT).unwrap());
    let period = MINUTE;
    let limiter = GlobalLimiter::new(store, "test/hung", 5, period, 0, FailureMode::Closed, 8);
    let limiter = Arc::new(limiter.unwrap());
    let first = check(&limiter, b"k").await;
    assert!(
        matches!(first, Checked::Uncounted { admitted: false, error } if error != "unavailable"),
        "{first:?}"
    );
    let second = check(&limiter, b"k").await;
    assert_eq!(
        second,
        Checked::Uncounted {
            admitted: false,
            error: "unavailable"
        }
    );
}

#[tokio::test]
async fn buckets_expire_in_redis_and_never_name_the_caller_key() {
    let server = RedisServer::start();
    let limiter = replica(&server.address(), 5, MINUTE, FailureMode::Open);
    assert!(allowed(&check(&limiter, b"h:s3cret-api-key").await));
    let keys = server.command("KEYS portcullis:rl:*");
    assert!(keys.starts_with("*1\r\n"), "one bucket: {keys:?}");
    assert!(keys.contains("portcullis:rl:test/gw:test/route:0:ClientIP:5/60000000us+0:"));
    assert!(!keys.contains("s3cret"), "{keys}");
    let key = keys.lines().nth(2).unwrap();
    let ttl: i64 = server
        .command(&format!("PTTL {key}"))
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    assert!(
        ttl > 0 && ttl <= 12_000,
        "expires when full again: {ttl} ms"
    );
}

#[tokio::test]
async fn beyond_its_key_cap_a_limiter_counts_new_keys_exactly_without_a_lease() {
    let server = RedisServer::start();
    let store = Arc::new(SharedStore::new(&server.address(), None, DEFAULT_TIMEOUT).unwrap());
    let period = MINUTE;
    let limiter = GlobalLimiter::new(store, "test/cap", 3, period, 0, FailureMode::Open, 2);
    let limiter = Arc::new(limiter.unwrap());
    assert!(allowed(&check(&limiter, b"a").await));
    assert!(allowed(&check(&limiter, b"b").await));
    for _ in 0..3 {
        assert!(allowed(&check(&limiter, b"c").await));
    }
    assert!(!allowed(&check(&limiter, b"c").await), "still exactly 3");
    assert_eq!(limiter.len(), 2, "no lease beyond the cap");
}

#[tokio::test]
async fn idle_leases_are_dropped() {
    let server = RedisServer::start();
    // A lease period of 50 ms (the shortest).
    let limiter = replica(
        &server.address(),
        5,
        Duration::from_millis(100),
        FailureMode::Open,
    );
    for key in [&b"a"[..], b"b", b"c"] {
        assert!(allowed(&check(&limiter, key).await));
    }
    limiter.retain_recent();
    assert_eq!(limiter.len(), 3, "just seen");
    tokio::time::sleep(Duration::from_millis(200)).await;
    limiter.retain_recent();
    assert!(limiter.is_empty());
}
