use std::sync::{
    Mutex as StdMutex,
    atomic::{AtomicUsize, Ordering},
};

use jsonwebtoken::Algorithm;

use super::*;
use crate::auth::{
    JwtAuth, JwtConfig, RefusalReason,
    jwt::tests::{JWKS, bearer, good_claims, rsa_key, sign},
};

/// An issuer that answers from a script, then repeats its last answer; counts its fetches.
struct Issuer {
    answers: StdMutex<Vec<Result<JwksResponse, FetchError>>>,
    fetches: AtomicUsize,
}

impl Issuer {
    fn new(answers: Vec<Result<JwksResponse, FetchError>>) -> Arc<Self> {
        Arc::new(Self {
            answers: StdMutex::new(answers),
            fetches: AtomicUsize::new(0),
        })
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl JwksFetch for Issuer {
    fn fetch(&self) -> BoxFuture<'_, Result<JwksResponse, FetchError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let mut answers = self.answers.lock().unwrap();
        let answer = if answers.len() > 1 {
            answers.remove(0)
        } else {
            answers[0].clone()
        };
        Box::pin(async move { answer })
    }
}

fn good(max_age: Option<u64>) -> Result<JwksResponse, FetchError> {
    Ok(JwksResponse {
        body: Bytes::from_static(JWKS),
        max_age: max_age.map(Duration::from_secs),
    })
}

fn garbage() -> Result<JwksResponse, FetchError> {
    Ok(JwksResponse {
        body: Bytes::from_static(b"<html>502 Bad Gateway</html>"),
        max_age: None,
    })
}

fn down() -> Result<JwksResponse, FetchError> {
    Err(FetchError("connection refused".into()))
}

fn rs256_auth(source: JwksSource) -> JwtAuth {
    JwtAuth::new(
        JwtConfig {
            audiences: vec!["shop".into()],
            ..JwtConfig::new("https://issuer.example")
        },
        source,
    )
    .unwrap()
}

#[test]
fn the_schedule_honours_max_age_within_bounds() {
    let schedule = RefreshSchedule::default();
    assert_eq!(schedule.after_success(None), Duration::from_secs(600));
    assert_eq!(
        schedule.after_success(Some(Duration::from_secs(3600))),
        Duration::from_secs(3600)
    );
    assert_eq!(
        schedule.after_success(Some(Duration::from_secs(5))),
        Duration::from_secs(60)
    );
    assert_eq!(
        schedule.after_success(Some(Duration::from_secs(9 << 20))),
        Duration::from_secs(86400)
    );
    let retries: Vec<u64> = (1..=8)
        .map(|n| schedule.after_failure(n).as_secs())
        .collect();
    assert_eq!(retries, [10, 20, 40, 80, 160, 320, 600, 600]);
    assert_eq!(schedule.after_failure(u32::MAX), Duration::from_secs(600));
}

#[test]
fn cache_control_is_read_for_freshness_only() {
    assert_eq!(
        max_age("public, max-age=3600"),
        Some(Duration::from_secs(3600))
    );
    assert_eq!(
        max_age("max-age=\"120\", must-revalidate"),
        Some(Duration::from_secs(120))
    );
    assert_eq!(max_age("no-store"), Some(Duration::ZERO));
    assert_eq!(max_age("public, no-cache"), Some(Duration::ZERO));
    assert_eq!(max_age("private"), None);
    assert_eq!(max_age("max-age=soon"), None);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_kid_refreshes_at_most_once_per_gap() {
    let issuer = Issuer::new(vec![good(None)]);
    let source = JwksSource::remote(issuer.clone(), RefreshSchedule::default());
    let auth = rs256_auth(source.clone());
    // The first token fetches the set (it was empty) and passes.
    let token = sign(Algorithm::RS256, Some("rsa-1"), &good_claims(), &rsa_key());
    assert!(auth.authenticate(&bearer(&token)).await.is_ok());
    assert_eq!(issuer.fetches(), 1);
    // A flood of made-up kids costs one more fetch per gap.
    let made_up = sign(
        Algorithm::RS256,
        Some("made-up"),
        &good_claims(),
        &rsa_key(),
    );
    for _ in 0..20 {
        let refusal = auth.authenticate(&bearer(&made_up)).await.unwrap_err();
        assert_eq!(refusal.reason(), RefusalReason::UnknownKid);
    }
    assert_eq!(issuer.fetches(), 1);
    tokio::time::advance(Duration::from_secs(6)).await;
    for _ in 0..20 {
        assert!(auth.authenticate(&bearer(&made_up)).await.is_err());
    }
    assert_eq!(issuer.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_last_good_set_serves_while_the_issuer_is_down_or_answers_garbage() {
    let issuer = Issuer::new(vec![good(Some(60)), down(), garbage()]);
    let source = JwksSource::remote(issuer.clone(), RefreshSchedule::default());
    assert_eq!(source.refresh().await, Some(Ok(Duration::from_secs(60))));
    let keys = source.key_count();
    assert!(keys >= 3, "{keys}");
    assert!(matches!(
        source.refresh().await,
        Some(Err(RefreshError::Fetch(_)))
    ));
    assert!(matches!(
        source.refresh().await,
        Some(Err(RefreshError::Invalid(_)))
    ));
    assert_eq!(source.key_count(), keys);
    let token = sign(Algorithm::RS256, Some("rsa-1"), &good_claims(), &rsa_key());
    assert!(
        rs256_auth(source)
            .authenticate(&bearer(&token))
            .await
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn a_remote_set_never_fetched_refuses_as_unavailable() {
    let issuer = Issuer::new(vec![down()]);
    let auth = rs256_auth(JwksSource::remote(
        issuer.clone(),
        RefreshSchedule::default(),
    ));
    let token = sign(Algorithm::RS256, Some("rsa-1"), &good_claims(), &rsa_key());
    let refusal = auth.authenticate(&bearer(&token)).await.unwrap_err();
    assert_eq!(refusal.reason(), RefusalReason::KeysUnavailable);
    assert_eq!(refusal.status(), 401);
}

#[tokio::test(start_paused = true)]
async fn run_follows_max_age_and_backs_off_on_failure() {
    let issuer = Issuer::new(vec![good(Some(120)), down(), down(), good(Some(3600))]);
    let source = JwksSource::remote(issuer.clone(), RefreshSchedule::default());
    let runner = tokio::spawn({
        let source = source.clone();
        async move { source.run().await }
    });
    let at = |secs| tokio::time::sleep(Duration::from_secs(secs));
    at(1).await;
    assert_eq!(issuer.fetches(), 1);
    at(120).await; // max-age 120 s: the second fetch, which fails
    assert_eq!(issuer.fetches(), 2);
    at(10).await; // first retry after 10 s, fails again
    assert_eq!(issuer.fetches(), 3);
    at(20).await; // then after 20 s, succeeds with max-age 3600
    assert_eq!(issuer.fetches(), 4);
    at(3000).await;
    assert_eq!(issuer.fetches(), 4);
    assert!(source.key_count() >= 3);
    runner.abort();
}

#[test]
fn a_secret_change_replaces_the_set_and_a_bad_one_is_refused() {
    let source = JwksSource::from_secret(JWKS).unwrap();
    assert_eq!(source.key_count(), 5);
    let error = source.replace(b"{\"keys\": []}").unwrap_err();
    assert!(error.to_string().contains("none of its 0 keys"), "{error}");
    assert_eq!(source.key_count(), 5);
    assert!(source.replace(b"not json").is_err());
    let short_oct = br#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#;
    let error = source.replace(short_oct).unwrap_err();
    assert!(error.to_string().contains("at least 32 bytes"), "{error}");
    let only_oct =
        br#"{"keys":[{"kty":"oct","kid":"h","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#;
    source.replace(only_oct).unwrap();
    assert_eq!(source.key_count(), 1);
    // The same document from a URL has no usable key: HMAC secrets are not fetched.
    let remote = JwksSource::remote(Issuer::new(vec![down()]), RefreshSchedule::default());
    assert!(remote.replace(only_oct).is_err());
}

#[test]
fn encryption_and_unknown_keys_are_skipped() {
    let jwks = br#"{"keys":[
        {"kty":"RSA","use":"enc","kid":"e","n":"AQAB","e":"AQAB"},
        {"kty":"XYZ","kid":"x"},
        {"kty":"oct","kid":"h","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#;
    let source = JwksSource::from_secret(jwks).unwrap();
    assert_eq!(source.key_count(), 1);
}

#[test]
fn hmac_with_a_key_set_from_a_url_is_refused() {
    let source = JwksSource::remote(Issuer::new(vec![down()]), RefreshSchedule::default());
    let config = JwtConfig {
        algorithms: vec![
            crate::auth::JwtAlgorithm::RS256,
            crate::auth::JwtAlgorithm::HS256,
        ],
        ..JwtConfig::new("https://issuer.example")
    };
    let error = JwtAuth::new(config, source).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("HS256 needs its shared secret in a Secret"),
        "{error}"
    );
}
