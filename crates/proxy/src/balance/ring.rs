//! A consistent-hash ring (Karger et al.): each endpoint owns many points on a 64-bit circle,
//! placed by hashing its address, and a key goes to the owner of the first point at or after its
//! hash. Adding or removing an endpoint only moves the keys of the points it gains or loses.

use std::sync::Arc;

use super::hash_bytes;
use crate::upstream::Endpoint;

/// Points per endpoint: enough for an even spread (about ±10 %) with a small memory cost.
const POINTS_PER_ENDPOINT: usize = 160;

/// The ring over a set of endpoints.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    /// (point, index into the endpoint list), sorted by point.
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// Builds the ring. Points depend only on each endpoint's address, never on its position,
    /// so other endpoints' keys stay put when one comes or goes.
    pub fn new(endpoints: &[Arc<Endpoint>]) -> Self {
        let mut points = Vec::with_capacity(endpoints.len() * POINTS_PER_ENDPOINT);
        for (index, endpoint) in endpoints.iter().enumerate() {
            for replica in 0..POINTS_PER_ENDPOINT {
                let label = format!("{}#{replica}", endpoint.address);
                points.push((hash_bytes(label.as_bytes()), index));
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// The first usable endpoint at or after `hash`, walking clockwise past unusable ones.
    pub fn lookup(
        &self,
        hash: u64,
        endpoints: &[Arc<Endpoint>],
        usable: &dyn Fn(&Arc<Endpoint>) -> bool,
    ) -> Option<Arc<Endpoint>> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.points.partition_point(|(point, _)| *point < hash);
        let n = self.points.len();
        let mut last_checked = usize::MAX;
        for i in 0..n {
            let (_, index) = self.points[(start + i) % n];
            if index == last_checked {
                continue;
            }
            last_checked = index;
            let endpoint = endpoints.get(index)?;
            if usable(endpoint) {
                return Some(endpoint.clone());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(addresses: &[&str]) -> Vec<Arc<Endpoint>> {
        addresses
            .iter()
            .map(|a| Arc::new(Endpoint::new((*a).to_owned()).expect("endpoint")))
            .collect()
    }

    fn owner(ring: &Ring, eps: &[Arc<Endpoint>], key: u64) -> String {
        ring.lookup(key, eps, &|_| true)
            .expect("owner")
            .address
            .clone()
    }

    #[test]
    fn keys_stay_put_when_an_endpoint_is_added() {
        let before = endpoints(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
        let after = endpoints(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"]);
        let (rb, ra) = (Ring::new(&before), Ring::new(&after));
        let keys: Vec<u64> = (0..1000u32).map(|k| hash_bytes(&k.to_le_bytes())).collect();
        let moved = keys
            .iter()
            .filter(|k| owner(&rb, &before, **k) != owner(&ra, &after, **k))
            .count();
        // Ideally a quarter of the keys move (to the new endpoint), and only those.
        assert!(moved < 350, "{moved} of 1000 keys moved");
        for k in &keys {
            let now = owner(&ra, &after, *k);
            if owner(&rb, &before, *k) != now {
                assert_eq!(now, "10.0.0.4:80");
            }
        }
    }

    #[test]
    fn keys_spread_over_every_endpoint() {
        let eps = endpoints(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
        let ring = Ring::new(&eps);
        let mut counts = std::collections::HashMap::new();
        for k in 0..3000u32 {
            *counts
                .entry(owner(&ring, &eps, hash_bytes(&k.to_le_bytes())))
                .or_insert(0) += 1;
        }
        for count in counts.values() {
            assert!((700..1300).contains(count), "{counts:?}");
        }
    }

    #[test]
    fn unusable_owner_passes_its_keys_to_the_next_endpoint() {
        let eps = endpoints(&["10.0.0.1:80", "10.0.0.2:80"]);
        let ring = Ring::new(&eps);
        let key = 12345;
        let first = owner(&ring, &eps, key);
        let next = ring
            .lookup(key, &eps, &|e| e.address != first)
            .expect("next");
        assert_ne!(next.address, first);
    }
}
