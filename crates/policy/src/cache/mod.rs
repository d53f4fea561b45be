//! Response caching for GET and HEAD (RFC 9111, as a shared cache).
//!
//! - [`CacheRule`] is a rule's `cache` policy; [`CacheRule::key`] says what a request is cached
//!   under (host, path and query, the rule's `vary` headers, the consumer when the rule is keyed
//!   by consumer) or why it [bypasses](Bypass) the cache.
//! - The response decides the rest: `Cache-Control` (`no-store`, `private`, `no-cache`,
//!   `max-age`, `s-maxage`, `must-revalidate`, `proxy-revalidate`), `Expires`, `Vary` (a
//!   secondary key; `Vary: *` is never stored), `Set-Cookie` (never stored), and the status
//!   (only those cacheable by default). The rule's `ttl` is the lifetime when the backend says
//!   nothing, and the longest one when it does. [`NotStored`] says why an answer was not kept.
//! - [`LocalCache`] keeps responses in this replica's memory (`backend: Local`), with request
//!   coalescing and stale-if-error; [`LocalCache::shared`] puts the same in front of a Redis
//!   every replica shares (`backend: Shared`). [`CacheStatus`] is the `X-Cache` field.
//!
//! Revalidation (`If-None-Match`/`If-Modified-Since` to the backend) is not done: a response
//! that must be revalidated on every use (`no-cache`) is not stored, and a stale one is only
//! served when the backend fails.

mod control;
mod entry;
mod flight;
mod key;
mod local;
mod shared;

pub use control::NotStored;
pub use entry::{CacheStatus, Fetched, X_CACHE};
pub use key::{Bypass, CacheRequest, CacheRule};
pub use local::{LocalCache, Lookup, Upstream};
