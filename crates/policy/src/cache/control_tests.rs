use http::HeaderValue;

use super::*;

const TTL: Duration = Duration::from_secs(60);
const STALE: Duration = Duration::from_secs(30);

fn with(fields: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        headers.append(*name, HeaderValue::from_static(value));
    }
    headers
}

fn decide(fields: &[(&'static str, &'static str)]) -> Result<Freshness, NotStored> {
    freshness(StatusCode::OK, &with(fields), TTL, STALE)
}

#[test]
fn the_rule_ttl_applies_when_the_backend_says_nothing() {
    let fresh = decide(&[]).expect("storable");
    assert_eq!(fresh.lifetime, TTL);
    assert_eq!(fresh.stale_if_error, STALE);
}

#[test]
fn a_shorter_max_age_wins_and_a_longer_one_is_capped_by_the_ttl() {
    assert_eq!(
        decide(&[("cache-control", "max-age=10")]).map(|f| f.lifetime),
        Ok(Duration::from_secs(10))
    );
    assert_eq!(
        decide(&[("cache-control", "max-age=3600")]).map(|f| f.lifetime),
        Ok(TTL)
    );
}

#[test]
fn s_maxage_wins_over_max_age_for_a_shared_cache() {
    let fresh = decide(&[("cache-control", "max-age=5, s-maxage=20")]).expect("storable");
    assert_eq!(fresh.lifetime, Duration::from_secs(20));
}

#[test]
fn private_no_store_no_cache_and_set_cookie_are_not_stored() {
    assert_eq!(
        decide(&[("cache-control", "private")]),
        Err(NotStored::Private)
    );
    assert_eq!(
        decide(&[("cache-control", "public, no-store")]),
        Err(NotStored::NoStore)
    );
    assert_eq!(
        decide(&[("cache-control", "no-cache")]),
        Err(NotStored::NoCache)
    );
    assert_eq!(
        decide(&[("set-cookie", "session=1")]),
        Err(NotStored::SetCookie)
    );
    assert_eq!(decide(&[("vary", "Accept, *")]), Err(NotStored::VaryAll));
    assert_eq!(
        decide(&[("cache-control", "max-age=0")]),
        Err(NotStored::Expired)
    );
    assert_eq!(decide(&[("expires", "0")]), Err(NotStored::Expired));
}

#[test]
fn only_statuses_cacheable_by_default_are_stored() {
    let none = HeaderMap::new();
    let decide = |status| freshness(status, &none, TTL, STALE).map(|_| ());
    assert_eq!(decide(StatusCode::NOT_FOUND), Ok(()));
    assert_eq!(decide(StatusCode::PARTIAL_CONTENT), Err(NotStored::Status));
    assert_eq!(
        decide(StatusCode::INTERNAL_SERVER_ERROR),
        Err(NotStored::Status)
    );
}

#[test]
fn must_revalidate_forbids_serving_stale() {
    for directive in ["must-revalidate", "proxy-revalidate"] {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(directive));
        let fresh = freshness(StatusCode::OK, &headers, TTL, STALE).expect("storable");
        assert_eq!(fresh.stale_if_error, Duration::ZERO, "{directive}");
    }
}

#[test]
fn expires_gives_the_lifetime_from_the_date() {
    let fresh = decide(&[
        ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("expires", "Sun, 06 Nov 1994 08:49:57 GMT"),
    ])
    .expect("storable");
    assert_eq!(fresh.lifetime, Duration::from_secs(20));
}

#[test]
fn the_age_a_response_arrives_with_counts() {
    let fresh = decide(&[("cache-control", "max-age=50"), ("age", "20")]).expect("storable");
    assert_eq!(fresh.initial_age, Duration::from_secs(20));
    assert_eq!(
        decide(&[("cache-control", "max-age=10"), ("age", "20")]),
        Err(NotStored::Expired)
    );
}

#[test]
fn vary_names_are_lowercased_sorted_and_deduplicated() {
    let headers = with(&[("vary", "Accept-Language, accept"), ("vary", "ACCEPT")]);
    assert_eq!(
        vary_names(&headers),
        Some(vec!["accept".to_owned(), "accept-language".to_owned()])
    );
}
