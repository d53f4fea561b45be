//! A fast hash for the maps the request path looks up (ports, backend names, hostnames, path
//! segments): foldhash's, with a fixed seed.
//!
//! Not resistant to chosen collisions, which is fine here: every key in these maps comes from
//! the config, and a client can only make lookups, which a collision slows by one comparison per
//! colliding config key at most.

use std::collections::HashMap;

/// A `HashMap` with foldhash's fast hasher; see the module documentation.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn strings_that_differ_anywhere_hash_apart() {
        let state = foldhash::fast::FixedState::default();
        let keys = ["shop/api", "shop/apj", "shop/api2", "hop/api", "a", "b", ""];
        let hashes: std::collections::HashSet<u64> =
            keys.iter().map(|k| state.hash_one(k)).collect();
        assert_eq!(hashes.len(), keys.len());
        let mut map: FastMap<String, usize> = FastMap::default();
        for (i, key) in keys.iter().enumerate() {
            map.insert((*key).to_owned(), i);
        }
        assert_eq!(map.get("shop/apj"), Some(&1));
    }
}
