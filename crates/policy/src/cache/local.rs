//! The per-replica cache (`backend: Local`): responses in memory, bounded in bytes.

use std::{future::Future, sync::Arc};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, Response, StatusCode};
use moka::future::Cache;
use tokio::time::Instant;

use super::{
    CacheRequest, CacheRule, CacheStatus, Fetched, NotStored,
    control::{freshness, vary_names},
    entry::Entry,
    flight::{Flights, Role, Shared, wait},
    key::put_header,
    shared::SharedTier,
};
use crate::shared::{SharedError, SharedStore};

/// What the backend answered, as the proxy hands it to the cache.
pub enum Upstream<R> {
    /// A response read whole (its body within [`LocalCache::max_entry_bytes`]).
    Buffered(Fetched),
    /// A response the proxy streams through without reading it whole (a body over the limit,
    /// an upgrade): never stored, never shared.
    Streamed(R),
}

/// What a request gets from [`LocalCache::get_or_fetch`].
#[derive(Debug)]
pub enum Lookup<R> {
    /// A fresh stored copy (`X-Cache: HIT`, `Age` set), possibly fetched just now by a
    /// concurrent request for the same key.
    Hit(Response<Bytes>),
    /// A stale copy served because the backend failed (`X-Cache: STALE`).
    Stale(Response<Bytes>),
    /// The backend's answer to this request (`X-Cache: MISS`).
    Miss {
        /// The response to send.
        response: Response<Bytes>,
        /// Why it was not stored, if it was not.
        not_stored: Option<NotStored>,
    },
    /// The backend's streamed answer, untouched: the proxy adds `X-Cache: MISS`.
    Streamed(R),
}

/// Responses of GET requests in this replica's memory, shared by every rule of a gateway.
///
/// - Bounded: entries are weighed as body + fields + key + a fixed overhead, and the least
///   useful are evicted past `max_bytes`; a body over `max_entry_bytes` is never stored.
/// - Coalescing: concurrent misses for one key make one backend request. If its answer is
///   stored, the waiters whose `Vary` values match get it as a hit; if it is not storable it is
///   the fetching request's alone (it may be private to it), and each waiter fetches its own.
///   If the fetching request is cancelled, the waiters fetch their own.
/// - HEAD requests are served from GET entries; a HEAD miss goes to the backend alone and its
///   answer (without a body) is not stored.
/// - Stale copies stand in for a failed fetch (an error, or a 500, 502, 503 or 504) for the
///   rule's `staleIfError` past their freshness, unless the response said `must-revalidate`.
/// - A client's own `Cache-Control: no-cache`/`no-store` and `Pragma` are ignored, as nginx
///   does by default: honouring them would let any client send every request to the backend.
/// - Time is tokio's clock, so tests pause and advance it.
pub struct LocalCache {
    store: Cache<Bytes, Slot>,
    /// The Redis tier behind this one, for a `backend: Shared` cache.
    shared: Option<SharedTier>,
    flights: Flights,
    max_bytes: u64,
    max_entry_bytes: usize,
}

impl LocalCache {
    /// A cache of at most `max_bytes`, storing bodies of at most `max_entry_bytes`.
    pub fn new(max_bytes: u64, max_entry_bytes: usize) -> Self {
        let store = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &Bytes, slot: &Slot| slot.weight(key.len()))
            .expire_after(SlotExpiry)
            .support_invalidation_closures()
            .build();
        Self {
            store,
            shared: None,
            flights: Flights::default(),
            max_bytes,
            max_entry_bytes,
        }
    }

    /// A `backend: Shared` cache: this replica's in-memory tier of at most `max_bytes` in front
    /// of the entries every replica keeps in `store` (see [`shared`](super::shared)). A request
    /// the memory tier cannot serve fresh looks in Redis before going to the backend (a fresh
    /// entry there is a hit, and is kept in memory too; a stale one may stand in for a failed
    /// fetch); what the backend answers is stored in both. Redis down or slow is a miss.
    pub fn shared(max_bytes: u64, max_entry_bytes: usize, store: Arc<SharedStore>) -> Self {
        Self {
            shared: Some(SharedTier::new(store)),
            ..Self::new(max_bytes, max_entry_bytes)
        }
    }

    /// The largest body stored: the proxy streams larger responses through as
    /// [`Upstream::Streamed`] instead of reading them whole.
    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }

    /// The fresh copy of this replica's memory for `request` (`X-Cache: HIT`), if there is
    /// one: the hit path, which needs nothing of the request kept. `None` leaves everything
    /// else (Redis, coalescing, stale copies) to [`get_or_fetch`](Self::get_or_fetch).
    pub async fn fresh(
        &self,
        rule: &CacheRule,
        request: &CacheRequest<'_>,
    ) -> Option<Response<Bytes>> {
        let primary = rule.key(request).ok()?;
        let (_, entry) = self.find(&primary, request.headers).await?;
        let now = Instant::now();
        entry
            .is_fresh(now)
            .then(|| entry.response(now, request.method == Method::HEAD, CacheStatus::Hit))
    }

    /// Serves `request` from the cache, or runs `fetch` (at most once per key at a time) and
    /// stores its answer if it may. `Err` only when the fetch failed and no stale copy may
    /// stand in.
    pub async fn get_or_fetch<R, E, F>(
        &self,
        rule: &CacheRule,
        request: &CacheRequest<'_>,
        fetch: F,
    ) -> Result<Lookup<R>, E>
    where
        F: Future<Output = Result<Upstream<R>, E>>,
    {
        let Ok(primary) = rule.key(request) else {
            return Ok(match fetch.await? {
                Upstream::Buffered(fetched) => miss(fetched, Some(NotStored::Request)),
                Upstream::Streamed(streamed) => Lookup::Streamed(streamed),
            });
        };
        let head = request.method == Method::HEAD;
        let mut stale = match self.find(&primary, request.headers).await {
            Some((_, entry)) if entry.is_fresh(Instant::now()) => {
                return Ok(Lookup::Hit(entry.response(
                    Instant::now(),
                    head,
                    CacheStatus::Hit,
                )));
            }
            found => found.map(|(_, entry)| entry),
        };
        if let Some(tier) = &self.shared {
            match tier.find(&primary, request.headers).await {
                Some(entry) if entry.is_fresh(Instant::now()) => {
                    let (_, entry) = self.keep(rule, &primary, request.headers, entry).await;
                    let now = Instant::now();
                    return Ok(Lookup::Hit(entry.response(now, head, CacheStatus::Hit)));
                }
                Some(entry) if stale.is_none() => stale = Some(Arc::new(entry)),
                _ => {}
            }
        }
        let fetching = Fetching {
            cache: self,
            rule,
            primary: &primary,
            request,
            stale,
        };
        if head {
            return fetching.fetch(fetch, false).await.0;
        }
        match self.flights.join(&primary) {
            Role::Leader(lead) => {
                let (lookup, shared) = fetching.fetch(fetch, true).await;
                lead.finish(shared);
                lookup
            }
            Role::Waiter(receiver) => {
                match wait(receiver).await {
                    Some(Shared::Stored(full, entry))
                        if variant_key(&primary, &entry.vary, request.headers) == full =>
                    {
                        let now = Instant::now();
                        return Ok(Lookup::Hit(entry.response(now, head, CacheStatus::Hit)));
                    }
                    Some(Shared::Failed) => {
                        if let Some(stale) = fetching.serve_stale() {
                            return Ok(stale);
                        }
                    }
                    _ => {}
                }
                fetching.fetch(fetch, true).await.0
            }
        }
    }

    /// Drops every entry whose key starts with `prefix` (for example `shop.example.com/items`);
    /// see [`CacheRule::key`] for the key's form. A shared cache also deletes the matching
    /// entries in Redis (the other replicas' memory tiers keep theirs until they expire).
    pub async fn purge_prefix(&self, prefix: &[u8]) -> Result<(), SharedError> {
        let owned = Bytes::copy_from_slice(prefix);
        if let Err(error) = self
            .store
            .invalidate_entries_if(move |key, _| key.starts_with(&owned))
        {
            tracing::warn!(%error, "the response cache could not purge entries");
        }
        if let Some(tier) = &self.shared {
            tier.purge_prefix(prefix).await?;
        }
        Ok(())
    }

    /// The bytes the cache holds now, as weighed (settles after
    /// [`run_pending_tasks`](Self::run_pending_tasks)).
    pub fn weighted_size(&self) -> u64 {
        self.store.weighted_size()
    }

    /// How many entries the cache holds now (settles like [`weighted_size`](Self::weighted_size)).
    pub fn entry_count(&self) -> u64 {
        self.store.entry_count()
    }

    /// Applies pending evictions and purges now rather than over the next operations.
    pub async fn run_pending_tasks(&self) {
        self.store.run_pending_tasks().await;
    }

    /// The stored entry for a request, fresh or not, with its full key.
    async fn find(&self, primary: &Bytes, headers: &HeaderMap) -> Option<(Bytes, Arc<Entry>)> {
        match self.store.get(primary).await? {
            Slot::Entry(entry) => Some((primary.clone(), entry)),
            Slot::Vary { names, .. } => {
                let full = variant_key(primary, &names, headers);
                match self.store.get(&full).await? {
                    Slot::Entry(entry) => Some((full, entry)),
                    Slot::Vary { .. } => None,
                }
            }
        }
    }

    /// Stores a GET's answer if it may be, returning its full key and entry.
    async fn store(
        &self,
        rule: &CacheRule,
        primary: &Bytes,
        headers: &HeaderMap,
        fetched: &Fetched,
    ) -> Result<(Bytes, Arc<Entry>), NotStored> {
        if fetched.body.len() > self.max_entry_bytes {
            return Err(NotStored::TooLarge);
        }
        let freshness = freshness(
            fetched.status,
            &fetched.headers,
            rule.ttl(),
            rule.stale_if_error(),
        )?;
        let names = vary_names(&fetched.headers).ok_or(NotStored::VaryAll)?;
        let entry = Entry::new(fetched.clone(), freshness, names, Instant::now());
        let (full, entry) = self.keep(rule, primary, headers, entry).await;
        if let Some(tier) = &self.shared {
            let marker_for = rule.ttl() + rule.stale_if_error();
            tier.write(primary, &full, &entry, marker_for);
        }
        Ok((full, entry))
    }

    /// Keeps `entry` in memory under its full key (and its `Vary` names under `primary`).
    async fn keep(
        &self,
        rule: &CacheRule,
        primary: &Bytes,
        headers: &HeaderMap,
        entry: Entry,
    ) -> (Bytes, Arc<Entry>) {
        let entry = Arc::new(entry);
        let full = variant_key(primary, &entry.vary, headers);
        if !entry.vary.is_empty() {
            let names = Slot::Vary {
                names: entry.vary.clone().into(),
                useful_for: rule.ttl() + rule.stale_if_error(),
            };
            self.store.insert(primary.clone(), names).await;
        }
        self.store
            .insert(full.clone(), Slot::Entry(entry.clone()))
            .await;
        (full, entry)
    }
}

impl std::fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("entries", &self.entry_count())
            .field("bytes", &self.weighted_size())
            .field("max_bytes", &self.max_bytes)
            .field("max_entry_bytes", &self.max_entry_bytes)
            .field("fetches_in_flight", &self.flights.len())
            .finish()
    }
}

#[path = "fetching.rs"]
mod fetching;
#[path = "slot.rs"]
mod slot;
use fetching::{Fetching, miss};
use slot::{Slot, SlotExpiry};

/// The key of one `Vary` variant: the primary key, a marker no primary key contains, and the
/// request's values of the response's `Vary` names; the primary key itself without `Vary`.
pub(super) fn variant_key(primary: &Bytes, names: &[String], headers: &HeaderMap) -> Bytes {
    if names.is_empty() {
        return primary.clone();
    }
    let mut key = BytesMut::with_capacity(primary.len() + 64);
    key.put_slice(primary);
    key.put_slice(b"\0\0");
    for name in names {
        put_header(&mut key, headers, name);
    }
    key.freeze()
}

/// Statuses after which a stale copy stands in for the answer (RFC 5861 §4).
fn is_backend_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
