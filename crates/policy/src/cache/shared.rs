//! The Redis tier of a `backend: Shared` cache: entries every replica of the gateway reads and
//! writes, behind each replica's small in-memory tier ([`LocalCache::shared`]).
//!
//! - Keys are the cache's own keys under `portcullis:cache:`, so a key prefix is a Redis key
//!   prefix too; values are [wire-encoded](super::entry) entries. A `Vary` response also leaves
//!   a marker under its primary key naming the fields to look the variant up by, as the
//!   in-memory tier does.
//! - Redis expires each entry when it can no longer be served even stale.
//! - Reads are on the request path, bounded by the store's timeout; writes are sent in the
//!   background once the response is on its way. Redis down or slow: a read is a miss and a
//!   write is dropped (counted by the store's failures), so the rule serves from the backend
//!   as if it had no shared tier — never an error, never a hang past the timeout.
//!
//! [`LocalCache::shared`]: super::LocalCache::shared

use std::{sync::Arc, time::Duration, time::SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use redis::AsyncCommands as _;
use tokio::time::Instant;

use super::{entry::Entry, local::variant_key};
use crate::shared::SharedStore;

/// The namespace of the cache's keys in Redis.
const NAMESPACE: &[u8] = b"portcullis:cache:";

/// The first byte of a `Vary` marker's value (an entry starts with `P`).
const VARY_MARKER: u8 = b'V';

/// The Redis tier.
#[derive(Debug, Clone)]
pub(crate) struct SharedTier {
    store: Arc<SharedStore>,
}

impl SharedTier {
    pub fn new(store: Arc<SharedStore>) -> Self {
        Self { store }
    }

    /// The entry stored for a request with key `primary` and fields `headers`, fresh or not;
    /// `None` when there is none or Redis cannot say in time.
    pub async fn find(&self, primary: &Bytes, headers: &HeaderMap) -> Option<Entry> {
        let value = self.get(primary).await?;
        let value = match value.first() {
            Some(&VARY_MARKER) => {
                let names: Vec<String> = value[1..]
                    .split(|b| *b == 0)
                    .filter(|name| !name.is_empty())
                    .map(|name| String::from_utf8_lossy(name).into_owned())
                    .collect();
                self.get(&variant_key(primary, &names, headers)).await?
            }
            _ => value,
        };
        Entry::decode(value, Instant::now(), SystemTime::now())
    }

    /// Stores `entry` under `full` (and its `Vary` marker under `primary`) in the background,
    /// for as long as it can be served. `marker_for` is how long the marker is useful.
    pub fn write(&self, primary: &Bytes, full: &Bytes, entry: &Entry, marker_for: Duration) {
        let Some(value) = entry.encode(Instant::now(), SystemTime::now()) else {
            return;
        };
        let entry_ms = millis(entry.useful_for());
        let marker = (!entry.vary.is_empty()).then(|| {
            let mut marker = BytesMut::from(&[VARY_MARKER][..]);
            for name in &entry.vary {
                marker.put_slice(name.as_bytes());
                marker.put_u8(0);
            }
            (namespaced(primary), marker.freeze(), millis(marker_for))
        });
        let key = namespaced(full);
        let store = self.store.clone();
        tokio::spawn(async move {
            let written = store
                .run(|mut conn| async move {
                    let mut pipe = redis::pipe();
                    if let Some((key, marker, ms)) = &marker {
                        pipe.pset_ex(key.as_ref(), marker.as_ref(), *ms).ignore();
                    }
                    pipe.pset_ex(key.as_ref(), value.as_ref(), entry_ms)
                        .ignore();
                    pipe.query_async::<()>(&mut conn).await
                })
                .await;
            if let Err(error) = written {
                tracing::debug!(%error, "a shared cache entry was not written");
            }
        });
    }

    /// Deletes every entry whose key starts with `prefix`; returns how many keys went.
    pub async fn purge_prefix(&self, prefix: &[u8]) -> Result<u64, crate::shared::SharedError> {
        let mut pattern = namespaced(prefix).to_vec();
        escape_glob(&mut pattern);
        pattern.push(b'*');
        // One SCAN pass at a time, each bounded by the store's timeout.
        let mut cursor = 0u64;
        let mut deleted = 0u64;
        loop {
            let pattern = pattern.clone();
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .store
                .run(|mut conn| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                deleted += self
                    .store
                    .run(|mut conn| async move { conn.unlink::<_, u64>(keys).await })
                    .await?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    async fn get(&self, key: &Bytes) -> Option<Bytes> {
        let key = namespaced(key);
        match self
            .store
            .run(|mut conn| async move { conn.get::<_, Option<Vec<u8>>>(key.as_ref()).await })
            .await
        {
            Ok(value) => value.map(Bytes::from),
            Err(error) => {
                tracing::debug!(%error, "the shared cache is read as a miss");
                None
            }
        }
    }
}

fn namespaced(key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(NAMESPACE.len() + key.len());
    out.put_slice(NAMESPACE);
    out.put_slice(key);
    out.freeze()
}

/// Escapes the bytes Redis' glob patterns treat specially, so a prefix matches itself only.
fn escape_glob(pattern: &mut Vec<u8>) {
    let mut escaped = Vec::with_capacity(pattern.len() + 8);
    for &b in pattern.iter() {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            escaped.push(b'\\');
        }
        escaped.push(b);
    }
    *pattern = escaped;
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}
