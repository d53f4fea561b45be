//! Request path normalization.
//!
//! The path is normalized exactly once, before matching, and the same normalized path is what is
//! forwarded upstream. Matching one spelling and forwarding another is how path-based access rules
//! are bypassed in other gateways (`/admin/../public`, `//admin`, `/%61dmin`).

/// Why a request path cannot be normalized; the request is answered with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/` (asterisk-form or an empty path).
    #[error("the request path must start with '/'")]
    NotAbsolute,
    /// A `%` is not followed by two hexadecimal digits.
    #[error("the request path has an invalid percent-encoding")]
    BadPercentEncoding,
}

/// Normalizes a request path (without its query):
///
/// - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, other
///   percent-encodings are kept with upper-case hex digits (`%2f` stays encoded as `%2F`, so an
///   encoded slash never becomes a segment separator);
/// - runs of `/` are merged into one;
/// - `.` and `..` segments are resolved (`..` never climbs above the root).
///
/// A trailing slash is kept: `/a/` and `/a` are different paths for `Exact` matches.
pub fn normalize(path: &str) -> Result<String, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = decode_unreserved(path)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/').skip(1) {
        trailing_slash = false;
        match segment {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Whether the path is already in normal form, so the common case costs no allocation.
pub fn is_normal(path: &str) -> bool {
    let Some(rest) = path.as_bytes().strip_prefix(b"/") else {
        return false;
    };
    // One pass over the bytes: no empty segment but the last, no dot segment, no escape.
    let mut segments = rest.split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let empty_inside = segment.is_empty() && segments.peek().is_some();
        if empty_inside || segment == b"." || segment == b".." || segment.contains(&b'%') {
            return false;
        }
    }
    true
}

fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    // Bytes, not chars: a UTF-8 path (bytes above 0x7F, which the gateway carries as the
    // client sent them) must come out byte for byte, never re-encoded.
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| hex_value(*c));
            let lo = bytes.get(i + 2).and_then(|c| hex_value(*c));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::BadPercentEncoding);
            };
            let value = hi * 16 + lo;
            if is_unreserved(value) {
                out.push(value);
            } else {
                out.extend_from_slice(&[b'%', hex_digit(hi), hex_digit(lo)]);
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    // Only ASCII was decoded or rewritten, so what was UTF-8 still is.
    String::from_utf8(out).map_err(|_| PathError::BadPercentEncoding)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The value of one hexadecimal digit (either case).
pub(crate) fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex_digit(v: u8) -> u8 {
    b"0123456789ABCDEF"[usize::from(v & 0x0f)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> String {
        normalize(p).expect("valid path")
    }

    #[test]
    fn a_utf8_path_keeps_its_bytes() {
        assert_eq!(norm("/caf\u{e9}//x"), "/caf\u{e9}/x");
        assert_eq!(norm("/%41/\u{1f600}/../b"), "/A/b");
    }

    #[test]
    fn plain_paths_are_unchanged() {
        assert_eq!(norm("/"), "/");
        assert_eq!(norm("/a/b"), "/a/b");
        assert_eq!(norm("/a/b/"), "/a/b/");
        assert!(is_normal("/a/b/"));
        assert!(is_normal("/"));
        assert!(is_normal("/a.b/..c/.d"));
    }

    #[test]
    fn anything_normalizing_would_change_is_not_normal() {
        for path in [
            "",
            "a",
            "//",
            "/a//b",
            "/a/./b",
            "/a/..",
            "/.",
            "/a%41",
            "/%2e%2e/x",
        ] {
            assert!(!is_normal(path), "{path}");
        }
    }

    #[test]
    fn duplicate_slashes_are_merged() {
        assert_eq!(norm("//admin"), "/admin");
        assert_eq!(norm("/a//b///c"), "/a/b/c");
        assert!(!is_normal("//admin"));
    }

    #[test]
    fn dot_segments_are_resolved_and_never_climb_above_root() {
        assert_eq!(norm("/admin/../public"), "/public");
        assert_eq!(norm("/a/./b"), "/a/b");
        assert_eq!(norm("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(norm("/a/b/.."), "/a/");
        assert_eq!(norm("/a/."), "/a/");
        assert_eq!(norm("/.."), "/");
    }

    #[test]
    fn encoded_unreserved_characters_are_decoded() {
        assert_eq!(norm("/%61dmin"), "/admin");
        assert_eq!(norm("/a/%2e%2e/b"), "/b");
        assert_eq!(norm("/%7Euser"), "/~user");
    }

    #[test]
    fn encoded_reserved_characters_stay_encoded_in_upper_case() {
        assert_eq!(norm("/a%2fb"), "/a%2Fb");
        assert_eq!(norm("/a%20b"), "/a%20b");
    }

    #[test]
    fn malformed_paths_are_refused() {
        assert_eq!(normalize("/a%zz"), Err(PathError::BadPercentEncoding));
        assert_eq!(normalize("/a%2"), Err(PathError::BadPercentEncoding));
        assert_eq!(normalize("*"), Err(PathError::NotAbsolute));
        assert_eq!(normalize(""), Err(PathError::NotAbsolute));
    }
}
