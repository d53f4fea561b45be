//! The in-cluster data plane end to end: the operator runs in-process against the real API
//! server, the real binary runs `portcullis proxy --configmap` beside it, and real HTTP upstreams
//! listen on loopback. A Route edit reaches the running proxy through the ConfigMap, and the
//! endpoints of a `service` backend follow its EndpointSlices, without restarting the proxy.
//!
//! The measurement of how long a Route edit takes to be served is
//! `tests/proxy_in_cluster_latency.rs`.

#[path = "operator_support/mod.rs"]
mod operator_support;
#[path = "proxy_support/mod.rs"]
mod proxy_support;
mod support;

use operator_support::*;
use proxy_support::*;
use serde_json::Value;
use support::control_plane::{TestContext, eventually};

/// The Route `web`, sending each path prefix in `prefixes` to the ServiceBackend `web`.
fn prefix_route(namespace: &str, prefixes: &[&str]) -> Value {
    let matches = prefixes
        .iter()
        .map(|p| path_match("PathPrefix", p))
        .collect();
    web_route(namespace, matches)
}

/// Waits until `path` answers `status` through the proxy (and, when given, with a body starting
/// with `body`), polling generously: no timing is asserted, only that it happens.
async fn await_answer(proxy: &Proxy, path: &str, status: u16, body: Option<&str>) -> Answer {
    let what = format!("{path} to answer {status} {}", body.unwrap_or(""));
    eventually(&what, TIMEOUT, || async {
        let answer = proxy.get(path).await.ok()?;
        (answer.status == status && body.is_none_or(|b| answer.body.starts_with(b)))
            .then_some(answer)
    })
    .await
}

#[tokio::test]
async fn a_route_edit_is_served_by_the_running_proxy_without_a_restart() {
    let ctx = TestContext::new("proxy-route-edit").await;
    let operator = Operator::start_default(&ctx).await;
    let upstream = Upstream::start("a", free_addr()).await;
    let port = free_addr().port();

    apply_all(
        &ctx.client,
        &[
            gateway(&ctx.namespace, port),
            static_backend(&ctx.namespace, "web", upstream.addr),
            prefix_route(&ctx.namespace, &["/old"]),
        ],
    )
    .await;
    let config = await_config(&ctx, |s| !s.rules.is_empty()).await;
    let mut proxy = Proxy::spawn(&ctx, &config, &proxy_binary()).await;

    let answer = await_answer(&proxy, "/old/page", 200, Some("a ")).await;
    assert_eq!(
        answer.body, "a /old/page",
        "the upstream saw the request as sent"
    );
    let first_revision = proxy.revision().await;

    // A second path: served next to the first, by the same process.
    apply(
        &ctx.client,
        &prefix_route(&ctx.namespace, &["/old", "/added"]),
    )
    .await;
    await_answer(&proxy, "/added", 200, Some("a ")).await;
    await_answer(&proxy, "/old", 200, Some("a ")).await;
    let revision = proxy.revision().await;
    assert_ne!(revision, first_revision);
    assert_eq!(
        revision,
        await_config(&ctx, |_| true).await.revision,
        "the proxy reports the ConfigMap's revision"
    );

    // A path changed: the new one is served, the old one is gone.
    apply(&ctx.client, &prefix_route(&ctx.namespace, &["/new"])).await;
    await_answer(&proxy, "/new/x", 200, Some("a ")).await;
    await_answer(&proxy, "/old", 404, None).await;
    assert_eq!(proxy.get("/added").await.map(|a| a.status).ok(), Some(404));
    assert_eq!(proxy.get("/new").await.map(|a| a.status).ok(), Some(200));

    assert!(
        proxy.is_running(),
        "the proxy served every edit without restarting"
    );
    assert_eq!(proxy.last_reload_error().await, None);
    operator.stop().await;
}

#[tokio::test]
async fn service_backend_endpoints_follow_the_endpoint_slices() {
    let ctx = TestContext::new("proxy-endpoints").await;
    let operator = Operator::start_default(&ctx).await;
    // The API server refuses loopback addresses in EndpointSlices: the upstreams listen on the
    // machine's own address.
    let ip = host_ip();
    let a = Upstream::start("a", (ip, 0).into()).await;
    let b = Upstream::start("b", (ip, 0).into()).await;
    let port = free_addr().port();

    create_service(&ctx, "web", 8080).await;
    let put_slice = |name: &'static str, upstream: &Upstream, ready: bool| {
        put_endpoint_slice(&ctx, name, "web", upstream.addr, ready)
    };
    put_slice("web-a", &a, true).await;

    apply_all(
        &ctx.client,
        &[
            gateway(&ctx.namespace, port),
            service_backend(&ctx.namespace, "web", "web", 8080),
            prefix_route(&ctx.namespace, &["/"]),
        ],
    )
    .await;
    let config = await_config(&ctx, |s| !s.rules.is_empty()).await;
    let mut proxy = Proxy::spawn(&ctx, &config, &proxy_binary()).await;

    // Ready means the endpoints are known: the very first request reaches one.
    let first = proxy.get("/one").await.expect("the proxy answers");
    assert_eq!((first.status, first.body.as_str()), (200, "a /one"));

    // The only endpoint stops being ready: no healthy endpoint.
    put_slice("web-a", &a, false).await;
    await_answer(&proxy, "/two", 503, None).await;

    // A second, ready endpoint on another upstream (its own slice: another port): traffic
    // flows to it, and only to it.
    put_slice("web-b", &b, true).await;
    await_answer(&proxy, "/three", 200, Some("b ")).await;
    for _ in 0..10 {
        let answer = proxy.get("/only-b").await.expect("the proxy answers");
        assert_eq!(
            answer.body, "b /only-b",
            "the endpoint not ready gets no traffic"
        );
    }

    // The first one ready again: both share the traffic.
    put_slice("web-a", &a, true).await;
    eventually("both endpoints to get traffic", TIMEOUT, || async {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..10 {
            let answer = proxy.get("/both").await.ok()?;
            seen.insert(answer.body.split(' ').next()?.to_owned());
        }
        (seen.len() == 2).then_some(())
    })
    .await;

    assert!(
        proxy.is_running(),
        "the proxy followed the slices without restarting"
    );
    assert_eq!(
        proxy.revision().await,
        config.revision,
        "no config change was needed"
    );
    operator.stop().await;
}
