use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use http::HeaderValue;
use tokio::time::advance;

use super::*;

const TTL: Duration = Duration::from_secs(60);

/// A backend that counts its calls and answers 200 with `body` and `fields`.
#[derive(Default)]
struct Backend {
    calls: AtomicUsize,
}

impl Backend {
    async fn answer(
        &self,
        body: &'static str,
        fields: &[(&'static str, &'static str)],
    ) -> Result<Upstream<()>, &'static str> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(*name, HeaderValue::from_static(value));
        }
        Ok(Upstream::Buffered(Fetched {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(body.as_bytes()),
        }))
    }

    async fn fail(&self) -> Result<Upstream<()>, &'static str> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err("backend down")
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn get<'a>(path: &'a str, headers: &'a HeaderMap) -> CacheRequest<'a> {
    CacheRequest {
        method: &Method::GET,
        host: "Shop.example.com",
        path_and_query: path,
        headers,
        consumer: None,
    }
}

fn body_and_status(lookup: Result<Lookup<()>, &'static str>) -> (String, &'static str) {
    let (response, status) = match lookup.expect("an answer") {
        Lookup::Hit(response) => (response, "HIT"),
        Lookup::Stale(response) => (response, "STALE"),
        Lookup::Miss { response, .. } => (response, "MISS"),
        Lookup::Streamed(()) => panic!("nothing is streamed here"),
    };
    let x_cache = response.headers()[super::super::X_CACHE].clone();
    assert_eq!(x_cache, status);
    (
        String::from_utf8_lossy(response.body()).into_owned(),
        status,
    )
}

/// A cache of 1 MiB, a counting backend, and a request without fields.
struct Fixture {
    cache: LocalCache,
    backend: Backend,
    none: HeaderMap,
}

impl Default for Fixture {
    fn default() -> Self {
        Self {
            cache: LocalCache::new(1 << 20, 1 << 16),
            backend: Backend::default(),
            none: HeaderMap::new(),
        }
    }
}

impl Fixture {
    /// GETs `path` under the default rule, the backend answering `body` with `fields`.
    async fn get(
        &self,
        path: &str,
        body: &'static str,
        fields: &[(&'static str, &'static str)],
    ) -> (String, &'static str) {
        let request = get(path, &self.none);
        let fetch = self.backend.answer(body, fields);
        body_and_status(self.cache.get_or_fetch(&rule(), &request, fetch).await)
    }
}

fn rule() -> CacheRule {
    CacheRule::new(TTL, Vec::new(), Duration::from_secs(30))
}

#[tokio::test(start_paused = true)]
async fn a_miss_is_stored_and_then_served_as_a_hit_with_its_age() {
    let fx = Fixture::default();
    let (cache, backend, none) = (&fx.cache, &fx.backend, &fx.none);
    let first = cache
        .get_or_fetch(&rule(), &get("/items", none), backend.answer("items", &[]))
        .await;
    assert_eq!(body_and_status(first), ("items".to_owned(), "MISS"));
    advance(Duration::from_secs(7)).await;
    let Ok(Lookup::Hit(hit)) = cache
        .get_or_fetch(&rule(), &get("/items", none), backend.answer("new", &[]))
        .await
    else {
        panic!("the second request must be a hit");
    };
    assert_eq!(hit.body(), "items");
    assert_eq!(hit.headers()[http::header::AGE], "7");
    assert_eq!(backend.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_entry_expires_after_its_lifetime() {
    let fx = Fixture::default();
    let (cache, backend, none) = (&fx.cache, &fx.backend, &fx.none);
    let fields = [("cache-control", "max-age=10")];
    fx.get("/a", "v1", &fields).await;
    advance(Duration::from_secs(10)).await;
    let again = cache
        .get_or_fetch(&rule(), &get("/a", none), backend.answer("v2", &fields))
        .await;
    assert_eq!(body_and_status(again), ("v2".to_owned(), "MISS"));
    assert_eq!(backend.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn each_value_of_a_vary_header_has_its_own_entry() {
    let (cache, backend) = (LocalCache::new(1 << 20, 1 << 16), Backend::default());
    let vary = [("vary", "Accept-Language")];
    let mut english = HeaderMap::new();
    english.insert("accept-language", HeaderValue::from_static("en"));
    let mut french = HeaderMap::new();
    french.insert("accept-language", HeaderValue::from_static("fr"));
    for _ in 0..2 {
        let en = cache
            .get_or_fetch(&rule(), &get("/", &english), backend.answer("hello", &vary))
            .await;
        assert_eq!(body_and_status(en).0, "hello");
        let fr = cache
            .get_or_fetch(
                &rule(),
                &get("/", &french),
                backend.answer("bonjour", &vary),
            )
            .await;
        assert_eq!(body_and_status(fr).0, "bonjour");
    }
    assert_eq!(backend.calls(), 2, "one fetch per language, then hits");
}

#[tokio::test(start_paused = true)]
async fn private_no_store_and_set_cookie_answers_are_not_stored() {
    let cache = LocalCache::new(1 << 20, 1 << 16);
    let none = HeaderMap::new();
    for fields in [
        [("cache-control", "private")],
        [("cache-control", "no-store")],
        [("set-cookie", "id=1")],
    ] {
        let backend = Backend::default();
        for _ in 0..2 {
            let lookup = cache
                .get_or_fetch(&rule(), &get("/me", &none), backend.answer("mine", &fields))
                .await;
            assert_eq!(body_and_status(lookup).1, "MISS");
        }
        assert_eq!(backend.calls(), 2, "{fields:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn authorization_bypasses_the_cache_unless_the_rule_keys_by_consumer() {
    let (cache, backend) = (LocalCache::new(1 << 20, 1 << 16), Backend::default());
    let mut credentials = HeaderMap::new();
    credentials.insert("authorization", HeaderValue::from_static("Bearer alice"));
    for _ in 0..2 {
        cache
            .get_or_fetch(
                &rule(),
                &get("/orders", &credentials),
                backend.answer("alice's", &[]),
            )
            .await
            .expect("answer");
    }
    assert_eq!(backend.calls(), 2);
    let keyed = rule().keyed_by_consumer();
    let alice = CacheRequest {
        consumer: Some("alice"),
        ..get("/orders", &credentials)
    };
    let bob = CacheRequest {
        consumer: Some("bob"),
        ..get("/orders", &credentials)
    };
    body_and_status(
        cache
            .get_or_fetch(&keyed, &alice, backend.answer("alice's", &[]))
            .await,
    );
    assert_eq!(
        body_and_status(
            cache
                .get_or_fetch(&keyed, &alice, backend.answer("x", &[]))
                .await
        ),
        ("alice's".to_owned(), "HIT")
    );
    assert_eq!(
        body_and_status(
            cache
                .get_or_fetch(&keyed, &bob, backend.answer("bob's", &[]))
                .await
        ),
        ("bob's".to_owned(), "MISS")
    );
}

#[tokio::test(start_paused = true)]
async fn a_stale_copy_stands_in_for_a_failed_backend_within_the_window_only() {
    let fx = Fixture::default();
    let (cache, backend, none) = (&fx.cache, &fx.backend, &fx.none);
    fx.get("/p", "saved", &[]).await;
    advance(TTL + Duration::from_secs(29)).await;
    let stale = cache
        .get_or_fetch(&rule(), &get("/p", none), backend.fail())
        .await;
    assert_eq!(body_and_status(stale), ("saved".to_owned(), "STALE"));
    advance(Duration::from_secs(1)).await;
    let gone = cache
        .get_or_fetch(&rule(), &get("/p", none), backend.fail())
        .await;
    assert_eq!(gone.err(), Some("backend down"));
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_for_one_key_make_one_backend_request() {
    let cache = Arc::new(LocalCache::new(1 << 20, 1 << 16));
    let backend = Arc::new(Backend::default());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (cache, backend) = (cache.clone(), backend.clone());
        tasks.spawn(async move {
            let none = HeaderMap::new();
            let slow = async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                backend.answer("shared", &[]).await
            };
            body_and_status(cache.get_or_fetch(&rule(), &get("/hot", &none), slow).await)
        });
    }
    let mut hits = 0;
    while let Some(outcome) = tasks.join_next().await {
        let (body, status) = outcome.expect("task");
        assert_eq!(body, "shared");
        hits += usize::from(status == "HIT");
    }
    assert_eq!(backend.calls(), 1);
    assert_eq!(hits, 9);
}

#[path = "local_more_tests.rs"]
mod more;

#[path = "local_shared_tests.rs"]
mod shared_tier;
