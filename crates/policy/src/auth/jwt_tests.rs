//! Real signatures with the test-only keys of `tests/fixtures` (see its README).

use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
use serde_json::json;

use super::*;

const ISSUER: &str = "https://issuer.example";

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/",
            $name
        ))
    };
}

pub(crate) const JWKS: &[u8] = fixture!("jwks.json");

pub(crate) fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(fixture!("rsa.key.pem")).unwrap()
}

pub(crate) fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).unwrap()
}

pub(crate) fn good_claims() -> Value {
    let now = get_current_timestamp();
    json!({"iss": ISSUER, "aud": "shop", "sub": "alice", "exp": now + 600, "nbf": now - 10,
           "scope": "read", "tier": 2})
}

fn with(claims: Value, changes: Value) -> Value {
    let mut claims = claims;
    for (name, value) in changes.as_object().unwrap() {
        match value {
            Value::Null => claims.as_object_mut().unwrap().remove(name),
            value => claims
                .as_object_mut()
                .unwrap()
                .insert(name.clone(), value.clone()),
        };
    }
    claims
}

fn config() -> JwtConfig {
    JwtConfig {
        audiences: vec!["shop".into(), "admin".into()],
        algorithms: "RS256 PS256 ES256 ES384 EdDSA HS256"
            .split(' ')
            .map(|name| name.parse().unwrap())
            .collect(),
        claim_headers: vec![
            ("sub".into(), HeaderName::from_static("x-user")),
            ("tier".into(), HeaderName::from_static("x-tier")),
        ],
        ..JwtConfig::new(ISSUER)
    }
}

fn auth() -> JwtAuth {
    JwtAuth::new(config(), JwksSource::from_secret(JWKS).unwrap()).unwrap()
}

pub(crate) fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    headers
}

async fn refused(auth: &JwtAuth, token: &str) -> RefusalReason {
    let refusal = auth.authenticate(&bearer(token)).await.unwrap_err();
    let challenge = refusal.www_authenticate().to_str().unwrap();
    assert_eq!(
        challenge,
        "Bearer realm=\"portcullis\", error=\"invalid_token\""
    );
    refusal.reason()
}

#[tokio::test]
async fn every_algorithm_family_accepts_its_good_token() {
    let auth = auth();
    let hmac = URL_SAFE_NO_PAD.decode(fixture!("hmac.k.b64url")).unwrap();
    let cases = [
        (Algorithm::RS256, "rsa-1", rsa_key()),
        (Algorithm::PS256, "rsa-1", rsa_key()),
        (
            Algorithm::ES256,
            "ec256-1",
            EncodingKey::from_ec_pem(fixture!("ec256.key.pem")).unwrap(),
        ),
        (
            Algorithm::ES384,
            "ec384-1",
            EncodingKey::from_ec_pem(fixture!("ec384.key.pem")).unwrap(),
        ),
        (
            Algorithm::EdDSA,
            "ed-1",
            EncodingKey::from_ed_pem(fixture!("ed25519.key.pem")).unwrap(),
        ),
        (
            Algorithm::HS256,
            "hmac-1",
            EncodingKey::from_secret(&hmac).unwrap(),
        ),
    ];
    for (alg, kid, key) in cases {
        let token = sign(alg, Some(kid), &good_claims(), &key);
        let identity = auth
            .authenticate(&bearer(&token))
            .await
            .unwrap_or_else(|refusal| {
                panic!("{alg:?} refused: {refusal:?}");
            });
        assert_eq!(identity.consumer.as_deref(), Some("alice"));
        assert_eq!(identity.claims.unwrap()["scope"], "read");
    }
}

#[tokio::test]
async fn time_issuer_and_audience_are_enforced() {
    let auth = auth();
    let now = get_current_timestamp();
    let cases = [
        (json!({"exp": now - 120}), RefusalReason::Expired),
        (json!({"exp": null}), RefusalReason::InvalidClaims),
        (json!({"nbf": now + 120}), RefusalReason::NotYetValid),
        (
            json!({"nbf": (now - 10).to_string()}),
            RefusalReason::InvalidClaims,
        ),
        (json!({"nbf": "2099-01-01"}), RefusalReason::InvalidClaims),
        (
            json!({"exp": (now + 600).to_string()}),
            RefusalReason::InvalidClaims,
        ),
        (
            json!({"iss": "https://evil.example"}),
            RefusalReason::WrongIssuer,
        ),
        (json!({"iss": null}), RefusalReason::WrongIssuer),
        (json!({"aud": "billing"}), RefusalReason::WrongAudience),
        (json!({"aud": null}), RefusalReason::WrongAudience),
    ];
    for (changes, expected) in cases {
        let token = sign(
            Algorithm::RS256,
            Some("rsa-1"),
            &with(good_claims(), changes.clone()),
            &rsa_key(),
        );
        assert_eq!(refused(&auth, &token).await, expected, "{changes}");
    }
    // Inside the leeway, and any one of several audiences, pass.
    let lenient = with(
        good_claims(),
        json!({"exp": now - 5, "aud": ["billing", "admin"]}),
    );
    let token = sign(Algorithm::RS256, Some("rsa-1"), &lenient, &rsa_key());
    assert!(auth.authenticate(&bearer(&token)).await.is_ok());
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    let auth = auth();
    let good = sign(Algorithm::RS256, Some("rsa-1"), &good_claims(), &rsa_key());

    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(good_claims().to_string());
    for token in [
        format!("{none_header}.{payload}."),
        format!("{none_header}.{payload}"),
    ] {
        assert_eq!(
            refused(&auth, &token).await,
            RefusalReason::AlgorithmNotAllowed,
            "{token}"
        );
    }

    // HS256 keyed with the RSA public key's bytes, naming the RSA key or no key at all.
    let public = EncodingKey::from_secret(fixture!("rsa.pub.pem")).unwrap();
    let confused = sign(Algorithm::HS256, Some("rsa-1"), &good_claims(), &public);
    assert_eq!(
        refused(&auth, &confused).await,
        RefusalReason::AlgorithmNotAllowed
    );
    let confused = sign(Algorithm::HS256, None, &good_claims(), &public);
    assert_eq!(refused(&auth, &confused).await, RefusalReason::BadSignature);

    let unknown = sign(Algorithm::RS256, Some("rsa-9"), &good_claims(), &rsa_key());
    assert_eq!(refused(&auth, &unknown).await, RefusalReason::UnknownKid);

    let parts: Vec<&str> = good.split('.').collect();
    let evil = URL_SAFE_NO_PAD.encode(with(good_claims(), json!({"sub": "mallory"})).to_string());
    let tampered = format!("{}.{evil}.{}", parts[0], parts[2]);
    assert_eq!(refused(&auth, &tampered).await, RefusalReason::BadSignature);

    let other = EncodingKey::from_rsa_pem(fixture!("rsa-other.key.pem")).unwrap();
    let wrong_key = sign(Algorithm::RS256, Some("rsa-1"), &good_claims(), &other);
    assert_eq!(
        refused(&auth, &wrong_key).await,
        RefusalReason::BadSignature
    );

    let rs512 = sign(Algorithm::RS512, Some("rsa-1"), &good_claims(), &rsa_key());
    assert_eq!(
        refused(&auth, &rs512).await,
        RefusalReason::AlgorithmNotAllowed
    );

    assert_eq!(refused(&auth, "not.a.jwt").await, RefusalReason::Malformed);
    assert_eq!(refused(&auth, "garbage").await, RefusalReason::Malformed);
}

#[tokio::test]
async fn missing_tokens_get_a_bare_challenge_that_echoes_nothing() {
    let auth = auth();
    let refusal = auth.authenticate(&HeaderMap::new()).await.unwrap_err();
    assert_eq!(refusal.reason(), RefusalReason::Missing);
    assert_eq!(refusal.status(), 401);
    assert_eq!(refusal.www_authenticate(), "Bearer realm=\"portcullis\"");
    let mut basic = HeaderMap::new();
    basic.insert(AUTHORIZATION, HeaderValue::from_static("Basic YTpi"));
    let refusal = auth.authenticate(&basic).await.unwrap_err();
    assert_eq!(refusal.reason(), RefusalReason::Malformed);
    assert!(
        !refusal
            .www_authenticate()
            .to_str()
            .unwrap()
            .contains("YTpi")
    );
}

#[tokio::test]
async fn a_token_without_kid_needs_exactly_one_key_for_its_algorithm() {
    let auth = auth();
    let token = sign(Algorithm::RS256, None, &good_claims(), &rsa_key());
    assert!(auth.authenticate(&bearer(&token)).await.is_ok());
    let two_rsa = format!(r#"{{"keys":[{0},{1}]}}"#, rsa_jwk("a"), rsa_jwk("b"));
    auth.source().replace(two_rsa.as_bytes()).unwrap();
    assert_eq!(refused(&auth, &token).await, RefusalReason::UnknownKid);
}

fn rsa_jwk(kid: &str) -> Value {
    let jwks: Value = serde_json::from_slice(JWKS).unwrap();
    let mut key = jwks["keys"][0].clone();
    key["kid"] = json!(kid);
    key
}

#[tokio::test]
async fn verified_tokens_do_not_outlive_the_keys_that_verified_them() {
    let auth = auth();
    let token = sign(Algorithm::RS256, Some("rsa-1"), &good_claims(), &rsa_key());
    assert!(auth.authenticate(&bearer(&token)).await.is_ok());
    assert!(auth.authenticate(&bearer(&token)).await.is_ok());
    assert_eq!(auth.cache.len(), 1);
    let rotated = format!(r#"{{"keys":[{}]}}"#, rsa_jwk("rsa-2"));
    auth.source().replace(rotated.as_bytes()).unwrap();
    assert_eq!(refused(&auth, &token).await, RefusalReason::UnknownKid);
}

#[tokio::test]
async fn claims_replace_client_sent_headers_and_the_token_is_not_forwarded() {
    let auth = auth();
    let token = sign(Algorithm::RS256, Some("rsa-1"), &good_claims(), &rsa_key());
    let mut headers = bearer(&token);
    headers.insert("x-user", HeaderValue::from_static("admin"));
    headers.append("x-user", HeaderValue::from_static("root"));
    headers.insert("x-tier", HeaderValue::from_static("99"));
    let identity = auth.authenticate(&headers).await.unwrap();
    let no_tier = with(good_claims(), json!({"tier": null}));
    auth.prepare_upstream(&identity, &mut headers);
    assert_eq!(
        headers.get_all("x-user").iter().collect::<Vec<_>>(),
        ["alice"]
    );
    assert_eq!(headers["x-tier"], "2");
    assert!(headers.get(AUTHORIZATION).is_none());

    let token = sign(Algorithm::RS256, Some("rsa-1"), &no_tier, &rsa_key());
    let mut headers = bearer(&token);
    headers.insert("x-tier", HeaderValue::from_static("99"));
    let identity = auth.authenticate(&headers).await.unwrap();
    auth.prepare_upstream(&identity, &mut headers);
    assert!(headers.get("x-tier").is_none());
}
