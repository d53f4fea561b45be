use super::*;

/// A published argon2id test vector (RustCrypto's `phc_strings` tests) for the password
/// "password".
const ARGON2ID: &str =
    "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";

fn htpasswd() -> String {
    let alice = bcrypt::hash("wonderland", 4).unwrap();
    format!("# test users\nalice:{alice}\n\ncarol:{ARGON2ID}\n")
}

fn basic(user: &str, password: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
    headers.insert(AUTHORIZATION, HeaderValue::try_from(value).unwrap());
    headers
}

async fn reason(auth: &BasicAuth, headers: &HeaderMap) -> RefusalReason {
    auth.authenticate(headers).await.unwrap_err().reason()
}

#[tokio::test]
async fn bcrypt_and_argon2id_users_are_accepted_and_named() {
    let auth = BasicAuth::new(htpasswd().as_bytes(), "shop", false).unwrap();
    let identity = auth
        .authenticate(&basic("alice", "wonderland"))
        .await
        .unwrap();
    assert_eq!(identity.consumer.as_deref(), Some("alice"));
    let identity = auth
        .authenticate(&basic("carol", "password"))
        .await
        .unwrap();
    assert_eq!(identity.consumer.as_deref(), Some("carol"));
}

#[tokio::test]
async fn wrong_passwords_unknown_users_and_bad_headers_are_refused() {
    let auth = BasicAuth::new(htpasswd().as_bytes(), "shop", false).unwrap();
    let refusal = auth.authenticate(&HeaderMap::new()).await.unwrap_err();
    assert_eq!(refusal.reason(), RefusalReason::Missing);
    assert_eq!(
        refusal.www_authenticate(),
        "Basic realm=\"shop\", charset=\"UTF-8\""
    );
    assert_eq!(
        reason(&auth, &basic("alice", "wonderlan")).await,
        RefusalReason::BadCredentials
    );
    assert_eq!(
        reason(&auth, &basic("alice", "")).await,
        RefusalReason::BadCredentials
    );
    assert_eq!(
        reason(&auth, &basic("mallory", "wonderland")).await,
        RefusalReason::BadCredentials
    );
    assert_eq!(
        reason(&auth, &basic("carol", "sassword")).await,
        RefusalReason::BadCredentials
    );
    let mut bearer = HeaderMap::new();
    bearer.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
    assert_eq!(reason(&auth, &bearer).await, RefusalReason::Malformed);
    let mut garbage = HeaderMap::new();
    garbage.insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
    assert_eq!(reason(&auth, &garbage).await, RefusalReason::Malformed);
}

#[tokio::test]
async fn a_successful_check_is_cached_without_the_password() {
    let auth = BasicAuth::new(htpasswd().as_bytes(), "shop", false).unwrap();
    auth.authenticate(&basic("alice", "wonderland"))
        .await
        .unwrap();
    assert_eq!(auth.cache.len(), 1);
    let key = digest(&[b"alice", b"wonderland"]);
    assert_eq!(
        auth.cache.get(&key, Instant::now()).as_deref(),
        Some("alice")
    );
    // A wrong password is neither cached nor served from the cache.
    assert!(
        auth.authenticate(&basic("alice", "wonderlandx"))
            .await
            .is_err()
    );
    assert_eq!(auth.cache.len(), 1);
}

#[test]
fn weak_or_unknown_hashes_are_refused_naming_the_line() {
    let cases = [
        ("alice:$apr1$abc$def\n", 1, "MD5 or SHA-1"),
        (
            "# x\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n",
            2,
            "MD5 or SHA-1",
        ),
        ("carol:plain-password\n", 1, "plain-text"),
        ("dave:$2y$10$short\n", 1, "well-formed bcrypt"),
        ("no-colon-here\n", 1, "user:hash"),
    ];
    for (text, line, words) in cases {
        let message = BasicAuth::new(text.as_bytes(), "shop", false)
            .unwrap_err()
            .to_string();
        assert!(message.starts_with(&format!("line {line}: ")), "{message}");
        assert!(message.contains(words), "{message}");
        assert!(!message.contains("plain-password"), "{message}");
    }
    assert!(BasicAuth::new(b"# nobody\n", "shop", false).is_err());
}

#[test]
fn authorization_is_removed_before_forwarding_unless_kept() {
    let auth = BasicAuth::new(htpasswd().as_bytes(), "shop", false).unwrap();
    let mut headers = basic("alice", "wonderland");
    auth.prepare_upstream(&mut headers);
    assert!(headers.get(AUTHORIZATION).is_none());
    let keeping = BasicAuth::new(htpasswd().as_bytes(), "shop", true).unwrap();
    let mut headers = basic("alice", "wonderland");
    keeping.prepare_upstream(&mut headers);
    assert!(headers.get(AUTHORIZATION).is_some());
    assert!(!format!("{auth:?}").contains("$2"));
}
