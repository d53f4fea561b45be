//! What a rule caches, and the key a request is stored under.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{
    HeaderMap, HeaderName, Method,
    header::{AUTHORIZATION, COOKIE},
};

/// A rule's cache settings (the compiled `CachePolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRule {
    ttl: Duration,
    vary: Vec<HeaderName>,
    stale_if_error: Duration,
    keyed_by_consumer: bool,
}

impl CacheRule {
    /// Responses are fresh for `ttl` unless the backend says less; `vary` request headers are
    /// part of the key; a stale copy may stand in for a failed fetch for `stale_if_error`.
    pub fn new(ttl: Duration, vary: Vec<HeaderName>, stale_if_error: Duration) -> Self {
        Self {
            ttl,
            vary,
            stale_if_error,
            keyed_by_consumer: false,
        }
    }

    /// For a rule that authenticates its callers: the authenticated consumer becomes part of
    /// the key, so requests with `Authorization` or `Cookie` are cached, each consumer seeing
    /// only its own copies. Without it such requests are never cached.
    pub fn keyed_by_consumer(mut self) -> Self {
        self.keyed_by_consumer = true;
        self
    }

    /// The default freshness lifetime, and the longest.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How long past its freshness a copy may stand in for a failed fetch.
    pub fn stale_if_error(&self) -> Duration {
        self.stale_if_error
    }

    /// The key `request` is cached under, or why it is not cached.
    ///
    /// The key is the host (lowercased), the path and query exactly as given, the consumer when
    /// the rule is [keyed by consumer](Self::keyed_by_consumer), and the values of the rule's
    /// `vary` headers. **Nothing else of the request is**: a header outside the key (for
    /// example `X-Forwarded-Host`) cannot change what other callers are served, so the backend
    /// must not vary its answer on such a header without saying so in `Vary`. Keys start with
    /// `host` + `path?query` (for example `shop.example.com/items?page=2`), which is what
    /// [`purge_prefix`](super::LocalCache::purge_prefix) matches.
    pub fn key(&self, request: &CacheRequest<'_>) -> Result<Bytes, Bypass> {
        if request.method != Method::GET && request.method != Method::HEAD {
            return Err(Bypass::Method);
        }
        let consumer = if self.keyed_by_consumer {
            Some(request.consumer.ok_or(Bypass::NoConsumer)?)
        } else if request.headers.contains_key(AUTHORIZATION) {
            return Err(Bypass::Authorization);
        } else if request.headers.contains_key(COOKIE) {
            return Err(Bypass::Cookie);
        } else {
            None
        };
        let mut key =
            BytesMut::with_capacity(request.host.len() + request.path_and_query.len() + 32);
        key.extend(request.host.bytes().map(|b| b.to_ascii_lowercase()));
        key.put_slice(request.path_and_query.as_bytes());
        if let Some(consumer) = consumer {
            // Length-prefixed: a consumer name cannot imitate what follows it.
            key.put_slice(b"\0consumer=");
            key.put_u64(consumer.len() as u64);
            key.put_slice(consumer.as_bytes());
        }
        for name in &self.vary {
            put_header(&mut key, request.headers, name.as_str());
        }
        Ok(key.freeze())
    }
}

/// Appends `\0name` and each value as `\x01value`: header values cannot hold these bytes, so
/// two different requests never make the same key, and an absent header differs from an
/// empty one.
pub(crate) fn put_header(key: &mut BytesMut, headers: &HeaderMap, name: &str) {
    key.put_u8(0);
    key.put_slice(name.as_bytes());
    for value in headers.get_all(name) {
        key.put_u8(1);
        key.put_slice(value.as_bytes());
    }
}

/// The parts of a request the cache reads. The proxy fills it after routing and
/// authentication; `path_and_query` is the normalized path the rule matched and forwards.
#[derive(Debug, Clone, Copy)]
pub struct CacheRequest<'a> {
    /// GET and HEAD are cached; anything else goes through.
    pub method: &'a Method,
    /// The request's host, as the route matched it.
    pub host: &'a str,
    /// The normalized path, with `?` and the query when there is one.
    pub path_and_query: &'a str,
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// The authenticated consumer, if the rule authenticates.
    pub consumer: Option<&'a str>,
}

/// Why a request goes to the backend without the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// Only GET and HEAD are cached.
    Method,
    /// The request carries credentials and the rule is not keyed by consumer.
    Authorization,
    /// The request carries cookies and the rule is not keyed by consumer.
    Cookie,
    /// The rule is keyed by consumer but the request has none.
    NoConsumer,
}
