//! The shared side of a global limit: one token bucket per caller in Redis, taken from by an
//! atomic script (`bucket.lua`), and the names of those buckets.

use std::{fmt::Write as _, sync::LazyLock, time::Duration};

use redis::Script;
use sha2::{Digest, Sha256};

use crate::shared::{SharedError, SharedStore};

/// Every Redis key Portcullis' global rate limits write starts with this.
pub const KEY_PREFIX: &str = "portcullis:rl:";

/// Loaded once per connection by redis-rs (`EVALSHA`, then `EVAL` when Redis does not know it).
static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("bucket.lua")));

/// What Redis answered to a take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Taken {
    /// Tokens taken (at most the number asked for).
    pub taken: u32,
    /// Whole tokens left in the bucket.
    pub left: u32,
    /// Time until the bucket is full again.
    pub full_in: Duration,
    /// Time until the bucket holds a token (zero when it does).
    pub next_in: Duration,
}

/// A rule's buckets in Redis, by caller.
///
/// A bucket's key is `portcullis:rl:<scope>:<requests>/<period>us+<burst>:<caller>`. `scope`
/// names the gateway, Route, rule and what the limit is keyed by; the quota is part of the
/// name, so two rules, or one rule before and after an edit of its quota, never share a bucket.
/// `<caller>` is a SHA-256 digest of the caller's key (salted with the rest of the name), never
/// the key itself: a header value can be a credential, and Redis must not hold it.
#[derive(Clone)]
pub(super) struct SharedBucket {
    name: String,
    /// A SHA-256 already fed with `name`, cloned for each caller.
    salted: Sha256,
    capacity: u32,
    requests: u32,
    period_us: u64,
}

impl std::fmt::Debug for SharedBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBucket")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SharedBucket {
    /// The buckets of the rule `scope`, each holding `capacity` tokens and refilled with
    /// `requests` per `period` (at least a microsecond).
    pub fn new(scope: &str, capacity: u32, requests: u32, period: Duration) -> Self {
        let period_us = u64::try_from(period.as_micros()).unwrap_or(u64::MAX);
        let burst = capacity.saturating_sub(requests);
        let name = format!("{KEY_PREFIX}{scope}:{requests}/{period_us}us+{burst}:");
        let salted = Sha256::new().chain_update(name.as_bytes());
        Self {
            name,
            salted,
            capacity,
            requests,
            period_us,
        }
    }

    /// What names a caller's bucket: 128 bits of its key's salted digest.
    pub fn digest(&self, key: &[u8]) -> [u8; 16] {
        let full = self.salted.clone().chain_update(key).finalize();
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&full[..16]);
        digest
    }

    /// The Redis key of the bucket named by `digest`.
    pub fn key(&self, digest: &[u8; 16]) -> String {
        let mut key = String::with_capacity(self.name.len() + 32);
        key.push_str(&self.name);
        for byte in digest {
            // Writing into a String cannot fail.
            let _ = write!(key, "{byte:02x}");
        }
        key
    }

    /// Takes up to `want` tokens from the bucket named by `digest`, within the store's timeout.
    pub async fn take(
        &self,
        store: &SharedStore,
        digest: &[u8; 16],
        want: u32,
    ) -> Result<Taken, SharedError> {
        let key = self.key(digest);
        let (capacity, requests, period_us) = (self.capacity, self.requests, self.period_us);
        let (taken, left, full_in, next_in): (u64, u64, u64, u64) = store
            .run(|mut connection| async move {
                let mut invocation = SCRIPT.prepare_invoke();
                invocation
                    .key(key)
                    .arg(capacity)
                    .arg(requests)
                    .arg(period_us)
                    .arg(want);
                invocation.invoke_async(&mut connection).await
            })
            .await?;
        Ok(Taken {
            taken: u32::try_from(taken).unwrap_or(u32::MAX).min(want),
            left: u32::try_from(left).unwrap_or(u32::MAX),
            full_in: Duration::from_micros(full_in),
            next_in: Duration::from_micros(next_in),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_is_named_by_rule_quota_and_a_digest_of_the_caller() {
        let bucket = SharedBucket::new(
            "shop/edge:shop/orders:0:Header=x-api-key",
            5,
            5,
            Duration::from_secs(60),
        );
        let key = bucket.key(&bucket.digest(b"h:s3cret"));
        let (name, caller) = key.rsplit_once(':').expect("a caller part");
        assert_eq!(
            name,
            "portcullis:rl:shop/edge:shop/orders:0:Header=x-api-key:5/60000000us+0"
        );
        assert_eq!(caller.len(), 32);
        assert!(caller.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(
            !key.contains("s3cret"),
            "the caller's key never reaches Redis"
        );
        assert_eq!(key, bucket.key(&bucket.digest(b"h:s3cret")), "stable");
    }

    #[test]
    fn two_rules_or_two_quotas_never_share_a_bucket() {
        let caller = b"4:\x0a\x00\x00\x01";
        let key = |scope: &str, requests, burst| {
            let bucket =
                SharedBucket::new(scope, requests + burst, requests, Duration::from_secs(1));
            bucket.key(&bucket.digest(caller))
        };
        let orders = key("shop/edge:shop/orders:0:ClientIP", 5, 0);
        assert_ne!(orders, key("shop/edge:shop/orders:1:ClientIP", 5, 0));
        assert_ne!(orders, key("shop/edge:shop/users:0:ClientIP", 5, 0));
        assert_ne!(orders, key("shop/other:shop/orders:0:ClientIP", 5, 0));
        assert_ne!(orders, key("shop/edge:shop/orders:0:ClientIP", 6, 0));
        assert_ne!(orders, key("shop/edge:shop/orders:0:ClientIP", 5, 1));
        // The caller's digest differs too, not just the readable part.
        let digest = |k: &str| k.rsplit_once(':').map(|(_, d)| d.to_owned());
        assert_ne!(
            digest(&orders),
            digest(&key("shop/edge:shop/orders:1:ClientIP", 5, 0))
        );
    }
}
