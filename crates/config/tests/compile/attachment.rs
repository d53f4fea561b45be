//! parentRefs, sectionName, port and allowedRoutes.

use portcullis_config::diagnostics::reason;

use crate::fixture::{compile_yaml, get, parents, served_by};

const GATEWAY: &str = "apiVersion: portcullis.dev/v1alpha1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  listeners:
  - {name: web, port: 80, protocol: HTTP}
  - {name: admin, port: 8080, protocol: HTTP}
  - name: public
    port: 9090
    protocol: HTTP
    allowedRoutes: {namespaces: {from: All}}
  - name: teams
    port: 7070
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Selector
        selector:
          matchLabels: {gateway-access: granted}
          matchExpressions:
          - {key: env, operator: In, values: [prod]}
";

fn route(namespace: &str, name: &str, parent: &str) -> String {
    format!(
        "---
apiVersion: portcullis.dev/v1alpha1
kind: Route
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  parentRefs: [{parent}]
  rules:
  - backendRefs: [{{name: api}}]
"
    )
}

#[test]
fn section_name_attaches_to_that_listener_only() {
    let c = compile_yaml(
        &(GATEWAY.to_owned() + &route("shop", "r", "{name: edge, sectionName: admin}")),
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://a.com:8080/")),
        "shop/r#0"
    );
    assert_eq!(served_by(&c.snapshot, &get("http://a.com:80/")), "404");
    let p = parents(&c, "shop/r");
    assert!(p[0].accepted.status);
    assert_eq!(p[0].listeners, ["admin"]);
}

#[test]
fn port_attaches_to_the_listeners_on_that_port() {
    let c = compile_yaml(&(GATEWAY.to_owned() + &route("shop", "r", "{name: edge, port: 80}")));
    assert_eq!(served_by(&c.snapshot, &get("http://a.com/")), "shop/r#0");
    assert_eq!(served_by(&c.snapshot, &get("http://a.com:8080/")), "404");
}

#[test]
fn section_name_and_port_must_both_match_one_listener() {
    let c = compile_yaml(
        &(GATEWAY.to_owned() + &route("shop", "r", "{name: edge, sectionName: admin, port: 80}")),
    );
    let p = parents(&c, "shop/r");
    assert!(!p[0].accepted.status);
    assert_eq!(p[0].accepted.reason, reason::NO_MATCHING_PARENT);
    assert_eq!(served_by(&c.snapshot, &get("http://a.com:8080/")), "404");
}

#[test]
fn unknown_section_name_is_no_matching_parent() {
    let c = compile_yaml(
        &(GATEWAY.to_owned() + &route("shop", "r", "{name: edge, sectionName: nope}")),
    );
    let p = parents(&c, "shop/r");
    assert_eq!(p[0].accepted.reason, reason::NO_MATCHING_PARENT);
    assert!(
        p[0].accepted.message.contains("nope"),
        "{}",
        p[0].accepted.message
    );
}

#[test]
fn without_section_name_a_route_attaches_to_every_listener_that_admits_it() {
    let c = compile_yaml(&(GATEWAY.to_owned() + &route("shop", "r", "{name: edge}")));
    let p = parents(&c, "shop/r");
    assert_eq!(p[0].listeners, ["web", "admin", "public"]);
    for port in [80, 8080, 9090] {
        assert_eq!(
            served_by(&c.snapshot, &get(&format!("http://a.com:{port}/"))),
            "shop/r#0"
        );
    }
    assert_eq!(served_by(&c.snapshot, &get("http://a.com:7070/")), "404");
}

#[test]
fn same_namespace_listeners_refuse_routes_from_other_namespaces() {
    let c = compile_yaml(
        &(GATEWAY.to_owned()
            + &route(
                "other",
                "r",
                "{name: edge, namespace: shop, sectionName: web}",
            )),
    );
    let p = parents(&c, "other/r");
    assert!(!p[0].accepted.status);
    assert_eq!(p[0].accepted.reason, reason::NOT_ALLOWED_BY_LISTENERS);
    assert_eq!(served_by(&c.snapshot, &get("http://a.com/")), "404");
}

#[test]
fn from_all_admits_routes_from_any_namespace() {
    let c =
        compile_yaml(&(GATEWAY.to_owned() + &route("other", "r", "{name: edge, namespace: shop}")));
    let p = parents(&c, "other/r");
    assert!(p[0].accepted.status);
    assert_eq!(p[0].listeners, ["public"]);
    assert_eq!(
        served_by(&c.snapshot, &get("http://a.com:9090/")),
        "other/r#0"
    );
}

#[test]
fn selector_admits_routes_from_namespaces_whose_labels_match() {
    let namespaces = "---
kind: Namespace
metadata: {name: team-a, labels: {gateway-access: granted, env: prod}}
---
kind: Namespace
metadata: {name: team-b, labels: {gateway-access: granted, env: dev}}
";
    let c = compile_yaml(
        &(GATEWAY.to_owned()
            + namespaces
            + &route(
                "team-a",
                "a",
                "{name: edge, namespace: shop, sectionName: teams}",
            )
            + &route(
                "team-b",
                "b",
                "{name: edge, namespace: shop, sectionName: teams}",
            )
            + &route(
                "team-c",
                "c",
                "{name: edge, namespace: shop, sectionName: teams}",
            )),
    );
    assert!(parents(&c, "team-a/a")[0].accepted.status);
    for r in ["team-b/b", "team-c/c"] {
        assert_eq!(
            parents(&c, r)[0].accepted.reason,
            reason::NOT_ALLOWED_BY_LISTENERS,
            "{r}"
        );
    }
    assert_eq!(
        served_by(&c.snapshot, &get("http://a.com:7070/")),
        "team-a/a#0"
    );
}

#[test]
fn routes_of_other_gateways_are_ignored() {
    let c = compile_yaml(
        &(GATEWAY.to_owned()
            + &route("shop", "elsewhere", "{name: other-gateway}")
            + &route("other", "same-name-other-ns", "{name: edge}")),
    );
    assert!(c.diagnostics.parents.is_empty());
    assert_eq!(served_by(&c.snapshot, &get("http://a.com/")), "404");
}

#[test]
fn listener_status_counts_attached_routes() {
    let c = compile_yaml(
        &(GATEWAY.to_owned()
            + &route("shop", "a", "{name: edge}")
            + &route("shop", "b", "{name: edge, sectionName: admin}")
            + &route("other", "c", "{name: edge, namespace: shop}")),
    );
    let counts: Vec<(&str, u32)> = c
        .diagnostics
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.attached_routes))
        .collect();
    assert_eq!(
        counts,
        [("web", 1), ("admin", 2), ("public", 2), ("teams", 0)]
    );
    assert_eq!(c.diagnostics.attached_routes, 3);
}

#[test]
fn each_parent_ref_naming_the_gateway_gets_its_own_result() {
    let c = compile_yaml(
        &(GATEWAY.to_owned()
            + &route(
                "shop",
                "r",
                "{name: edge, sectionName: web}, {name: edge, sectionName: nope}, {name: other}",
            )),
    );
    let p = parents(&c, "shop/r");
    assert_eq!(p.len(), 2);
    assert_eq!((p[0].parent_ref_index, p[0].accepted.status), (0, true));
    assert_eq!(
        (p[1].parent_ref_index, p[1].accepted.reason),
        (1, reason::NO_MATCHING_PARENT)
    );
    assert_eq!(served_by(&c.snapshot, &get("http://a.com/")), "shop/r#0");
}
