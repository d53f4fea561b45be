//! Request coalescing: while one request for a key is fetching, the others for that key wait for
//! its answer instead of going to the backend too.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use bytes::Bytes;
use tokio::sync::watch;

use super::entry::Entry;

/// What the fetching request leaves for the requests that waited on it.
#[derive(Clone)]
pub(crate) enum Shared {
    /// The answer was stored under this full key: waiters whose request maps to the same key
    /// (same `Vary` values) are served it.
    Stored(Bytes, Arc<Entry>),
    /// The backend failed: waiters serve their own stale copy if they may, without fetching.
    Failed,
    /// The answer was not storable (private, `Set-Cookie`, too large, ...): it belongs to the
    /// request that fetched it, so every waiter fetches its own.
    Unshared,
}

/// The fetches in flight, by primary key.
#[derive(Default)]
pub(crate) struct Flights(Mutex<HashMap<Bytes, watch::Receiver<Option<Shared>>>>);

/// A request's part in a key's fetch.
pub(crate) enum Role<'a> {
    /// This request fetches; it must [`finish`](Lead::finish) (dropping the lead unfinished, as
    /// a cancelled request does, sends the waiters to fetch their own).
    Leader(Lead<'a>),
    /// Another request is fetching; wait for what it shares.
    Waiter(watch::Receiver<Option<Shared>>),
}

impl Flights {
    /// Joins the fetch in flight for `key`, or starts one.
    pub fn join(&self, key: &Bytes) -> Role<'_> {
        let mut flights = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(receiver) = flights.get(key) {
            return Role::Waiter(receiver.clone());
        }
        let (sender, receiver) = watch::channel(None);
        flights.insert(key.clone(), receiver);
        Role::Leader(Lead {
            flights: self,
            key: key.clone(),
            sender,
        })
    }

    /// How many keys are being fetched now.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Waits for the leader's answer; `None` when the leader went away without one.
pub(crate) async fn wait(mut receiver: watch::Receiver<Option<Shared>>) -> Option<Shared> {
    let shared = receiver.wait_for(Option::is_some).await.ok()?;
    shared.clone()
}

/// The fetching request's hold on its key.
pub(crate) struct Lead<'a> {
    flights: &'a Flights,
    key: Bytes,
    sender: watch::Sender<Option<Shared>>,
}

impl Lead<'_> {
    /// Hands the answer to the waiters and lets the next miss for the key fetch again.
    pub fn finish(self, shared: Shared) {
        self.sender.send_replace(Some(shared));
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.flights
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}
