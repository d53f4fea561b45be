//! A rule's rate limit on the request path: which bucket a request draws from, and the fields
//! that tell the caller where it stands.

use std::{net::IpAddr, sync::Arc, time::Duration};

use http::{HeaderMap, HeaderName, Response, StatusCode, request::Parts};
use portcullis_policy::{
    auth::Identity,
    rate::{Checked, GlobalLimiter, LocalLimiter, RateLimitHeaders},
};

use super::too_many;
use crate::{body::Body, forward::local};

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

/// Where a rule's buckets are counted.
#[derive(Debug, Clone)]
pub enum Limiter {
    /// In this replica (`scope: Local`).
    Local(Arc<LocalLimiter>),
    /// In the Gateway's shared Redis, through this replica's leases (`scope: Global`).
    Global(Arc<GlobalLimiter>),
}

impl Limiter {
    /// Drops the keys that went idle and returns their memory (call every few seconds).
    pub fn retain_recent(&self) {
        match self {
            Limiter::Local(limiter) => limiter.retain_recent(),
            Limiter::Global(limiter) => limiter.retain_recent(),
        }
    }
}

/// A rule's rate limit.
#[derive(Debug)]
pub struct Rate {
    /// The buckets (shared with the next table when the policy does not change).
    pub limiter: Limiter,
    /// `RateLimit-Policy` and `RateLimit`.
    pub headers: RateLimitHeaders,
    /// What a bucket is keyed by.
    pub key: RateKey,
}

/// How long a client refused because the shared Redis gave no answer is asked to wait: the
/// store tries Redis again after half a second.
const UNCOUNTED_RETRY_AFTER: Duration = Duration::from_secs(1);

impl Rate {
    /// Takes a token for the request. A request without the header, claim or consumer its key
    /// names draws from its client address's bucket instead: leaving the header out must not be
    /// a way around the limit.
    pub async fn check(
        &self,
        head: &Parts,
        client: IpAddr,
        identity: Option<&Identity>,
    ) -> Checked {
        let key = self.caller(head, client, identity);
        match &self.limiter {
            Limiter::Local(limiter) => Checked::Counted(limiter.check(key)),
            Limiter::Global(limiter) => limiter.check(key).await,
        }
    }

    /// The answer to a request the limit refuses: 429 when counted over the limit, 503 when the
    /// shared Redis gave no answer and the rule fails closed (the client is not over any limit:
    /// the gateway cannot tell, and says so with a status clients and their retry policies
    /// treat as temporary).
    pub fn refused(&self, checked: &Checked) -> Response<Body> {
        match checked {
            Checked::Counted(decision) => {
                let mut response = too_many(decision);
                self.headers.apply(decision, response.headers_mut());
                response
            }
            Checked::Uncounted { .. } => {
                let mut response = local(StatusCode::SERVICE_UNAVAILABLE);
                self.headers
                    .apply_uncounted(Some(UNCOUNTED_RETRY_AFTER), response.headers_mut());
                response
            }
        }
    }

    /// Sets the rate-limit fields on an admitted request's response.
    pub fn decorate(&self, checked: &Checked, headers: &mut HeaderMap) {
        match checked {
            Checked::Counted(decision) => self.headers.apply(decision, headers),
            Checked::Uncounted { .. } => self.headers.apply_uncounted(None, headers),
        }
    }

    /// The bytes naming the request's bucket. Each kind of key has its own prefix, so that no
    /// header value can name an address's bucket.
    fn caller(&self, head: &Parts, client: IpAddr, identity: Option<&Identity>) -> CallerKey {
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
        match (chosen, client) {
            (Some(key), _) => CallerKey::Chosen(key),
            (None, IpAddr::V4(ip)) => {
                let mut key = [0u8; 6];
                key[..2].copy_from_slice(b"4:");
                key[2..].copy_from_slice(&ip.octets());
                CallerKey::V4(key)
            }
            (None, IpAddr::V6(ip)) => {
                let mut key = [0u8; 18];
                key[..2].copy_from_slice(b"6:");
                key[2..].copy_from_slice(&ip.octets());
                CallerKey::V6(key)
            }
        }
    }
}

/// A caller's key: an address needs no allocation.
enum CallerKey {
    Chosen(Vec<u8>),
    V4([u8; 6]),
    V6([u8; 18]),
}

impl AsRef<[u8]> for CallerKey {
    fn as_ref(&self) -> &[u8] {
        match self {
            CallerKey::Chosen(key) => key,
            CallerKey::V4(key) => key,
            CallerKey::V6(key) => key,
        }
    }
}
