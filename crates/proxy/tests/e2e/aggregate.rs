//! Aggregate rules: one request, several backends called in parallel, one JSON object back.

use std::net::SocketAddr;

use portcullis_config::snapshot::*;
use serde_json::{Value, json};

use crate::support::*;

/// A part of backend `test/<backend>`.
fn part(
    name: &str,
    backend: &str,
    path: &str,
    timeout_ms: u64,
    on_failure: PartFailurePolicy,
) -> AggregatePartConfig {
    AggregatePartConfig {
        name: name.to_owned(),
        backend: Some(format!("test/{backend}")),
        path: path.to_owned(),
        timeout_ms,
        on_failure,
    }
}

/// A gateway whose rule on `/profile` aggregates `parts`, over `backends`.
async fn aggregating(backends: &[(&str, SocketAddr)], parts: Vec<AggregatePartConfig>) -> Gateway {
    aggregating_with(backends, parts, |_| {}).await
}

async fn aggregating_with(
    backends: &[(&str, SocketAddr)],
    parts: Vec<AggregatePartConfig>,
    edit: impl FnOnce(&mut RuleConfig),
) -> Gateway {
    let mut snap = Snap::new();
    for (name, addr) in backends {
        snap = snap.backend(name, &[*addr]);
    }
    let mut profile = rule("profile", Action::Aggregate { parts });
    edit(&mut profile);
    Gateway::start(&snap.route("*", prefix("/profile"), profile).build()).await
}

/// The common profile: a `user` part (users' record for the request's path, which must
/// answer) and an `orders` part at `orders_path` on the orders backend.
async fn profile(
    users: SocketAddr,
    orders: SocketAddr,
    orders_path: &str,
    timeout_ms: u64,
    on_failure: PartFailurePolicy,
) -> Gateway {
    aggregating(
        &[("users", users), ("orders", orders)],
        vec![
            part("user", "users", "/users{path}", 0, PartFailurePolicy::Fail),
            part("orders", "orders", orders_path, timeout_ms, on_failure),
        ],
    )
    .await
}

#[tokio::test]
async fn all_parts_answer_one_object_keyed_by_part_name() {
    let (users, orders) = (
        Upstream::start("users").await,
        Upstream::start("orders").await,
    );
    let gw = profile(
        users.addr,
        orders.addr,
        "/orders?user={path}",
        0,
        PartFailurePolicy::Fail,
    )
    .await;
    let reply = get(&gw, "shop.example", "/profile/42?fields=name").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/json");
    let merged = reply.json();
    let keys: Vec<&str> = merged
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 2, "{merged}");
    let user = &merged["user"];
    assert_eq!(user["upstream"], "users");
    assert_eq!(
        user["path"], "/users/profile/42",
        "{{path}} is the request's path"
    );
    assert_eq!(
        user["query"], "fields=name",
        "a part without a query gets the request's"
    );
    let orders = &merged["orders"];
    assert_eq!(orders["upstream"], "orders");
    assert_eq!(orders["path"], "/orders");
    assert_eq!(
        orders["query"], "user=/profile/42",
        "a part with a query keeps its own"
    );
    assert!(merged.get("_errors").is_none(), "{merged}");
}

#[tokio::test]
async fn parts_are_gets_with_the_clients_headers_and_without_its_body() {
    let users = Upstream::start("users").await;
    let gw = aggregating(
        &[("users", users.addr)],
        vec![part(
            "user",
            "users",
            "/users{path}",
            0,
            PartFailurePolicy::Fail,
        )],
    )
    .await;
    let mut request = request(&gw, "POST", "shop.example", "/profile/7");
    *request.body_mut() = http_body_util::Full::new(bytes::Bytes::from_static(b"{\"secret\":1}"));
    let headers = request.headers_mut();
    headers.insert("content-type", "application/json".parse().expect("value"));
    headers.insert("x-request-id", "abc".parse().expect("value"));
    headers.insert("accept-encoding", "gzip".parse().expect("value"));
    headers.insert("x-forwarded-for", "6.6.6.6".parse().expect("value"));
    let reply = send(request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let user = &reply.json()["user"];
    assert_eq!(user["method"], "GET");
    assert_eq!(user["body"], "");
    let seen = &user["headers"];
    assert_eq!(seen["x-request-id"], "abc", "the client's headers travel");
    assert_eq!(
        seen["x-forwarded-for"], "127.0.0.1",
        "as forwarding makes them"
    );
    assert_eq!(seen["x-forwarded-host"], "shop.example");
    assert_eq!(seen["host"], "shop.example");
    assert_eq!(seen["accept"], "application/json");
    for absent in ["content-type", "content-length", "accept-encoding"] {
        assert!(seen.get(absent).is_none(), "{absent} is not sent: {seen}");
    }
}

#[tokio::test]
async fn the_path_of_a_part_is_the_rewritten_request_path() {
    let users = Upstream::start("users").await;
    let gw = aggregating_with(
        &[("users", users.addr)],
        vec![part(
            "user",
            "users",
            "/users{path}",
            0,
            PartFailurePolicy::Fail,
        )],
        |rule| {
            rule.filters = vec![FilterConfig::UrlRewrite(UrlRewriteConfig {
                hostname: None,
                path: Some(PathModifierConfig {
                    kind: PathModifierType::ReplacePrefixMatch,
                    value: "/".to_owned(),
                }),
            })];
        },
    )
    .await;
    let reply = get(&gw, "shop.example", "/profile/42").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["user"]["path"], "/users/42");
}

#[tokio::test]
async fn a_slow_tolerated_part_is_null_and_listed_under_errors() {
    let (users, orders) = (
        Upstream::start("users").await,
        Upstream::start("orders").await,
    );
    let gw = profile(
        users.addr,
        orders.addr,
        "/delay/10000/orders",
        100,
        PartFailurePolicy::Tolerate,
    )
    .await;
    let reply = get(&gw, "shop.example", "/profile/1").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let merged = reply.json();
    assert_eq!(merged["user"]["upstream"], "users");
    assert_eq!(merged["orders"], Value::Null);
    assert!(
        merged
            .as_object()
            .expect("an object")
            .contains_key("orders")
    );
    assert_eq!(merged["_errors"], json!({ "orders": "timed out" }));
}

#[tokio::test]
async fn a_slow_part_that_must_not_fail_fails_the_whole_answer() {
    let (users, orders) = (
        Upstream::start("users").await,
        Upstream::start("orders").await,
    );
    let gw = profile(
        users.addr,
        orders.addr,
        "/delay/10000/orders",
        100,
        PartFailurePolicy::Fail,
    )
    .await;
    let reply = get(&gw, "shop.example", "/profile/1").await;
    // The API promises 502, or 504 when the part timed out.
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert!(reply.body.contains("\"orders\""), "{}", reply.body);
}

#[tokio::test]
async fn a_part_whose_backend_is_down_is_tolerated_or_fails_with_502() {
    let users = Upstream::start("users").await;
    let down: SocketAddr = format!("127.0.0.1:{}", free_port().await)
        .parse()
        .expect("addr");
    let tolerant = profile(users.addr, down, "/orders", 0, PartFailurePolicy::Tolerate).await;
    let reply = get(&tolerant, "shop.example", "/profile/1").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let merged = reply.json();
    assert_eq!(merged["user"]["upstream"], "users");
    assert_eq!(merged["orders"], Value::Null);
    assert_eq!(merged["_errors"], json!({ "orders": "connection failed" }));

    let strict = profile(users.addr, down, "/orders", 0, PartFailurePolicy::Fail).await;
    let reply = get(&strict, "shop.example", "/profile/1").await;
    assert_eq!(reply.status, 502, "{}", reply.body);
}

#[tokio::test]
async fn parts_that_are_not_json_or_not_2xx_fail_and_omitted_ones_are_left_out() {
    let a = Upstream::start("a").await;
    let gw = aggregating(
        &[("a", a.addr)],
        vec![
            part("ok", "a", "/ok", 0, PartFailurePolicy::Fail),
            part("text", "a", "/text", 0, PartFailurePolicy::Tolerate),
            part("missing", "a", "/status/404", 0, PartFailurePolicy::Omit),
        ],
    )
    .await;
    let reply = get(&gw, "shop.example", "/profile").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let merged = reply.json();
    assert_eq!(merged["ok"]["path"], "/ok");
    assert_eq!(merged["text"], Value::Null);
    assert!(merged.get("missing").is_none(), "omitted: {merged}");
    assert_eq!(
        merged["_errors"],
        json!({ "text": "not JSON", "missing": "status 404" })
    );

    let strict = aggregating(
        &[("a", a.addr)],
        vec![part("text", "a", "/text", 0, PartFailurePolicy::Fail)],
    )
    .await;
    let reply = get(&strict, "shop.example", "/profile").await;
    assert_eq!(reply.status, 502, "{}", reply.body);
}

#[tokio::test]
async fn an_oversize_part_fails() {
    let a = Upstream::start("a").await;
    let gw = aggregating(
        &[("a", a.addr)],
        vec![
            part("small", "a", "/big/1000", 0, PartFailurePolicy::Fail),
            part("large", "a", "/big/2000000", 0, PartFailurePolicy::Tolerate),
        ],
    )
    .await;
    let reply = get(&gw, "shop.example", "/profile").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let merged = reply.json();
    assert_eq!(merged["small"].as_str().map(str::len), Some(998));
    assert_eq!(merged["large"], Value::Null);
    assert_eq!(
        merged["_errors"],
        json!({ "large": "body over 1048576 bytes" })
    );
}

#[tokio::test]
async fn head_gets_the_headers_of_get_and_no_body() {
    let a = Upstream::start("a").await;
    let gw = aggregating(
        &[("a", a.addr)],
        vec![part("only", "a", "/fixed", 0, PartFailurePolicy::Fail)],
    )
    .await;
    let got = get(&gw, "shop.example", "/profile").await;
    let head = send(request(&gw, "HEAD", "shop.example", "/profile")).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-type"], "application/json");
    assert_eq!(
        head.headers["content-length"],
        got.body.len().to_string().as_str()
    );
    assert_eq!(head.body, "");
}

#[tokio::test]
async fn a_part_whose_backend_did_not_resolve_is_reported() {
    let a = Upstream::start("a").await;
    let gw = aggregating(
        &[("a", a.addr)],
        vec![
            part("ok", "a", "/ok", 0, PartFailurePolicy::Fail),
            AggregatePartConfig {
                // A backendRef that did not resolve.
                backend: None,
                ..part("gone", "a", "/gone", 0, PartFailurePolicy::Tolerate)
            },
        ],
    )
    .await;
    let reply = get(&gw, "shop.example", "/profile").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json()["_errors"],
        json!({ "gone": "backend not found" })
    );
}
