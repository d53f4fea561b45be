use super::*;

const SECRET: &[u8] = b"# shop consumers\n\nalice:k-alice-0123456789\r\n bob : k-bob-9876543210 \n";

fn header_auth() -> ApiKeyAuth {
    ApiKeyAuth::new(SECRET, KeyLocation::default(), "shop", false).unwrap()
}

fn with_key(key: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_str(key).unwrap());
    headers
}

fn reason(result: Result<Identity, Refusal>) -> RefusalReason {
    result.unwrap_err().reason()
}

#[test]
fn a_listed_key_names_its_consumer() {
    let auth = header_auth();
    let identity = auth
        .authenticate(&with_key("k-alice-0123456789"), None)
        .unwrap();
    assert_eq!(identity.consumer.as_deref(), Some("alice"));
    let identity = auth
        .authenticate(&with_key("k-bob-9876543210"), None)
        .unwrap();
    assert_eq!(identity.consumer.as_deref(), Some("bob"));
    assert_eq!(auth.consumer_count(), 2);
}

#[test]
fn missing_unknown_and_prefix_keys_are_refused_with_a_challenge() {
    let auth = header_auth();
    let refusal = auth.authenticate(&HeaderMap::new(), None).unwrap_err();
    assert_eq!(refusal.reason(), RefusalReason::Missing);
    assert_eq!(refusal.status(), 401);
    assert_eq!(
        refusal.www_authenticate(),
        "ApiKey realm=\"shop\", header=\"x-api-key\""
    );
    assert_eq!(
        reason(auth.authenticate(&with_key(""), None)),
        RefusalReason::Missing
    );
    assert_eq!(
        reason(auth.authenticate(&with_key("k-alice-0123456788"), None)),
        RefusalReason::UnknownKey
    );
    // A prefix of a real key, and a real key with a suffix, are other keys.
    assert_eq!(
        reason(auth.authenticate(&with_key("k-alice-01234"), None)),
        RefusalReason::UnknownKey
    );
    assert_eq!(
        reason(auth.authenticate(&with_key("k-alice-0123456789x"), None)),
        RefusalReason::UnknownKey
    );
}

#[test]
fn two_key_headers_are_refused_rather_than_guessed() {
    let auth = header_auth();
    let mut headers = with_key("k-alice-0123456789");
    headers.append("x-api-key", HeaderValue::from_static("k-bob-9876543210"));
    assert_eq!(
        reason(auth.authenticate(&headers, None)),
        RefusalReason::Malformed
    );
}

#[test]
fn a_key_in_the_query_string_is_percent_decoded() {
    let secret = b"carol:a/b c+d\n";
    let auth = ApiKeyAuth::new(secret, KeyLocation::Query("apikey".into()), "shop", false).unwrap();
    let identity = auth
        .authenticate(&HeaderMap::new(), Some("x=1&apikey=a%2Fb%20c+d"))
        .unwrap();
    assert_eq!(identity.consumer.as_deref(), Some("carol"));
    assert_eq!(
        reason(auth.authenticate(&HeaderMap::new(), Some("apikeys=a%2Fb%20c+d"))),
        RefusalReason::Missing
    );
    assert_eq!(
        reason(auth.authenticate(&HeaderMap::new(), None)),
        RefusalReason::Missing
    );
    let refusal = auth.authenticate(&HeaderMap::new(), None).unwrap_err();
    assert_eq!(
        refusal.www_authenticate(),
        "ApiKey realm=\"shop\", query=\"apikey\""
    );
}

#[test]
fn the_key_header_is_removed_before_forwarding_unless_kept() {
    let mut headers = with_key("k-alice-0123456789");
    header_auth().prepare_upstream(&mut headers);
    assert!(headers.get("x-api-key").is_none());
    let keeping = ApiKeyAuth::new(SECRET, KeyLocation::default(), "shop", true).unwrap();
    let mut headers = with_key("k-alice-0123456789");
    keeping.prepare_upstream(&mut headers);
    assert!(headers.get("x-api-key").is_some());
}

#[test]
fn bad_secrets_are_refused_naming_the_line_but_never_the_key() {
    let cases: &[(&[u8], usize, &str)] = &[
        (
            b"alice:k1\nbob-without-colon-s3cret\n",
            2,
            "expected `consumer:key`",
        ),
        (b"alice:\n", 1, "the key is empty"),
        (b":s3cret\n", 1, "consumer name"),
        (b"al ice:s3cret\n", 1, "consumer name"),
        (b"alice:k1\n#\nalice:s3cret\n", 3, "listed twice"),
        (b"alice:s3cret\nbob:s3cret\n", 2, "already given"),
    ];
    for (secret, line, words) in cases {
        let error = ApiKeyAuth::new(secret, KeyLocation::default(), "shop", false).unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with(&format!("line {line}: ")), "{message}");
        assert!(message.contains(words), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }
}

#[test]
fn debug_output_shows_no_key_or_digest() {
    let auth = header_auth();
    let shown = format!("{auth:?}");
    assert!(shown.contains("consumers: 2"), "{shown}");
    assert!(!shown.contains("k-alice"), "{shown}");
    let digest_bytes = format!("{:?}", digest(&[b"k-alice-0123456789"]));
    assert!(!shown.contains(&digest_bytes[1..20]), "{shown}");
}
