//! How soon a replica's watches try again after the API server fails them.
//!
//! kube-rs' default is client-go's reflector backoff, 0.8 s doubling up to 30 s, reset only
//! after two quiet minutes. It is kind to a struggling API server, but a gateway replica
//! that lived through a 30-second API outage (a control-plane upgrade) would then wait up to
//! another half minute, sometimes more, before it saw a Route edit again. A replica has only a
//! handful of watches (its ConfigMap, one per `service` backend), so Portcullis retries
//! sooner: 250 ms doubling up to [`MAX_DELAY`], each delay jittered so that the replicas of a
//! large Gateway do not come back in step, and back to the start on the first event that
//! arrives.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// The first delay.
const MIN_DELAY: Duration = Duration::from_millis(250);

/// The longest delay between two tries: after an API outage a replica follows its config
/// again within this long of the API server's return.
pub const MAX_DELAY: Duration = Duration::from_secs(3);

/// Capped exponential backoff with jitter for the replica's watches.
#[derive(Debug, Default)]
pub struct WatchBackoff {
    retries: u32,
}

impl Iterator for WatchBackoff {
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

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.retries = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_grow_but_never_wait_past_the_cap() {
        let delays: Vec<Duration> = WatchBackoff::default().take(50).collect();
        assert!(delays[0] < Duration::from_millis(250));
        assert!(delays.iter().all(|d| *d <= MAX_DELAY));
        assert!(delays[49] >= MAX_DELAY / 2, "the delay grows to the cap");
    }

    #[test]
    fn an_event_that_arrives_starts_the_delays_over() {
        let mut backoff = WatchBackoff::default();
        backoff.by_ref().take(20).for_each(drop);
        backoff.reset();
        assert!(
            backoff
                .next()
                .is_some_and(|d| d < Duration::from_millis(250))
        );
    }
}
