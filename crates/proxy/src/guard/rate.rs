//! A rule's rate limit on the request path: which bucket a request draws from, and the fields
//! that tell the caller where it stands.

use std::{net::IpAddr, sync::Arc};

use http::{HeaderMap, HeaderName, Response, request::Parts};
use portcullis_policy::{
    auth::Identity,
    rate::{Decision, LocalLimiter, RateLimitHeaders},
};

use super::too_many;
use crate::body::Body;

/// What identifies one caller of a rate-limited rule.
#[derive(Debug, Clone)]
pub enum RateKey {
    /// The client's address (from a trusted proxy's `X-Forwarded-For`, else the socket).
    ClientIp,
    /// A request header's value.
    Header(HeaderName),
    /// A claim of the verified JWT.
    Claim(String),
    /// The authenticated consumer.
    Consumer,
}

/// A rule's rate limit.
#[derive(Debug)]
pub struct Rate {
    /// The buckets (shared with the next table when the policy does not change).
    pub limiter: Arc<LocalLimiter>,
    /// `RateLimit-Policy` and `RateLimit`.
    pub headers: RateLimitHeaders,
    /// What a bucket is keyed by.
    pub key: RateKey,
}

impl Rate {
    /// Takes a token for the request. A request without the header, claim or consumer its key
    /// names draws from its client address's bucket instead: leaving the header out must not be
    /// a way around the limit.
    pub fn check(&self, head: &Parts, client: IpAddr, identity: Option<&Identity>) -> Decision {
        let chosen: Option<Vec<u8>> = match &self.key {
            RateKey::ClientIp => None,
            RateKey::Header(name) => head.headers.get(name).map(|value| {
                let mut key = b"h:".to_vec();
                key.extend_from_slice(value.as_bytes());
                key
            }),
            RateKey::Claim(name) => identity
                .and_then(|i| i.claims.as_ref())
                .and_then(|claims| claims.get(name))
                .map(|claim| {
                    let text = match claim {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    format!("c:{text}").into_bytes()
                }),
            RateKey::Consumer => identity
                .and_then(|i| i.consumer.as_deref())
                .map(|consumer| format!("u:{consumer}").into_bytes()),
        };
        // Each kind of key has its own prefix, so that no header value can name an address's
        // bucket.
        match (chosen, client) {
            (Some(key), _) => self.limiter.check(key),
            (None, IpAddr::V4(ip)) => {
                let mut key = [0u8; 6];
                key[..2].copy_from_slice(b"4:");
                key[2..].copy_from_slice(&ip.octets());
                self.limiter.check(key)
            }
            (None, IpAddr::V6(ip)) => {
                let mut key = [0u8; 18];
                key[..2].copy_from_slice(b"6:");
                key[2..].copy_from_slice(&ip.octets());
                self.limiter.check(key)
            }
        }
    }

    /// The 429 answer to a request over the limit.
    pub fn limited(&self, decision: &Decision) -> Response<Body> {
        let mut response = too_many(decision);
        self.headers.apply(decision, response.headers_mut());
        response
    }

    /// Sets the rate-limit fields on an admitted request's response.
    pub fn decorate(&self, decision: &Decision, headers: &mut HeaderMap) {
        self.headers.apply(decision, headers);
    }
}
