//! Inheritance of the Gateway's `defaults` into rules.

use portcullis_config::{
    diagnostics::reason,
    snapshot::{ApiKeyLocation, AuthConfig, RateLimitFailureMode, RateLimitScope},
};

use crate::fixture::{compile_yaml, findings, get, parents, route, shop_route};

const GATEWAY: &str = "apiVersion: portcullis.dev/v1alpha1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  defaults:
    timeouts: {request: 10s, backendRequest: 2s, backendIdle: 5s}
    requestBody: {maxBytes: 1048576}
    auth:
      type: ApiKey
      apiKey: {secretRef: {name: keys, key: consumers}}
    rateLimit: {requests: 100, period: 1m}
";

fn rules(rules: &str) -> String {
    format!("{GATEWAY}---\n{}", shop_route(rules))
}

#[test]
fn rules_inherit_gateway_defaults() {
    let c = compile_yaml(&rules("  - backendRefs: [{name: api}]\n"));
    let rule = route(&c.snapshot, &get("http://a/")).expect("served");
    assert_eq!(rule.policies.timeouts.request_ms, Some(10_000));
    assert_eq!(rule.policies.timeouts.backend_request_ms, Some(2_000));
    assert_eq!(rule.policies.timeouts.backend_idle_ms, Some(5_000));
    assert_eq!(rule.policies.max_request_body_bytes, Some(1_048_576));
    match &rule.policies.auth {
        Some(AuthConfig::ApiKey {
            keys,
            location,
            keep_credential,
        }) => {
            // Secrets of defaults live in the Gateway's namespace.
            assert_eq!(keys.path, "shop/keys/consumers");
            assert_eq!(location, &ApiKeyLocation::Header("x-api-key".to_owned()));
            assert!(!keep_credential, "the key is stripped by default");
        }
        other => panic!("expected inherited API-key auth, got {other:?}"),
    }
    let limit = rule
        .policies
        .rate_limit
        .as_ref()
        .expect("inherited rate limit");
    assert_eq!((limit.requests, limit.period_ms), (100, 60_000));
}

#[test]
fn a_rule_policy_replaces_the_default_as_a_whole() {
    let c = compile_yaml(&rules(
        "  - backendRefs: [{name: api}]\n    timeouts: {request: 3s}\n    rateLimit: {requests: 5}\n    requestBody: {maxBytes: 100}\n",
    ));
    let rule = route(&c.snapshot, &get("http://a/")).expect("served");
    // No field-by-field merge: backendRequest is not inherited once the rule sets timeouts.
    assert_eq!(rule.policies.timeouts.request_ms, Some(3_000));
    assert_eq!(rule.policies.timeouts.backend_request_ms, None);
    assert_eq!(rule.policies.timeouts.backend_idle_ms, None);
    assert_eq!(rule.policies.max_request_body_bytes, Some(100));
    let limit = rule.policies.rate_limit.as_ref().expect("own rate limit");
    assert_eq!((limit.requests, limit.period_ms), (5, 1_000));
    assert!(rule.policies.auth.is_some(), "auth still inherited");
}

#[test]
fn auth_type_none_opts_a_rule_out_of_default_auth() {
    let c = compile_yaml(&rules(
        "  - backendRefs: [{name: api}]\n    auth: {type: None}\n",
    ));
    let rule = route(&c.snapshot, &get("http://a/")).expect("served");
    assert_eq!(rule.policies.auth, None);
}

#[test]
fn zero_timeout_is_kept_as_explicitly_disabled() {
    let c = compile_yaml(&rules(
        "  - backendRefs: [{name: api}]\n    timeouts: {request: 0s}\n",
    ));
    let rule = route(&c.snapshot, &get("http://a/")).expect("served");
    assert_eq!(rule.policies.timeouts.request_ms, Some(0));
}

#[test]
fn rule_secrets_are_read_from_the_route_namespace() {
    let yaml = rules(
        "  - backendRefs: [{name: api}]\n    auth: {type: Basic, basic: {secretRef: {name: users, key: htpasswd}}}\n",
    )
    .replace("metadata: {name: r, namespace: shop}", "metadata: {name: r, namespace: team}")
    .replace("parentRefs: [{name: edge}]", "parentRefs: [{name: edge, namespace: shop}]")
    .replace("{name: http, port: 80, protocol: HTTP}", "{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}");
    let c = compile_yaml(&yaml);
    let rule = route(&c.snapshot, &get("http://a/")).expect("served");
    match &rule.policies.auth {
        Some(AuthConfig::Basic { users, .. }) => assert_eq!(users.path, "team/users/htpasswd"),
        other => panic!("expected basic auth, got {other:?}"),
    }
}

#[test]
fn global_rate_limit_without_shared_state_refuses_the_route() {
    let c = compile_yaml(&rules(
        "  - backendRefs: [{name: api}]\n    rateLimit: {requests: 5, scope: Global}\n",
    ));
    let p = parents(&c, "shop/r");
    assert!(!p[0].accepted.status);
    assert_eq!(
        route(&c.snapshot, &get("http://a/")),
        None,
        "never served without its limit"
    );
    let f = findings(&c, "Route/shop/r");
    assert!(
        f.iter().any(|d| d.field == "spec.rules[0].rateLimit.scope"),
        "{f:?}"
    );
}

#[test]
fn global_rate_limit_with_shared_state_is_served() {
    let yaml = rules("  - backendRefs: [{name: api}]\n    rateLimit: {requests: 5, scope: Global}\n")
        .replace("  defaults:\n", "  sharedState: {redis: {address: 'redis:6379', passwordSecretRef: {name: redis, key: password}}}\n  defaults:\n");
    let c = compile_yaml(&yaml);
    let rule = route(&c.snapshot, &get("http://a/")).expect("served");
    assert_eq!(
        rule.policies.rate_limit.as_ref().map(|r| r.scope),
        Some(RateLimitScope::Global)
    );
    let redis = &c
        .snapshot
        .shared_state
        .as_ref()
        .expect("shared state")
        .redis;
    assert_eq!(redis.address, "redis:6379");
    assert_eq!(
        redis.password.as_ref().map(|p| p.path.as_str()),
        Some("shop/redis/password")
    );
}

#[test]
fn a_global_rate_limit_fails_open_unless_it_says_fail_closed() {
    let yaml = rules(
        "  - backendRefs: [{name: api}]\n    rateLimit: {requests: 5, scope: Global}\n  \
         - matches: [{path: {value: /strict}}]\n    backendRefs: [{name: api}]\n    \
         rateLimit: {requests: 5, scope: Global, failureMode: FailClosed}\n",
    )
    .replace(
        "  defaults:\n",
        "  sharedState: {redis: {address: 'redis:6379'}}\n  defaults:\n",
    );
    let c = compile_yaml(&yaml);
    let mode = |url: &str| {
        route(&c.snapshot, &get(url))
            .and_then(|rule| rule.policies.rate_limit.as_ref())
            .map(|limit| limit.failure_mode)
    };
    assert_eq!(mode("http://a/"), Some(RateLimitFailureMode::FailOpen));
    assert_eq!(
        mode("http://a/strict"),
        Some(RateLimitFailureMode::FailClosed)
    );
    // The default is left out of the stored snapshot: snapshots written before the field
    // existed keep their revision.
    let stored = c.snapshot.to_json().expect("json");
    assert_eq!(stored.matches("failureMode").count(), 1, "{stored}");
}

#[test]
fn shared_cache_in_gateway_defaults_without_shared_state_refuses_inheriting_rules() {
    let yaml = rules("  - backendRefs: [{name: api}]\n  - matches: [{path: {value: /own}}]\n    backendRefs: [{name: api}]\n    cache: {ttl: 1m}\n")
        .replace("  defaults:\n", "  defaults:\n    cache: {ttl: 10s, backend: Shared}\n");
    let c = compile_yaml(&yaml);
    let gw = findings(&c, "Gateway/shop/edge");
    assert!(
        gw.iter().any(|d| d.field == "spec.defaults.cache.backend"),
        "{gw:?}"
    );
    let route_findings = findings(&c, "Route/shop/r");
    assert!(
        route_findings
            .iter()
            .any(|d| d.field == "spec.rules[0]" && d.message.contains("spec.defaults.cache")),
        "{route_findings:?}"
    );
    assert_eq!(parents(&c, "shop/r")[0].accepted.reason, reason::INVALID);
}

#[test]
fn a_rule_lists_the_upgrades_it_tunnels_but_never_h2c() {
    let c = compile_yaml(&rules(
        "  - backendRefs: [{name: api}]\n    upgrades: [MQTT, websocket]\n",
    ));
    let rule = route(&c.snapshot, &get("http://a/")).expect("served");
    assert_eq!(
        rule.upgrades,
        Some(vec!["mqtt".to_owned(), "websocket".to_owned()])
    );
    let c = compile_yaml(&rules(
        "  - backendRefs: [{name: api}]\n    upgrades: [websocket, h2c, \"a b\"]\n",
    ));
    let f = findings(&c, "Route/shop/r");
    for field in ["spec.rules[0].upgrades[1]", "spec.rules[0].upgrades[2]"] {
        assert!(f.iter().any(|d| d.field == field), "{field}: {f:?}");
    }
    assert!(route(&c.snapshot, &get("http://a/")).is_none(), "refused");
}

#[test]
fn retry_codes_combine_with_the_classes_and_are_checked() {
    use portcullis_config::snapshot::RetryOn;
    let retry = |yaml: &str| {
        let c = compile_yaml(&rules(&format!(
            "  - backendRefs: [{{name: api}}]\n    retry: {yaml}\n"
        )));
        route(&c.snapshot, &get("http://a/"))
            .and_then(|rule| rule.policies.retry.clone())
            .expect("served with a retry")
    };
    let codes = retry("{codes: [503, 429, 503]}");
    assert_eq!(codes.codes, [429, 503], "sorted, once each");
    assert_eq!(
        codes.retry_on,
        [RetryOn::ConnectFailure],
        "codes say the rest"
    );
    let both = retry("{codes: [429], retryOn: [GatewayError]}");
    assert_eq!(both.retry_on, [RetryOn::GatewayError]);
    assert_eq!(both.codes, [429]);
    let classes = retry("{attempts: 1}");
    assert_eq!(
        classes.retry_on,
        [RetryOn::ConnectFailure, RetryOn::GatewayError]
    );
    assert!(classes.codes.is_empty());

    let c = compile_yaml(&rules(
        "  - backendRefs: [{name: api}]\n    retry: {codes: [500, 302]}\n",
    ));
    let f = findings(&c, "Route/shop/r");
    assert!(
        f.iter().any(|d| d.field == "spec.rules[0].retry.codes[1]"
            && d.message == "retry code 302 is not an HTTP status code from 400 to 599"),
        "{f:?}"
    );
    assert!(route(&c.snapshot, &get("http://a/")).is_none(), "refused");
}
