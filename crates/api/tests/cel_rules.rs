//! Every CEL rule in the CRDs, accepting and refusing, evaluated through kube's client-side CEL
//! support against the same schema the API server gets.

use portcullis_api::{Gateway, Route, ServiceBackend};
use serde::de::DeserializeOwned;

fn parse<T: DeserializeOwned>(yaml: &str) -> T {
    serde_saphyr::from_str(yaml).expect("test manifest parses")
}

fn gateway(listeners: &str, extra: &str) -> Gateway {
    parse(&format!(
        "apiVersion: portcullis.dev/v1alpha1\nkind: Gateway\nmetadata: {{name: g, namespace: n}}\nspec:\n  listeners:\n{listeners}\n{extra}"
    ))
}

fn route(rules: &str) -> Route {
    parse(&format!(
        "apiVersion: portcullis.dev/v1alpha1\nkind: Route\nmetadata: {{name: r, namespace: n}}\nspec:\n  parentRefs: [{{name: g}}]\n  rules:\n{rules}"
    ))
}

fn backend(spec: &str) -> ServiceBackend {
    parse(&format!(
        "apiVersion: portcullis.dev/v1alpha1\nkind: ServiceBackend\nmetadata: {{name: b, namespace: n}}\nspec:\n{spec}"
    ))
}

/// The messages of every failed rule.
fn failures<T: kube::CustomResourceExt + serde::Serialize>(object: &T) -> Vec<String> {
    match kube::core::cel::validate_cel(object) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

fn assert_refused<T: kube::CustomResourceExt + serde::Serialize>(object: &T, message: &str) {
    let failed = failures(object);
    assert!(
        failed.iter().any(|m| m.contains(message)),
        "expected a failure containing {message:?}, got {failed:?}"
    );
}

fn assert_accepted<T: kube::CustomResourceExt + serde::Serialize>(object: &T) {
    assert_eq!(failures(object), Vec::<String>::new());
}

const HTTP: &str = "    - {name: web, port: 80, protocol: HTTP}";

#[test]
fn https_listener_requires_tls() {
    assert_refused(
        &gateway("    - {name: s, port: 443, protocol: HTTPS}", ""),
        "an HTTPS listener needs tls.certificateRefs",
    );
    assert_accepted(&gateway(
        "    - {name: s, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]}}",
        "",
    ));
}

#[test]
fn plain_http_listener_refuses_tls() {
    assert_refused(
        &gateway(
            "    - {name: s, port: 80, protocol: HTTP, tls: {certificateRefs: [{name: cert}]}}",
            "",
        ),
        "tls is only allowed on HTTPS listeners",
    );
}

#[test]
fn listener_names_are_unique() {
    assert_refused(
        &gateway(
            &format!("{HTTP}\n    - {{name: web, port: 81, protocol: HTTP}}"),
            "",
        ),
        "listener names must be unique",
    );
    assert_accepted(&gateway(
        &format!("{HTTP}\n    - {{name: other, port: 81, protocol: HTTP}}"),
        "",
    ));
}

#[test]
fn one_port_carries_one_protocol() {
    assert_refused(
        &gateway(
            &format!(
                "{HTTP}\n    - {{name: s, port: 80, protocol: HTTPS, hostname: a.example.com, tls: {{certificateRefs: [{{name: c}}]}}}}"
            ),
            "",
        ),
        "listeners on the same port must use the same protocol",
    );
}

#[test]
fn listeners_sharing_a_port_need_distinct_hostnames() {
    assert_refused(
        &gateway(
            &format!("{HTTP}\n    - {{name: b, port: 80, protocol: HTTP}}"),
            "",
        ),
        "two listeners on the same port must not have the same hostname",
    );
    assert_accepted(&gateway(
        &format!("{HTTP}\n    - {{name: b, port: 80, protocol: HTTP, hostname: api.example.com}}"),
        "",
    ));
}

#[test]
fn autoscaling_min_must_not_exceed_max() {
    assert_refused(
        &gateway(HTTP, "  autoscaling: {minReplicas: 5, maxReplicas: 3}"),
        "minReplicas must not be greater than maxReplicas",
    );
    assert_accepted(&gateway(
        HTTP,
        "  autoscaling: {minReplicas: 2, maxReplicas: 6}",
    ));
}

#[test]
fn selector_namespaces_need_a_selector() {
    assert_refused(
        &gateway(
            "    - {name: web, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector}}}",
            "",
        ),
        "selector is required when from is Selector",
    );
    assert_accepted(&gateway(
        "    - {name: web, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: shop}}}}}",
        "",
    ));
}

#[test]
fn service_backend_needs_exactly_one_target() {
    assert_refused(
        &backend("  service: {name: s, port: 80}\n  endpoints: [{address: 10.0.0.1, port: 80}]"),
        "set exactly one of service or endpoints",
    );
    assert_refused(
        &backend("  protocol: HTTP1"),
        "set exactly one of service or endpoints",
    );
    assert_accepted(&backend("  service: {name: s, port: 80}"));
    assert_accepted(&backend("  endpoints: [{address: 10.0.0.1, port: 80}]"));
}

#[test]
fn consistent_hash_policy_needs_exactly_one_key() {
    assert_refused(
        &backend("  service: {name: s, port: 80}\n  loadBalancer: {policy: ConsistentHash}"),
        "consistentHash must be set when policy is ConsistentHash",
    );
    assert_refused(
        &backend(
            "  service: {name: s, port: 80}\n  loadBalancer: {policy: ConsistentHash, consistentHash: {header: x, clientIP: true}}",
        ),
        "set exactly one of header, cookie or clientIP",
    );
    assert_accepted(&backend(
        "  service: {name: s, port: 80}\n  loadBalancer: {policy: ConsistentHash, consistentHash: {cookie: session}}",
    ));
}

#[test]
fn a_rule_has_backends_or_an_aggregate_not_both() {
    assert_refused(
        &route(
            "    - backendRefs: [{name: a}]\n      aggregate: {parts: [{name: p, backendRef: {name: a}, path: /x}]}",
        ),
        "either to backendRefs or to an aggregate, not both",
    );
    // HTTPRoute: a rule with no backendRefs is valid and answers 500.
    assert_accepted(&route("    - matches: [{path: {value: /x}}]"));
    assert_accepted(&route("    - backendRefs: [{name: a}]"));
    assert_accepted(&route(
        "    - aggregate: {parts: [{name: p, backendRef: {name: a}, path: /x}]}",
    ));
}

#[test]
fn a_redirect_rule_answers_by_itself() {
    assert_accepted(&route(
        "    - filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301}}]",
    ));
    assert_refused(
        &route(
            "    - filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]\n      backendRefs: [{name: a}]",
        ),
        "a RequestRedirect rule answers by itself",
    );
}

#[test]
fn redirect_status_codes_are_the_redirect_ones() {
    assert_refused(
        &route("    - filters: [{type: RequestRedirect, requestRedirect: {statusCode: 200}}]"),
        "statusCode must be one of 301, 302, 303, 307, 308",
    );
}

#[test]
fn filter_settings_match_the_filter_type() {
    assert_refused(
        &route(
            "    - backendRefs: [{name: a}]\n      filters: [{type: RequestHeaderModifier, urlRewrite: {hostname: x}}]",
        ),
        "requestHeaderModifier must be set for type RequestHeaderModifier",
    );
    assert_refused(
        &route(
            "    - backendRefs: [{name: a}]\n      filters:\n        - {type: RequestHeaderModifier, requestHeaderModifier: {remove: [a]}}\n        - {type: RequestHeaderModifier, requestHeaderModifier: {remove: [b]}}",
        ),
        "each filter type except RequestMirror may appear at most once per rule",
    );
    assert_refused(
        &route(
            "    - filters:\n        - {type: RequestRedirect, requestRedirect: {scheme: https}}\n        - {type: URLRewrite, urlRewrite: {hostname: x}}",
        ),
        "RequestRedirect and URLRewrite cannot be combined",
    );
}

#[test]
fn path_values_start_with_a_slash_and_are_normalized() {
    assert_refused(
        &route("    - matches: [{path: {value: users}}]\n      backendRefs: [{name: a}]"),
        "path value must start with '/'",
    );
    assert_refused(
        &route("    - matches: [{path: {value: /a/../b}}]\n      backendRefs: [{name: a}]"),
        "path value must be normalized",
    );
    assert_accepted(&route(
        "    - matches: [{path: {type: RegularExpression, value: '^/v[0-9]+/'}}]\n      backendRefs: [{name: a}]",
    ));
}

#[test]
fn backend_request_timeout_fits_in_the_request_timeout() {
    assert_refused(
        &route("    - backendRefs: [{name: a}]\n      timeouts: {request: 1s, backendRequest: 2s}"),
        "backendRequest must not be longer than request",
    );
    assert_accepted(&route(
        "    - backendRefs: [{name: a}]\n      timeouts: {request: 0s, backendRequest: 2s}",
    ));
    assert_accepted(&route(
        "    - backendRefs: [{name: a}]\n      timeouts: {request: 2s, backendRequest: 500ms}",
    ));
}

#[test]
fn rate_limit_requests_must_be_positive() {
    assert_refused(
        &route("    - backendRefs: [{name: a}]\n      rateLimit: {requests: 0}"),
        "requests must be greater than 0",
    );
    assert_accepted(&route(
        "    - backendRefs: [{name: a}]\n      rateLimit: {requests: 10}",
    ));
}

#[test]
fn rate_limit_header_key_needs_a_name() {
    assert_refused(
        &route(
            "    - backendRefs: [{name: a}]\n      rateLimit: {requests: 10, key: {type: Header}}",
        ),
        "name is required for Header and Claim keys",
    );
}

#[test]
fn auth_settings_match_the_auth_type() {
    assert_refused(
        &route("    - backendRefs: [{name: a}]\n      auth: {type: ApiKey}"),
        "apiKey must be set when type is ApiKey",
    );
    assert_accepted(&route(
        "    - backendRefs: [{name: a}]\n      auth: {type: ApiKey, apiKey: {secretRef: {name: s, key: k}}}",
    ));
    assert_accepted(&route(
        "    - backendRefs: [{name: a}]\n      auth: {type: None}",
    ));
}

#[test]
fn cors_credentials_allow_a_wildcard_origin() {
    // HTTPRoute's CORS: the gateway echoes the request's Origin, never `*`.
    assert_accepted(&route(
        "    - backendRefs: [{name: a}]\n      cors: {allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['*'], allowCredentials: true}",
    ));
}

#[test]
fn retry_codes_are_http_statuses_from_400_to_599() {
    assert_accepted(&route(
        "    - backendRefs: [{name: a}]\n      retry: {codes: [429, 500, 503], retryOn: [GatewayError]}",
    ));
    assert_refused(
        &route("    - backendRefs: [{name: a}]\n      retry: {codes: [503, 302]}"),
        "retry codes must be HTTP status codes from 400 to 599",
    );
}

#[test]
fn aggregate_part_names_are_unique() {
    assert_refused(
        &route(
            "    - aggregate: {parts: [{name: p, backendRef: {name: a}, path: /x}, {name: p, backendRef: {name: b}, path: /y}]}",
        ),
        "aggregate part names must be unique",
    );
}

#[test]
fn defaults_are_applied_when_fields_are_left_out() {
    let g = gateway(HTTP, "");
    assert_eq!(g.spec.replicas, 2);
    assert_eq!(g.spec.disruption_budget.max_unavailable, 1);
    assert_eq!(
        g.spec.service.kind,
        portcullis_api::gateway::ServiceType::LoadBalancer
    );
    let r = route("    - backendRefs: [{name: a}]");
    let path = &r.spec.rules[0].matches[0].path;
    assert_eq!(path.kind, portcullis_api::route::PathMatchType::PathPrefix);
    assert_eq!(path.value, "/");
    assert_eq!(r.spec.rules[0].backend_refs[0].weight, 1);
}

fn auth_rule(auth: &str) -> Route {
    route(&format!(
        "    - backendRefs: [{{name: a}}]\n      auth: {auth}"
    ))
}

#[test]
fn an_api_key_comes_from_a_header_or_a_query_parameter_not_both() {
    assert_refused(
        &auth_rule(
            "{type: ApiKey, apiKey: {secretRef: {name: s, key: k}, header: X-Key, queryParameter: key}}",
        ),
        "set header or queryParameter, not both",
    );
    assert_accepted(&auth_rule(
        "{type: ApiKey, apiKey: {secretRef: {name: s, key: k}, queryParameter: key, keepCredential: true}}",
    ));
}

#[test]
fn a_jwt_rule_names_exactly_one_key_set() {
    assert_refused(
        &auth_rule("{type: JWT, jwt: {issuer: i}}"),
        "set exactly one of jwksSecretRef and jwksUri",
    );
    assert_refused(
        &auth_rule(
            "{type: JWT, jwt: {issuer: i, jwksUri: 'https://id.example.com/jwks', jwksSecretRef: {name: s, key: k}}}",
        ),
        "set exactly one of jwksSecretRef and jwksUri",
    );
    assert_accepted(&auth_rule(
        "{type: JWT, jwt: {issuer: i, jwksUri: 'https://id.example.com/jwks', algorithms: [PS256, EdDSA]}}",
    ));
}

#[test]
fn hmac_algorithms_need_the_key_set_in_a_secret() {
    assert_refused(
        &auth_rule(
            "{type: JWT, jwt: {issuer: i, jwksUri: 'https://id.example.com/jwks', algorithms: [RS256, HS512]}}",
        ),
        "HS256, HS384 and HS512 need their shared secret in jwksSecretRef",
    );
    assert_accepted(&auth_rule(
        "{type: JWT, jwt: {issuer: i, jwksSecretRef: {name: s, key: k}, algorithms: [HS256]}}",
    ));
}

#[test]
fn jwt_leeway_is_at_most_five_minutes() {
    assert_refused(
        &auth_rule("{type: JWT, jwt: {issuer: i, jwksSecretRef: {name: s, key: k}, leeway: 5m1s}}"),
        "leeway must be at most 5m",
    );
    assert_accepted(&auth_rule(
        "{type: JWT, jwt: {issuer: i, jwksSecretRef: {name: s, key: k}, leeway: 5m}}",
    ));
}

#[test]
fn claims_cannot_be_forwarded_in_framing_or_credential_headers() {
    for header in portcullis_api::policy::RESERVED_CLAIM_HEADERS
        .iter()
        .copied()
        .chain(["Authorization", "Keep-Alive", "keep-alive-x"])
    {
        assert_refused(
            &auth_rule(&format!(
                "{{type: JWT, jwt: {{issuer: i, jwksSecretRef: {{name: s, key: k}}, claimsToHeaders: [{{claim: sub, header: {header}}}]}}}}"
            )),
            "a claim cannot be forwarded in a header that frames the request",
        );
        assert!(portcullis_api::policy::is_reserved_claim_header(header));
    }
    assert_accepted(&auth_rule(
        "{type: JWT, jwt: {issuer: i, jwksSecretRef: {name: s, key: k}, claimsToHeaders: [{claim: sub, header: X-User}, {claim: email, header: X-Email}]}}",
    ));
    assert_refused(
        &auth_rule(
            "{type: JWT, jwt: {issuer: i, jwksSecretRef: {name: s, key: k}, claimsToHeaders: [{claim: sub, header: X-User}, {claim: email, header: X-User}]}}",
        ),
        "each header may carry only one claim",
    );
}
