//! How soon Portcullis' watches (the operator's and every gateway replica's) try again after
//! the API server fails them.
//!
//! kube-rs' default is client-go's reflector backoff, 0.8 s doubling up to 30 s, reset only
//! after two quiet minutes. It is kind to a struggling API server, but after a 30-second API
//! outage (a control-plane upgrade) a replica would wait up to another half minute, sometimes
//! more, before it saw a Route edit again, and the operator, whose re-lists each wait out a
//! further delay, minutes. Both hold a handful of watches, so Portcullis retries sooner:
//! 250 ms doubling up to [`MAX_DELAY`], each delay jittered so that many replicas do not come
//! back in step, and back to the start on the first event that arrives. The two halves wrap
//! these [`Delays`] in kube's `Backoff` trait.

use std::time::Duration;

/// The first delay.
const MIN_DELAY: Duration = Duration::from_millis(250);

/// The longest delay between two tries: after an API outage a watch follows again within this
/// long of the API server's return.
pub const MAX_DELAY: Duration = Duration::from_secs(3);

/// Capped exponential delays with jitter.
#[derive(Debug, Default)]
pub struct Delays {
    retries: u32,
}

impl Delays {
    /// Starts the delays over (an event arrived).
    pub fn reset(&mut self) {
        self.retries = 0;
    }
}

impl Iterator for Delays {
    type Item = Duration;

    /// The next delay: `MIN_DELAY × 2^retries`, capped at [`MAX_DELAY`], then scaled by a
    /// random factor in [0.5, 1).
    fn next(&mut self) -> Option<Duration> {
        let exponential = MIN_DELAY.saturating_mul(1 << self.retries.min(8));
        self.retries = self.retries.saturating_add(1);
        Some(
            exponential
                .min(MAX_DELAY)
                .mul_f64(0.5 + fastrand::f64() / 2.0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_grow_but_never_wait_past_the_cap() {
        let delays: Vec<Duration> = Delays::default().take(50).collect();
        assert!(delays[0] < Duration::from_millis(250));
        assert!(delays.iter().all(|d| *d <= MAX_DELAY));
        assert!(delays[49] >= MAX_DELAY / 2, "the delay grows to the cap");
    }

    #[test]
    fn an_event_that_arrives_starts_the_delays_over() {
        let mut delays = Delays::default();
        delays.by_ref().take(20).for_each(drop);
        delays.reset();
        assert!(
            delays
                .next()
                .is_some_and(|d| d < Duration::from_millis(250))
        );
    }
}
