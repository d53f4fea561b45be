//! The per-replica limiter: `governor`'s GCRA token buckets in a key-capped concurrent map.

use std::{
    hash::{BuildHasher, RandomState},
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use governor::{
    Quota, RateLimiter, clock::Clock, middleware::StateInformationMiddleware, nanos::Nanos,
    state::StateStore, state::keyed::DashMapStateStore, state::keyed::ShrinkableKeyedStateStore,
};

use super::Decision;
use crate::nanos;

/// The default cap on keys a [`LocalLimiter`] tracks at once: about 15 MiB of state at most
/// (each key costs a fixed 24 bytes plus the map's overhead, whatever the key's length).
pub const DEFAULT_MAX_KEYS: usize = 262_144;

/// A rate limit the gateway cannot enforce as configured.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RateLimitError {
    /// `requests` was 0.
    #[error("rateLimit.requests must be at least 1")]
    NoRequests,
    /// `requests + burst` does not fit the bucket.
    #[error("rateLimit.requests + rateLimit.burst must be at most {max}", max = u32::MAX)]
    TooLarge,
    /// `period` is too short for `requests` (less than a nanosecond per request).
    #[error(
        "rateLimit.period {period:?} is too short for {requests} requests: the gateway counts \
         at most one request per nanosecond; use a longer period"
    )]
    PeriodTooShort {
        /// The configured period.
        period: Duration,
        /// The configured requests per period.
        requests: u32,
    },
    /// A `Global` limit's period is under a millisecond (Redis counts in microseconds, and a
    /// shorter period is no limit a shared bucket can keep).
    #[error("a Global rateLimit.period must be at least 1ms, not {period:?}")]
    GlobalPeriodTooShort {
        /// The configured period.
        period: Duration,
    },
    /// `maxKeys` was 0.
    #[error("the rate limiter must be allowed to track at least one key")]
    NoKeys,
}

/// The shortest time between two sweeps the limiter starts by itself at its cap.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

type Limiter = RateLimiter<u128, KeyStore, TokioClock, StateInformationMiddleware>;

/// Token buckets per key, counted in this replica's memory (`scope: Local`).
///
/// - The bucket of a key holds `requests + burst` tokens and gains one every
///   `period / requests` (see [the module docs](super)).
/// - Keys are stored as 128-bit hashes keyed randomly per limiter: each costs the same few bytes
///   whatever its length, a known key costs no allocation, and callers cannot choose keys that
///   collide.
/// - Memory is bounded. A key whose bucket has been full again for one refill interval
///   (`period / requests`) is indistinguishable from a new one and is dropped by
///   [`retain_recent`](Self::retain_recent), which the proxy calls on a timer; the limiter
///   also sweeps by itself, at most once a second, when it reaches its cap.
/// - At most `max_keys` keys are tracked (a few more under concurrent first requests). When
///   every tracked key is still refilling, a request with a new key is **refused**
///   ([`Decision::Limited`] with `retry_after = period`) rather than admitted unlimited: a rule
///   never loses its protection, and a flood of distinct keys cannot exhaust memory. Keys
///   already tracked keep their own buckets. [`overflowed`](Self::overflowed) counts these
///   refusals for a metric.
/// - Time is tokio's clock, so tests pause and advance it.
pub struct LocalLimiter {
    limiter: Limiter,
    keys: KeyStore,
    hasher: (RandomState, RandomState),
    capacity: u32,
    interval: Duration,
    period: Duration,
    max_keys: usize,
    last_sweep: AtomicU64,
    overflowed: AtomicU64,
}

impl LocalLimiter {
    /// A limiter of `requests` per `period` with `burst` extra tokens, tracking at most
    /// `max_keys` keys (use [`DEFAULT_MAX_KEYS`] unless the rule says otherwise).
    pub fn new(
        requests: u32,
        period: Duration,
        burst: u32,
        max_keys: usize,
    ) -> Result<Self, RateLimitError> {
        let per_request = NonZeroU32::new(requests).ok_or(RateLimitError::NoRequests)?;
        let capacity = requests
            .checked_add(burst)
            .and_then(NonZeroU32::new)
            .ok_or(RateLimitError::TooLarge)?;
        if max_keys == 0 {
            return Err(RateLimitError::NoKeys);
        }
        let interval = period / per_request.get();
        let quota = Quota::with_period(interval)
            .ok_or(RateLimitError::PeriodTooShort { period, requests })?
            .allow_burst(capacity);
        let keys = KeyStore::default();
        let limiter: Limiter = RateLimiter::new(quota, keys.clone(), TokioClock::default());
        Ok(Self {
            limiter,
            keys,
            hasher: (RandomState::new(), RandomState::new()),
            capacity: capacity.get(),
            interval,
            period,
            max_keys,
            last_sweep: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
        })
    }

    /// Takes a token from `key`'s bucket, or says how long to wait for one.
    pub fn check(&self, key: impl AsRef<[u8]>) -> Decision {
        let id = self.id(key.as_ref());
        if !self.keys.0.contains_key(&id) && self.keys.0.len() >= self.max_keys {
            self.sweep_if_due();
            if self.keys.0.len() >= self.max_keys {
                self.overflowed.fetch_add(1, Ordering::Relaxed);
                return Decision::Limited {
                    retry_after: self.period,
                    reset: self.refill_time(self.capacity),
                };
            }
        }
        match self.limiter.check_key(&id) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision::Allowed {
                    remaining,
                    reset: self.refill_time(self.capacity.saturating_sub(remaining)),
                }
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(self.limiter.clock().now());
                Decision::Limited {
                    retry_after,
                    reset: retry_after + self.refill_time(self.capacity - 1),
                }
            }
        }
    }

    /// Drops the keys whose bucket is full again (they behave exactly like unseen keys) and
    /// returns the memory. Cost: one pass over the tracked keys; call it every few seconds.
    pub fn retain_recent(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// How many keys are tracked now.
    pub fn len(&self) -> usize {
        self.keys.0.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.keys.0.is_empty()
    }

    /// The most keys tracked at once.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// How many requests with a new key were refused because the key cap was reached.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// Tokens a full bucket holds: `requests + burst`.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    fn id(&self, key: &[u8]) -> u128 {
        let high = self.hasher.0.hash_one(key);
        let low = self.hasher.1.hash_one(key);
        (u128::from(high) << 64) | u128::from(low)
    }

    fn refill_time(&self, tokens: u32) -> Duration {
        self.interval.saturating_mul(tokens)
    }

    /// At the cap, sweeps idle keys at most once a second: one pass costs milliseconds at the
    /// cap, which a flood of new keys must not be able to trigger on every request.
    fn sweep_if_due(&self) {
        let now = nanos(self.limiter.clock().now());
        let every = nanos(SWEEP_INTERVAL);
        let last = self.last_sweep.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= every)
            && self
                .last_sweep
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.limiter.retain_recent();
        }
    }
}

impl std::fmt::Debug for LocalLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLimiter")
            .field("capacity", &self.capacity)
            .field("period", &self.period)
            .field("keys", &self.len())
            .field("max_keys", &self.max_keys)
            .field("overflowed", &self.overflowed())
            .finish()
    }
}

/// Tokio's clock as `governor` reads it: the time since the limiter was made.
#[derive(Debug, Clone)]
struct TokioClock(tokio::time::Instant);

impl Default for TokioClock {
    fn default() -> Self {
        Self(tokio::time::Instant::now())
    }
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// The buckets, shared between the limiter and [`LocalLimiter`], which needs to ask whether a
/// key is tracked before the limiter inserts it.
#[derive(Debug, Clone, Default)]
struct KeyStore(Arc<DashMapStateStore<u128>>);

impl StateStore for KeyStore {
    type Key = u128;

    fn measure_and_replace<T, F, E>(&self, key: &u128, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<u128> for KeyStore {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&*self.0, drop_below);
    }

    fn shrink_to_fit(&self) {
        self.0.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
