//! Rate limiting: how often a caller may call a rule.
//!
//! A limit is a token bucket per key (a client IP, a header value, a JWT claim, an API-key
//! consumer: the proxy extracts it, this module only sees bytes). The bucket holds
//! `requests + burst` tokens and refills at `requests` per `period`, one token at a time, so a
//! caller idle for a while may send `requests + burst` at once and then `requests` per `period`.
//! In Envoy's terms that is `max_tokens = requests + burst`, `tokens_per_fill = 1`,
//! `fill_interval = period / requests`; in nginx's, `rate=requests/period burst=burst nodelay`.
//!
//! - [`LocalLimiter`] counts per gateway replica (`scope: Local`): with N replicas behind a load
//!   balancer a caller gets up to N times the limit.
//! - [`Decision`] is what any limiter answers, and [`RateLimitHeaders`] turns it into the
//!   response's `Retry-After`, `RateLimit-Policy` and `RateLimit` fields, whatever the scope.
//!
//! # `scope: Global` (designed here, built later)
//!
//! A global limit is shared by every replica through the Gateway's `sharedState.redis`, without a
//! Redis round trip on each request's critical path:
//!
//! - Redis holds one bucket per key (tokens and last refill time, refilled on read from Redis'
//!   own `TIME`, so replicas' clocks do not matter). A Lua script refills the bucket, takes
//!   `min(batch, tokens)` tokens and returns how many it took and when the bucket is full again,
//!   atomically: two replicas can never lease the same token.
//! - Each replica keeps, per key, the tokens it has leased and spends them locally with no I/O.
//!   When its lease falls below a low-water mark it leases the next batch in the background; a
//!   request only waits on Redis when the replica holds no token for its key, and then for at
//!   most a short timeout.
//! - Leased tokens expire locally after a fraction of the period, so tokens a replica took but did
//!   not use are not hoarded (they are lost for that window, which only makes the limit stricter).
//! - Bound: every admitted request spends a token the script handed out, so over time the
//!   admissions match the shared bucket exactly. Over a short interval, though, a replica may
//!   spend tokens it leased before the interval began: the callers of one key see at most
//!   `replicas × batch` more admissions in any interval than one strict shared bucket would allow.
//!   `batch` stays small (for example `max(1, requests / (10 × replicas))`), and is 1 for low
//!   limits, where a round trip per request is affordable.
//! - Redis unreachable: the decision falls back to the rule's `failOpen` (admit, with
//!   [`Decision::Allowed`]) or `failClosed` (refuse with
//!   [`Decision::Limited`]), decided within the timeout, with a metric and a log line.
//!
//! The same [`Decision`] and [`RateLimitHeaders`] serve both scopes, so a response looks the same
//! to a caller whichever scope the rule uses.

mod headers;
mod local;

use std::time::Duration;

pub use headers::{RATELIMIT, RATELIMIT_POLICY, RateLimitHeaders, retry_after_secs};
pub use local::{DEFAULT_MAX_KEYS, LocalLimiter, RateLimitError};

/// What a limiter answers for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request may go on.
    Allowed {
        /// Tokens left in the caller's bucket after this request.
        remaining: u32,
        /// Time until the caller's bucket is full again.
        reset: Duration,
    },
    /// The request is over the limit: answer 429.
    Limited {
        /// Time until the caller's next request can be allowed.
        retry_after: Duration,
        /// Time until the caller's bucket is full again.
        reset: Duration,
    },
}

impl Decision {
    /// Whether the request may go on.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }

    /// Tokens left for the caller (0 when limited).
    pub fn remaining(&self) -> u32 {
        match self {
            Decision::Allowed { remaining, .. } => *remaining,
            Decision::Limited { .. } => 0,
        }
    }

    /// Time until the caller's bucket is full again.
    pub fn reset(&self) -> Duration {
        match self {
            Decision::Allowed { reset, .. } | Decision::Limited { reset, .. } => *reset,
        }
    }
}
