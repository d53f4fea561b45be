//! Whether a response may be stored, and for how long it is fresh (RFC 9111 §3 and §4.2), as a
//! shared cache.

use std::time::{Duration, SystemTime};

use http::{
    HeaderMap, StatusCode,
    header::{AGE, CACHE_CONTROL, DATE, EXPIRES, SET_COOKIE, VARY},
};

/// Why a response was not stored (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// The request was not cacheable (see [`Bypass`](super::Bypass)), or was a HEAD.
    Request,
    /// The status is not cacheable by default (RFC 9110 §15.1).
    Status,
    /// `Cache-Control: no-store`.
    NoStore,
    /// `Cache-Control: private`: for the one caller only.
    Private,
    /// `Cache-Control: no-cache`: must be revalidated on every use, which this cache does not do.
    NoCache,
    /// The response sets a cookie.
    SetCookie,
    /// `Vary: *`: no request can be known to match.
    VaryAll,
    /// Already stale when it arrived (`max-age=0`, a past `Expires`).
    Expired,
    /// The body is larger than the cache's per-entry limit.
    TooLarge,
}

/// How long a stored response may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Freshness {
    /// Fresh for this long after the origin produced it.
    pub lifetime: Duration,
    /// Age the response already had when it arrived (its `Age` field).
    pub initial_age: Duration,
    /// May be served stale for this long past `lifetime` when the backend fails.
    pub stale_if_error: Duration,
}

/// The statuses a cache may store without explicit freshness (RFC 9110 §15.1); this cache
/// stores no other.
const CACHEABLE: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// Decides whether a response to a GET may be stored and how long it is fresh.
///
/// - Lifetime: `s-maxage`, else `max-age`, else `Expires - Date`, else the rule's `ttl`; the
///   rule's `ttl` also caps what the backend says (`CachePolicy.ttl`: the backend's `max-age`
///   wins when it is shorter).
/// - `must-revalidate` and `proxy-revalidate` forbid serving the response stale.
pub(crate) fn freshness(
    status: StatusCode,
    headers: &HeaderMap,
    ttl: Duration,
    stale_if_error: Duration,
) -> Result<Freshness, NotStored> {
    if !CACHEABLE.contains(&status.as_u16()) {
        return Err(NotStored::Status);
    }
    if headers.contains_key(SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    if vary_names(headers).is_none() {
        return Err(NotStored::VaryAll);
    }
    let directives = Directives::parse(headers);
    if directives.no_store {
        return Err(NotStored::NoStore);
    }
    if directives.private {
        return Err(NotStored::Private);
    }
    if directives.no_cache {
        return Err(NotStored::NoCache);
    }
    let said = match directives.s_maxage.or(directives.max_age) {
        Some(seconds) => Some(Duration::from_secs(seconds)),
        None => expires_lifetime(headers)?,
    };
    let lifetime = said.map_or(ttl, |said| said.min(ttl));
    let initial_age = Duration::from_secs(delta_seconds(headers.get(AGE)).unwrap_or(0));
    if lifetime.is_zero() || lifetime <= initial_age {
        return Err(NotStored::Expired);
    }
    let stale_if_error = if directives.must_revalidate {
        Duration::ZERO
    } else {
        stale_if_error
    };
    Ok(Freshness {
        lifetime,
        initial_age,
        stale_if_error,
    })
}

/// The response's `Vary` names, lowercased; `None` for `Vary: *`.
pub(crate) fn vary_names(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for value in headers.get_all(VARY) {
        for name in value.to_str().unwrap_or("*").split(',') {
            let name = name.trim().to_ascii_lowercase();
            if name == "*" {
                return None;
            }
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort();
    Some(names)
}

/// `Expires - Date` (RFC 9111 §4.2.1); an `Expires` that is not a valid date means already
/// expired (§5.3). `Ok(None)` when there is no `Expires`.
fn expires_lifetime(headers: &HeaderMap) -> Result<Option<Duration>, NotStored> {
    let Some(expires) = headers.get(EXPIRES) else {
        return Ok(None);
    };
    let expires = http_date(expires).ok_or(NotStored::Expired)?;
    let date = headers
        .get(DATE)
        .and_then(http_date)
        .unwrap_or_else(SystemTime::now);
    expires
        .duration_since(date)
        .map(Some)
        .map_err(|_| NotStored::Expired)
}

fn http_date(value: &http::HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(value.to_str().ok()?).ok()
}

fn delta_seconds(value: Option<&http::HeaderValue>) -> Option<u64> {
    value?.to_str().ok()?.trim().parse().ok()
}

/// The response directives this cache acts on. Qualified forms (`private="Set-Cookie"`,
/// `no-cache="X"`) count as the unqualified ones: storing less is always safe.
#[derive(Debug, Default)]
struct Directives {
    no_store: bool,
    no_cache: bool,
    private: bool,
    must_revalidate: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
}

impl Directives {
    fn parse(headers: &HeaderMap) -> Self {
        let mut directives = Self::default();
        for value in headers.get_all(CACHE_CONTROL) {
            let Ok(value) = value.to_str() else {
                // Unreadable directives might have said no-store.
                directives.no_store = true;
                continue;
            };
            for directive in value.split(',') {
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => (name, Some(argument.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                let seconds = argument.map(|argument| argument.parse::<u64>().unwrap_or(0));
                match name.trim().to_ascii_lowercase().as_str() {
                    "no-store" => directives.no_store = true,
                    "no-cache" => directives.no_cache = true,
                    "private" => directives.private = true,
                    "must-revalidate" | "proxy-revalidate" => directives.must_revalidate = true,
                    "max-age" => directives.max_age = min(directives.max_age, seconds),
                    "s-maxage" => directives.s_maxage = min(directives.s_maxage, seconds),
                    _ => {}
                }
            }
        }
        directives
    }
}

/// Repeated or malformed lifetimes count as the shortest (RFC 9111 §4.2.1: invalid = stale).
fn min(current: Option<u64>, new: Option<u64>) -> Option<u64> {
    let new = new.unwrap_or(0);
    Some(current.map_or(new, |current| current.min(new)))
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;
