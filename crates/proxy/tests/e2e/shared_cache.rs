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

/// `POST /cache/purge` on the admin listener of a gateway started with `token` as its purge
/// token, sending `presented`.
async fn purge(gw: &Gateway, prefix: &str, presented: Option<&str>) -> Reply {
    let mut request = http::Request::post(gw.admin_url(&format!("/cache/purge?prefix={prefix}")));
    if let Some(token) = presented {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    send(
        request
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("a request"),
    )
    .await
}

#[tokio::test]
async fn a_purge_needs_the_token_and_drops_a_prefix_from_memory_and_redis() {
    let redis = RedisServer::start();
    let a = Upstream::start("a").await;
    let shared = to("shared", &[(Some("a"), 1)]);
    let mut local = to("local", &[(Some("a"), 1)]);
    let mut shared = shared;
    for (rule, backend) in [
        (&mut shared, CacheBackend::Shared),
        (&mut local, CacheBackend::Local),
    ] {
        rule.policies.cache = Some(CacheConfig {
            ttl_ms: 60_000,
            vary: Vec::new(),
            stale_if_error_ms: None,
            backend,
        });
    }
    let mut snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/shared"), shared)
        .route("*", prefix("/local"), local)
        .build();
    snapshot.shared_state = Some(SharedStateConfig {
        redis: RedisConfig {
            address: redis.address(),
            password: None,
        },
    });
    let token_file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("purge-token");
    std::fs::write(&token_file, "a-purge-token-of-some-length\n").expect("the token file");
    let mut options = Gateway::options(Default::default());
    options.purge_token_file = Some(token_file);
    let gw = Gateway::start_options(&snapshot, options).await;
    let plain = Gateway::start(&snapshot).await;

    for path in ["/shared/a", "/shared/b", "/local/a", "/local/b"] {
        assert_eq!(
            get(&gw, "shop.example", path).await.headers["x-cache"],
            "MISS"
        );
        assert_eq!(
            get(&gw, "shop.example", path).await.headers["x-cache"],
            "HIT"
        );
    }
    settled(&redis, 2).await;

    // Without purging configured the endpoint does not exist; with it, it needs the token.
    let absent = purge(
        &plain,
        "shop.example/",
        Some("a-purge-token-of-some-length"),
    )
    .await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
    assert_eq!(
        purge(&gw, "shop.example/", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let wrong = purge(&gw, "shop.example/", Some("a-purge-token-of-some-lengtH")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let read = send(admin_get(&gw, "/cache/purge?prefix=shop.example/")).await;
    assert_eq!(read.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        get(&gw, "shop.example", "/local/a").await.headers["x-cache"],
        "HIT"
    );

    let token = Some("a-purge-token-of-some-length");
    let done = purge(&gw, "shop.example/shared/a", token).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(
        purge(&gw, "shop.example/local/", token).await.status,
        StatusCode::OK
    );
    settled(&redis, 1).await;
    assert_eq!(
        get(&gw, "shop.example", "/shared/a").await.headers["x-cache"],
        "MISS"
    );
    assert_eq!(
        get(&gw, "shop.example", "/shared/b").await.headers["x-cache"],
        "HIT"
    );
    assert_eq!(
        get(&gw, "shop.example", "/local/a").await.headers["x-cache"],
        "MISS"
    );
    assert_eq!(
        get(&gw, "shop.example", "/local/b").await.headers["x-cache"],
        "MISS"
    );
    assert_eq!(purge(&gw, "", token).await.status, StatusCode::BAD_REQUEST);
}
