//! One request's trip to the backend on a miss: the fetch, the store, and the stale fallback.

use std::{future::Future, sync::Arc};

use bytes::Bytes;
use http::Response;
use tokio::time::Instant;

use super::{LocalCache, Lookup, Upstream, is_backend_error};
use crate::cache::flight::Shared;
use crate::cache::{CacheRequest, CacheRule, CacheStatus, Fetched, NotStored, entry::Entry};

/// A miss being served.
pub(super) struct Fetching<'a> {
    pub cache: &'a LocalCache,
    pub rule: &'a CacheRule,
    pub primary: &'a Bytes,
    pub request: &'a CacheRequest<'a>,
    /// The stored copy that is no longer fresh, if any.
    pub stale: Option<Arc<Entry>>,
}

impl Fetching<'_> {
    /// Runs `fetch`; stores its answer when `store` and the answer allow; falls back to the
    /// stale copy when the backend fails. Also returns what to share with waiters.
    pub async fn fetch<R, E, F>(&self, fetch: F, store: bool) -> (Result<Lookup<R>, E>, Shared)
    where
        F: Future<Output = Result<Upstream<R>, E>>,
    {
        let fetched = match fetch.await {
            Err(error) => {
                return match self.serve_stale() {
                    Some(stale) => (Ok(stale), Shared::Failed),
                    None => (Err(error), Shared::Failed),
                };
            }
            Ok(Upstream::Streamed(streamed)) => {
                return (Ok(Lookup::Streamed(streamed)), Shared::Unshared);
            }
            Ok(Upstream::Buffered(fetched)) => fetched,
        };
        if is_backend_error(fetched.status)
            && let Some(stale) = self.serve_stale()
        {
            return (Ok(stale), Shared::Failed);
        }
        if !store {
            return (
                Ok(miss(fetched, Some(NotStored::Request))),
                Shared::Unshared,
            );
        }
        let stored = self
            .cache
            .store(self.rule, self.primary, self.request.headers, &fetched)
            .await;
        match stored {
            Ok((full, entry)) => {
                let response = entry.response(Instant::now(), false, CacheStatus::Miss);
                let lookup = Lookup::Miss {
                    response,
                    not_stored: None,
                };
                (Ok(lookup), Shared::Stored(full, entry))
            }
            Err(reason) => (Ok(miss(fetched, Some(reason))), Shared::Unshared),
        }
    }

    /// The stale copy, if it may still stand in for a failed fetch.
    pub fn usable_stale(&self) -> Option<&Arc<Entry>> {
        self.stale
            .as_ref()
            .filter(|entry| entry.is_usable_stale(Instant::now()))
    }

    /// The stale copy as a response, if it may be served.
    pub fn serve_stale<R>(&self) -> Option<Lookup<R>> {
        let head = self.request.method == http::Method::HEAD;
        let entry = self.usable_stale()?;
        Some(Lookup::Stale(entry.response(
            Instant::now(),
            head,
            CacheStatus::Stale,
        )))
    }
}

/// The backend's answer as a `MISS` response, not stored.
pub(super) fn miss<R>(fetched: Fetched, not_stored: Option<NotStored>) -> Lookup<R> {
    let mut response = Response::new(fetched.body);
    *response.status_mut() = fetched.status;
    *response.headers_mut() = fetched.headers;
    CacheStatus::Miss.apply(response.headers_mut());
    Lookup::Miss {
        response,
        not_stored,
    }
}
