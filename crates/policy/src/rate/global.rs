//! The limiter shared by every replica (`scope: Global`): buckets in Redis, spent through
//! per-replica leases (see [the module docs](super)).

use std::{
    hash::{BuildHasher, RandomState},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use dashmap::DashMap;
use tokio::time::Instant;

use super::{
    Checked, RateLimitError,
    bucket::SharedBucket,
    lease::{Lease, Step, Terms},
};
use crate::{nanos, shared::SharedStore};

/// A replica leases at most this fraction of a full bucket at once (1/50: 2 %), so a bucket of
/// fewer than 100 tokens is never leased ahead and holds exactly.
const LEASE_DIVISOR: u32 = 50;

/// Leased tokens lapse after this fraction of the period (1/10), within the bounds below.
const LEASE_FRACTION: u32 = 10;
const LEASE_AT_LEAST: Duration = Duration::from_millis(50);
const LEASE_AT_MOST: Duration = Duration::from_secs(10);

/// The shortest time between two sweeps the limiter starts by itself at its cap.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// What a rule does while the shared Redis does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Admit the request, uncounted.
    Open,
    /// Refuse the request.
    Closed,
}

/// Token buckets per key shared by every replica of a gateway through its Redis
/// (`scope: Global`).
///
/// - The buckets are the same as [`LocalLimiter`](super::LocalLimiter)'s (`requests + burst`
///   tokens, refilled at `requests` per `period`), held in Redis and taken from atomically.
/// - A replica leases tokens per key and spends them with no I/O; a key with little traffic,
///   and every key of a bucket under 100 tokens, takes each token from Redis as it is spent.
///   A replica never holds more than `max(1, (requests + burst) / 50)` tokens of a key.
/// - Memory is bounded like the local limiter's: an idle key's lease is dropped by
///   [`retain_recent`](Self::retain_recent) or by the sweep the limiter starts itself at its
///   cap, and beyond `max_keys` keys a new key is counted in Redis token by token, with no
///   local state (exact, at a round trip per request), rather than refused.
/// - Redis that does not answer within the store's timeout (or failed less than half a second
///   ago) gives [`Checked::Uncounted`], decided by the rule's [`FailureMode`]; the request
///   never waits longer than the timeout.
pub struct GlobalLimiter {
    store: Arc<SharedStore>,
    bucket: SharedBucket,
    leases: DashMap<u128, Lease>,
    hasher: (RandomState, RandomState),
    terms: Terms,
    failure_mode: FailureMode,
    epoch: Instant,
    max_keys: usize,
    last_sweep: AtomicU64,
}

impl std::fmt::Debug for GlobalLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalLimiter")
            .field("bucket", &self.bucket)
            .field("store", &self.store)
            .field("terms", &self.terms)
            .field("failure_mode", &self.failure_mode)
            .field("keys", &self.len())
            .finish_non_exhaustive()
    }
}

impl GlobalLimiter {
    /// A limiter of `requests` per `period` with `burst` extra tokens, counted in `store`.
    /// `scope` names the rule (gateway, Route, rule, key type) in the Redis keys, so that no
    /// two rules share a bucket; at most `max_keys` keys keep a local lease.
    pub fn new(
        store: Arc<SharedStore>,
        scope: &str,
        requests: u32,
        period: Duration,
        burst: u32,
        failure_mode: FailureMode,
        max_keys: usize,
    ) -> Result<Self, RateLimitError> {
        if requests == 0 {
            return Err(RateLimitError::NoRequests);
        }
        let capacity = requests
            .checked_add(burst)
            .ok_or(RateLimitError::TooLarge)?;
        if max_keys == 0 {
            return Err(RateLimitError::NoKeys);
        }
        if period < Duration::from_millis(1) {
            return Err(RateLimitError::GlobalPeriodTooShort { period });
        }
        let lease_for = (period / LEASE_FRACTION).clamp(LEASE_AT_LEAST, LEASE_AT_MOST);
        Ok(Self {
            store,
            bucket: SharedBucket::new(scope, capacity, requests, period),
            leases: DashMap::new(),
            hasher: (RandomState::new(), RandomState::new()),
            terms: Terms {
                max_batch: (capacity / LEASE_DIVISOR).max(1),
                lease_for: nanos(lease_for),
                capacity,
            },
            failure_mode,
            epoch: Instant::now(),
            max_keys,
            last_sweep: AtomicU64::new(0),
        })
    }

    /// Takes a token from `key`'s shared bucket: from this replica's lease when it holds one,
    /// else from Redis.
    pub async fn check(self: &Arc<Self>, key: impl AsRef<[u8]>) -> Checked {
        let key = key.as_ref();
        let id = self.id(key);
        let now = self.now();
        if !self.leases.contains_key(&id) && self.leases.len() >= self.max_keys {
            self.sweep_if_due(now);
            if self.leases.len() >= self.max_keys {
                return self.ask(None, &self.bucket.digest(key), 1, false).await;
            }
        }
        let (step, digest) = {
            let mut lease = self
                .leases
                .entry(id)
                .or_insert_with(|| Lease::new(self.bucket.digest(key)));
            (lease.step(now, &self.terms), lease.digest)
        };
        match step {
            Step::Spent { decision, refill } => {
                if let Some(want) = refill {
                    self.refill_in_background(id, digest, want);
                }
                Checked::Counted(decision)
            }
            Step::Refused(decision) => Checked::Counted(decision),
            Step::Ask { want, own } => self.ask(Some(id), &digest, want, own).await,
        }
    }

    /// Drops the leases of idle keys (nothing held, nothing pending, no recent request) and
    /// returns the memory. Cost: one pass over the tracked keys; call it every few seconds.
    pub fn retain_recent(&self) {
        let now = self.now();
        self.leases
            .retain(|_, lease| !lease.is_idle(now, &self.terms));
        self.leases.shrink_to_fit();
    }

    /// How many keys have a lease now.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Whether no key has a lease.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// The most keys with a lease at once.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Tokens a full bucket holds: `requests + burst`.
    pub fn capacity(&self) -> u32 {
        self.terms.capacity
    }

    /// The most tokens this replica holds for one key: with `R` replicas, the callers of one
    /// key may see up to `R ×` this many more admissions in an interval than one strict shared
    /// bucket would allow. 1 means nothing is held ahead: the limit holds exactly.
    pub fn max_batch(&self) -> u32 {
        self.terms.max_batch
    }

    /// What the rule does while Redis does not answer.
    pub fn failure_mode(&self) -> FailureMode {
        self.failure_mode
    }

    /// The connection the buckets are counted through.
    pub fn store(&self) -> &Arc<SharedStore> {
        &self.store
    }

    /// Takes `want` tokens from the bucket `digest` names for a request; the lease of `id`, when
    /// tracked, learns the answer.
    async fn ask(&self, id: Option<u128>, digest: &[u8; 16], want: u32, own: bool) -> Checked {
        // A request dropped while it waits (its client went away) must not leave its key's
        // lease in flight for ever: the key would never lease again, nor be swept.
        let mut carried = Carried {
            limiter: self,
            id: id.filter(|_| own),
        };
        let answer = self.bucket.take(&self.store, digest, want).await;
        // Answered: the lease learns how below.
        carried.id = None;
        let now = self.now();
        let mut lease = id.and_then(|id| self.leases.get_mut(&id));
        match (answer, lease.as_deref_mut()) {
            (Ok(taken), Some(lease)) => {
                Checked::Counted(lease.answered(now, &taken, own, &self.terms))
            }
            (Ok(taken), None) => Checked::Counted(Lease::untracked(now, &taken, &self.terms)),
            (Err(error), lease) => {
                if let (true, Some(lease)) = (own, lease) {
                    lease.lost();
                }
                Checked::Uncounted {
                    admitted: self.failure_mode == FailureMode::Open,
                    error: error.label(),
                }
            }
        }
    }

    /// Leases `want` more tokens for `id` off the request path. Outside a runtime nothing is
    /// leased: the next request that finds no token asks Redis itself.
    fn refill_in_background(self: &Arc<Self>, id: u128, digest: [u8; 16], want: u32) {
        let limiter = self.clone();
        let refill = async move {
            let answer = limiter.bucket.take(&limiter.store, &digest, want).await;
            let now = limiter.now();
            if let Some(mut lease) = limiter.leases.get_mut(&id) {
                match answer {
                    Ok(taken) => lease.refilled(now, &taken, &limiter.terms),
                    Err(_) => lease.lost(),
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(refill)),
            Err(_) => {
                if let Some(mut lease) = self.leases.get_mut(&id) {
                    lease.lost();
                }
            }
        }
    }

    fn id(&self, key: &[u8]) -> u128 {
        let high = self.hasher.0.hash_one(key);
        let low = self.hasher.1.hash_one(key);
        (u128::from(high) << 64) | u128::from(low)
    }

    fn now(&self) -> u64 {
        nanos(self.epoch.elapsed()).max(1)
    }

    /// At the cap, sweeps idle leases at most once a second (a flood of new keys must not
    /// make every request pay a pass over the map).
    fn sweep_if_due(&self, now: u64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= nanos(SWEEP_INTERVAL))
            && self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.leases
                .retain(|_, lease| !lease.is_idle(now, &self.terms));
        }
    }
}

/// The lease a request carries while it waits on Redis: if the request is dropped first, the
/// lease is no longer in flight (the tokens Redis may have taken for it are lost, which only
/// makes the limit stricter).
struct Carried<'a> {
    limiter: &'a GlobalLimiter,
    id: Option<u128>,
}

impl Drop for Carried<'_> {
    fn drop(&mut self) {
        if let Some(mut lease) = self.id.and_then(|id| self.limiter.leases.get_mut(&id)) {
            lease.lost();
        }
    }
}

#[cfg(test)]
#[path = "global_tests.rs"]
mod tests;
