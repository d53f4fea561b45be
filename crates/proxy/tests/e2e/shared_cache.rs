//! `cache.backend: Shared`: two gateway replicas on one real Redis, as a client meets them.

use http::StatusCode;
use portcullis_config::snapshot::*;

use crate::{redis_server::RedisServer, support::*};

/// Waits until Redis holds `keys` keys: replicas write shared entries in the background.
async fn settled(redis: &RedisServer, keys: usize) {
    let want = format!(":{keys}\r\n");
    assert!(
        eventually(|| async { redis.command("DBSIZE") == want }).await,
        "Redis never held {keys} keys"
    );
}

#[tokio::test]
async fn one_replicas_fetch_is_a_hit_on_another_and_redis_down_is_a_miss() {
    let mut redis = RedisServer::start();
    let a = Upstream::start("a").await;
    let mut rule = to("catalog", &[(Some("a"), 1)]);
    rule.policies.cache = Some(CacheConfig {
        ttl_ms: 60_000,
        vary: Vec::new(),
        stale_if_error_ms: None,
        backend: CacheBackend::Shared,
    });
    let mut snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), rule)
        .build();
    snapshot.shared_state = Some(SharedStateConfig {
        redis: RedisConfig {
            address: redis.address(),
            password: None,
        },
    });
    let (one, two) = (
        Gateway::start(&snapshot).await,
        Gateway::start(&snapshot).await,
    );

    let first = get(&one, "shop.example", "/catalog?page=1").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.headers["x-cache"], "MISS");
    settled(&redis, 1).await;
    let second = get(&two, "shop.example", "/catalog?page=1").await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.headers["x-cache"], "HIT");
    assert_eq!(second.body, first.body);
    assert_eq!(a.hits(), 1, "the second replica answered from Redis");

    // A reload that keeps the Redis keeps the cache.
    two.reload(&snapshot);
    let kept = get(&two, "shop.example", "/catalog?page=1").await;
    assert_eq!(kept.headers["x-cache"], "HIT");

    // Redis gone: the rule serves from the backend, without error.
    redis.stop();
    let down = get(&two, "shop.example", "/catalog?page=2").await;
    assert_eq!(down.status, StatusCode::OK);
    assert_eq!(down.headers["x-cache"], "MISS");
    assert_eq!(a.hits(), 2);
}
