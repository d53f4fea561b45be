//! The policies a Portcullis rule enforces around forwarding, as engines the data plane drives
//! per request:
//!
//! - `auth`: who the caller is — API keys, JWTs, basic credentials — and what the upstream
//!   learns of it;
//! - `rate`: how often a caller may call — token buckets per key, per replica or shared;
//! - `cache`: which answers may be served from memory, and for how long;
//! - `shared`: the Redis connection the replicas of a gateway share for global limits and
//!   shared caches.
//!
//! Each engine is built from a rule's compiled policy and the Secret material it reads, and knows
//! nothing of sockets, routing or the snapshot format: the proxy compiles a rule's policies into
//! these engines (`portcullis-proxy`'s `compile`) and calls them on the request path. Keeping
//! them here keeps them small, testable on their own, and out of the request path's hot code
//! until a rule asks for them.

// Tests may unwrap: a panic is how they fail.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod cache;
pub mod rate;
pub mod shared;

/// A real redis-server for the tests of the engines that share state.
#[cfg(test)]
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

/// Nanoseconds of `duration`, saturating: the unit of the engines' clocks kept in atomics.
pub(crate) fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
