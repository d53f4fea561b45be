//! An [`Entry`] as bytes, for the Redis tier of a shared cache.
//!
//! Replicas read each other's entries, so the format carries wall-clock time (a replica's
//! `Instant` means nothing to another) and is versioned by its first bytes; anything that does
//! not parse is treated as absent, never served. All integers are big-endian:
//!
//! ```text
//! "PC1" | age ms u64 | written at (ms since the Unix epoch) u64 | lifetime ms u64
//!       | stale-if-error ms u64 | status u16
//!       | vary count u16, each: len u16, name
//!       | field count u16, each: name len u16, name, value len u32, value
//!       | body (the rest)
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::time::Instant;

use super::Entry;
use crate::cache::control::Freshness;

const MAGIC: &[u8; 3] = b"PC1";

impl Entry {
    /// The entry as bytes, with its age at `now` (`wall` being the same moment's wall clock);
    /// `None` for an entry with more fields than the format counts (no real response has).
    pub fn encode(&self, now: Instant, wall: SystemTime) -> Option<Bytes> {
        let counted = u16::try_from(self.headers.len()).is_ok()
            && u16::try_from(self.vary.len()).is_ok()
            && self
                .vary
                .iter()
                .all(|name| u16::try_from(name.len()).is_ok())
            && self.headers.iter().all(|(name, value)| {
                u16::try_from(name.as_str().len()).is_ok() && u32::try_from(value.len()).is_ok()
            });
        if !counted {
            return None;
        }
        let fields: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 6)
            .sum();
        let mut out = BytesMut::with_capacity(64 + fields + self.body.len());
        out.put_slice(MAGIC);
        out.put_u64(millis(self.age(now)));
        out.put_u64(since_epoch(wall));
        out.put_u64(millis(self.freshness.lifetime));
        out.put_u64(millis(self.freshness.stale_if_error));
        out.put_u16(self.status.as_u16());
        put_count(&mut out, self.vary.len());
        for name in &self.vary {
            put_count(&mut out, name.len());
            out.put_slice(name.as_bytes());
        }
        put_count(&mut out, self.headers.len());
        for (name, value) in &self.headers {
            put_count(&mut out, name.as_str().len());
            out.put_slice(name.as_str().as_bytes());
            out.put_u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
            out.put_slice(value.as_bytes());
        }
        out.put_slice(&self.body);
        Some(out.freeze())
    }

    /// The entry `bytes` encode, as stored at `now` with the age it has by `wall` (a writer's
    /// clock ahead of this one's adds no age). `None` when the bytes are not an entry.
    pub fn decode(mut bytes: Bytes, now: Instant, wall: SystemTime) -> Option<Self> {
        if bytes.len() < MAGIC.len() + 34 || !bytes.starts_with(MAGIC) {
            return None;
        }
        bytes.advance(MAGIC.len());
        let age = Duration::from_millis(bytes.get_u64());
        let written = bytes.get_u64();
        let lifetime = Duration::from_millis(bytes.get_u64());
        let stale_if_error = Duration::from_millis(bytes.get_u64());
        let status = StatusCode::from_u16(bytes.get_u16()).ok()?;
        let mut vary = Vec::new();
        for _ in 0..get_u16(&mut bytes)? {
            let len = usize::from(get_u16(&mut bytes)?);
            vary.push(String::from_utf8(take(&mut bytes, len)?.to_vec()).ok()?);
        }
        let mut headers = HeaderMap::new();
        for _ in 0..get_u16(&mut bytes)? {
            let len = usize::from(get_u16(&mut bytes)?);
            let name = HeaderName::from_bytes(&take(&mut bytes, len)?).ok()?;
            let len = usize::try_from(get_u32(&mut bytes)?).ok()?;
            let value = HeaderValue::from_maybe_shared(take(&mut bytes, len)?).ok()?;
            headers.append(name, value);
        }
        let freshness = Freshness {
            lifetime,
            initial_age: age + Duration::from_millis(since_epoch(wall).saturating_sub(written)),
            stale_if_error,
        };
        Some(Self {
            status,
            headers,
            body: bytes,
            stored_at: now,
            freshness,
            vary,
        })
    }
}

/// Whole milliseconds since the Unix epoch.
fn since_epoch(wall: SystemTime) -> u64 {
    millis(wall.duration_since(UNIX_EPOCH).unwrap_or_default())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn put_count(out: &mut BytesMut, count: usize) {
    out.put_u16(u16::try_from(count).unwrap_or(u16::MAX));
}

fn get_u16(bytes: &mut Bytes) -> Option<u16> {
    (bytes.remaining() >= 2).then(|| bytes.get_u16())
}

fn get_u32(bytes: &mut Bytes) -> Option<u32> {
    (bytes.remaining() >= 4).then(|| bytes.get_u32())
}

fn take(bytes: &mut Bytes, len: usize) -> Option<Bytes> {
    (bytes.remaining() >= len).then(|| bytes.split_to(len))
}
