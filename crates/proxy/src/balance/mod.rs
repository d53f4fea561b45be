//! Load balancing over a backend's available endpoints: round robin, least request (power of
//! two choices), consistent hashing and random.

mod ring;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

pub use ring::Ring;

use crate::upstream::Endpoint;

/// The algorithm of a backend.
#[derive(Debug)]
pub enum Balancer {
    /// Each available endpoint in turn.
    RoundRobin(AtomicUsize),
    /// The less busy of two random available endpoints.
    LeastRequest,
    /// A ring lookup of the request's hash key; falls back to random without a key.
    ConsistentHash,
    /// A random available endpoint.
    Random,
}

/// The endpoints of a backend at one moment, with the ring built over them.
#[derive(Debug, Default)]
pub struct EndpointSet {
    /// The endpoints, in configuration order.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// The consistent-hash ring, for backends that use one.
    pub ring: Option<Ring>,
}

impl Balancer {
    /// Picks an available endpoint. `hash` is the request's key for consistent hashing; `avoid`
    /// is an endpoint that just failed (a retry goes elsewhere when anything else is available).
    /// `None` when no endpoint is available.
    pub fn pick(
        &self,
        set: &EndpointSet,
        hash: Option<u64>,
        avoid: Option<&Endpoint>,
    ) -> Option<Arc<Endpoint>> {
        let endpoints = &set.endpoints;
        if endpoints.is_empty() {
            return None;
        }
        let usable = |e: &Arc<Endpoint>| {
            e.is_available() && avoid.is_none_or(|a| !std::ptr::eq(a, e.as_ref()))
        };
        let picked = match self {
            Balancer::ConsistentHash => match (&set.ring, hash) {
                (Some(ring), Some(hash)) => ring.lookup(hash, endpoints, &usable),
                _ => random_from(endpoints, &usable),
            },
            Balancer::RoundRobin(next) => {
                let start = next.fetch_add(1, Ordering::Relaxed);
                scan_from(endpoints, start, &usable)
            }
            Balancer::Random => random_from(endpoints, &usable),
            Balancer::LeastRequest => {
                let first = random_from(endpoints, &usable);
                let second = random_from(endpoints, &usable);
                match (first, second) {
                    (Some(a), Some(b)) => Some(if b.in_flight() < a.in_flight() { b } else { a }),
                    (a, b) => a.or(b),
                }
            }
        };
        // When the only available endpoint is the one to avoid, it is still better than nothing.
        picked.or_else(|| {
            avoid.and_then(|a| {
                endpoints
                    .iter()
                    .find(|e| std::ptr::eq(a, e.as_ref()) && e.is_available())
                    .cloned()
            })
        })
    }
}

fn scan_from(
    endpoints: &[Arc<Endpoint>],
    start: usize,
    usable: &dyn Fn(&Arc<Endpoint>) -> bool,
) -> Option<Arc<Endpoint>> {
    let n = endpoints.len();
    (0..n)
        .map(|i| &endpoints[(start + i) % n])
        .find(|e| usable(e))
        .cloned()
}

fn random_from(
    endpoints: &[Arc<Endpoint>],
    usable: &dyn Fn(&Arc<Endpoint>) -> bool,
) -> Option<Arc<Endpoint>> {
    scan_from(endpoints, fastrand::usize(..endpoints.len()), usable)
}

/// A fast, stable 64-bit hash (FNV-1a with a final avalanche), the same in every process, so
/// that all replicas send a key to the same endpoint.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // MurmurHash3's fmix64: spreads FNV's weak low bits over the whole ring.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize, with_ring: bool) -> EndpointSet {
        let endpoints: Vec<_> = (0..n)
            .map(|i| Arc::new(Endpoint::new(format!("10.0.0.{i}:80")).expect("endpoint")))
            .collect();
        let ring = with_ring.then(|| Ring::new(&endpoints));
        EndpointSet { endpoints, ring }
    }

    #[test]
    fn round_robin_visits_every_endpoint_in_turn() {
        let s = set(3, false);
        let b = Balancer::RoundRobin(AtomicUsize::new(0));
        let picks: Vec<_> = (0..6)
            .map(|_| b.pick(&s, None, None).expect("pick").address.clone())
            .collect();
        assert_eq!(picks[0..3], picks[3..6]);
        assert_ne!(picks[0], picks[1]);
        assert_ne!(picks[1], picks[2]);
    }

    #[test]
    fn ejected_endpoints_get_no_traffic() {
        let s = set(3, false);
        s.endpoints[1].eject(60_000);
        let b = Balancer::RoundRobin(AtomicUsize::new(0));
        for _ in 0..10 {
            assert_ne!(b.pick(&s, None, None).expect("pick").address, "10.0.0.1:80");
        }
        for e in &s.endpoints {
            e.eject(60_000);
        }
        assert!(b.pick(&s, None, None).is_none());
    }

    #[test]
    fn least_request_prefers_the_idle_endpoint() {
        let s = set(2, false);
        let _busy = s.endpoints[0].start_request();
        let b = Balancer::LeastRequest;
        let idle = (0..50)
            .filter(|_| b.pick(&s, None, None).expect("pick").address == "10.0.0.1:80")
            .count();
        // Both random draws hit the busy endpoint a quarter of the time.
        assert!(idle > 25, "idle endpoint picked {idle} of 50 times");
    }

    #[test]
    fn retry_avoids_the_failed_endpoint_when_another_is_available() {
        let s = set(2, true);
        let b = Balancer::ConsistentHash;
        let first = b.pick(&s, Some(42), None).expect("pick");
        let second = b.pick(&s, Some(42), Some(&first)).expect("pick");
        assert_ne!(first.address, second.address);
        let single = set(1, true);
        let only = b.pick(&single, Some(42), None).expect("pick");
        assert!(b.pick(&single, Some(42), Some(&only)).is_some());
    }

    #[test]
    fn hash_is_stable() {
        assert_eq!(hash_bytes(b"user-1"), hash_bytes(b"user-1"));
        assert_ne!(hash_bytes(b"user-1"), hash_bytes(b"user-2"));
    }
}
