use super::*;

#[tokio::test(start_paused = true)]
async fn a_non_storable_answer_is_not_shared_with_waiters_who_fetch_their_own() {
    let cache = Arc::new(LocalCache::new(1 << 20, 1 << 16));
    let backend = Arc::new(Backend::default());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (cache, backend) = (cache.clone(), backend.clone());
        tasks.spawn(async move {
            let none = HeaderMap::new();
            let slow = async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                backend
                    .answer("private", &[("cache-control", "private")])
                    .await
            };
            body_and_status(cache.get_or_fetch(&rule(), &get("/me", &none), slow).await)
        });
    }
    while let Some(outcome) = tasks.join_next().await {
        assert_eq!(outcome.expect("task").1, "MISS");
    }
    assert_eq!(backend.calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn an_unkeyed_header_cannot_change_what_others_are_served() {
    let fx = Fixture::default();
    let (cache, backend, none) = (&fx.cache, &fx.backend, &fx.none);
    fx.get("/", "good", &[]).await;
    let mut evil = HeaderMap::new();
    evil.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
    let attack = cache
        .get_or_fetch(&rule(), &get("/", &evil), backend.answer("evil", &[]))
        .await;
    assert_eq!(body_and_status(attack), ("good".to_owned(), "HIT"));
    let victim = cache
        .get_or_fetch(&rule(), &get("/", none), backend.answer("evil", &[]))
        .await;
    assert_eq!(body_and_status(victim), ("good".to_owned(), "HIT"));
    assert_eq!(backend.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_cache_stays_within_its_byte_bound_and_skips_oversized_bodies() {
    let cache = LocalCache::new(64 * 1024, 8 * 1024);
    let backend = Backend::default();
    let none = HeaderMap::new();
    let body: &'static str = Box::leak("x".repeat(4 * 1024).into_boxed_str());
    for n in 0..200 {
        let path = format!("/item/{n}");
        cache
            .get_or_fetch(&rule(), &get(&path, &none), backend.answer(body, &[]))
            .await
            .expect("answer");
    }
    cache.run_pending_tasks().await;
    assert!(cache.weighted_size() <= 64 * 1024, "{cache:?}");
    assert!(cache.entry_count() > 0);
    let large: &'static str = Box::leak("y".repeat(8 * 1024 + 1).into_boxed_str());
    let Ok(Lookup::Miss { not_stored, .. }) = cache
        .get_or_fetch(&rule(), &get("/large", &none), backend.answer(large, &[]))
        .await
    else {
        panic!("a large body is a miss");
    };
    assert_eq!(not_stored, Some(NotStored::TooLarge));
}

#[tokio::test(start_paused = true)]
async fn purge_by_prefix_drops_only_the_matching_entries() {
    let fx = Fixture::default();
    let (cache, backend, none) = (&fx.cache, &fx.backend, &fx.none);
    for path in ["/a/1", "/a/2", "/b/1"] {
        fx.get(path, "v1", &[]).await;
    }
    cache.purge_prefix(b"shop.example.com/a/").await.unwrap();
    for (path, expected) in [("/a/1", "MISS"), ("/a/2", "MISS"), ("/b/1", "HIT")] {
        let lookup = cache
            .get_or_fetch(&rule(), &get(path, none), backend.answer("v2", &[]))
            .await;
        assert_eq!(body_and_status(lookup).1, expected, "{path}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_head_request_is_served_from_the_get_entry_without_a_body() {
    let fx = Fixture::default();
    let (cache, backend, none) = (&fx.cache, &fx.backend, &fx.none);
    fx.get("/doc", "text", &[]).await;
    let head = CacheRequest {
        method: &Method::HEAD,
        ..get("/doc", none)
    };
    let Ok(Lookup::Hit(response)) = cache
        .get_or_fetch(&rule(), &head, backend.answer("", &[]))
        .await
    else {
        panic!("HEAD must hit the GET entry");
    };
    assert!(response.body().is_empty());
    assert_eq!(backend.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_backend_error_status_is_replaced_by_the_stale_copy() {
    let fx = Fixture::default();
    let (cache, none) = (&fx.cache, &fx.none);
    fx.get("/s", "ok", &[]).await;
    advance(TTL).await;
    let failing = async {
        Ok::<_, &'static str>(Upstream::Buffered(Fetched {
            status: StatusCode::BAD_GATEWAY,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }))
    };
    let lookup = cache.get_or_fetch(&rule(), &get("/s", none), failing).await;
    assert_eq!(body_and_status(lookup), ("ok".to_owned(), "STALE"));
}

#[tokio::test(start_paused = true)]
async fn must_revalidate_answers_are_never_served_stale() {
    let fx = Fixture::default();
    let (cache, backend, none) = (&fx.cache, &fx.backend, &fx.none);
    let fields = [("cache-control", "max-age=10, must-revalidate")];
    fx.get("/m", "ok", &fields).await;
    advance(Duration::from_secs(11)).await;
    let lookup = cache
        .get_or_fetch(&rule(), &get("/m", none), backend.fail())
        .await;
    assert_eq!(lookup.err(), Some("backend down"));
}
