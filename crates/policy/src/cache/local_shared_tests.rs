//! The Redis tier, with two caches standing in for two replicas of a gateway on one real Redis.

use std::time::SystemTime;

use super::*;
use crate::shared::SharedStore;

use crate::redis_server::RedisServer;

/// A replica's cache on `server`.
fn replica(server: &RedisServer) -> LocalCache {
    let store = SharedStore::new(&server.address(), None, Duration::from_millis(500)).unwrap();
    LocalCache::shared(1 << 20, 1 << 16, Arc::new(store))
}

/// `cache`'s answer to a GET of `path` with `headers`, `fetch` standing in for the backend.
async fn lookup(
    cache: &LocalCache,
    path: &str,
    headers: &HeaderMap,
    fetch: impl Future<Output = Result<Upstream<()>, &'static str>>,
) -> (String, &'static str) {
    body_and_status(
        cache
            .get_or_fetch(&rule(), &get(path, headers), fetch)
            .await,
    )
}

/// Waits until Redis holds `keys` keys: the tier writes in the background.
async fn settled(server: &RedisServer, keys: usize) {
    for _ in 0..200 {
        if server.command("DBSIZE") == format!(":{keys}\r\n") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("Redis never held {keys} keys: {}", server.command("DBSIZE"));
}

#[tokio::test]
async fn what_one_replica_fetched_is_a_hit_on_another() {
    let server = RedisServer::start();
    let (a, b) = (replica(&server), replica(&server));
    let backend = Backend::default();
    let none = HeaderMap::new();
    let fields = [("cache-control", "max-age=60")];

    let first = lookup(&a, "/items", &none, backend.answer("items", &fields)).await;
    assert_eq!(first, ("items".into(), "MISS"));
    settled(&server, 1).await;
    let other = lookup(&b, "/items", &none, backend.answer("items", &fields)).await;
    assert_eq!(other, ("items".into(), "HIT"));
    assert_eq!(
        backend.calls(),
        1,
        "the second replica did not call the backend"
    );
    // Now in b's memory too: served even once Redis is gone.
    drop(server);
    let again = lookup(&b, "/items", &none, backend.answer("items", &fields)).await;
    assert_eq!(again, ("items".into(), "HIT"));
}

#[tokio::test]
async fn a_variant_is_shared_only_with_requests_that_match_its_vary_fields() {
    let server = RedisServer::start();
    let (a, b) = (replica(&server), replica(&server));
    let backend = Backend::default();
    let fields = [("cache-control", "max-age=60"), ("vary", "accept-language")];
    let mut german = HeaderMap::new();
    german.insert("accept-language", HeaderValue::from_static("de"));
    let mut french = HeaderMap::new();
    french.insert("accept-language", HeaderValue::from_static("fr"));

    let de = lookup(&a, "/hello", &german, backend.answer("hallo", &fields)).await;
    assert_eq!(de, ("hallo".into(), "MISS"));
    settled(&server, 2).await; // the variant and the marker naming its Vary fields
    let de = lookup(&b, "/hello", &german, backend.answer("hallo", &fields)).await;
    assert_eq!(de, ("hallo".into(), "HIT"));
    let fr = lookup(&b, "/hello", &french, backend.answer("salut", &fields)).await;
    assert_eq!(fr, ("salut".into(), "MISS"));
    assert_eq!(backend.calls(), 2);
}

#[tokio::test]
async fn redis_down_is_a_miss_and_the_backend_answers() {
    let mut server = RedisServer::start();
    let cache = replica(&server);
    server.stop();
    let backend = Backend::default();
    let none = HeaderMap::new();
    let fields = [("cache-control", "max-age=60")];
    let first = lookup(&cache, "/other", &none, backend.answer("items", &fields)).await;
    assert_eq!(first, ("items".into(), "MISS"));
    // Kept in this replica's memory all the same.
    let again = lookup(&cache, "/other", &none, backend.answer("items", &fields)).await;
    assert_eq!(again, ("items".into(), "HIT"));
    let other = lookup(&cache, "/new", &none, backend.answer("new", &fields)).await;
    assert_eq!(other, ("new".into(), "MISS"));
    assert_eq!(backend.calls(), 2);
}

#[tokio::test]
async fn a_stale_shared_copy_stands_in_when_the_backend_fails_on_another_replica() {
    let server = RedisServer::start();
    let (a, b) = (replica(&server), replica(&server));
    let backend = Backend::default();
    let none = HeaderMap::new();
    // Fresh for one second, then stale but within stale-if-error (30 s).
    let fields = [("cache-control", "max-age=1")];
    let first = lookup(&a, "/old", &none, backend.answer("old", &fields)).await;
    assert_eq!(first, ("old".into(), "MISS"));
    settled(&server, 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let failed = lookup(&b, "/old", &none, backend.fail()).await;
    assert_eq!(failed, ("old".into(), "STALE"));
}

#[tokio::test]
async fn a_purge_removes_the_shared_entries_under_a_prefix() {
    let server = RedisServer::start();
    let (a, b) = (replica(&server), replica(&server));
    let backend = Backend::default();
    let none = HeaderMap::new();
    let fields = [("cache-control", "max-age=60")];
    for path in ["/a/1", "/a/2", "/b/1"] {
        let answer = lookup(&a, path, &none, backend.answer(path, &fields)).await;
        assert_eq!(answer.1, "MISS");
    }
    settled(&server, 3).await;
    a.purge_prefix(b"shop.example.com/a/").await.unwrap();
    settled(&server, 1).await;
    let purged = lookup(&b, "/a/1", &none, backend.answer("new", &fields)).await;
    assert_eq!(purged, ("new".into(), "MISS"));
    let kept = lookup(&b, "/b/1", &none, backend.answer("new", &fields)).await;
    assert_eq!(kept, ("/b/1".into(), "HIT"));
}

#[test]
fn an_entry_survives_the_wire_and_ages_by_the_writers_clock() {
    let mut headers = HeaderMap::new();
    headers.append("content-type", HeaderValue::from_static("text/plain"));
    headers.append("link", HeaderValue::from_static("</a>"));
    headers.append("link", HeaderValue::from_static("</b>"));
    let fetched = Fetched {
        status: StatusCode::NOT_FOUND,
        headers,
        body: Bytes::from_static(b"\0binary\xff"),
    };
    let freshness = crate::cache::control::Freshness {
        lifetime: Duration::from_secs(60),
        initial_age: Duration::from_secs(5),
        stale_if_error: Duration::from_secs(30),
    };
    let now = Instant::now();
    let entry = Entry::new(fetched, freshness, vec!["accept".into()], now);
    let wall = SystemTime::now();
    let bytes = entry.encode(now, wall).unwrap();
    // Read 10 s later by the wall clock: 15 s old.
    let read = Entry::decode(bytes.clone(), now, wall + Duration::from_secs(10)).unwrap();
    assert_eq!(read.age(now), Duration::from_secs(15));
    assert_eq!(read.vary, ["accept"]);
    let response = read.response(now, false, CacheStatus::Hit);
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.body().as_ref(), b"\0binary\xff");
    assert_eq!(response.headers().get_all("link").iter().count(), 2);
    // A reader whose clock is behind the writer's adds no negative age.
    let early = Entry::decode(bytes.clone(), now, wall - Duration::from_secs(10)).unwrap();
    assert_eq!(early.age(now), Duration::from_secs(5));
    // Anything else is no entry.
    for garbage in [
        &b""[..],
        b"PC1",
        b"PC2xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        &bytes[..40],
    ] {
        assert!(Entry::decode(Bytes::copy_from_slice(garbage), now, wall).is_none());
    }
}
