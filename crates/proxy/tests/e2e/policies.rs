//! Authentication, rate limiting and caching as a client meets them, over real sockets: the
//! refusals, the fields that come with them, and what reaches the backend.

use std::{path::PathBuf, time::Duration};

use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis_config::snapshot::*;
use serde_json::json;

use crate::support::*;

/// Writes Secret `namespace/name` key `key` under the test secrets root.
fn secret(namespace: &str, name: &str, key: &str, content: &[u8]) -> SecretFile {
    let file = SecretFile::new(namespace, name, key);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&file.path);
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("the Secret folder");
    std::fs::write(&path, content).expect("the Secret file");
    file
}

/// A gateway with one rule on `/` to upstream `a`, with `policies`.
async fn guarded(policies: ResolvedPolicies) -> (Upstream, Gateway) {
    let a = Upstream::start("a").await;
    let mut rule = to("guarded", &[(Some("a"), 1)]);
    rule.policies = policies;
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), rule)
        .build();
    let gw = Gateway::start(&snapshot).await;
    (a, gw)
}

async fn get_with(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = request(gw, "GET", "shop.example", path);
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("a name"),
            value.parse().expect("a value"),
        );
    }
    send(request).await
}

#[tokio::test]
async fn an_api_key_rule_lets_in_its_consumers_only_and_never_forwards_the_key() {
    let keys = secret("apikey", "keys", "keys", b"storefront:s3cret-key\n");
    let (a, gw) = guarded(ResolvedPolicies {
        auth: Some(AuthConfig::ApiKey {
            keys,
            location: ApiKeyLocation::Header("x-api-key".to_owned()),
            keep_credential: false,
        }),
        ..ResolvedPolicies::default()
    })
    .await;

    let missing = get_with(&gw, "/items", &[]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert!(
        missing.headers.contains_key("www-authenticate"),
        "a 401 carries a challenge (RFC 9110 §11.6.1)"
    );
    for wrong in ["nope", "s3cret", "s3cret-key2"] {
        let refused = get_with(&gw, "/items", &[("x-api-key", wrong)]).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "key {wrong:?}");
    }
    assert_eq!(a.hits(), 0, "no refused request reached the backend");

    let served = get_with(&gw, "/items", &[("x-api-key", "s3cret-key")]).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(
        served.seen_header("x-api-key"),
        None,
        "the key stays at the gateway"
    );

    let admin = send(admin_get(&gw, "/metrics")).await;
    assert!(
        admin.body.contains(
            r#"portcullis_policy_decisions_total{route="test/guarded",policy="auth",result="missing"}"#
        ),
        "{}",
        admin.body
    );
    assert!(!admin.body.contains("s3cret"), "no key in the metrics");
}

#[tokio::test]
async fn a_known_caller_the_rule_does_not_admit_gets_403_without_a_challenge() {
    let keys = secret(
        "apikey",
        "two-consumers",
        "keys",
        b"storefront:storefront-key\nreporting:reporting-key\n",
    );
    let (a, gw) = guarded(ResolvedPolicies {
        auth: Some(AuthConfig::ApiKey {
            keys,
            location: ApiKeyLocation::Header("x-api-key".to_owned()),
            keep_credential: false,
        }),
        allowed_consumers: vec!["storefront".to_owned()],
        ..ResolvedPolicies::default()
    })
    .await;

    let stranger = get_with(&gw, "/orders", &[("x-api-key", "nope")]).await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
    let known = get_with(&gw, "/orders", &[("x-api-key", "reporting-key")]).await;
    assert_eq!(known.status, StatusCode::FORBIDDEN);
    assert!(
        !known.headers.contains_key("www-authenticate"),
        "another credential would not help: no challenge"
    );
    assert_eq!(a.hits(), 0);
    let admitted = get_with(&gw, "/orders", &[("x-api-key", "storefront-key")]).await;
    assert_eq!(admitted.status, StatusCode::OK);
    assert_eq!(a.hits(), 1);

    let metrics = send(admin_get(&gw, "/metrics")).await;
    assert!(
        metrics.body.contains(
            r#"portcullis_policy_decisions_total{route="test/guarded",policy="auth",result="forbidden"} 1"#
        ),
        "{}",
        metrics.body
    );
}

#[tokio::test]
async fn a_jwt_rule_checks_signature_issuer_and_expiry_and_drops_the_token() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policy/tests/fixtures");
    let jwks = std::fs::read(fixtures.join("jwks.json")).expect("the test JWKS");
    let private = std::fs::read(fixtures.join("rsa.key.pem")).expect("the test key");
    let other = std::fs::read(fixtures.join("rsa-other.key.pem")).expect("another key");
    let jwks = secret("jwt", "issuer", "jwks.json", &jwks);
    let (a, gw) = guarded(ResolvedPolicies {
        auth: Some(AuthConfig::Jwt {
            issuer: "https://issuer.example".to_owned(),
            audiences: vec!["shop".to_owned()],
            jwks: JwksConfig::Secret(jwks),
            algorithms: vec![portcullis_api::policy::JwtAlgorithm::RS256],
            leeway_ms: 0,
            claims_to_headers: vec![ClaimHeaderConfig {
                claim: "sub".to_owned(),
                header: "x-user".to_owned(),
            }],
            keep_authorization: false,
        }),
        ..ResolvedPolicies::default()
    })
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let token = |key: &[u8], claims: serde_json::Value| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".to_owned());
        let key = EncodingKey::from_rsa_pem(key).expect("an RSA key");
        jsonwebtoken::encode(&header, &claims, &key).expect("a token")
    };
    let good =
        json!({ "iss": "https://issuer.example", "aud": "shop", "sub": "ada", "exp": now + 600 });
    let bearer = |t: &str| format!("Bearer {t}");

    let served = get_with(
        &gw,
        "/me",
        &[("authorization", &bearer(&token(&private, good.clone())))],
    )
    .await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.body);
    assert_eq!(
        served.seen_header("authorization"),
        None,
        "the token stays at the gateway"
    );

    let mut expired = good.clone();
    expired["exp"] = json!(now - 3600);
    let mut foreign = good.clone();
    foreign["iss"] = json!("https://evil.example");
    for (what, token) in [
        ("expired", token(&private, expired)),
        ("another issuer", token(&private, foreign)),
        ("signed with another key", token(&other, good.clone())),
    ] {
        let refused = get_with(&gw, "/me", &[("authorization", &bearer(&token))]).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{what}");
        let challenge = refused.headers["www-authenticate"].to_str().expect("text");
        assert!(challenge.starts_with("Bearer"), "{what}: {challenge}");
    }
    assert_eq!(a.hits(), 1, "only the good token reached the backend");
}

#[tokio::test]
async fn a_basic_rule_checks_the_password_off_the_request_threads() {
    let hash = bcrypt::hash("correct horse", 4).expect("a bcrypt hash");
    let users = secret(
        "basic",
        "users",
        "htpasswd",
        format!("ada:{hash}\n").as_bytes(),
    );
    let (_a, gw) = guarded(ResolvedPolicies {
        auth: Some(AuthConfig::Basic {
            users,
            keep_authorization: false,
        }),
        ..ResolvedPolicies::default()
    })
    .await;
    let basic = |credentials: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    };
    let served = get_with(&gw, "/", &[("authorization", &basic("ada:correct horse"))]).await;
    assert_eq!(served.status, StatusCode::OK);
    for wrong in ["ada:wrong", "bob:correct horse", "ada"] {
        let refused = get_with(&gw, "/", &[("authorization", &basic(wrong))]).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{wrong}");
        let challenge = refused.headers["www-authenticate"].to_str().expect("text");
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
    }
}

fn rate_limit(requests: u32, key: RateLimitKeyConfig) -> ResolvedPolicies {
    ResolvedPolicies {
        rate_limit: Some(RateLimitConfig {
            requests,
            period_ms: 60_000,
            burst: 0,
            key,
            scope: RateLimitScope::Local,
            failure_mode: RateLimitFailureMode::FailOpen,
        }),
        ..ResolvedPolicies::default()
    }
}

#[tokio::test]
async fn a_rate_limit_admits_exactly_its_requests_then_answers_429_with_retry_after() {
    let by_ip = RateLimitKeyConfig {
        kind: RateLimitKeyType::ClientIp,
        name: None,
    };
    let (a, gw) = guarded(rate_limit(3, by_ip)).await;
    for n in 0..3 {
        let served = get_with(&gw, "/", &[]).await;
        assert_eq!(served.status, StatusCode::OK, "request {n}");
        assert!(served.headers.contains_key("ratelimit-policy"));
        assert!(served.headers.contains_key("ratelimit"));
    }
    let refused = get_with(&gw, "/", &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(refused.headers.contains_key("ratelimit-policy"));
    assert_eq!(a.hits(), 3, "the refused request never reached the backend");
}

#[tokio::test]
async fn a_rate_limit_keyed_by_header_counts_each_caller_apart_and_falls_back_to_the_address() {
    let by_tenant = RateLimitKeyConfig {
        kind: RateLimitKeyType::Header,
        name: Some("x-tenant".to_owned()),
    };
    let (_a, gw) = guarded(rate_limit(1, by_tenant)).await;
    let status = |reply: Reply| reply.status;
    assert_eq!(
        status(get_with(&gw, "/", &[("x-tenant", "a")]).await),
        StatusCode::OK
    );
    assert_eq!(
        status(get_with(&gw, "/", &[("x-tenant", "b")]).await),
        StatusCode::OK
    );
    assert_eq!(
        status(get_with(&gw, "/", &[("x-tenant", "a")]).await),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Leaving the header out is no way around the limit: the address's bucket counts.
    assert_eq!(status(get_with(&gw, "/", &[]).await), StatusCode::OK);
    assert_eq!(
        status(get_with(&gw, "/", &[]).await),
        StatusCode::TOO_MANY_REQUESTS
    );
}

fn cached(ttl_ms: u64, stale_if_error_ms: Option<u64>) -> ResolvedPolicies {
    ResolvedPolicies {
        cache: Some(CacheConfig {
            ttl_ms,
            vary: vec!["accept-language".to_owned()],
            stale_if_error_ms,
            backend: CacheBackend::Local,
        }),
        ..ResolvedPolicies::default()
    }
}

#[tokio::test]
async fn a_cached_rule_answers_a_repeat_from_memory_and_keys_by_its_vary_headers() {
    let (a, gw) = guarded(cached(60_000, None)).await;
    let first = get_with(&gw, "/catalog?page=1", &[("accept-language", "en")]).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.headers["x-cache"], "MISS");
    let second = get_with(&gw, "/catalog?page=1", &[("accept-language", "en")]).await;
    assert_eq!(second.headers["x-cache"], "HIT");
    assert!(second.headers.contains_key("age"));
    assert_eq!(second.body, first.body);
    assert_eq!(a.hits(), 1);

    // Another language, another page, a POST: each goes to the backend.
    let german = get_with(&gw, "/catalog?page=1", &[("accept-language", "de")]).await;
    assert_eq!(german.headers["x-cache"], "MISS");
    let page = get_with(&gw, "/catalog?page=2", &[("accept-language", "en")]).await;
    assert_eq!(page.headers["x-cache"], "MISS");
    let post = send(request(&gw, "POST", "shop.example", "/catalog?page=1")).await;
    assert!(!post.headers.contains_key("x-cache"));
    assert_eq!(a.hits(), 4);

    // A header outside the key cannot change what others get.
    let poisoned = get_with(
        &gw,
        "/catalog?page=1",
        &[
            ("accept-language", "en"),
            ("x-forwarded-host", "evil.example"),
        ],
    )
    .await;
    assert_eq!(poisoned.headers["x-cache"], "HIT");
    assert_eq!(poisoned.body, first.body);
    // A request with credentials is not served from, nor stored in, a shared entry.
    let private = get_with(
        &gw,
        "/catalog?page=1",
        &[("accept-language", "en"), ("authorization", "Bearer x")],
    )
    .await;
    assert_eq!(private.headers["x-cache"], "MISS");
}

#[tokio::test]
async fn a_cached_rule_serves_its_stale_copy_while_the_backend_is_down() {
    let (a, gw) = guarded(cached(200, Some(60_000))).await;
    let first = get_with(&gw, "/catalog", &[]).await;
    assert_eq!(first.headers["x-cache"], "MISS");
    a.stop();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stale = get_with(&gw, "/catalog", &[]).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.headers["x-cache"], "STALE");
    assert_eq!(stale.body, first.body);
}

#[tokio::test]
async fn an_answer_too_large_for_the_cache_streams_through_whole_and_is_not_kept() {
    let (a, gw) = guarded(cached(60_000, None)).await;
    let size = 2 * 1024 * 1024;
    for _ in 0..2 {
        let big = get_with(&gw, &format!("/big/{size}/x"), &[]).await;
        assert_eq!(big.status, StatusCode::OK);
        assert_eq!(big.headers["x-cache"], "MISS");
        assert!(big.body.len() >= size, "{} bytes", big.body.len());
    }
    assert_eq!(a.hits(), 2, "neither answer was kept");
}

#[tokio::test]
async fn an_upgrade_is_tunnelled_only_after_the_rules_policies_admit_it() {
    let keys = secret("upgrade", "keys", "keys", b"storefront:s3cret-key\n");
    let (a, gw) = guarded(ResolvedPolicies {
        auth: Some(AuthConfig::ApiKey {
            keys,
            location: ApiKeyLocation::Header("x-api-key".to_owned()),
            keep_credential: false,
        }),
        ..ResolvedPolicies::default()
    })
    .await;
    let handshake = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n";
    let refused = raw(&gw, format!("{handshake}\r\n").as_bytes()).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert_eq!(a.hits(), 0, "no tunnel, not even a request, without a key");
    let mut stream = connect(&gw).await;
    tokio::io::AsyncWriteExt::write_all(
        &mut stream,
        format!("{handshake}X-API-Key: s3cret-key\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let head = read_until(&mut stream, |r| r.ends_with(b"\r\n\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(a.hits(), 1);
}
