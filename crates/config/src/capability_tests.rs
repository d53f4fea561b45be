use super::*;
use crate::snapshot::{
    AggregatePartConfig, ApiKeyLocation, CacheConfig, PartFailurePolicy, RateLimitConfig,
    RateLimitFailureMode, RateLimitKeyConfig, RateLimitKeyType, ResolvedPolicies, WeightedBackend,
};

fn rule(index: usize) -> RuleConfig {
    RuleConfig {
        route: ObjectKey::new("shop", "users"),
        rule_index: index,
        name: None,
        filters: Vec::new(),
        action: Action::Backends {
            backends: vec![WeightedBackend {
                backend: Some("shop/users".to_owned()),
                weight: 1,
            }],
        },
        policies: ResolvedPolicies::default(),
        upgrades: None,
    }
}

fn api_keys(rule: &mut RuleConfig) {
    rule.policies.auth = Some(AuthConfig::ApiKey {
        keys: SecretFile::new("shop", "api-keys", "keys"),
        location: ApiKeyLocation::Header("x-api-key".to_owned()),
        keep_credential: false,
    });
}

fn rate_limit(scope: RateLimitScope) -> RateLimitConfig {
    RateLimitConfig {
        requests: 20,
        period_ms: 1000,
        burst: 10,
        key: RateLimitKeyConfig {
            kind: RateLimitKeyType::ClientIp,
            name: None,
        },
        scope,
        failure_mode: RateLimitFailureMode::FailOpen,
    }
}

fn present(_: &SecretFile) -> SecretState {
    SecretState::Present(None)
}

fn lines(gaps: &[Gap]) -> Vec<String> {
    gaps.iter().map(ToString::to_string).collect()
}

#[test]
fn a_plain_forwarding_rule_is_served() {
    assert_eq!(unservable(&rule(0), present), []);
}

fn shared_cache() -> CacheConfig {
    CacheConfig {
        ttl_ms: 30_000,
        vary: Vec::new(),
        stale_if_error_ms: None,
        backend: CacheBackend::Shared,
    }
}

/// A build that would lack the shared cache (every policy is served by this one).
fn without_shared_cache(feature: Feature) -> bool {
    feature != Feature::SharedCache
}

#[test]
fn each_unimplemented_policy_is_named_at_its_field() {
    let mut cached = rule(2);
    cached.policies.cache = Some(shared_cache());
    assert_eq!(
        lines(&unservable_with(&cached, without_shared_cache, present)),
        [
            "spec.rules[2].cache: shared response caching is not supported by this version of the gateway yet"
        ]
    );

    let mut everything = rule(0);
    api_keys(&mut everything);
    everything.policies.rate_limit = Some(rate_limit(RateLimitScope::Global));
    everything.policies.cache = Some(shared_cache());
    everything.action = Action::Aggregate {
        parts: vec![AggregatePartConfig {
            name: "user".to_owned(),
            backend: Some("shop/users".to_owned()),
            path: "/users{path}".to_owned(),
            timeout_ms: 2000,
            on_failure: PartFailurePolicy::Fail,
        }],
    };
    let gaps = unservable_with(&everything, without_shared_cache, present);
    assert_eq!(
        lines(&gaps),
        [
            "spec.rules[0].cache: shared response caching is not supported by this version of the gateway yet",
        ],
        "API keys, global rate limits and aggregation are served"
    );
    assert!(gaps.iter().all(|g| g.reason == reason::UNSUPPORTED_VALUE));
    assert_eq!(
        unservable(&everything, present),
        [],
        "this build serves every policy"
    );
}

#[test]
fn the_support_table_decides_what_is_reported() {
    // Every feature a rule can ask for has an entry, a field and a description; this build
    // serves them all.
    for feature in [
        Feature::ApiKeyAuth,
        Feature::JwtAuth,
        Feature::BasicAuth,
        Feature::LocalRateLimit,
        Feature::GlobalRateLimit,
        Feature::LocalCache,
        Feature::SharedCache,
        Feature::Aggregate,
    ] {
        assert!(!feature.description().is_empty());
        assert!(!feature.field().is_empty());
        assert!(feature.is_supported(), "{feature:?}: update this test");
    }
}

#[test]
fn a_supported_policy_is_not_reported_but_its_secret_still_is() {
    let mut guarded = rule(3);
    api_keys(&mut guarded);
    guarded.policies.rate_limit = Some(rate_limit(RateLimitScope::Local));
    let api_keys_only = |feature| feature == Feature::ApiKeyAuth;
    assert_eq!(
        lines(&unservable_with(&guarded, api_keys_only, present)),
        [
            "spec.rules[3].rateLimit: rate limiting is not supported by this version of the gateway yet"
        ]
    );
    assert_eq!(
        lines(&unservable_with(&guarded, api_keys_only, |_| {
            SecretState::Missing
        })),
        [
            "spec.rules[3].rateLimit: rate limiting is not supported by this version of the gateway yet",
            "spec.rules[3].auth.apiKey.secretRef: Secret shop/api-keys (key \"keys\") not found",
        ]
    );
    assert_eq!(unservable_with(&guarded, |_| true, present), []);
}

#[test]
fn a_missing_or_unreadable_secret_is_named_with_its_field() {
    let mut guarded = rule(1);
    api_keys(&mut guarded);
    let gaps = unservable_with(&guarded, |_| false, |_| SecretState::Missing);
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    assert_eq!(gaps[1].field, "spec.rules[1].auth.apiKey.secretRef");
    assert_eq!(gaps[1].reason, reason::SECRET_NOT_FOUND);
    assert_eq!(
        gaps[1].message,
        "Secret shop/api-keys (key \"keys\") not found"
    );

    let gaps = unservable_with(
        &guarded,
        |_| false,
        |_| SecretState::Unreadable("permission denied".to_owned()),
    );
    assert_eq!(gaps[1].reason, reason::INVALID_SECRET);
    assert!(
        gaps[1]
            .message
            .ends_with("cannot be read: permission denied")
    );
}

#[test]
fn secret_content_is_checked_when_the_caller_has_it() {
    let mut guarded = rule(0);
    api_keys(&mut guarded);
    let with = |content: &str| {
        let content = content.as_bytes().to_vec();
        unservable(&guarded, move |_| {
            SecretState::Present(Some(content.clone()))
        })
        .into_iter()
        .filter(|g| g.reason == reason::INVALID_SECRET)
        .map(|g| g.message)
        .collect::<Vec<_>>()
    };
    assert_eq!(
        with("# consumers\nstorefront:k1\n\nmobile:k2\n"),
        Vec::<String>::new()
    );
    assert_eq!(
        with("storefront:k1\nsecret-without-consumer\n"),
        ["Secret shop/api-keys (key \"keys\"): line 2 is not consumer:key"]
    );
    assert_eq!(
        with(""),
        ["Secret shop/api-keys (key \"keys\"): it holds no consumer:key line"]
    );
    // What the data plane's engines refuse is refused here too.
    assert!(
        with("storefront:k1\nmobile:k1\n")
            .first()
            .is_some_and(|m| !m.contains("k1")),
        "a key listed twice is refused, and the message never shows it"
    );
    let jwks = include_bytes!("../../policy/tests/fixtures/jwks.json");
    assert!(check_content(SecretContent::Jwks, jwks).is_ok());
    assert!(check_content(SecretContent::Jwks, br#"{"keys": []}"#).is_err());
    assert!(check_content(SecretContent::Jwks, b"{}").is_err());
    let bcrypt = b"ada:$2b$04$M35T.BUXSKd9Yo2T84VI4OLKhj6Df8fwTAM3PgANmhfpRS22M5VAq\n";
    assert!(check_content(SecretContent::BasicUsers, bcrypt).is_ok());
    // An MD5 (apr1) hash: the gateway does not accept it, so neither does the check.
    let apr1 = b"ada:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n";
    assert!(check_content(SecretContent::BasicUsers, apr1).is_err());
}

#[test]
fn what_clients_read_never_names_a_secret() {
    let mut guarded = rule(0);
    api_keys(&mut guarded);
    guarded.policies.cache = Some(shared_cache());
    let gaps = unservable_with(&guarded, without_shared_cache, |_| SecretState::Missing);
    assert_eq!(
        gaps[0].public(),
        "spec.rules[0].cache: shared response caching is not supported by this version of the gateway yet"
    );
    assert_eq!(
        gaps[1].public(),
        "spec.rules[0].auth.apiKey.secretRef: a Secret it needs is missing or invalid"
    );
}

#[test]
fn unserved_rules_of_a_snapshot_name_route_and_rule() {
    let mut guarded = rule(0);
    api_keys(&mut guarded);
    guarded.name = Some("users".to_owned());
    let snapshot = Snapshot {
        api_version: crate::API_VERSION.to_owned(),
        gateway: ObjectKey::new("shop", "edge"),
        revision: String::new(),
        listeners: Vec::new(),
        rules: vec![guarded, rule(1)],
        backends: Default::default(),
        drain: crate::snapshot::DrainConfig {
            delay_ms: 0,
            timeout_ms: 0,
        },
        shared_state: None,
    };
    let unserved = unserved_rules(&snapshot, |_| SecretState::Missing);
    assert_eq!(unserved.len(), 1);
    assert_eq!(unserved[0].rule_index, 0);
    assert_eq!(unserved[0].name.as_deref(), Some("users"));
    assert_eq!(
        unserved[0].to_string(),
        "Route shop/users spec.rules[0].auth.apiKey.secretRef: Secret shop/api-keys (key \"keys\") \
         not found"
    );
}

#[test]
fn a_jwt_rule_reads_its_key_set_secret_and_a_jwks_url_reads_none() {
    use crate::snapshot::{JwksConfig, JwtAlgorithm};

    let jwt = |jwks: JwksConfig| {
        let mut r = rule(1);
        r.policies.auth = Some(AuthConfig::Jwt {
            issuer: "https://id.example.com".to_owned(),
            audiences: Vec::new(),
            jwks,
            algorithms: vec![JwtAlgorithm::RS256],
            leeway_ms: 30_000,
            claims_to_headers: Vec::new(),
            keep_authorization: false,
        });
        r
    };
    let from_secret = jwt(JwksConfig::Secret(SecretFile::new("shop", "jwks", "keys")));
    let files = secret_files(&from_secret);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].field, "auth.jwt.jwksSecretRef");
    assert_eq!(files[0].content, SecretContent::Jwks);
    assert!(
        lines(&unservable(&from_secret, |_| SecretState::Missing))
            .iter()
            .any(|line| line.starts_with("spec.rules[1].auth.jwt.jwksSecretRef: Secret shop/jwks"))
    );

    let from_url = jwt(JwksConfig::Uri("https://id.example.com/jwks".to_owned()));
    assert!(secret_files(&from_url).is_empty());
    // No Secret to miss: only the feature itself can keep the rule from being served.
    assert!(
        lines(&unservable(&from_url, |_| SecretState::Missing))
            .iter()
            .all(|line| line.starts_with("spec.rules[1].auth: "))
    );
}
