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
//! - [`GlobalLimiter`] counts in the Gateway's `sharedState.redis`, shared by every replica
//!   (`scope: Global`).
//! - [`Decision`] is what any limiter answers, and [`RateLimitHeaders`] turns it into the
//!   response's `Retry-After`, `RateLimit-Policy` and `RateLimit` fields, whatever the scope.
//!
//! # `scope: Global`
//!
//! A global limit is shared by every replica without a Redis round trip on each request's
//! critical path:
//!
//! - Redis holds one bucket per key (tokens and the time they were counted, refilled on read
//!   from Redis's own `TIME`, so replicas' clocks do not matter). A Lua script refills the
//!   bucket, takes `min(want, tokens)` tokens and says how many it took, how many are left, and
//!   when the bucket is full again or holds its next token, atomically: two replicas can never
//!   take the same token. A full bucket is deleted and any other expires when it would be
//!   full, so an idle caller costs Redis nothing. Keys are
//!   `portcullis:rl:<gateway>:<route>:<rule>:<key type>:<quota>:<caller digest>`: the caller's
//!   key is hashed (a header value may be a credential), and the quota is in the name, so no
//!   two rules share a bucket.
//! - Each replica keeps, per key, the tokens it leased and spends them with no I/O. A key
//!   starts with no lease: its first request takes exactly its own token from Redis. When a
//!   request finds no token held less than a lease period after the previous one did, or half
//!   a lease is spent in under a quarter of a lease period, demand outruns the lease and the
//!   next lease doubles, up to `max_batch = max(1, (requests + burst) / 50)`. When the lease
//!   falls to half its batch, the next batch is leased in the background, so at a steady rate
//!   no request waits on Redis. One lease per key is in flight at a time; requests that find
//!   nothing held meanwhile take exactly their own token.
//! - Leased tokens lapse when their key has had no request on this replica for a tenth of the
//!   period (at least 50 ms, at most 10 s), and tokens that lapse unspent halve the next lease:
//!   a replica the load balancer no longer sends a caller to does not hoard the caller's tokens
//!   for long. Lapsed tokens are lost for that window, which only makes the limit stricter.
//! - A take whose answer comes after the store's timeout has still taken its tokens in Redis:
//!   they are lost, which only makes the limit stricter.
//! - When Redis says a bucket holds no token, the replica refuses that key locally until the
//!   next one is due: callers over their limit cost Redis nothing.
//! - **Bound.** Every admitted request spends a token the script handed out, and a replica
//!   holds at most `max_batch` tokens of a key, so over any interval the callers of one key see
//!   at most `replicas × max_batch` more admissions than one strict shared bucket would allow
//!   (2 % of the bucket per replica). A bucket of fewer than 100 tokens has `max_batch = 1`:
//!   nothing is held ahead, every admission is a round trip to Redis, and the limit holds
//!   exactly across any number of replicas.
//! - Redis unreachable: a replica spends the tokens it holds, and a request that needs Redis
//!   gets [`Checked::Uncounted`] within the store's timeout, or at once during the store's
//!   back-off after a failure (see [`crate::shared`]): the rule's [`FailureMode`] admits it
//!   uncounted (`Open`) or refuses it (`Closed`). The store logs the outage (rate-limited);
//!   the proxy counts each such request.
//!
//! The same [`Decision`] and [`RateLimitHeaders`] serve both scopes, so a response looks the same
//! to a caller whichever scope the rule uses. A global limit's `RateLimit` field tells what this
//! replica knows: its lease plus what Redis said was left at its last answer.

mod bucket;
mod global;
mod headers;
mod lease;
mod local;

use std::time::Duration;

pub use bucket::KEY_PREFIX;
pub use global::{FailureMode, GlobalLimiter};
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

/// A limit's answer for one request, whatever its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Counted against the caller's bucket (always, for a local limit; for a global one, from
    /// this replica's lease or from Redis).
    Counted(Decision),
    /// A global limit's Redis gave no answer in time, and the rule's [`FailureMode`] decided.
    Uncounted {
        /// Whether the request may go on (`FailOpen`).
        admitted: bool,
        /// Why Redis gave no answer: [`SharedError::label`](crate::shared::SharedError::label).
        error: &'static str,
    },
}

impl Checked {
    /// Whether the request may go on.
    pub fn is_allowed(&self) -> bool {
        match self {
            Checked::Counted(decision) => decision.is_allowed(),
            Checked::Uncounted { admitted, .. } => *admitted,
        }
    }
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
