//! HTTP/1.1 wire helpers shared by the plain server (`server::plain`) and the upstream client
//! (`upstream::h1`): field-value tokens, `Content-Length` values, and numbers and fields written
//! into a buffer without allocating.

use http::{
    HeaderMap, HeaderName, HeaderValue,
    header::{
        AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
        CONTENT_TYPE, HOST, MAX_FORWARDS, SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING,
    },
};

/// The comma-separated tokens of a field value, trimmed (RFC 9110 §5.6.1).
pub fn tokens(value: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
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
    fn tokens_are_split_on_commas_and_trimmed() {
        let found: Vec<&[u8]> = tokens(b"keep-alive , Close,,x").collect();
        assert_eq!(found, [&b"keep-alive"[..], b"Close", b"", b"x"]);
    }
}
