//! HTTP/1.1 wire helpers shared by the plain server (`server::plain`) and the upstream client
//! (`upstream::h1`): the field names a connection remembers, fields taken from a parsed head
//! into a header map, field-value tokens, `Content-Length` values, and numbers and fields
//! written into a buffer without allocating.

use std::ops::Range;

use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue,
    header::{
        AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
        CONTENT_TYPE, HOST, MAX_FORWARDS, SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING,
    },
};

/// Field names a connection remembers.
const NAMES_KEPT: usize = 32;

/// The field names a connection's peer sends, parsed once: a peer sends much the same fields in
/// the same order in every message. Each comes with what it means to the parser (`T`).
#[derive(Debug)]
pub struct NameCache<T> {
    /// As the peer spells them, parsed, and their meaning, in the order they first came.
    names: Vec<(Box<[u8]>, HeaderName, T)>,
}

impl<T> Default for NameCache<T> {
    fn default() -> Self {
        Self { names: Vec::new() }
    }
}

impl<T: Copy> NameCache<T> {
    /// The parsed name of the head's field at `index`, spelled `raw`, and its meaning
    /// (`meaning` of the name, for a name not remembered yet); `None` when `raw` is not a field
    /// name. The name remembered at the same place is tried first.
    pub fn name(
        &mut self,
        index: usize,
        raw: &[u8],
        meaning: impl FnOnce(&HeaderName) -> T,
    ) -> Option<(HeaderName, T)> {
        let same = |(seen, ..): &&(Box<[u8]>, HeaderName, T)| **seen == *raw;
        if let Some((_, name, kind)) = self
            .names
            .get(index)
            .filter(same)
            .or_else(|| self.names.iter().find(same))
        {
            return Some((name.clone(), *kind));
        }
        let name = HeaderName::from_bytes(raw).ok()?;
        let kind = meaning(&name);
        if self.names.len() < NAMES_KEPT {
            self.names.push((raw.into(), name.clone(), kind));
        }
        Some((name, kind))
    }

    /// How many names it remembers.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.names.len()
    }
}

/// A field of a parsed head: its name, and where its value sits in the head.
#[derive(Debug, Clone)]
pub struct FieldSpan {
    name: HeaderName,
    value: Range<usize>,
}

impl FieldSpan {
    /// The field `name: value`, `value` in the head that starts at address `base`.
    pub fn new(name: HeaderName, value: &[u8], base: usize) -> Self {
        let at = value.as_ptr() as usize - base;
        Self {
            name,
            value: at..at + value.len(),
        }
    }
}

/// Appends `fields` (taken out of the list) to `headers`, their values sharing `head`'s bytes.
/// Fails with the name of a field whose value a header map does not take.
pub fn append_fields(
    headers: &mut HeaderMap,
    head: &Bytes,
    fields: &mut Vec<FieldSpan>,
) -> Result<(), HeaderName> {
    headers.reserve(fields.len());
    for field in fields.drain(..) {
        match HeaderValue::from_maybe_shared(head.slice(field.value)) {
            Ok(value) => {
                headers.append(field.name, value);
            }
            Err(_) => return Err(field.name),
        }
    }
    Ok(())
}

/// Fields as name and text, in order, for tests to compare.
#[cfg(test)]
pub fn field_pairs<'n, 'v>(
    fields: impl Iterator<Item = (&'n HeaderName, &'v HeaderValue)>,
) -> Vec<(&'n str, &'v str)> {
    fields
        .map(|(name, value)| (name.as_str(), value.to_str().expect("visible ASCII")))
        .collect()
}

/// The comma-separated tokens of a field value, trimmed (RFC 9110 §5.6.1).
pub fn tokens(value: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// The length a message's writer frames its body by: the first readable `Content-Length` among
/// the fields seen so far (`declared`) wins, and only that one goes out (a second, different one
/// would leave the receiver to choose, RFC 9112 §6.3). One it cannot read is not passed on.
pub fn first_length(declared: Option<u64>, value: &[u8]) -> Option<u64> {
    declared.or_else(|| content_length(value))
}

/// A `Content-Length` value as hyper reads it: decimal digits only (no sign, no list), within
/// `u64`, surrounding whitespace ignored.
pub fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = char::from(b).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Appends `n` in `radix` (10 or 16, lower case).
pub fn push_number(out: &mut Vec<u8>, mut n: u64, radix: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        let digit = (n % radix) as u8;
        digits[at] = if digit < 10 {
            b'0' + digit
        } else {
            b'a' + digit - 10
        };
        n /= radix;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends the line `content-length: n` and its CRLF.
pub fn push_content_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    push_number(out, n, 10);
    out.extend_from_slice(b"\r\n");
}

/// Appends the size line of a chunk of `n` bytes (RFC 9112 §7.1).
pub fn push_chunk_size(out: &mut Vec<u8>, n: u64) {
    push_number(out, n, 16);
    out.extend_from_slice(b"\r\n");
}

/// Appends the field line `name: value` and its CRLF.
pub fn push_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk and the trailer section of a chunked body (RFC 9112 §7.1.2): of
/// `trailers`, only the fields `announced` (the message's `Trailer` header) names, and none that
/// may not trail a message (RFC 9110 §6.5.1), as hyper does.
pub fn push_last_chunk(
    out: &mut Vec<u8>,
    trailers: Option<&HeaderMap>,
    announced: Option<&HeaderValue>,
) {
    out.extend_from_slice(b"0\r\n");
    if let (Some(trailers), Some(announced)) = (trailers, announced) {
        for (name, value) in trailers {
            let named = tokens(announced.as_bytes()).any(|t| t.eq_ignore_ascii_case(name.as_ref()));
            if named && may_trail(name) {
                push_field(out, name, value);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether a field may be sent in a trailer section (hyper's list).
fn may_trail(name: &HeaderName) -> bool {
    !matches!(
        *name,
        AUTHORIZATION
            | CACHE_CONTROL
            | CONTENT_ENCODING
            | CONTENT_LENGTH
            | CONTENT_RANGE
            | CONTENT_TYPE
            | HOST
            | MAX_FORWARDS
            | SET_COOKIE
            | TRAILER
            | TRANSFER_ENCODING
            | TE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths_are_plain_digits_within_u64() {
        assert_eq!(content_length(b" 42 "), Some(42));
        assert_eq!(content_length(b"0"), Some(0));
        for bad in [
            &b""[..],
            b"+5",
            b"-5",
            b"5, 5",
            b"0x10",
            b"99999999999999999999",
        ] {
            assert_eq!(
                content_length(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn numbers_are_written_in_either_radix() {
        let mut out = Vec::new();
        push_number(&mut out, 0, 10);
        out.push(b' ');
        push_number(&mut out, u64::MAX, 10);
        out.push(b' ');
        push_number(&mut out, 0x1a2b, 16);
        assert_eq!(out, b"0 18446744073709551615 1a2b");
    }

    #[test]
    fn only_announced_fields_that_may_trail_are_sent() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", HeaderValue::from_static("abc"));
        trailers.insert("x-unannounced", HeaderValue::from_static("1"));
        trailers.insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
        let announced = HeaderValue::from_static("X-Checksum, content-length");
        let mut out = Vec::new();
        push_last_chunk(&mut out, Some(&trailers), Some(&announced));
        assert_eq!(out, b"0\r\nx-checksum: abc\r\n\r\n");
        out.clear();
        push_last_chunk(&mut out, Some(&trailers), None);
        assert_eq!(out, b"0\r\n\r\n");
        out.clear();
        push_last_chunk(&mut out, None, Some(&announced));
        assert_eq!(out, b"0\r\n\r\n");
    }

    #[test]
    fn names_are_parsed_once_and_found_where_they_were_or_elsewhere() {
        let mut cache = NameCache::default();
        let mut classified = 0;
        let mut name = |cache: &mut NameCache<bool>, index, raw: &[u8]| {
            cache.name(index, raw, |name| {
                classified += 1;
                *name == HOST
            })
        };
        assert_eq!(name(&mut cache, 0, b"Host"), Some((HOST, true)));
        let custom = name(&mut cache, 1, b"X-Trace").expect("a name");
        assert_eq!(custom.0.as_str(), "x-trace");
        assert!(!custom.1);
        // The same names again, in another order: found, not parsed again.
        assert_eq!(
            name(&mut cache, 0, b"X-Trace").map(|(_, host)| host),
            Some(false)
        );
        assert_eq!(name(&mut cache, 1, b"Host"), Some((HOST, true)));
        // Another spelling is another name to the cache, the same to the map.
        assert_eq!(name(&mut cache, 0, b"host"), Some((HOST, true)));
        assert_eq!(name(&mut cache, 2, b"bad name"), None);
        assert_eq!(classified, 3);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn fields_share_the_head_and_a_value_a_map_refuses_is_named() {
        let head = Bytes::from_static(b"x-a: 1\r\nx-b: \x01\r\n");
        let base = head.as_ptr() as usize;
        let mut fields = vec![
            FieldSpan::new(HeaderName::from_static("x-a"), &head[5..6], base),
            FieldSpan::new(HeaderName::from_static("x-b"), &head[13..14], base),
        ];
        let mut headers = HeaderMap::new();
        let refused = append_fields(&mut headers, &head, &mut fields);
        assert_eq!(refused, Err(HeaderName::from_static("x-b")));
        assert_eq!(headers["x-a"], "1");
        assert!(fields.is_empty());
    }

    #[test]
    fn tokens_are_split_on_commas_and_trimmed() {
        let found: Vec<&[u8]> = tokens(b"keep-alive , Close,,x").collect();
        assert_eq!(found, [&b"keep-alive"[..], b"Close", b"", b"x"]);
    }
}
