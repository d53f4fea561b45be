use std::{path::PathBuf, time::Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use portcullis_config::snapshot::{
    Action as ActionConfig, AggregatePartConfig, ApiKeyLocation, AuthConfig, PartFailurePolicy,
    SecretFile, Snapshot,
};

use super::*;
use crate::{
    Gateway, GatewaySettings,
    filters::Scheme,
    forward::{Connection, UNSERVED_HEADER},
};

/// Two rules on port 80: `shop/shared` (rule 0, with a shared cache this build does not
/// implement yet) on `/shared`, and `shop/open` (rule 0) on `/`.
const SNAPSHOT: &str = r#"
apiVersion: portcullis.dev/config/v1
gateway: { namespace: shop, name: edge }
revision: test
listeners:
- port: 80
  protocol: HTTP
  virtualHosts:
  - hostname: "*"
    listener: http
    routes:
    - { rule: 0, matchIndex: 0, match: { path: { type: PathPrefix, value: /shared } } }
    - { rule: 1, matchIndex: 0, match: { path: { type: PathPrefix, value: / } } }
rules:
- route: { namespace: shop, name: shared }
  ruleIndex: 0
  action: { type: Backends, backends: [{ backend: shop/web, weight: 1 }] }
  policies:
    cache: { ttlMs: 30000, backend: Shared }
- route: { namespace: shop, name: open }
  ruleIndex: 0
  action: { type: Backends, backends: [{ backend: shop/web, weight: 1 }] }
  policies: {}
backends:
  shop/web:
    discovery: { type: Static, endpoints: [{ address: 127.0.0.1, port: 9 }] }
    protocol: HTTP1
    connectTimeoutMs: 1000
    loadBalancer: { policy: RoundRobin }
drain: { delayMs: 0, timeoutMs: 1000 }
"#;

fn snapshot() -> Snapshot {
    Snapshot::from_yaml(SNAPSHOT).expect("the test snapshot reads")
}

/// A secrets root of its own for each test.
fn secrets_root(test: &str) -> PathBuf {
    let root =
        std::env::temp_dir().join(format!("portcullis-compile-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    root
}

/// The rule `path` reaches on port 80.
fn rule_at(table: &RouteTable, path: &str) -> Arc<Rule> {
    let (head, ()) = Request::get(path).body(()).expect("a request").into_parts();
    table
        .listener(80)
        .and_then(|l| l.route(&head, "shop.example", path))
        .map(|entry| entry.rule.clone())
        .unwrap_or_else(|| panic!("no rule serves {path}"))
}

fn reasons(rule: &Rule) -> Vec<String> {
    match &rule.action {
        Action::Unserved(unserved) => unserved.reasons.clone(),
        other => panic!("rule {} {} is served: {other:?}", rule.route, rule.index),
    }
}

#[tokio::test]
async fn a_rule_whose_protection_cannot_be_built_answers_503_and_the_other_rules_serve() {
    let table = compile(
        &snapshot(),
        &RouteTable::default(),
        &Secrets::new("/nonexistent"),
    );
    assert!(table.problems.is_empty(), "{:?}", table.problems);
    assert!(matches!(rule_at(&table, "/").action, Action::Forward(_)));
    assert_eq!(
        reasons(&rule_at(&table, "/shared/x")),
        [
            // A shared cache on a Gateway without sharedState.redis.
            "spec.rules[0].cache: cache.backend needs the Gateway's sharedState.redis, which is not configured"
        ]
    );
    assert_eq!(table.unserved.len(), 1);

    let gateway = Gateway::new(GatewaySettings {
        access_log: false,
        ..GatewaySettings::default()
    });
    gateway.install(table, Instant::now());
    let conn = Connection::new(([127, 0, 0, 1], 40000).into(), 80, Scheme::Http);
    for _ in 0..2 {
        let (mut head, ()) = Request::get("/shared/x")
            .header("host", "shop.example")
            .body(())
            .expect("a request")
            .into_parts();
        let response = gateway
            .clone()
            .handle(&conn, &mut head, Empty::<Bytes>::new())
            .await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[UNSERVED_HEADER], "Invalid");
    }
    let metrics = gateway.metrics.encode();
    assert!(
        metrics.contains(
            r#"portcullis_unserved_requests_total{route="shop/shared",rule="0",reason="Invalid"} 2"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"portcullis_unserved_rules{route="shop/shared",rule="0",reason="Invalid"} 1"#
        ),
        "{metrics}"
    );
}

#[test]
fn a_missing_or_malformed_secret_file_is_a_reason_of_its_rule_only() {
    let mut snapshot = snapshot();
    snapshot.rules[0].policies.cache = None;
    snapshot.rules[0].policies.auth = Some(AuthConfig::ApiKey {
        keys: SecretFile::new("shop", "api-keys", "keys"),
        location: ApiKeyLocation::Header("x-api-key".to_owned()),
        keep_credential: false,
    });
    let root = secrets_root("secret");
    let secrets = Secrets::new(&root);
    let secret_reasons = |table: &RouteTable| -> Vec<String> {
        reasons(&rule_at(table, "/shared"))
            .into_iter()
            .filter(|r| r.contains("secretRef"))
            .collect()
    };

    let table = compile(&snapshot, &RouteTable::default(), &secrets);
    assert_eq!(
        secret_reasons(&table),
        ["spec.rules[0].auth.apiKey.secretRef: Secret shop/api-keys (key \"keys\") not found"]
    );
    assert!(matches!(rule_at(&table, "/").action, Action::Forward(_)));

    let file = root.join("shop/api-keys/keys");
    std::fs::create_dir_all(file.parent().expect("a folder")).expect("the Secret folder");
    std::fs::write(&file, "storefront\n").expect("the key file");
    let table = compile(&snapshot, &RouteTable::default(), &secrets);
    assert_eq!(
        secret_reasons(&table),
        [
            "spec.rules[0].auth.apiKey.secretRef: Secret shop/api-keys (key \"keys\"): line 1 is not consumer:key"
        ]
    );
    let Action::Unserved(unserved) = &rule_at(&table, "/shared").action else {
        panic!("the guarded rule is served");
    };
    let body = String::from_utf8_lossy(&unserved.body);
    assert!(
        !body.contains("api-keys"),
        "clients never read Secret names: {body}"
    );

    // A good Secret: the rule serves, behind its API key.
    std::fs::write(&file, "storefront:k1\n").expect("the key file");
    let table = compile(&snapshot, &RouteTable::default(), &secrets);
    let rule = rule_at(&table, "/shared");
    assert!(matches!(rule.action, Action::Forward(_)), "{rule:?}");
    assert!(rule.guard.auth.is_some());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_match_that_does_not_compile_makes_its_rule_answer_503() {
    let mut snapshot = snapshot();
    snapshot.rules[0].policies.cache = None;
    let entries = &mut snapshot.listeners[0].virtual_hosts[0].routes;
    entries[0].r#match.path.value = "/shared".to_owned();
    let mut broken = entries[0].clone();
    broken.match_index = 1;
    broken.r#match.path.kind = portcullis_config::snapshot::PathMatchType::RegularExpression;
    broken.r#match.path.value = "/(unclosed".to_owned();
    entries.insert(0, broken);
    let table = compile(
        &snapshot,
        &RouteTable::default(),
        &Secrets::new("/nonexistent"),
    );
    let reasons = reasons(&rule_at(&table, "/shared"));
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].starts_with("spec.rules[0].matches[1]: path regular expression"),
        "{reasons:?}"
    );
    assert!(matches!(rule_at(&table, "/").action, Action::Forward(_)));
}

#[test]
fn a_listener_whose_certificate_cannot_be_loaded_is_left_out_and_the_others_serve() {
    let root = secrets_root("tls");
    let mut snapshot = snapshot();
    let mut https = snapshot.listeners[0].clone();
    https.port = 443;
    https.protocol = ListenerProtocol::Https;
    https.tls = Some(TlsConfig {
        certificates: vec![portcullis_config::snapshot::CertificateConfig {
            hostname: None,
            cert: SecretFile::new("shop", "edge-tls", "tls.crt"),
            key: SecretFile::new("shop", "edge-tls", "tls.key"),
        }],
    });
    snapshot.listeners.push(https);
    let secrets = Secrets::new(&root);

    let table = compile(&snapshot, &RouteTable::default(), &secrets);
    assert!(table.listener(80).is_some(), "the HTTP listener serves");
    assert!(
        table.listener(443).is_none(),
        "the HTTPS listener is not opened"
    );
    assert_eq!(table.problems.len(), 1, "{:?}", table.problems);
    assert!(
        table.problems[0].starts_with("HTTPS port 443: Secret shop/edge-tls key \"tls.crt\"")
            && table.problems[0].ends_with("it is not served"),
        "{:?}",
        table.problems
    );

    // With a good certificate it serves; a renewal that breaks it keeps the previous one.
    let generated =
        rcgen::generate_simple_self_signed(vec!["shop.example".to_owned()]).expect("a cert");
    let dir = root.join("shop/edge-tls");
    std::fs::create_dir_all(&dir).expect("the Secret folder");
    std::fs::write(dir.join("tls.crt"), generated.cert.pem()).expect("tls.crt");
    std::fs::write(dir.join("tls.key"), generated.signing_key.serialize_pem()).expect("tls.key");
    let good = compile(&snapshot, &RouteTable::default(), &secrets);
    assert!(good.listener(443).is_some_and(|l| l.tls.is_some()));
    std::fs::write(dir.join("tls.key"), "not a key").expect("tls.key");
    let renewed = compile(&snapshot, &good, &secrets);
    assert!(renewed.listener(443).is_some_and(|l| l.tls.is_some()));
    assert!(
        renewed.problems[0].ends_with("it keeps its previous certificate"),
        "{:?}",
        renewed.problems
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_aggregate_rule_is_served_with_its_parts_in_order() {
    let mut snapshot = snapshot();
    snapshot.rules[0].policies.cache = None;
    snapshot.rules[0].action = ActionConfig::Aggregate {
        parts: vec![
            AggregatePartConfig {
                name: "user".to_owned(),
                backend: Some("shop/web".to_owned()),
                path: "/users{path}".to_owned(),
                timeout_ms: 0,
                on_failure: PartFailurePolicy::Fail,
            },
            AggregatePartConfig {
                name: "orders".to_owned(),
                backend: Some("shop/gone".to_owned()),
                path: "/orders".to_owned(),
                timeout_ms: 250,
                on_failure: PartFailurePolicy::Tolerate,
            },
        ],
    };
    let table = compile(
        &snapshot,
        &RouteTable::default(),
        &Secrets::new("/nonexistent"),
    );
    let rule = rule_at(&table, "/shared");
    let Action::Aggregate(aggregate) = &rule.action else {
        panic!("the aggregate rule is served: {:?}", rule.action);
    };
    let parts: Vec<_> = aggregate
        .parts
        .iter()
        .map(|p| (p.name.as_str(), p.backend.as_deref(), p.timeout))
        .collect();
    assert_eq!(
        parts,
        [
            ("user", Some("shop/web"), None),
            ("orders", None, Some(std::time::Duration::from_millis(250)))
        ],
        "a part whose backend is not in the snapshot has none; 0 ms is no timeout of its own"
    );
    assert_eq!(aggregate.parts[0].target.render("/7", None), "/users/7");
}

/// The first rule with a global limit of `requests` per second instead of its shared cache.
fn globally_limited(requests: u32, redis: Option<&str>) -> Snapshot {
    let mut snapshot = snapshot();
    snapshot.rules[0].policies.cache = None;
    snapshot.rules[0].policies.rate_limit = Some(portcullis_config::snapshot::RateLimitConfig {
        requests,
        period_ms: 1000,
        burst: 0,
        key: portcullis_config::snapshot::RateLimitKeyConfig {
            kind: portcullis_config::snapshot::RateLimitKeyType::ClientIp,
            name: None,
        },
        scope: portcullis_config::snapshot::RateLimitScope::Global,
        failure_mode: portcullis_config::snapshot::RateLimitFailureMode::FailClosed,
    });
    snapshot.shared_state = redis.map(|address| portcullis_config::snapshot::SharedStateConfig {
        redis: portcullis_config::snapshot::RedisConfig {
            address: address.to_owned(),
            password: None,
        },
    });
    snapshot
}

fn global_limiter(table: &RouteTable) -> Arc<portcullis_policy::rate::GlobalLimiter> {
    match &rule_at(table, "/shared").guard.rate {
        Some(crate::guard::Rate {
            limiter: crate::guard::Limiter::Global(limiter),
            ..
        }) => limiter.clone(),
        other => panic!("a global limit: {other:?}"),
    }
}

#[test]
fn a_global_limit_without_the_gateways_redis_answers_503_and_the_other_rules_serve() {
    let secrets = Secrets::new("/nonexistent");
    let table = compile(&globally_limited(5, None), &RouteTable::default(), &secrets);
    assert_eq!(
        reasons(&rule_at(&table, "/shared")),
        [
            "spec.rules[0].rateLimit: scope Global needs the Gateway's sharedState.redis, which is not configured"
        ]
    );
    assert!(matches!(rule_at(&table, "/").action, Action::Forward(_)));
    // An address that cannot be used is the same gap, with its reason.
    let table = compile(
        &globally_limited(5, Some("redis")),
        &RouteTable::default(),
        &secrets,
    );
    let reasons = reasons(&rule_at(&table, "/shared"));
    assert!(reasons[0].contains("is not host:port"), "{reasons:?}");
}

#[tokio::test]
async fn a_global_limiter_is_kept_across_reloads_while_its_policy_and_redis_stay_the_same() {
    let secrets = Secrets::new("/nonexistent");
    // Nothing listens there: compiling never connects.
    let first = compile(
        &globally_limited(5, Some("127.0.0.1:1")),
        &RouteTable::default(),
        &secrets,
    );
    let limiter = global_limiter(&first);
    assert_eq!(
        limiter.failure_mode(),
        portcullis_policy::rate::FailureMode::Closed
    );
    let again = compile(&globally_limited(5, Some("127.0.0.1:1")), &first, &secrets);
    assert!(Arc::ptr_eq(&limiter, &global_limiter(&again)), "kept");
    let requota = compile(&globally_limited(6, Some("127.0.0.1:1")), &again, &secrets);
    assert!(
        !Arc::ptr_eq(&limiter, &global_limiter(&requota)),
        "a new quota"
    );
    let moved = compile(
        &globally_limited(6, Some("127.0.0.1:2")),
        &requota,
        &secrets,
    );
    assert!(
        !Arc::ptr_eq(&global_limiter(&requota), &global_limiter(&moved)),
        "another Redis"
    );
}

#[test]
fn a_rule_without_limits_gets_the_safe_defaults_and_0s_turns_idle_off() {
    let mut snapshot = snapshot();
    let secrets = Secrets::new(secrets_root("safe-defaults"));
    let table = compile(&snapshot, &RouteTable::default(), &secrets);
    let open = rule_at(&table, "/");
    assert_eq!(open.policy.backend_idle, Some(Duration::from_secs(60)));
    assert_eq!(open.policy.max_request_body, 10 * 1024 * 1024);
    snapshot.rules[1].policies.timeouts.backend_idle_ms = Some(0);
    snapshot.rules[1].policies.max_request_body_bytes = Some(5);
    let table = compile(&snapshot, &table, &secrets);
    let open = rule_at(&table, "/");
    assert_eq!(open.policy.backend_idle, None);
    assert_eq!(open.policy.max_request_body, 5);
}
