//! The state a gateway's replicas share (`sharedState.redis`): one Redis connection per
//! replica, multiplexed by every rule that needs it (`scope: Global` rate limits,
//! `backend: Shared` caches).
//!
//! Redis is a dependency the request path must never wait on for long. Every operation goes
//! through [`SharedStore::run`], which bounds it by the store's timeout and, once Redis has
//! failed, answers [`SharedError::Unavailable`] at once for a short back-off instead of making
//! every request wait the timeout out: the callers then apply their own degraded behaviour
//! (fail open or closed, a cache miss) without delay. The connection itself is made lazily and
//! remade in the background by redis-rs' connection manager.

use std::{
    future::Future,
    sync::{
        OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::{
    Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio::time::Instant;

use crate::nanos;

/// How long Redis must answer an operation in unless the Gateway says otherwise: long enough
/// for a loaded server on the same network, short enough that a request behind it is not
/// noticeably late.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

/// After a failure, how long operations fail at once before one tries Redis again.
const BACKOFF: Duration = Duration::from_millis(500);

/// While Redis keeps failing, a replica says so at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a shared-state operation gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The address is not `host:port`.
    #[error("sharedState.redis.address {address:?} is not host:port")]
    Address {
        /// The configured address.
        address: String,
    },
    /// Redis did not answer in time.
    #[error("Redis at {address} did not answer within {timeout:?}")]
    Timeout {
        /// The server's address.
        address: String,
        /// The bound that passed.
        timeout: Duration,
    },
    /// Redis answered with an error, or the connection failed.
    #[error("Redis at {address}: {source}")]
    Redis {
        /// The server's address.
        address: String,
        /// What redis-rs reported.
        source: redis::RedisError,
    },
    /// Redis failed recently and is not tried again until the back-off has passed.
    #[error("Redis at {address} failed less than {BACKOFF:?} ago")]
    Unavailable {
        /// The server's address.
        address: String,
    },
}

impl SharedError {
    /// A short label for metrics: `timeout`, `error` or `unavailable`.
    pub fn label(&self) -> &'static str {
        match self {
            SharedError::Timeout { .. } => "timeout",
            SharedError::Redis { .. } | SharedError::Address { .. } => "error",
            SharedError::Unavailable { .. } => "unavailable",
        }
    }
}

/// A replica's connection to the gateway's shared Redis.
pub struct SharedStore {
    client: Client,
    /// Made on first use, inside the runtime that serves requests (a store can be built by an
    /// offline compile, outside any runtime).
    manager: OnceLock<ConnectionManager>,
    address: String,
    timeout: Duration,
    /// Start of this store's clock, for the atomics below.
    epoch: Instant,
    /// Nanoseconds after `epoch` before which operations fail at once (0: none failed).
    retry_at: AtomicU64,
    failures: AtomicU64,
    /// Whether the last operation that reached Redis failed, and when that was last logged.
    failing: AtomicBool,
    logged_at: AtomicU64,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("address", &self.address)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SharedStore {
    /// A store for the Redis at `address` (`host:port`, `[v6]:port`), authenticating with
    /// `password` when given, bounding each operation by `timeout`. Connects on first use, so
    /// a replica starts (and serves every rule that does not need Redis) while Redis is down.
    /// Needs a tokio runtime.
    pub fn new(
        address: &str,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, SharedError> {
        let invalid = || SharedError::Address {
            address: address.to_owned(),
        };
        let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || port == 0 {
            return Err(invalid());
        }
        let mut redis = RedisConnectionInfo::default();
        if let Some(password) = password {
            redis = redis.set_password(password);
        }
        let failed = |source| SharedError::Redis {
            address: address.to_owned(),
            source,
        };
        let info: ConnectionInfo = ConnectionAddr::Tcp(host.to_owned(), port)
            .into_connection_info()
            .map_err(failed)?
            .set_redis_settings(redis);
        let client = Client::open(info).map_err(failed)?;
        Ok(Self {
            client,
            manager: OnceLock::new(),
            address: address.to_owned(),
            timeout,
            epoch: Instant::now(),
            retry_at: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            logged_at: AtomicU64::new(0),
        })
    }

    /// The server's address, for logs.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Operations that failed since the store was made (for a metric).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Runs `op` on the connection, within the store's timeout. After a failure the next
    /// operations fail with [`SharedError::Unavailable`] at once for a short back-off.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, SharedError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let now = self.nanos();
        if now < self.retry_at.load(Ordering::Relaxed) {
            return Err(SharedError::Unavailable {
                address: self.address.clone(),
            });
        }
        let outcome = match self.manager() {
            Err(source) => SharedError::Redis {
                address: self.address.clone(),
                source,
            },
            Ok(manager) => match tokio::time::timeout(self.timeout, op(manager)).await {
                Ok(Ok(value)) => {
                    self.recovered();
                    return Ok(value);
                }
                Ok(Err(source)) => SharedError::Redis {
                    address: self.address.clone(),
                    source,
                },
                Err(_) => SharedError::Timeout {
                    address: self.address.clone(),
                    timeout: self.timeout,
                },
            },
        };
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.nanos();
        self.retry_at
            .store(now.saturating_add(nanos(BACKOFF)), Ordering::Relaxed);
        self.log_failure(now, &outcome, failures);
        Err(outcome)
    }

    /// Logs a failure when Redis was answering until now, or when the last line about it is
    /// older than [`LOG_EVERY`]: an outage is one line every few seconds, not one per request.
    fn log_failure(&self, now: u64, error: &SharedError, failures: u64) {
        let first = !self.failing.swap(true, Ordering::Relaxed);
        let logged = self.logged_at.load(Ordering::Relaxed);
        let due = first || now.saturating_sub(logged) >= nanos(LOG_EVERY);
        if due
            && self
                .logged_at
                .compare_exchange(logged, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                address = %self.address,
                %error,
                failures,
                "the shared Redis gives no answer: global rate limits apply their failureMode \
                 to requests that need it until it answers again"
            );
        }
    }

    /// Logs that Redis answers again after a failure (the check is a plain load otherwise).
    fn recovered(&self) {
        if self.failing.load(Ordering::Relaxed) && self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(address = %self.address, "the shared Redis answers again");
        }
    }

    /// The connection manager, made on first use. One connection attempt per use (no retries
    /// inside redis-rs: the back-off in [`run`](Self::run) decides when to try again), each
    /// bounded like an operation.
    fn manager(&self) -> redis::RedisResult<ConnectionManager> {
        if let Some(manager) = self.manager.get() {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let made = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        // Two first uses at once may both make one; the first stored wins, the other is dropped
        // before it connects.
        Ok(self.manager.get_or_init(|| made).clone())
    }

    fn nanos(&self) -> u64 {
        nanos(self.epoch.elapsed()).max(1)
    }
}

#[cfg(test)]
#[path = "shared_tests.rs"]
mod tests;
