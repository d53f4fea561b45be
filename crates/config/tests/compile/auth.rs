//! The `auth` policy: every option the engines take reaches the snapshot, and values the data
//! plane would refuse are refused here, at their field.

use portcullis_config::{
    diagnostics::reason,
    snapshot::{
        ApiKeyLocation, AuthConfig, ClaimHeaderConfig, JwksConfig, JwtAlgorithm, SecretFile,
    },
};

use crate::fixture::{compile_yaml, findings, get, parents, route, shop_route, with_edge};

fn auth_route(auth: &str) -> String {
    with_edge(&shop_route(&format!(
        "  - backendRefs: [{{name: api}}]\n    auth: {auth}\n"
    )))
}

fn compiled_auth(auth: &str) -> AuthConfig {
    let c = compile_yaml(&auth_route(auth));
    let f = findings(&c, "Route/shop/r");
    assert!(!f.iter().any(|d| d.field.contains(".auth")), "{f:?}");
    route(&c.snapshot, &get("http://a/"))
        .expect("served")
        .policies
        .auth
        .clone()
        .expect("auth in force")
}

/// The Route is refused (never served without its authentication) with a finding at `field`
/// whose message contains `says`.
fn assert_refused(auth: &str, field: &str, says: &str) {
    let c = compile_yaml(&auth_route(auth));
    assert_eq!(parents(&c, "shop/r")[0].accepted.reason, reason::INVALID);
    assert_eq!(route(&c.snapshot, &get("http://a/")), None);
    let f = findings(&c, "Route/shop/r");
    assert!(
        f.iter()
            .any(|d| d.field == field && d.message.contains(says)),
        "no finding at {field} saying {says:?}: {f:?}"
    );
}

#[test]
fn api_keys_come_from_the_header_by_default_and_are_stripped() {
    assert_eq!(
        compiled_auth("{type: ApiKey, apiKey: {secretRef: {name: keys, key: k}}}"),
        AuthConfig::ApiKey {
            keys: SecretFile::new("shop", "keys", "k"),
            location: ApiKeyLocation::Header("x-api-key".to_owned()),
            keep_credential: false,
        }
    );
}

#[test]
fn api_keys_can_come_from_a_query_parameter_and_be_kept() {
    assert_eq!(
        compiled_auth(
            "{type: ApiKey, apiKey: {secretRef: {name: keys, key: k}, queryParameter: apiKey, keepCredential: true}}"
        ),
        AuthConfig::ApiKey {
            keys: SecretFile::new("shop", "keys", "k"),
            location: ApiKeyLocation::QueryParameter("apiKey".to_owned()),
            keep_credential: true,
        }
    );
}

#[test]
fn an_api_key_is_read_from_one_place_only() {
    assert_refused(
        "{type: ApiKey, apiKey: {secretRef: {name: keys, key: k}, header: X-Key, queryParameter: key}}",
        "spec.rules[0].auth.apiKey.queryParameter",
        "not both",
    );
}

#[test]
fn jwt_options_reach_the_snapshot() {
    let auth = compiled_auth(
        "{type: JWT, jwt: {issuer: 'https://id.example.com', audiences: [shop], \
         jwksUri: 'https://id.example.com/.well-known/jwks.json', algorithms: [PS256, ES256, PS256], \
         leeway: 1m, claimsToHeaders: [{claim: sub, header: X-User}, {claim: email, header: X-Email}], \
         keepAuthorization: true}}",
    );
    assert_eq!(
        auth,
        AuthConfig::Jwt {
            issuer: "https://id.example.com".to_owned(),
            audiences: vec!["shop".to_owned()],
            jwks: JwksConfig::Uri("https://id.example.com/.well-known/jwks.json".to_owned()),
            algorithms: vec![JwtAlgorithm::PS256, JwtAlgorithm::ES256],
            leeway_ms: 60_000,
            claims_to_headers: vec![
                ClaimHeaderConfig {
                    claim: "sub".to_owned(),
                    header: "x-user".to_owned(),
                },
                ClaimHeaderConfig {
                    claim: "email".to_owned(),
                    header: "x-email".to_owned(),
                },
            ],
            keep_authorization: true,
        }
    );
}

#[test]
fn jwt_defaults_are_thirty_seconds_of_leeway_and_no_forwarded_token() {
    match compiled_auth(
        "{type: JWT, jwt: {issuer: i, jwksSecretRef: {name: jwks, key: keys.json}, algorithms: [HS256]}}",
    ) {
        AuthConfig::Jwt {
            jwks,
            algorithms,
            leeway_ms,
            claims_to_headers,
            keep_authorization,
            ..
        } => {
            assert_eq!(
                jwks,
                JwksConfig::Secret(SecretFile::new("shop", "jwks", "keys.json"))
            );
            assert_eq!(algorithms, [JwtAlgorithm::HS256]);
            assert_eq!(leeway_ms, 30_000);
            assert!(claims_to_headers.is_empty());
            assert!(!keep_authorization);
        }
        other => panic!("expected JWT auth, got {other:?}"),
    }
}

#[test]
fn hmac_algorithms_need_the_key_set_in_a_secret() {
    assert_refused(
        "{type: JWT, jwt: {issuer: i, jwksUri: 'https://id.example.com/jwks', algorithms: [RS256, HS256]}}",
        "spec.rules[0].auth.jwt.algorithms",
        "HS256 needs its shared secret in jwksSecretRef",
    );
}

#[test]
fn a_jwt_rule_names_exactly_one_key_set() {
    assert_refused(
        "{type: JWT, jwt: {issuer: i}}",
        "spec.rules[0].auth.jwt",
        "exactly one of jwksSecretRef and jwksUri",
    );
    assert_refused(
        "{type: JWT, jwt: {issuer: i, jwksUri: 'https://id.example.com/jwks', jwksSecretRef: {name: j, key: k}}}",
        "spec.rules[0].auth.jwt",
        "exactly one of jwksSecretRef and jwksUri",
    );
}

#[test]
fn jwks_urls_must_be_https() {
    assert_refused(
        "{type: JWT, jwt: {issuer: i, jwksUri: 'http://id.example.com/jwks'}}",
        "spec.rules[0].auth.jwt.jwksUri",
        "is not an https:// URL",
    );
}

#[test]
fn leeway_is_a_duration_of_at_most_five_minutes() {
    assert_refused(
        "{type: JWT, jwt: {issuer: i, jwksUri: 'https://id.example.com/jwks', leeway: 6m}}",
        "spec.rules[0].auth.jwt.leeway",
        "longer than 5m",
    );
    assert_refused(
        "{type: JWT, jwt: {issuer: i, jwksUri: 'https://id.example.com/jwks', leeway: soon}}",
        "spec.rules[0].auth.jwt.leeway",
        "is not a duration",
    );
}

#[test]
fn claims_cannot_be_forwarded_in_framing_or_credential_headers() {
    for header in [
        "Authorization",
        "host",
        "Content-Length",
        "Keep-Alive",
        "TE",
    ] {
        assert_refused(
            &format!(
                "{{type: JWT, jwt: {{issuer: i, jwksUri: 'https://id.example.com/jwks', claimsToHeaders: [{{claim: sub, header: {header}}}]}}}}"
            ),
            "spec.rules[0].auth.jwt.claimsToHeaders[0].header",
            "frames the request or carries credentials",
        );
    }
    assert_refused(
        "{type: JWT, jwt: {issuer: i, jwksUri: 'https://id.example.com/jwks', claimsToHeaders: [{claim: sub, header: 'X User'}]}}",
        "spec.rules[0].auth.jwt.claimsToHeaders[0].header",
        "is not an HTTP header name",
    );
    assert_refused(
        "{type: JWT, jwt: {issuer: i, jwksUri: 'https://id.example.com/jwks', claimsToHeaders: [{claim: sub, header: X-User}, {claim: email, header: x-user}]}}",
        "spec.rules[0].auth.jwt.claimsToHeaders[1].header",
        "already carries another claim",
    );
}

#[test]
fn basic_auth_strips_the_password_unless_kept() {
    assert_eq!(
        compiled_auth(
            "{type: Basic, basic: {secretRef: {name: users, key: htpasswd}, keepAuthorization: true}}"
        ),
        AuthConfig::Basic {
            users: SecretFile::new("shop", "users", "htpasswd"),
            keep_authorization: true,
        }
    );
}

#[test]
fn allowed_consumers_travel_with_the_auth_in_force_sorted_once() {
    let c = compile_yaml(&auth_route(
        "{type: ApiKey, apiKey: {secretRef: {name: keys, key: k}}, allowedConsumers: [storefront, mobile, storefront]}",
    ));
    let served = route(&c.snapshot, &get("http://a/")).expect("served");
    assert_eq!(served.policies.allowed_consumers, ["mobile", "storefront"]);
}

#[test]
fn allowed_consumers_need_an_authentication_type() {
    assert_refused(
        "{type: None, allowedConsumers: [storefront]}",
        "spec.rules[0].auth.allowedConsumers",
        "needs an authentication type",
    );
    assert_refused(
        "{type: ApiKey, apiKey: {secretRef: {name: keys, key: k}}, allowedConsumers: ['']}",
        "spec.rules[0].auth.allowedConsumers[0]",
        "1 to 256 characters",
    );
}
