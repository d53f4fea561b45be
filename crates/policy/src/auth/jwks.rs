//! Where a JWT rule's keys come from: a Secret (replaced when it changes) or an issuer's `https`
//! URL (refreshed on its `Cache-Control`, and at most once per few seconds for an unknown `kid`).
//! The last good key set keeps serving while the issuer is down or answers garbage.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::{sync::Mutex, time::Instant};

use super::{ConfigError, keyset::KeySet};

/// A boxed future, as [`JwksFetch`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Fetches an issuer's JWKS document. The network lives behind this trait so that the refresh
/// logic is tested without one.
pub trait JwksFetch: Send + Sync {
    /// One GET of the JWKS URL.
    fn fetch(&self) -> BoxFuture<'_, Result<JwksResponse, FetchError>>;
}

/// A JWKS response: its body and how long the issuer lets it be cached.
#[derive(Debug, Clone)]
pub struct JwksResponse {
    /// The JWKS document.
    pub body: Bytes,
    /// The response's `Cache-Control: max-age` (see [`max_age`]), before clamping.
    pub max_age: Option<Duration>,
}

/// A JWKS fetch that failed: unreachable, timed out, or not a 200.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("fetching the JWKS failed: {0}")]
pub struct FetchError(pub String);

/// Why a refresh left the key set as it was.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RefreshError {
    /// The issuer could not be reached or did not answer 200.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The issuer answered something that is not a usable JWKS.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// How often a remote JWKS is fetched. The defaults suit most issuers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshSchedule {
    /// Between fetches when the response has no `max-age` (default 10 min).
    pub default_interval: Duration,
    /// The shortest interval a `max-age` may ask for (default 1 min).
    pub min_interval: Duration,
    /// The longest interval a `max-age` may ask for (default 24 h).
    pub max_interval: Duration,
    /// The shortest gap between two refreshes caused by an unknown `kid` (default 5 s).
    pub unknown_kid_gap: Duration,
    /// The first retry after a failed fetch (default 10 s), doubling up to `default_interval`.
    pub retry_after_failure: Duration,
    /// How long one fetch may take (default 5 s).
    pub fetch_timeout: Duration,
}

impl Default for RefreshSchedule {
    fn default() -> Self {
        Self {
            default_interval: Duration::from_secs(600),
            min_interval: Duration::from_secs(60),
            max_interval: Duration::from_secs(24 * 3600),
            unknown_kid_gap: Duration::from_secs(5),
            retry_after_failure: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

impl RefreshSchedule {
    /// When to fetch again after a good response with this `max-age`.
    pub fn after_success(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.default_interval)
            .clamp(self.min_interval, self.max_interval.max(self.min_interval))
    }

    /// When to fetch again after `failures` consecutive failures (1 for the first).
    pub fn after_failure(&self, failures: u32) -> Duration {
        let doubled = self
            .retry_after_failure
            .saturating_mul(1 << failures.saturating_sub(1).min(16));
        doubled.min(self.default_interval.max(self.retry_after_failure))
    }
}

/// `max-age` of a `Cache-Control` value; `no-store` and `no-cache` count as 0 (so the interval
/// clamps to its minimum). `None` when the header says nothing about freshness.
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" => return Some(Duration::ZERO),
            "max-age" => {
                age = value
                    .trim()
                    .trim_matches('"')
                    .parse::<u64>()
                    .ok()
                    .map(Duration::from_secs);
            }
            _ => {}
        }
    }
    age
}

/// The key set a JWT rule verifies with, shared by all its requests and swapped whole when it
/// changes.
#[derive(Clone)]
pub struct JwksSource {
    keys: Arc<ArcSwap<KeySet>>,
    remote: Option<Arc<Remote>>,
}

struct Remote {
    fetch: Arc<dyn JwksFetch>,
    schedule: RefreshSchedule,
    state: Mutex<RemoteState>,
}

#[derive(Default)]
struct RemoteState {
    last_fetch: Option<Instant>,
    failures: u32,
}

impl JwksSource {
    /// Keys from a Secret: fixed until [`replace`](Self::replace). `oct` keys (HMAC secrets)
    /// are accepted here, and only here.
    pub fn from_secret(jwks: &[u8]) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: Arc::new(ArcSwap::from_pointee(KeySet::parse(jwks, true)?)),
            remote: None,
        })
    }

    /// Keys from an issuer's URL, fetched through `fetch`. Empty until the first successful
    /// [`refresh`](Self::refresh); drive it with [`run`](Self::run). `oct` keys in the response
    /// are ignored.
    pub fn remote(fetch: Arc<dyn JwksFetch>, schedule: RefreshSchedule) -> Self {
        Self {
            keys: Arc::new(ArcSwap::from_pointee(KeySet::empty())),
            remote: Some(Arc::new(Remote {
                fetch,
                schedule,
                state: Mutex::new(RemoteState::default()),
            })),
        }
    }

    /// Replaces the keys with a new document (the Secret changed). A bad document is refused
    /// and the current keys stay.
    pub fn replace(&self, jwks: &[u8]) -> Result<(), ConfigError> {
        let keys = KeySet::parse(jwks, self.remote.is_none())?;
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    /// Whether the keys come from a URL rather than a Secret.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// How many usable keys are being served.
    pub fn key_count(&self) -> usize {
        self.keys.load().len()
    }

    /// Fetches the remote JWKS now and, if it is usable, serves it. Answers when to fetch
    /// next. A Secret-backed source has nothing to fetch and answers `None`.
    pub async fn refresh(&self) -> Option<Result<Duration, RefreshError>> {
        let remote = self.remote.as_ref()?;
        let mut state = remote.state.lock().await;
        let outcome = self.fetch_locked(remote, &mut state).await;
        Some(outcome.map(|max_age| remote.schedule.after_success(max_age)))
    }

    /// Keeps a remote source fresh, forever: fetch, wait as the schedule says, again. Failures
    /// are logged and retried with backoff while the last good keys keep serving. Spawn it for
    /// as long as the rule lives (abort the task to stop). Returns at once for a Secret.
    pub async fn run(&self) {
        let Some(remote) = self.remote.clone() else {
            return;
        };
        loop {
            let wait = {
                let mut state = remote.state.lock().await;
                let max_age = self.fetch_locked(&remote, &mut state).await;
                match max_age {
                    Ok(max_age) => remote.schedule.after_success(max_age),
                    Err(error) => {
                        tracing::warn!(%error, keys = self.key_count(), "JWKS refresh failed; serving the last good keys");
                        remote.schedule.after_failure(state.failures)
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Which key set is being served (cheaper than [`keys`](Self::keys): no reference taken).
    pub(crate) fn generation(&self) -> u64 {
        self.keys.load().generation()
    }

    /// The keys being served.
    pub(crate) fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// A token named a `kid` the set lacks: refresh now unless a fetch happened in the last
    /// `unknown_kid_gap` (so a flood of made-up kids costs the issuer one fetch per gap).
    /// Concurrent callers wait for the same fetch. The caller re-reads [`keys`](Self::keys).
    pub(crate) async fn refresh_for_unknown_kid(&self) {
        let Some(remote) = &self.remote else {
            return;
        };
        let mut state = remote.state.lock().await;
        let recent = state
            .last_fetch
            .is_some_and(|at| at.elapsed() < remote.schedule.unknown_kid_gap);
        if !recent && let Err(error) = self.fetch_locked(remote, &mut state).await {
            tracing::warn!(%error, "JWKS refresh for an unknown kid failed");
        }
    }

    /// One fetch with the state locked; answers the response's `max-age`.
    async fn fetch_locked(
        &self,
        remote: &Remote,
        state: &mut RemoteState,
    ) -> Result<Option<Duration>, RefreshError> {
        state.last_fetch = Some(Instant::now());
        let fetched = tokio::time::timeout(remote.schedule.fetch_timeout, remote.fetch.fetch())
            .await
            .unwrap_or_else(|_| Err(FetchError("the issuer did not answer in time".into())));
        let outcome = fetched
            .map_err(RefreshError::from)
            .and_then(|response| Ok((KeySet::parse(&response.body, false)?, response.max_age)));
        match outcome {
            Ok((keys, max_age)) => {
                self.keys.store(Arc::new(keys));
                state.failures = 0;
                Ok(max_age)
            }
            Err(error) => {
                state.failures = state.failures.saturating_add(1);
                Err(error)
            }
        }
    }
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksSource")
            .field("keys", &self.key_count())
            .field("remote", &self.remote.is_some())
            .finish()
    }
}

#[cfg(test)]
#[path = "jwks_tests.rs"]
mod tests;
