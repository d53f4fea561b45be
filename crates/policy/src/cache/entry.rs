//! A stored response, and the `X-Cache`/`Age` fields it is served with.

use std::time::Duration;

use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Response, StatusCode,
    header::{AGE, SET_COOKIE},
};
use tokio::time::Instant;

use super::control::Freshness;

/// `X-Cache`: where a response came from.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Where a response came from, as told to the client in `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from a fresh stored copy (including a copy another request fetched just now).
    Hit,
    /// Fetched from the backend for this request.
    Miss,
    /// A stale stored copy, served because the backend failed.
    Stale,
}

impl CacheStatus {
    /// The `X-Cache` value: `HIT`, `MISS` or `STALE`.
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
        })
    }

    /// Sets `X-Cache` on a response's headers.
    pub fn apply(self, headers: &mut HeaderMap) {
        headers.insert(X_CACHE, self.header_value());
    }
}

/// A response as the backend gave it, with its whole body.
///
/// `headers` are the fields the proxy would send to the client: hop-by-hop fields already
/// removed by the proxy's forwarding code (one implementation of that list, not two). The
/// cache drops `Age` itself and sets its own on every hit.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The response status.
    pub status: StatusCode,
    /// The end-to-end response fields.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// A stored response and what the cache knows of its freshness.
pub(crate) struct Entry {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    stored_at: Instant,
    freshness: Freshness,
    /// The `Vary` names the response carried; the entry answers only requests whose values
    /// of these match (they are part of its key).
    pub vary: Vec<String>,
}

#[path = "wire.rs"]
mod wire;

/// The per-entry bookkeeping the byte bound charges on top of the body and fields.
const ENTRY_OVERHEAD: usize = 256;

impl Entry {
    pub fn new(fetched: Fetched, freshness: Freshness, vary: Vec<String>, now: Instant) -> Self {
        let mut headers = fetched.headers;
        headers.remove(AGE);
        headers.remove(SET_COOKIE);
        Self {
            status: fetched.status,
            headers,
            body: fetched.body,
            stored_at: now,
            freshness,
            vary,
        }
    }

    /// The bytes the cache charges for this entry: body, fields and bookkeeping.
    pub fn weight(&self, key_len: usize) -> u32 {
        let fields: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum();
        let vary: usize = self.vary.iter().map(|name| name.len() + 24).sum();
        let total = self.body.len() + fields + vary + key_len + ENTRY_OVERHEAD;
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    /// RFC 9111 §4.2.3's current age: the age it arrived with plus the time it has been here.
    pub fn age(&self, now: Instant) -> Duration {
        self.freshness.initial_age + now.saturating_duration_since(self.stored_at)
    }

    pub fn is_fresh(&self, now: Instant) -> bool {
        self.age(now) < self.freshness.lifetime
    }

    /// Whether the copy may still stand in for a failed fetch.
    pub fn is_usable_stale(&self, now: Instant) -> bool {
        self.age(now) < self.freshness.lifetime + self.freshness.stale_if_error
    }

    /// How long after storing the entry is of no more use, for the store's own expiry.
    pub fn useful_for(&self) -> Duration {
        (self.freshness.lifetime + self.freshness.stale_if_error)
            .saturating_sub(self.freshness.initial_age)
    }

    /// The response to serve: the stored one with `Age` and `X-Cache`, and no body for a HEAD.
    pub fn response(&self, now: Instant, head: bool, status: CacheStatus) -> Response<Bytes> {
        let mut response = Response::new(if head {
            Bytes::new()
        } else {
            self.body.clone()
        });
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.clone_from(&self.headers);
        headers.insert(AGE, HeaderValue::from(self.age(now).as_secs()));
        status.apply(headers);
        response
    }
}
