//! Checks beyond the CRD schema: each refuses the Route with a reason and a field path.

use portcullis_config::{
    diagnostics::reason,
    snapshot::{Action, FilterConfig, PathModifierType},
};

use crate::fixture::{
    compile_yaml, findings, get, parents, route, served_by, shop_route, with_edge,
};

fn rule_route(rule: &str) -> String {
    with_edge(&shop_route(&format!(
        "  - backendRefs: [{{name: api}}]
    matches: [{{path: {{value: /ok}}}}]
{rule}"
    )))
}

/// The Route is refused with `reason` and a finding at `field`.
fn assert_refused(yaml: &str, reason: &str, field: &str) {
    let c = compile_yaml(yaml);
    let p = parents(&c, "shop/r");
    assert!(!p[0].accepted.status, "expected the Route to be refused");
    assert_eq!(p[0].accepted.reason, reason);
    let f = findings(&c, "Route/shop/r");
    assert!(
        f.iter().any(|d| d.field == field && d.reason == reason),
        "{f:?}"
    );
    // A refused Route serves nothing, not even its valid rules.
    assert_eq!(served_by(&c.snapshot, &get("http://a/ok")), "404");
}

#[test]
fn replace_prefix_match_requires_exactly_one_path_prefix_match() {
    let two_matches = "  - matches: [{path: {value: /a}}, {path: {value: /b}}]
    backendRefs: [{name: api}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}]
";
    assert_refused(
        &rule_route(two_matches),
        reason::UNSUPPORTED_VALUE,
        "spec.rules[1].filters[0].urlRewrite.path",
    );
    let exact = "  - matches: [{path: {type: Exact, value: /a}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}]
";
    assert_refused(
        &rule_route(exact),
        reason::UNSUPPORTED_VALUE,
        "spec.rules[1].filters[0].requestRedirect.path",
    );
}

#[test]
fn replace_prefix_match_with_one_prefix_match_is_served() {
    let ok = "  - matches: [{path: {value: /a/}}]
    backendRefs: [{name: api}]
    filters: [{type: URLRewrite, urlRewrite: {hostname: internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: ''}}}]
";
    let c = compile_yaml(&rule_route(ok));
    let rule = route(&c.snapshot, &get("http://a/a/b")).expect("served");
    match &rule.filters[0] {
        FilterConfig::UrlRewrite(rw) => {
            assert_eq!(rw.hostname.as_deref(), Some("internal"));
            let path = rw.path.as_ref().expect("path");
            assert_eq!(
                (path.kind, path.value.as_str()),
                (PathModifierType::ReplacePrefixMatch, "")
            );
        }
        other => panic!("expected URLRewrite, got {other:?}"),
    }
}

#[test]
fn invalid_regular_expressions_are_refused_with_their_field() {
    let path = "  - matches: [{path: {type: RegularExpression, value: '/users/(['}}]\n    backendRefs: [{name: api}]\n";
    assert_refused(
        &rule_route(path),
        reason::UNSUPPORTED_VALUE,
        "spec.rules[1].matches[0].path.value",
    );
    let header = "  - matches: [{headers: [{name: x, type: RegularExpression, value: '*a'}]}]\n    backendRefs: [{name: api}]\n";
    assert_refused(
        &rule_route(header),
        reason::UNSUPPORTED_VALUE,
        "spec.rules[1].matches[0].headers[0].value",
    );
    let query = "  - matches: [{queryParams: [{name: x, type: RegularExpression, value: '(('}]}]\n    backendRefs: [{name: api}]\n";
    assert_refused(
        &rule_route(query),
        reason::UNSUPPORTED_VALUE,
        "spec.rules[1].matches[0].queryParams[0].value",
    );
}

#[test]
fn unparseable_durations_are_refused_with_their_field() {
    let rule = "  - backendRefs: [{name: api}]\n    timeouts: {request: 1.5s}\n";
    assert_refused(
        &rule_route(rule),
        reason::INVALID,
        "spec.rules[1].timeouts.request",
    );
    let retry = "  - backendRefs: [{name: api}]\n    retry: {backoff: soon}\n";
    assert_refused(
        &rule_route(retry),
        reason::INVALID,
        "spec.rules[1].retry.backoff",
    );
}

#[test]
fn redirect_with_rewrite_is_incompatible() {
    let rule = "  - filters:
    - {type: RequestRedirect, requestRedirect: {hostname: a.example}}
    - {type: URLRewrite, urlRewrite: {hostname: b.example}}
";
    assert_refused(
        &rule_route(rule),
        reason::INCOMPATIBLE_FILTERS,
        "spec.rules[1].filters",
    );
}

#[test]
fn redirect_with_backends_is_incompatible() {
    let rule = "  - backendRefs: [{name: api}]\n    filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]\n";
    assert_refused(
        &rule_route(rule),
        reason::INCOMPATIBLE_FILTERS,
        "spec.rules[1].filters[0]",
    );
}

#[test]
fn redirect_becomes_the_rule_action_with_unset_fields_left_to_the_request() {
    let rule = "  - matches: [{path: {value: /old}}]\n    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301}}]\n";
    let c = compile_yaml(&rule_route(rule));
    let rule = route(&c.snapshot, &get("http://a/old")).expect("served");
    let Action::Redirect(r) = &rule.action else {
        panic!("expected a redirect, got {:?}", rule.action)
    };
    assert_eq!(r.status_code, 301);
    assert_eq!(
        (r.hostname.as_deref(), r.port, r.path.as_ref()),
        (None, None, None)
    );
    assert!(rule.filters.is_empty());
}

#[test]
fn header_names_are_lowercased_and_duplicates_keep_the_first() {
    let rule = "  - matches: [{headers: [{name: X-Env, value: a}, {name: x-env, value: b}]}]\n    backendRefs: [{name: api}]\n    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Set, value: v}], remove: [X-Gone]}}]\n";
    let c = compile_yaml(&rule_route(rule));
    let rule = route(&c.snapshot, &get("http://a/").header("x-env", "a")).expect("served");
    assert_eq!(rule.rule_index, 1);
    match &rule.filters[0] {
        FilterConfig::RequestHeaderModifier(m) => {
            assert_eq!(m.set[0].name, "x-set");
            assert_eq!(m.remove, ["x-gone"]);
        }
        other => panic!("unexpected filter {other:?}"),
    }
    assert_eq!(
        served_by(&c.snapshot, &get("http://a/").header("x-env", "b")),
        "404"
    );
    assert!(
        parents(&c, "shop/r")[0].accepted.status,
        "a duplicate is only a warning"
    );
}

#[test]
fn gateway_problems_are_reported_on_the_gateway() {
    let yaml = "apiVersion: portcullis.dev/v1alpha1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  drain: {delay: 5 seconds}
  listeners:
  - {name: web, port: 80, protocol: HTTP}
  - {name: web, port: 81, protocol: HTTP}
  - {name: tls, port: 443, protocol: HTTPS}
";
    let c = compile_yaml(yaml);
    let fields: Vec<&str> = findings(&c, "Gateway/shop/edge")
        .iter()
        .map(|d| d.field.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.drain.delay",
            "spec.listeners[1].name",
            "spec.listeners[2].tls"
        ]
    );
    // Unusable listeners are not served; the drain falls back to its default.
    assert_eq!(
        c.snapshot
            .listeners
            .iter()
            .map(|l| l.port)
            .collect::<Vec<_>>(),
        [80]
    );
    assert_eq!(c.snapshot.drain.delay_ms, 5_000);
}
