//! Backend references: resolution, invalid shares answering 500, mirrors, aggregates, failover.

use portcullis_config::{
    diagnostics::{Severity, reason},
    snapshot::{Action, Discovery, FilterConfig},
};

use crate::fixture::{
    backends, compile_yaml, findings, get, parents, route, shop_route, with_edge,
};

fn backend(name: &str, extra: &str) -> String {
    format!(
        "---
apiVersion: portcullis.dev/v1alpha1
kind: ServiceBackend
metadata: {{name: {name}, namespace: shop}}
spec:
  endpoints: [{{address: 10.0.0.1, port: 8080}}]
{extra}"
    )
}

fn rule_route(rule: &str) -> String {
    format!("---\n{}", shop_route(rule))
}

#[test]
fn missing_backend_keeps_its_weighted_share_which_answers_500() {
    let c = compile_yaml(&with_edge(
        &(backend("orders", "")
            + &rule_route(
                "  - backendRefs: [{name: orders, weight: 70}, {name: payments, weight: 30}]\n",
            )),
    ));
    let rule = route(&c.snapshot, &get("http://a/")).expect("served");
    assert_eq!(
        backends(rule),
        [(Some("shop/orders".to_owned()), 70), (None, 30)]
    );
    let p = parents(&c, "shop/r");
    assert!(p[0].accepted.status, "the Route stays accepted");
    assert!(!p[0].resolved_refs.status);
    assert_eq!(p[0].resolved_refs.reason, reason::BACKEND_NOT_FOUND);
    let f = findings(&c, "Route/shop/r");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].field, "spec.rules[0].backendRefs[1]");
    assert_eq!(f[0].severity, Severity::Error);
    assert_eq!(
        f[0].to_string(),
        "Route/shop/r: spec.rules[0].backendRefs[1]: ServiceBackend \"payments\" not found in namespace \"shop\""
    );
    assert_eq!(
        c.snapshot.backends.keys().collect::<Vec<_>>(),
        ["shop/orders"]
    );
}

#[test]
fn backends_resolve_in_the_route_namespace_only() {
    let other = backend("orders", "").replace("namespace: shop", "namespace: other");
    let c = compile_yaml(&with_edge(
        &(other + &rule_route("  - backendRefs: [{name: orders}]\n")),
    ));
    let rule = route(&c.snapshot, &get("http://a/")).expect("served");
    assert_eq!(backends(rule), [(None, 1)]);
}

#[test]
fn resolved_backends_carry_their_discovery_and_durations_in_milliseconds() {
    let c = compile_yaml(&with_edge(
        &(backend(
            "orders",
            "  connectTimeout: 1500ms\n  healthCheck: {interval: 10s}\n  outlierDetection: {ejectionTime: 1m}\n",
        ) + &rule_route("  - backendRefs: [{name: orders}]\n")),
    ));
    let b = &c.snapshot.backends["shop/orders"];
    assert!(matches!(&b.discovery, Discovery::Static { endpoints } if endpoints[0].port == 8080));
    assert_eq!(b.connect_timeout_ms, 1_500);
    let hc = b.health_check.as_ref().expect("health check");
    assert_eq!(
        (hc.interval_ms, hc.timeout_ms, hc.path.as_str()),
        (10_000, 1_000, "/healthz")
    );
    assert_eq!(
        b.outlier_detection.as_ref().map(|o| o.ejection_time_ms),
        Some(60_000)
    );
    assert!(parents(&c, "shop/r")[0].resolved_refs.status);
}

#[test]
fn missing_mirror_backend_is_reported_and_mirrors_nothing() {
    let c = compile_yaml(&with_edge(
        &(backend("orders", "")
            + &rule_route(
                "  - backendRefs: [{name: orders}]\n    filters:\n    - {type: RequestMirror, requestMirror: {backendRef: {name: shadow}, percent: 50}}\n",
            )),
    ));
    let rule = route(&c.snapshot, &get("http://a/")).expect("served");
    assert!(
        matches!(&rule.filters[0], FilterConfig::RequestMirror(m) if m.backend.is_none() && m.percent == 50)
    );
    let f = findings(&c, "Route/shop/r");
    assert_eq!(
        f[0].field,
        "spec.rules[0].filters[0].requestMirror.backendRef"
    );
    assert_eq!(f[0].reason, reason::BACKEND_NOT_FOUND);
}

#[test]
fn aggregate_parts_resolve_and_keep_unresolved_parts() {
    let c = compile_yaml(&with_edge(
        &(backend("users", "")
            + &rule_route(
                "  - aggregate:\n      parts:\n      - {name: user, backendRef: {name: users}, path: /users/1, timeout: 250ms}\n      - {name: orders, backendRef: {name: orders}, path: /orders, onFailure: Tolerate}\n",
            )),
    ));
    let rule = route(&c.snapshot, &get("http://a/")).expect("served");
    let Action::Aggregate { parts } = &rule.action else {
        panic!("expected aggregate, got {:?}", rule.action)
    };
    assert_eq!(parts[0].backend.as_deref(), Some("shop/users"));
    assert_eq!(parts[0].timeout_ms, 250);
    assert_eq!(parts[1].backend, None);
    assert_eq!(parts[1].timeout_ms, 5_000);
    let f = findings(&c, "Route/shop/r");
    assert_eq!(f[0].field, "spec.rules[0].aggregate.parts[1].backendRef");
}

#[test]
fn rule_without_backends_is_served_and_answers_500() {
    let c = compile_yaml(&with_edge(&rule_route(
        "  - matches: [{path: {value: /x}}]\n",
    )));
    let rule = route(&c.snapshot, &get("http://a/x")).expect("served");
    assert!(backends(rule).is_empty());
}

#[test]
fn failover_targets_are_included_and_flattened_in_order() {
    let c = compile_yaml(&with_edge(
        &(backend(
            "primary",
            "  failover: [{name: secondary}, {name: tertiary}]\n",
        ) + &backend("secondary", "  failover: [{name: remote}]\n")
            + &backend("tertiary", "")
            + &backend("remote", "")
            + &backend("unused", "")
            + &rule_route("  - backendRefs: [{name: primary}]\n")),
    ));
    assert_eq!(
        c.snapshot.backends["shop/primary"].failover,
        ["shop/secondary", "shop/remote", "shop/tertiary"]
    );
    assert_eq!(
        c.snapshot.backends["shop/secondary"].failover,
        ["shop/remote"]
    );
    assert!(c.snapshot.backends.contains_key("shop/tertiary"));
    assert!(!c.snapshot.backends.contains_key("shop/unused"));
}

#[test]
fn missing_and_duplicate_failover_targets_are_reported_on_the_backend() {
    let c = compile_yaml(&with_edge(
        &(backend(
            "primary",
            "  failover: [{name: secondary}, {name: secondary}, {name: ghost}, {name: primary}]\n",
        ) + &backend("secondary", "")
            + &rule_route("  - backendRefs: [{name: primary}]\n")),
    ));
    assert_eq!(
        c.snapshot.backends["shop/primary"].failover,
        ["shop/secondary"]
    );
    let f = findings(&c, "ServiceBackend/shop/primary");
    let fields: Vec<(&str, Severity)> = f.iter().map(|d| (d.field.as_str(), d.severity)).collect();
    assert_eq!(
        fields,
        [
            ("spec.failover[1]", Severity::Warning),
            ("spec.failover[2]", Severity::Error),
            ("spec.failover[3]", Severity::Warning),
        ]
    );
    assert_eq!(f[1].reason, reason::BACKEND_NOT_FOUND);
}

#[test]
fn failover_cycles_are_reported_and_each_backend_appears_once() {
    let c = compile_yaml(&with_edge(
        &(backend("a", "  failover: [{name: b}]\n")
            + &backend("b", "  failover: [{name: a}]\n")
            + &rule_route("  - backendRefs: [{name: a}]\n")),
    ));
    assert_eq!(c.snapshot.backends["shop/a"].failover, ["shop/b"]);
    assert_eq!(c.snapshot.backends["shop/b"].failover, ["shop/a"]);
    let f = findings(&c, "ServiceBackend/shop/a");
    assert!(f.iter().any(|d| d.message.contains("a -> b -> a")), "{f:?}");
}

#[test]
fn invalid_backend_is_left_out_and_its_share_answers_500() {
    let broken = "---
apiVersion: portcullis.dev/v1alpha1
kind: ServiceBackend
metadata: {name: orders, namespace: shop}
spec:
  service: {name: orders, port: 80}
  endpoints: [{address: 10.0.0.1, port: 8080}]
";
    let c = compile_yaml(&with_edge(
        &(broken.to_owned() + &rule_route("  - backendRefs: [{name: orders}]\n")),
    ));
    let rule = route(&c.snapshot, &get("http://a/")).expect("served");
    assert_eq!(backends(rule), [(None, 1)]);
    assert_eq!(
        parents(&c, "shop/r")[0].resolved_refs.reason,
        reason::INVALID_BACKEND
    );
    assert!(!findings(&c, "ServiceBackend/shop/orders").is_empty());
    assert!(c.snapshot.backends.is_empty());
}

#[test]
fn service_discovery_names_the_service_in_the_backend_namespace() {
    let svc = "---
apiVersion: portcullis.dev/v1alpha1
kind: ServiceBackend
metadata: {name: orders, namespace: shop}
spec:
  service: {name: orders-svc, port: 8080}
  loadBalancer: {policy: ConsistentHash, consistentHash: {header: X-User}}
";
    let c = compile_yaml(&with_edge(
        &(svc.to_owned() + &rule_route("  - backendRefs: [{name: orders}]\n")),
    ));
    let b = &c.snapshot.backends["shop/orders"];
    assert_eq!(
        b.discovery,
        Discovery::Service {
            namespace: "shop".to_owned(),
            name: "orders-svc".to_owned(),
            port: 8080
        }
    );
    assert_eq!(
        b.load_balancer.hash_on,
        Some(portcullis_config::snapshot::HashOn::Header {
            name: "x-user".to_owned()
        })
    );
}
