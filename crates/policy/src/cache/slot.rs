//! What the store holds under a key, what it weighs and how long it is worth keeping.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use moka::Expiry;

use crate::cache::entry::Entry;

/// What the store holds under a key.
#[derive(Clone)]
pub(super) enum Slot {
    /// A response.
    Entry(Arc<Entry>),
    /// The answers for this primary key vary on these request headers: look up the variant.
    Vary {
        names: Arc<[String]>,
        useful_for: Duration,
    },
}

impl Slot {
    pub fn weight(&self, key_len: usize) -> u32 {
        match self {
            Slot::Entry(entry) => entry.weight(key_len),
            Slot::Vary { names, .. } => {
                let names: usize = names.iter().map(|name| name.len() + 24).sum();
                u32::try_from(key_len + names + 128).unwrap_or(u32::MAX)
            }
        }
    }

    fn useful_for(&self) -> Duration {
        match self {
            Slot::Entry(entry) => entry.useful_for(),
            Slot::Vary { useful_for, .. } => *useful_for,
        }
    }
}

/// Frees an entry's memory once it can no longer be served, even stale.
pub(super) struct SlotExpiry;

impl Expiry<Bytes, Slot> for SlotExpiry {
    fn expire_after_create(
        &self,
        _key: &Bytes,
        slot: &Slot,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(slot.useful_for())
    }

    fn expire_after_update(
        &self,
        _key: &Bytes,
        slot: &Slot,
        _now: std::time::Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot.useful_for())
    }
}
