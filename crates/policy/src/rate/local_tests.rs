use std::time::Duration;

use tokio::time::advance;

use super::*;

fn limiter(requests: u32, period_secs: u64, burst: u32) -> LocalLimiter {
    LocalLimiter::new(
        requests,
        Duration::from_secs(period_secs),
        burst,
        DEFAULT_MAX_KEYS,
    )
    .expect("a valid limit")
}

fn allowed_in_a_row(limiter: &LocalLimiter, key: &str) -> u32 {
    let mut allowed = 0;
    while limiter.check(key).is_allowed() {
        allowed += 1;
        assert!(allowed <= 1_000_000, "the limit never refused");
    }
    allowed
}

#[tokio::test(start_paused = true)]
async fn exactly_requests_plus_burst_are_allowed_then_the_next_is_refused() {
    let limiter = limiter(10, 60, 5);
    for expected_remaining in (0..15).rev() {
        assert_eq!(
            limiter.check("client"),
            Decision::Allowed {
                remaining: expected_remaining,
                reset: Duration::from_secs(6) * (15 - expected_remaining),
            }
        );
    }
    assert_eq!(
        limiter.check("client"),
        Decision::Limited {
            retry_after: Duration::from_secs(6),
            reset: Duration::from_secs(6) + Duration::from_secs(6) * 14,
        }
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_shrinks_as_time_passes_and_is_then_honoured() {
    let limiter = limiter(1, 10, 0);
    assert!(limiter.check("client").is_allowed());
    advance(Duration::from_secs(4)).await;
    let Decision::Limited { retry_after, .. } = limiter.check("client") else {
        panic!("a second request within the period must be refused");
    };
    assert_eq!(retry_after, Duration::from_secs(6));
    advance(retry_after).await;
    assert!(limiter.check("client").is_allowed());
}

#[tokio::test(start_paused = true)]
async fn a_period_later_exactly_requests_more_are_allowed() {
    let limiter = limiter(3, 1, 2);
    assert_eq!(allowed_in_a_row(&limiter, "client"), 5);
    advance(Duration::from_secs(1)).await;
    assert_eq!(allowed_in_a_row(&limiter, "client"), 3);
    advance(Duration::from_secs(3600)).await;
    assert_eq!(
        allowed_in_a_row(&limiter, "client"),
        5,
        "the bucket refills up to its capacity only"
    );
}

#[tokio::test(start_paused = true)]
async fn keys_have_separate_buckets() {
    let limiter = limiter(2, 60, 0);
    assert_eq!(allowed_in_a_row(&limiter, "alice"), 2);
    assert_eq!(allowed_in_a_row(&limiter, "bob"), 2);
    assert!(limiter.check(b"carol".as_slice()).is_allowed());
    assert!(!limiter.check("alice").is_allowed());
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_dropped_and_come_back_with_a_full_bucket() {
    let limiter = limiter(2, 10, 0);
    assert_eq!(allowed_in_a_row(&limiter, "alice"), 2);
    limiter.check("bob");
    limiter.retain_recent();
    assert_eq!(limiter.len(), 2, "keys still refilling are kept");
    advance(Duration::from_secs(10)).await;
    limiter.retain_recent();
    assert_eq!(
        limiter.len(),
        1,
        "bob has been full for one interval, alice just refilled"
    );
    advance(Duration::from_secs(5)).await;
    limiter.retain_recent();
    assert!(limiter.is_empty());
    assert_eq!(allowed_in_a_row(&limiter, "alice"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_distinct_keys_stays_under_the_cap_and_new_keys_are_refused() {
    let limiter = LocalLimiter::new(5, Duration::from_secs(60), 0, 1_000).expect("a valid limit");
    assert!(limiter.check("regular").is_allowed());
    let mut refused = 0;
    for n in 0..100_000u32 {
        if !limiter.check(n.to_be_bytes()).is_allowed() {
            refused += 1;
        }
    }
    assert_eq!(limiter.len(), 1_000);
    assert_eq!(refused, 100_000 - 999);
    assert_eq!(limiter.overflowed(), refused);
    assert!(
        limiter.check("regular").is_allowed(),
        "a key already tracked keeps its own bucket during the flood"
    );
    let Decision::Limited { retry_after, .. } = limiter.check("newcomer") else {
        panic!("a new key must be refused while the cap is full of active keys");
    };
    assert_eq!(retry_after, Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn at_the_cap_idle_keys_make_room_for_new_ones() {
    let limiter = LocalLimiter::new(5, Duration::from_secs(60), 0, 100).expect("a valid limit");
    for n in 0..100u32 {
        assert!(limiter.check(n.to_be_bytes()).is_allowed());
    }
    assert!(!limiter.check("newcomer").is_allowed());
    advance(Duration::from_secs(24)).await;
    assert!(
        limiter.check("newcomer").is_allowed(),
        "one token each: full after 12 s, dropped one interval later"
    );
}

#[test]
fn impossible_limits_are_refused_with_a_reason() {
    let second = Duration::from_secs(1);
    assert_eq!(
        LocalLimiter::new(0, second, 0, 1).expect_err("the limit is impossible"),
        RateLimitError::NoRequests
    );
    assert_eq!(
        LocalLimiter::new(u32::MAX, second, 1, 1).expect_err("the limit is impossible"),
        RateLimitError::TooLarge
    );
    assert!(matches!(
        LocalLimiter::new(10, Duration::from_nanos(5), 0, 1),
        Err(RateLimitError::PeriodTooShort { .. })
    ));
    assert_eq!(
        LocalLimiter::new(1, second, 0, 0).expect_err("the limit is impossible"),
        RateLimitError::NoKeys
    );
}
