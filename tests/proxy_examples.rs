//! `deploy/examples` as a user applies them, with the real `kubectl`, served by the real
//! `portcullis proxy --configmap` on the ConfigMap the operator (in-process, against the real
//! API server) writes for them.
//!
//! The examples ask for API-key auth, a rate limit and a cache, which this version of the
//! gateway does not implement yet, and an aggregation, which it does. The proxy must start
//! anyway, serve the rules it can (`catalog-write`, the `/profile` aggregate), answer 503 with
//! the reason on the others (never reaching their backends), and the Routes, the Gateway and an
//! Event must say exactly that.
//!
//! The examples' services have no Deployments here: each Kubernetes Service gets an
//! EndpointSlice pointing at a real HTTP upstream of the test. The only edits to the files are
//! the namespace (the test's own) and the listener port (a free one).

#[path = "operator_support/mod.rs"]
mod operator_support;
#[path = "proxy_support/mod.rs"]
mod proxy_support;
mod support;

use std::path::Path;

use k8s_openapi::{api::core::v1::Event, apimachinery::pkg::apis::meta::v1::Condition};
use kube::api::{Api, ListParams};
use operator_support::*;
use portcullis_api::Route;
use proxy_support::*;
use support::{
    control_plane::{TestContext, eventually},
    kubectl::Kubectl,
};

/// Copies `deploy/examples` into `dir`, moved into `namespace` and listening on `port`.
fn copy_examples(dir: &Path, namespace: &str, port: u16) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    for entry in std::fs::read_dir(&examples).expect("deploy/examples reads") {
        let path = entry.expect("an entry").path();
        let text = std::fs::read_to_string(&path).expect("an example reads");
        let text = text
            .replace("namespace: shop", &format!("namespace: {namespace}"))
            .replace("      port: 80\n", &format!("      port: {port}\n"));
        std::fs::write(dir.join(path.file_name().expect("a file name")), text)
            .expect("the copy is written");
    }
}

/// The conditions of the first parent of Route `name`.
async fn route_conditions(routes: &Api<Route>, name: &str) -> Option<Vec<Condition>> {
    let route = routes.get(name).await.ok()?;
    Some(route.status?.parents.into_iter().next()?.conditions)
}

#[tokio::test]
async fn the_examples_applied_with_kubectl_serve_what_they_can_and_say_what_they_cannot() {
    let ctx = TestContext::new("proxy-examples").await;
    let operator = Operator::start_default(&ctx).await;
    let ip = host_ip();
    let mut upstreams = Vec::new();
    for service in ["users", "orders", "orders-standby", "catalog"] {
        let upstream = Upstream::start(service, (ip, 0).into()).await;
        create_service(&ctx, service, 8080).await;
        put_endpoint_slice(&ctx, service, service, upstream.addr, true).await;
        upstreams.push(upstream);
    }
    let port = free_addr().port();
    let dir = tempfile::tempdir().expect("a temporary directory");
    copy_examples(dir.path(), &ctx.namespace, port);

    let applied = Kubectl::new(ctx.control_plane)
        .apply(&ctx.namespace, dir.path(), false)
        .await;
    assert!(
        applied.success,
        "kubectl apply -f deploy/examples: {}{}",
        applied.stdout, applied.stderr
    );

    let config = await_config(&ctx, |s| s.rules.len() == 5).await;
    let mut proxy = Proxy::spawn(&ctx, &config, &proxy_binary()).await;
    assert_eq!(
        proxy.admin("/ready").await.map(|a| a.status),
        Ok(200),
        "ready: it serves what it can"
    );

    // catalog-write (any method but GET) is served, through the catalog Service's endpoints.
    let written = eventually("POST /catalog to be served", TIMEOUT, || async {
        let answer = proxy.send("POST", "/catalog/7").await.ok()?;
        (answer.status == 200).then_some(answer)
    })
    .await;
    assert_eq!(written.body, "catalog /catalog/7");

    // The /profile aggregate is served: users and orders in one object, each part's path made
    // from the rewritten request path.
    let profile = proxy
        .send("GET", "/profile/1")
        .await
        .expect("the proxy answers");
    assert_eq!(profile.status, 200, "GET /profile/1: {}", profile.body);
    let merged: serde_json::Value =
        serde_json::from_str(&profile.body).expect("the aggregate answers JSON");
    assert_eq!(
        merged,
        serde_json::json!({
            "user": { "upstream": "users", "path": "/users/1" },
            "orders": { "upstream": "orders", "path": "/orders" },
        })
    );

    // Every other rule answers 503 with its reason, and never reaches its backend.
    for (method, path, field) in [
        ("GET", "/users/1", "spec.rules[0].auth"),
        ("GET", "/orders", "spec.rules[0].rateLimit"),
        ("GET", "/catalog/7", "spec.rules[0].cache"),
    ] {
        let answer = proxy.send(method, path).await.expect("the proxy answers");
        assert_eq!(answer.status, 503, "{method} {path}: {}", answer.body);
        assert_eq!(
            answer.headers["portcullis-unserved"], "UnsupportedValue",
            "{method} {path}"
        );
        assert!(
            answer.body.contains(&format!(
                "{field}: {}",
                match field {
                    "spec.rules[0].auth" => "API-key authentication",
                    "spec.rules[0].rateLimit" => "rate limiting",
                    _ => "response caching",
                }
            )) && answer
                .body
                .contains("is not supported by this version of the gateway yet"),
            "{method} {path}: {}",
            answer.body
        );
    }
    // Active health checks (users has them) aside, only catalog-write and the aggregate
    // reached a backend.
    let requests: Vec<Vec<String>> = upstreams
        .iter()
        .map(|u| {
            u.requests()
                .into_iter()
                .filter(|r| r != "GET /healthz")
                .collect()
        })
        .collect();
    assert_eq!(
        requests,
        [
            vec!["GET /users/1".to_owned()],
            vec!["GET /orders".to_owned()],
            vec![],
            vec!["POST /catalog/7".to_owned()]
        ],
        "what users, orders, orders-standby and catalog saw"
    );
    let metrics = proxy.admin("/metrics").await.expect("metrics").body;
    let counted = format!(
        r#"portcullis_unserved_requests_total{{route="{}/orders",rule="0",reason="UnsupportedValue"}} 1"#,
        ctx.namespace
    );
    assert!(metrics.contains(&counted), "{counted} in {metrics}");
    assert!(proxy.is_running(), "the proxy never exited");

    // The Routes: Accepted, and PartiallyInvalid naming the rule and the reason.
    let routes: Api<Route> = ctx.api();
    for (route, field) in [
        ("users", "spec.rules[0].auth"),
        ("orders", "spec.rules[0].rateLimit"),
        ("catalog", "spec.rules[0].cache"),
    ] {
        let conditions = eventually(
            &format!("Route {route} PartiallyInvalid"),
            TIMEOUT,
            || async {
                let conditions = route_conditions(&routes, route).await?;
                condition(&conditions, "PartiallyInvalid")?;
                Some(conditions)
            },
        )
        .await;
        let accepted = condition(&conditions, "Accepted").expect("Accepted");
        assert_eq!(accepted.status, "True", "{route}: {accepted:?}");
        let partial = condition(&conditions, "PartiallyInvalid").expect("PartiallyInvalid");
        assert_eq!(
            (partial.status.as_str(), partial.reason.as_str()),
            ("True", "UnsupportedValue"),
            "{route}"
        );
        assert!(
            partial
                .message
                .starts_with(&format!("Rules answering 503: {field}: ")),
            "{route}: {}",
            partial.message
        );
        assert!(
            !partial.message.contains("spec.rules[1]"),
            "{route}: only the unserved rule is named: {}",
            partial.message
        );
    }

    let profile = route_conditions(&routes, "profile")
        .await
        .expect("Route profile has a status");
    assert!(
        condition(&profile, "PartiallyInvalid").is_none_or(|c| c.status != "True"),
        "the aggregate is served: {profile:?}"
    );

    // The Gateway: not Programmed until every rule is served, naming each Route and rule.
    let gateway = await_gateway(&ctx, "edge", "Programmed=False RulesNotServed", |g| {
        has_condition(g, "Programmed", "False", Some("RulesNotServed"))
    })
    .await;
    let programmed = condition(
        &gateway.status.as_ref().expect("a status").conditions,
        "Programmed",
    )
    .expect("Programmed")
    .message
    .clone();
    let ns = &ctx.namespace;
    for named in [
        format!("Route {ns}/users spec.rules[0].auth: API-key authentication"),
        format!("Route {ns}/orders spec.rules[0].rateLimit: rate limiting"),
        format!("Route {ns}/catalog spec.rules[0].cache: response caching"),
    ] {
        assert!(programmed.contains(&named), "{named} in {programmed}");
    }
    assert!(
        !programmed.contains(&format!("Route {ns}/profile")),
        "{programmed}"
    );
    assert!(programmed.starts_with("3 rule(s)"), "{programmed}");

    // And a Warning Event says so.
    let events: Api<Event> = ctx.api();
    eventually("a RulesNotServed Event on the Gateway", TIMEOUT, || async {
        let list = events
            .list(
                &ListParams::default()
                    .fields("involvedObject.name=edge,involvedObject.kind=Gateway"),
            )
            .await
            .ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("RulesNotServed")
                    && e.type_.as_deref() == Some("Warning")
            })
            .then_some(())
    })
    .await;
    assert_eq!(proxy.last_reload_error().await, None);
    operator.stop().await;
}
