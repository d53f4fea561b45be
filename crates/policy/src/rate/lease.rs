//! What one replica knows of one caller's shared bucket: the tokens it leased and has not spent
//! yet, how many to lease next, and until when Redis said the bucket is empty. Pure: times are
//! nanoseconds on the limiter's clock, and the Redis side is [`Taken`], so every rule of the
//! lease is tested here without a server.

use std::time::Duration;

use super::{Decision, bucket::Taken};
use crate::nanos;

/// The terms every lease of one limiter follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Terms {
    /// The most tokens a replica holds for one caller. 1: none is held; every admission takes
    /// its token from Redis as it happens, exactly.
    pub max_batch: u32,
    /// How long leased tokens stay spendable, in nanoseconds; also how close together two
    /// requests that find no token must come for the next lease to double.
    pub lease_for: u64,
    /// Tokens a full bucket holds.
    pub capacity: u32,
}

/// What to do with a request, decided under the lease's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Admitted with a leased token; `refill` asks for that many more in the background.
    Spent {
        /// What the caller is told.
        decision: Decision,
        /// Tokens to lease now, off the request path (the lease fell to its low-water mark).
        refill: Option<u32>,
    },
    /// Refused: Redis said the bucket holds no token yet.
    Refused(Decision),
    /// Ask Redis for `want` tokens: the first is the request's, the rest are leased. `own`: this
    /// request carries the lease in flight, and must say how it ended.
    Ask {
        /// Tokens to take.
        want: u32,
        /// Whether this take is the key's lease in flight.
        own: bool,
    },
}

/// One caller's lease on one replica.
#[derive(Debug, Clone)]
pub(super) struct Lease {
    /// Names the caller's bucket in Redis.
    pub digest: [u8; 16],
    held: u32,
    batch: u32,
    /// When the held tokens lapse: a lease period after the key's last request or lease.
    expires: u64,
    /// Before this, Redis holds no token for the caller.
    empty_until: u64,
    /// The last time a request found no token here (0: never).
    last_miss: u64,
    /// When the last lease was asked for.
    asked_at: u64,
    /// Tokens left in Redis at its last answer, and when the bucket is full again.
    bucket_left: u32,
    full_at: u64,
    /// A take that will add to `held` is on its way (at most one at a time).
    in_flight: bool,
}

impl Lease {
    /// A caller seen for the first time.
    pub fn new(digest: [u8; 16]) -> Self {
        Self {
            digest,
            held: 0,
            batch: 1,
            expires: 0,
            empty_until: 0,
            last_miss: 0,
            asked_at: 0,
            bucket_left: 0,
            full_at: 0,
            in_flight: false,
        }
    }

    /// Decides a request at `now`.
    ///
    /// - A held token is spent at once, with no I/O. When the lease falls to half its batch, the
    ///   next batch is asked for in the background, so that at a steady rate requests never
    ///   wait on Redis; when that happens less than a quarter of a lease period after the last
    ///   lease, the batch doubles first (up to `max_batch`), so a busy key's round trips stay
    ///   few.
    /// - With no token held, a request asks Redis itself. If another request found the lease
    ///   empty less than `lease_for` ago, demand outruns the lease: the batch doubles, up to
    ///   `max_batch`, and this request leases it (unless a lease is in flight already). Tokens
    ///   that lapsed unspent halve the batch.
    /// - Only one take that adds to the lease is in flight at a time; other requests meanwhile
    ///   take exactly their own token, so a replica never holds more than `max_batch`.
    pub fn step(&mut self, now: u64, terms: &Terms) -> Step {
        if self.held > 0 && now < self.expires {
            self.held -= 1;
            // A key in use keeps its lease: only one this replica stopped seeing lapses.
            self.expires = now.saturating_add(terms.lease_for);
            let refill =
                (self.batch > 1 && !self.in_flight && self.held <= self.batch / 2).then(|| {
                    // Half a lease spent in under a quarter of a lease period: a bigger lease
                    // saves round trips.
                    if now.saturating_sub(self.asked_at) < terms.lease_for / 4 {
                        self.batch = self.batch.saturating_mul(2).min(terms.max_batch);
                    }
                    self.in_flight = true;
                    self.asked_at = now;
                    self.batch - self.held
                });
            let decision = self.allowed(now, terms);
            return Step::Spent { decision, refill };
        }
        if self.held > 0 {
            // Lapsed unspent: this replica leased more than its callers needed.
            self.held = 0;
            self.batch = (self.batch / 2).max(1);
        }
        if now < self.empty_until {
            return Step::Refused(self.limited(now));
        }
        // Two misses within a lease period: the lease is too small for the demand, whether no
        // lease was asked for or the one in flight comes too late.
        if self.last_miss != 0 && now.saturating_sub(self.last_miss) < terms.lease_for {
            self.batch = self.batch.saturating_mul(2).min(terms.max_batch);
        }
        self.last_miss = now.max(1);
        if self.batch > 1 && !self.in_flight {
            self.in_flight = true;
            self.asked_at = now;
            return Step::Ask {
                want: self.batch,
                own: true,
            };
        }
        Step::Ask {
            want: 1,
            own: false,
        }
    }

    /// Redis answered the take a request asked for (see [`Step::Ask`]): the first token is the
    /// request's, the others are held.
    pub fn answered(&mut self, now: u64, taken: &Taken, own: bool, terms: &Terms) -> Decision {
        if own {
            self.in_flight = false;
        }
        self.learn(now, taken);
        if taken.taken == 0 {
            return self.limited(now);
        }
        self.hold(now, taken.taken - 1, terms);
        self.allowed(now, terms)
    }

    /// Redis answered a background lease: every token is held.
    pub fn refilled(&mut self, now: u64, taken: &Taken, terms: &Terms) {
        self.in_flight = false;
        self.learn(now, taken);
        self.hold(now, taken.taken, terms);
    }

    /// A take that carried the lease (`own`, or a background one) got no answer.
    pub fn lost(&mut self) {
        self.in_flight = false;
    }

    /// Whether forgetting this lease changes nothing but the next lease's size: no token held,
    /// nothing in flight, no refusal to remember, no recent demand.
    pub fn is_idle(&self, now: u64, terms: &Terms) -> bool {
        (self.held == 0 || now >= self.expires)
            && !self.in_flight
            && now >= self.empty_until
            && now.saturating_sub(self.last_miss) >= terms.lease_for
    }

    /// Tokens held now (for tests and the over-admission bound).
    #[cfg(test)]
    pub fn held(&self) -> u32 {
        self.held
    }

    /// Whether a take that adds to the lease is on its way (for tests).
    #[cfg(test)]
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// The decision for a request Redis answered directly, with no lease to keep.
    pub fn untracked(now: u64, taken: &Taken, terms: &Terms) -> Decision {
        Lease::new([0; 16]).answered(now, taken, false, terms)
    }

    fn learn(&mut self, now: u64, taken: &Taken) {
        self.bucket_left = taken.left;
        self.full_at = now.saturating_add(nanos(taken.full_in));
        if taken.taken == 0 {
            self.empty_until = now.saturating_add(nanos(taken.next_in));
        }
    }

    fn hold(&mut self, now: u64, tokens: u32, terms: &Terms) {
        if tokens > 0 {
            self.held = self.held.saturating_add(tokens);
            self.expires = now.saturating_add(terms.lease_for);
        }
    }

    fn allowed(&self, now: u64, terms: &Terms) -> Decision {
        Decision::Allowed {
            remaining: self
                .held
                .saturating_add(self.bucket_left)
                .min(terms.capacity),
            reset: Duration::from_nanos(self.full_at.saturating_sub(now)),
        }
    }

    fn limited(&self, now: u64) -> Decision {
        Decision::Limited {
            retry_after: Duration::from_nanos(self.empty_until.saturating_sub(now)),
            reset: Duration::from_nanos(self.full_at.saturating_sub(now)),
        }
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
