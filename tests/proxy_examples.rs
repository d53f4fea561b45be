//! `deploy/examples` as a user applies them, with the real `kubectl`, served by the real
//! `portcullis proxy --configmap` on the ConfigMap the operator (in-process, against the real
//! API server) writes for them.
//!
//! Every example route answers as its comment says: `/users` only with an API key, `/orders`
//! with a rate limit, `/catalog` reads from the cache, `/profile` as one JSON object from two
//! services. And a rule that cannot be served yet fails closed on its own: the examples are
//! applied first without their Secret, so the `/users` rule answers 503 (never reaching its
//! backend) while every other rule serves, and the Route, the Gateway and an Event say exactly
//! that, until the Secret arrives.
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
async fn the_examples_applied_with_kubectl_answer_as_their_comments_say() {
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
    // The Secret comes later.
    let secret_dir = tempfile::tempdir().expect("a temporary directory");
    let secret_file = secret_dir.path().join("30-secrets.yaml");
    std::fs::rename(dir.path().join("30-secrets.yaml"), &secret_file).expect("moved aside");

    let kubectl = Kubectl::new(ctx.control_plane);
    let applied = kubectl.apply(&ctx.namespace, dir.path(), false).await;
    assert!(
        applied.success,
        "kubectl apply -f deploy/examples: {}{}",
        applied.stdout, applied.stderr
    );

    let config = await_config(&ctx, |s| s.rules.len() == 5).await;
    // One real proxy per gateway pod, each reporting on its Pod the revision it serves (the
    // Gateway is Programmed only when every ready replica serves it); requests go to the first.
    let mut replicas = spawn_replicas(&ctx, &config, 3).await;
    let (proxy, others) = replicas.split_first_mut().expect("three replicas");
    assert_eq!(
        proxy.admin("/ready").await.map(|a| a.status),
        Ok(200),
        "ready: it serves what it can"
    );

    // /users: its Secret is missing, so the rule answers 503 and never reaches its backend.
    let users = proxy
        .send("GET", "/users/1")
        .await
        .expect("the proxy answers");
    assert_eq!(users.status, 503, "{}", users.body);
    assert_eq!(users.headers["portcullis-unserved"], "SecretNotFound");
    assert!(
        users
            .body
            .contains("spec.rules[0].auth.apiKey.secretRef: a Secret it needs is missing"),
        "{}",
        users.body
    );
    assert!(
        !users.body.contains("api-keys"),
        "clients never read Secret names"
    );

    // /catalog: writes go through; reads are cached.
    let written = eventually("POST /catalog to be served", TIMEOUT, || async {
        let answer = proxy.send("POST", "/catalog/7").await.ok()?;
        (answer.status == 200).then_some(answer)
    })
    .await;
    assert_eq!(written.body, "catalog /catalog/7");
    let first = proxy.send("GET", "/catalog/7").await.expect("an answer");
    assert_eq!(
        (first.status, &first.headers["x-cache"]),
        (200, &"MISS".parse().expect("a value"))
    );
    let second = proxy.send("GET", "/catalog/7").await.expect("an answer");
    assert_eq!(second.headers["x-cache"], "HIT");
    assert_eq!(second.body, first.body);

    // /profile: users and orders in one object.
    let profile = eventually("GET /profile/1 to be served", TIMEOUT, || async {
        let answer = proxy.send("GET", "/profile/1").await.ok()?;
        (answer.status == 200 && !answer.body.contains("_errors")).then_some(answer)
    })
    .await;
    let merged: serde_json::Value =
        serde_json::from_str(&profile.body).expect("the aggregate answers JSON");
    assert_eq!(
        merged,
        serde_json::json!({
            "user": { "upstream": "users", "path": "/users/1" },
            "orders": { "upstream": "orders", "path": "/orders" },
        })
    );

    // /orders: 20 per second and a burst of 10: the first 30 go through, then 429, and a
    // refused request never reaches the service.
    let orders_before = upstreams[1].requests().len();
    let mut admitted = 0;
    for n in 0..30 {
        let answer = proxy.send("GET", "/orders").await.expect("an answer");
        assert_eq!(answer.status, 200, "request {n}: {}", answer.body);
        assert!(answer.headers.contains_key("ratelimit-policy"));
        admitted += 1;
    }
    let mut limited = None;
    for _ in 0..100 {
        let answer = proxy.send("GET", "/orders").await.expect("an answer");
        match answer.status {
            200 => admitted += 1,
            429 => {
                limited = Some(answer);
                break;
            }
            other => panic!("GET /orders answered {other}: {}", answer.body),
        }
    }
    let limited = limited.expect("a burst over the limit is refused");
    assert!(limited.headers.contains_key("retry-after"));
    let reached: Vec<String> = upstreams[1].requests()[orders_before..]
        .iter()
        .filter(|r| r.as_str() != "GET /healthz")
        .cloned()
        .collect();
    assert_eq!(
        reached.len(),
        admitted,
        "only admitted requests reached orders"
    );

    // The Route says which rule is not served and why; the Gateway is not Programmed; an Event.
    let routes: Api<Route> = ctx.api();
    let conditions = eventually("Route users PartiallyInvalid", TIMEOUT, || async {
        let conditions = route_conditions(&routes, "users").await?;
        condition(&conditions, "PartiallyInvalid")?;
        Some(conditions)
    })
    .await;
    let accepted = condition(&conditions, "Accepted").expect("Accepted");
    assert_eq!(accepted.status, "True", "{accepted:?}");
    let partial = condition(&conditions, "PartiallyInvalid").expect("PartiallyInvalid");
    assert_eq!(
        (partial.status.as_str(), partial.reason.as_str()),
        ("True", "SecretNotFound")
    );
    assert!(
        partial
            .message
            .starts_with("Rules answering 503: spec.rules[0].auth.apiKey.secretRef: "),
        "{}",
        partial.message
    );
    for route in ["orders", "catalog", "profile"] {
        let conditions = route_conditions(&routes, route)
            .await
            .unwrap_or_else(|| panic!("Route {route} has a status"));
        assert!(
            condition(&conditions, "PartiallyInvalid").is_none_or(|c| c.status != "True"),
            "{route} is served: {conditions:?}"
        );
    }
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
    assert!(programmed.starts_with("1 rule(s)"), "{programmed}");
    assert!(
        programmed.contains(&format!(
            "Route {ns}/users spec.rules[0].auth.apiKey.secretRef"
        )),
        "{programmed}"
    );
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

    // The Secret arrives: kubectl applies it, the kubelet mounts it into the pod (here: the
    // file is written where the process reads Secrets), and /users serves, behind its keys.
    let applied = kubectl
        .apply(&ctx.namespace, secret_dir.path(), false)
        .await;
    assert!(applied.success, "{}{}", applied.stdout, applied.stderr);
    mount_example_api_keys(&config, std::slice::from_ref(proxy));
    mount_example_api_keys(&config, others);
    let refused = eventually("GET /users/1 to ask for a key", TIMEOUT, || async {
        let answer = proxy.send("GET", "/users/1").await.ok()?;
        (answer.status == 401).then_some(answer)
    })
    .await;
    assert!(refused.headers.contains_key("www-authenticate"));
    let wrong = proxy
        .send_with("GET", "/users/1", &[("x-api-key", "demo-key")])
        .await
        .expect("an answer");
    assert_eq!(wrong.status, 401, "a prefix of a key is no key");
    let served = proxy
        .send_with("GET", "/users/1", &[("x-api-key", "demo-key-storefront")])
        .await
        .expect("an answer");
    assert_eq!(served.status, 200, "{}", served.body);
    assert_eq!(served.body, "users /users/1");
    await_gateway(&ctx, "edge", "Programmed=True", |g| {
        has_condition(g, "Programmed", "True", None)
    })
    .await;

    // What each service saw: health checks aside, only what the rules let through.
    let seen = |index: usize, request: &str| {
        upstreams[index]
            .requests()
            .iter()
            .filter(|r| r.as_str() == request)
            .count()
    };
    assert_eq!(
        seen(0, "GET /users/1"),
        2,
        "the aggregate's part and the keyed GET"
    );
    assert_eq!(
        seen(3, "GET /catalog/7"),
        1,
        "the second read was a cache hit"
    );
    assert_eq!(proxy.last_reload_error().await, None);
    assert!(proxy.is_running(), "the proxy never exited");
    operator.stop().await;
}
