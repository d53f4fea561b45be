//! The operator's watches retry on Portcullis' own delays (see
//! [`portcullis_config::watch_backoff`] for why not kube-rs' default).

use std::time::Duration;

use kube::runtime::utils::Backoff;
use portcullis_config::watch_backoff::Delays;

/// [`Delays`] as kube's watch backoff.
#[derive(Debug, Default)]
pub struct WatchBackoff(Delays);

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.0.next()
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.0.reset();
    }
}
