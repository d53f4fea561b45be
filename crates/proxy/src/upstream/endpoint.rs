//! One endpoint of a backend and its health: active check results, passive outlier ejection and
//! the requests in flight (for least-request balancing).

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
};

use http::uri::Authority;

use super::h1::IdlePool;
use crate::{clock::now_ms, server::workers::WORKER_COUNT};

/// An address requests can be sent to, with its health state. The state survives config reloads
/// that keep the endpoint.
#[derive(Debug)]
pub struct Endpoint {
    /// `host:port`.
    pub address: String,
    /// The same, as a URI authority.
    pub authority: Authority,
    /// Hash of the address, the endpoint's identity on a consistent-hash ring.
    pub hash: u64,
    healthy: AtomicBool,
    check_successes: AtomicU32,
    check_failures: AtomicU32,
    ejected_at_ms: AtomicU64,
    ejected_until_ms: AtomicU64,
    ejections: AtomicU32,
    consecutive_5xx: AtomicU32,
    consecutive_gateway_errors: AtomicU32,
    in_flight: AtomicU32,
    /// Idle HTTP/1.1 connections to it, per connection worker.
    pub(crate) idle: IdlePool,
}

/// What an attempt against an endpoint produced, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Any status below 500.
    Success,
    /// 500, 501, 505 and the like.
    ServerError,
    /// Connect failure, reset, timeout, or 502/503/504.
    GatewayError,
}

/// When an endpoint is ejected by outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierSettings {
    /// 5xx answers in a row.
    pub consecutive_5xx: u32,
    /// Gateway errors in a row.
    pub consecutive_gateway_errors: u32,
    /// Base ejection time; multiplied by the number of times the endpoint was ejected (less
    /// one for each base time it then stayed in without being ejected).
    pub ejection_time_ms: u64,
    /// Most endpoints of the backend ejected at once, in percent.
    pub max_ejection_percent: u32,
}

impl Endpoint {
    /// A healthy endpoint at `host:port`. Fails when the address is not a valid authority.
    pub fn new(address: String) -> Result<Self, http::uri::InvalidUri> {
        let authority: Authority = address.parse()?;
        Ok(Self {
            hash: crate::balance::hash_bytes(address.as_bytes()),
            address,
            authority,
            healthy: AtomicBool::new(true),
            check_successes: AtomicU32::new(0),
            check_failures: AtomicU32::new(0),
            ejected_at_ms: AtomicU64::new(0),
            ejected_until_ms: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            consecutive_5xx: AtomicU32::new(0),
            consecutive_gateway_errors: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            idle: IdlePool::new(1 + WORKER_COUNT.load(Ordering::Relaxed)),
        })
    }

    /// Whether the endpoint may get traffic now: it passes active checks and is not ejected.
    pub fn is_available(&self) -> bool {
        self.is_healthy() && !self.is_ejected()
    }

    /// Whether the active health check considers it healthy.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Whether outlier detection has it ejected right now.
    pub fn is_ejected(&self) -> bool {
        // Never ejected (the common case) needs no clock read.
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until != 0 && until > now_ms()
    }

    /// Records the result of an active health check that started at `started_ms`; flips the
    /// state after enough results in a row. A check that passes, started after the endpoint
    /// was ejected, ends the ejection when `ends_ejection` (a check from before says nothing
    /// about the endpoint since).
    pub fn record_check(&self, ok: bool, started_ms: u64, settings: &super::HealthCheckSettings) {
        let (healthy_threshold, unhealthy_threshold) =
            (settings.healthy_threshold, settings.unhealthy_threshold);
        if ok && settings.ends_ejection && self.is_ejected() {
            let ejected_at = self.ejected_at_ms.load(Ordering::Relaxed);
            if started_ms >= ejected_at {
                // Ended now (not cleared): the decay of the count starts from here.
                self.ejected_until_ms.store(now_ms(), Ordering::Relaxed);
            }
        }
        if ok {
            self.check_failures.store(0, Ordering::Relaxed);
            let successes = self.check_successes.fetch_add(1, Ordering::Relaxed) + 1;
            if successes >= healthy_threshold {
                self.healthy.store(true, Ordering::Relaxed);
            }
        } else {
            self.check_successes.store(0, Ordering::Relaxed);
            let failures = self.check_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures >= unhealthy_threshold {
                self.healthy.store(false, Ordering::Relaxed);
            }
        }
    }

    /// Records a real request's outcome. Returns true when this outcome should eject the
    /// endpoint (the caller checks the backend-wide ejection limit, then calls [`Self::eject`]).
    pub fn record_outcome(&self, outcome: Outcome, settings: &OutlierSettings) -> bool {
        match outcome {
            Outcome::Success => {
                self.consecutive_5xx.store(0, Ordering::Relaxed);
                self.consecutive_gateway_errors.store(0, Ordering::Relaxed);
                false
            }
            Outcome::ServerError => {
                self.consecutive_gateway_errors.store(0, Ordering::Relaxed);
                let n = self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
                n >= settings.consecutive_5xx
            }
            Outcome::GatewayError => {
                // A gateway error is also a 5xx for the 5xx counter, as in Envoy.
                let n5 = self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
                let ng = self
                    .consecutive_gateway_errors
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                ng >= settings.consecutive_gateway_errors || n5 >= settings.consecutive_5xx
            }
        }
    }

    /// Ejects the endpoint for the base time multiplied by how often it was ejected before (at
    /// most 10 times). The count decays as in Envoy: each base time the endpoint has served
    /// since its last ejection ended takes one off, so an endpoint that failed once a long
    /// time ago is not kept out for minutes when it fails again.
    pub fn eject(&self, base_ms: u64) {
        let now = now_ms();
        let times = multiplier(
            self.ejections.load(Ordering::Relaxed),
            self.ejected_until_ms.load(Ordering::Relaxed),
            now,
            base_ms,
        );
        self.ejections.store(times, Ordering::Relaxed);
        let times = u64::from(times);
        self.ejected_at_ms.store(now, Ordering::Relaxed);
        self.ejected_until_ms.store(
            now.saturating_add(base_ms.saturating_mul(times)),
            Ordering::Relaxed,
        );
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway_errors.store(0, Ordering::Relaxed);
    }

    /// Requests in flight to this endpoint.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard is dropped (with the response body).
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// The multiplier of an ejection at `now` of an endpoint ejected `before` times whose last
/// ejection ended at `previous_end` (0: never ejected): one more than before, less one for each
/// `base_ms` it has served since, between 1 and 10.
fn multiplier(before: u32, previous_end: u64, now: u64, base_ms: u64) -> u32 {
    let quiet_periods = match previous_end {
        0 => 0,
        end => now.saturating_sub(end) / base_ms.max(1),
    };
    let decayed = u64::from(before).saturating_sub(quiet_periods);
    u32::try_from((decayed + 1).min(10)).unwrap_or(10)
}

/// Counts one request in flight to an endpoint while it lives.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OutlierSettings {
        OutlierSettings {
            consecutive_5xx: 3,
            consecutive_gateway_errors: 2,
            ejection_time_ms: 60_000,
            max_ejection_percent: 100,
        }
    }

    #[test]
    fn consecutive_gateway_errors_call_for_ejection_and_success_resets() {
        let e = Endpoint::new("127.0.0.1:1".into()).expect("endpoint");
        assert!(!e.record_outcome(Outcome::GatewayError, &settings()));
        assert!(!e.record_outcome(Outcome::Success, &settings()));
        assert!(!e.record_outcome(Outcome::GatewayError, &settings()));
        assert!(e.record_outcome(Outcome::GatewayError, &settings()));
        e.eject(60_000);
        assert!(e.is_ejected());
        assert!(!e.is_available());
    }

    fn checks(ends_ejection: bool) -> super::super::HealthCheckSettings {
        super::super::HealthCheckSettings {
            path: "/healthz".into(),
            interval: std::time::Duration::from_secs(5),
            timeout: std::time::Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            ends_ejection,
        }
    }

    #[test]
    fn health_flips_only_after_thresholds() {
        let e = Endpoint::new("127.0.0.1:1".into()).expect("endpoint");
        let now = now_ms();
        e.record_check(false, now, &checks(true));
        assert!(e.is_healthy());
        e.record_check(false, now, &checks(true));
        assert!(!e.is_healthy());
        e.record_check(true, now, &checks(true));
        assert!(!e.is_healthy());
        e.record_check(true, now, &checks(true));
        assert!(e.is_healthy());
    }

    #[test]
    fn a_passing_check_started_after_the_ejection_ends_it_when_configured() {
        let e = Endpoint::new("127.0.0.1:1".into()).expect("endpoint");
        e.eject(60_000);
        let ejected_at = e.ejected_at_ms.load(Ordering::Relaxed);
        // A check from before the ejection says nothing about the endpoint since.
        if ejected_at > 0 {
            e.record_check(true, ejected_at - 1, &checks(true));
            assert!(e.is_ejected());
        }
        e.record_check(true, ejected_at, &checks(false));
        assert!(e.is_ejected(), "kept out when ends_ejection is off");
        e.record_check(true, ejected_at, &checks(true));
        assert!(!e.is_ejected());
        assert!(e.is_available());
    }

    #[test]
    fn the_ejection_multiplier_grows_with_repeats_and_decays_with_quiet_time() {
        let base = 30_000;
        assert_eq!(multiplier(0, 0, 1_000, base), 1, "a first ejection");
        // Ejected again right after the first one ended: twice the base.
        assert_eq!(multiplier(1, 31_000, 31_000, base), 2);
        assert_eq!(multiplier(9, 1, 1, base), 10, "at most ten times");
        assert_eq!(multiplier(10, 1, 1, base), 10);
        // Each base time served since the last ejection ended takes one off.
        assert_eq!(multiplier(3, 100_000, 100_000 + base, base), 3);
        assert_eq!(multiplier(3, 100_000, 100_000 + 3 * base, base), 1);
        assert_eq!(multiplier(10, 100_000, 100_000 + 60 * base, base), 1);
    }

    #[test]
    fn in_flight_guard_counts_requests() {
        let e = Arc::new(Endpoint::new("127.0.0.1:1".into()).expect("endpoint"));
        let guard = e.start_request();
        assert_eq!(e.in_flight(), 1);
        drop(guard);
        assert_eq!(e.in_flight(), 0);
    }
}
