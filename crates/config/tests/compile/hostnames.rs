//! Listener ∩ route hostnames, hostname specificity between routes, and listener isolation.

use portcullis_config::diagnostics::reason;

use crate::fixture::{compile_yaml, get, parents, served_by};

/// A Gateway whose listeners on port 80 are given as YAML flow mappings.
fn gateway(listeners: &[&str]) -> String {
    let mut out = "apiVersion: portcullis.dev/v1alpha1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  listeners:
"
    .to_owned();
    for l in listeners {
        out += &format!("  - {l}\n");
    }
    out
}

fn route(name: &str, hostnames: &[&str], section: Option<&str>) -> String {
    let section = section.map_or(String::new(), |s| format!(", sectionName: {s}"));
    format!(
        "---
apiVersion: portcullis.dev/v1alpha1
kind: Route
metadata: {{name: {name}, namespace: shop}}
spec:
  parentRefs: [{{name: edge{section}}}]
  hostnames: [{}]
  rules:
  - backendRefs: [{{name: api}}]
",
        hostnames.join(", ")
    )
}

#[test]
fn route_without_hostnames_on_listener_without_hostname_serves_every_host() {
    let c = compile_yaml(
        &(gateway(&["{name: web, port: 80, protocol: HTTP}"]) + &route("r", &[], None)),
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://anything.example/")),
        "shop/r#0"
    );
}

#[test]
fn route_without_hostnames_takes_the_listener_hostname() {
    let c = compile_yaml(
        &(gateway(&["{name: web, port: 80, protocol: HTTP, hostname: '*.example.com'}"])
            + &route("r", &[], None)),
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://a.example.com/")),
        "shop/r#0"
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://a.b.example.com/")),
        "shop/r#0"
    );
    assert_eq!(served_by(&c.snapshot, &get("http://example.com/")), "404");
    assert_eq!(served_by(&c.snapshot, &get("http://other.org/")), "404");
}

#[test]
fn host_header_port_is_ignored_when_matching() {
    let c = compile_yaml(
        &(gateway(&["{name: web, port: 80, protocol: HTTP}"])
            + &route("r", &["very.specific.com"], None)),
    );
    // The reference router strips the port like the proxy does; the snapshot holds bare names.
    assert_eq!(
        c.snapshot.listeners[0].virtual_hosts[0].hostname,
        "very.specific.com"
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://very.specific.com:80/")),
        "shop/r#0"
    );
}

#[test]
fn route_wildcard_on_exact_listener_serves_only_the_listener_name() {
    let c = compile_yaml(
        &(gateway(&["{name: web, port: 80, protocol: HTTP, hostname: very.specific.com}"])
            + &route("r", &["'*.specific.com'"], None)),
    );
    let hosts: Vec<&str> = c.snapshot.listeners[0]
        .virtual_hosts
        .iter()
        .map(|v| v.hostname.as_str())
        .collect();
    assert_eq!(hosts, ["very.specific.com"]);
    assert_eq!(
        served_by(&c.snapshot, &get("http://very.specific.com/")),
        "shop/r#0"
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://other.specific.com/")),
        "404"
    );
}

#[test]
fn route_wildcard_wider_than_listener_wildcard_is_narrowed_to_it() {
    let c = compile_yaml(
        &(gateway(&["{name: web, port: 80, protocol: HTTP, hostname: '*.foo.example.com'}"])
            + &route("r", &["'*.example.com'"], None)),
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://a.foo.example.com/")),
        "shop/r#0"
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://a.bar.example.com/")),
        "404"
    );
}

#[test]
fn route_hostnames_outside_the_listener_are_ignored() {
    let c = compile_yaml(
        &(gateway(&["{name: web, port: 80, protocol: HTTP, hostname: '*.example.com'}"])
            + &route("r", &["a.example.com", "other.org"], None)),
    );
    assert!(parents(&c, "shop/r")[0].accepted.status);
    assert_eq!(
        served_by(&c.snapshot, &get("http://a.example.com/")),
        "shop/r#0"
    );
    assert_eq!(served_by(&c.snapshot, &get("http://other.org/")), "404");
}

#[test]
fn exact_route_hostname_does_not_intersect_the_listener_wildcard_of_its_own_name() {
    let c = compile_yaml(
        &(gateway(&["{name: web, port: 80, protocol: HTTP, hostname: '*.wildcard.io'}"])
            + &route("r", &["wildcard.io"], None)),
    );
    let p = parents(&c, "shop/r");
    assert!(!p[0].accepted.status);
    assert_eq!(p[0].accepted.reason, reason::NO_MATCHING_LISTENER_HOSTNAME);
    assert_eq!(served_by(&c.snapshot, &get("http://wildcard.io/")), "404");
}

#[test]
fn route_with_more_specific_hostname_wins_regardless_of_paths() {
    let c = compile_yaml(
        &(gateway(&["{name: web, port: 80, protocol: HTTP}"])
            + &route("wild", &["'*.example.com'"], None)
            + &route("exact", &["api.example.com"], None)
            + &route("any", &[], None)),
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://api.example.com/x")),
        "shop/exact#0"
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://www.example.com/x")),
        "shop/wild#0"
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://other.org/x")),
        "shop/any#0"
    );
}

#[test]
fn no_fallback_to_a_less_specific_virtual_host_when_paths_do_not_match() {
    let exact = "---
apiVersion: portcullis.dev/v1alpha1
kind: Route
metadata: {name: exact, namespace: shop}
spec:
  parentRefs: [{name: edge}]
  hostnames: [api.example.com]
  rules:
  - matches: [{path: {type: Exact, value: /only}}]
    backendRefs: [{name: api}]
";
    let c = compile_yaml(
        &(gateway(&["{name: web, port: 80, protocol: HTTP}"]) + exact + &route("any", &[], None)),
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://api.example.com/only")),
        "shop/exact#0"
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://api.example.com/other")),
        "404"
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://www.example.com/other")),
        "shop/any#0"
    );
}

#[test]
fn listener_isolation_requests_for_a_listener_hostname_never_reach_other_listeners_routes() {
    // GatewayHTTPListenerIsolation: each request is served by the most specific listener only.
    let c = compile_yaml(
        &(gateway(&[
            "{name: empty, port: 80, protocol: HTTP}",
            "{name: wildcard-example, port: 80, protocol: HTTP, hostname: '*.example.com'}",
            "{name: wildcard-foo, port: 80, protocol: HTTP, hostname: '*.foo.example.com'}",
            "{name: abc-foo, port: 80, protocol: HTTP, hostname: abc.foo.example.com}",
        ]) + &route("r-empty", &[], Some("empty"))
            + &route("r-wild-example", &[], Some("wildcard-example"))
            + &route("r-wild-foo", &[], Some("wildcard-foo"))
            + &route("r-abc-foo", &[], Some("abc-foo"))),
    );
    let cases = [
        ("bar.com", "shop/r-empty#0"),
        ("bar.example.com", "shop/r-wild-example#0"),
        ("bar.foo.example.com", "shop/r-wild-foo#0"),
        ("abc.foo.example.com", "shop/r-abc-foo#0"),
    ];
    for (host, expected) in cases {
        assert_eq!(
            served_by(&c.snapshot, &get(&format!("http://{host}/"))),
            expected,
            "{host}"
        );
    }
}

#[test]
fn listener_without_routes_still_isolates_its_hostname() {
    let c = compile_yaml(
        &(gateway(&[
            "{name: any, port: 80, protocol: HTTP}",
            "{name: quiet, port: 80, protocol: HTTP, hostname: quiet.example.com}",
        ]) + &route("r", &[], Some("any"))),
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://loud.example.com/")),
        "shop/r#0"
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://quiet.example.com/")),
        "404"
    );
}

#[test]
fn route_hostname_shadowed_by_a_more_specific_listener_is_not_served_and_is_reported() {
    // The route on the catch-all listener names a host that belongs to listener `api`.
    let c = compile_yaml(
        &(gateway(&[
            "{name: any, port: 80, protocol: HTTP}",
            "{name: api, port: 80, protocol: HTTP, hostname: '*.example.com'}",
        ]) + &route("catch-all", &["a.example.com", "b.org"], Some("any"))
            + &route("api", &[], Some("api"))),
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://a.example.com/")),
        "shop/api#0"
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://b.org/")),
        "shop/catch-all#0"
    );
    let warnings = crate::fixture::findings(&c, "Route/shop/catch-all");
    assert!(
        warnings
            .iter()
            .any(|d| d.message.contains("a.example.com") && d.message.contains("\"api\"")),
        "{warnings:?}"
    );
}

#[test]
fn virtual_hosts_are_ordered_exact_then_longer_wildcards_then_catch_all() {
    let c = compile_yaml(
        &(gateway(&["{name: web, port: 80, protocol: HTTP}"])
            + &route(
                "a",
                &["'*.example.com'", "'*.api.example.com'", "x.example.com"],
                None,
            )
            + &route("b", &[], None)),
    );
    let hosts: Vec<&str> = c.snapshot.listeners[0]
        .virtual_hosts
        .iter()
        .map(|v| v.hostname.as_str())
        .collect();
    assert_eq!(
        hosts,
        ["x.example.com", "*.api.example.com", "*.example.com", "*"]
    );
}
