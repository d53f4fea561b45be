//! A fast hash for the maps the request path looks up (ports, backend names, hostnames, path
//! segments): foldhash's, with a fixed seed.
//!
//! Not resistant to chosen collisions, which is fine here: every key in these maps comes from
//! the config, and a client can only make lookups, which a collision slows by one comparison per
//! colliding config key at most.

use std::collections::HashMap;

/// A `HashMap` with foldhash's fast hasher; see the module documentation.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;
