//! A small, bounded cache of verified credentials, keyed by a SHA-256 digest of the credential so
//! it never holds the credential itself.

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

/// A SHA-256 digest, the key of every cache and key table in this module.
pub(crate) type Digest32 = [u8; 32];

/// SHA-256 of `parts`, fed in order with a separator the parts cannot contain ambiguously.
pub(crate) fn digest(parts: &[&[u8]]) -> Digest32 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Verified credentials and what they proved, each until its own deadline.
///
/// Reads take a shared lock, so hits on many workers do not serialize; inserts past `capacity`
/// first drop the expired entries, then an arbitrary one. The bound is what matters: a flood of
/// distinct valid credentials cannot grow it.
pub(crate) struct VerifiedCache<V> {
    entries: RwLock<HashMap<Digest32, (Instant, V)>>,
    capacity: usize,
}

impl<V: Clone> VerifiedCache<V> {
    /// An empty cache of at most `capacity` entries (0 disables it).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// The value cached for `key`, if its deadline is after `now`.
    pub(crate) fn get(&self, key: &Digest32, now: Instant) -> Option<V> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(deadline, _)| *deadline > now)
            .map(|(_, value)| value.clone())
    }

    /// Caches `value` for `key` for `ttl` from `now`.
    pub(crate) fn insert(&self, key: Digest32, value: V, now: Instant, ttl: Duration) {
        if self.capacity == 0 || ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (deadline, _)| *deadline > now);
            if entries.len() >= self.capacity
                && let Some(victim) = entries.keys().next().copied()
            {
                entries.remove(&victim);
            }
        }
        entries.insert(key, (now + ttl, value));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_count_stays_bounded() {
        let cache = VerifiedCache::new(2);
        let now = Instant::now();
        let ttl = Duration::from_secs(60);
        cache.insert(digest(&[b"a"]), 1, now, ttl);
        assert_eq!(cache.get(&digest(&[b"a"]), now), Some(1));
        assert_eq!(cache.get(&digest(&[b"a"]), now + ttl), None);
        for i in 0..100u32 {
            cache.insert(digest(&[&i.to_be_bytes()]), i, now, ttl);
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&digest(&[&99u32.to_be_bytes()]), now), Some(99));
    }

    #[test]
    fn digests_do_not_confuse_split_points() {
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
    }
}
