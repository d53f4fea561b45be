//! The request checks every request passes before any route, policy or backend sees it, for
//! HTTP/1 (either server) and HTTP/2 alike: framing (RFC 9112 §6.1), the host the request is for
//! (RFC 9112 §3.2, RFC 9110 §4.2.1, RFC 9113 §8.3.1) and the request-target's characters
//! (RFC 3986). What fails is answered here and the connection closed; nothing of it is routed,
//! logged as a backend's fault, or forwarded.

use http::{
    HeaderValue, StatusCode, Version,
    header::{HOST, TRANSFER_ENCODING},
    request::Parts,
};

use crate::forward::FramingConflict;

/// Why a request is refused before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// 400, or 501 for a transfer coding the gateway does not implement.
    pub status: StatusCode,
    /// What the client reads.
    pub reason: &'static str,
}

impl Refusal {
    const fn bad(reason: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason,
        }
    }
}

/// The first rule `head` breaks, if any; else its `Host` field, if it has one (the caller
/// routes by it without looking it up again). `sized` says the body's length is known from
/// `Content-Length` (or it has none): then no `Transfer-Encoding` frames it and none is looked
/// for (hyper answers a request whose last coding is not `chunked` with 400 itself).
pub fn check(head: &Parts, sized: bool) -> Result<Option<&HeaderValue>, Refusal> {
    // Request smuggling: a head with both Content-Length and Transfer-Encoding. hyper's parser
    // hides the conflict; the server sees it in the raw bytes and marks the request.
    if head.extensions.get::<FramingConflict>().is_some() {
        return Err(Refusal::bad(
            "the request carried both Content-Length and Transfer-Encoding",
        ));
    }
    if !sized {
        transfer_coding(head)?;
    }
    let field = host(head)?;
    target(head)?;
    Ok(field)
}

/// A request body coded other than by `chunked` alone would reach the backend still coded with
/// nothing to say so (the chunked decoding is undone here, the other codings are not): 501 for
/// another coding, 400 for `chunked` twice (RFC 9112 §6.1, §7).
fn transfer_coding(head: &Parts) -> Result<(), Refusal> {
    let mut codings = head
        .headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| crate::wire::tokens(value.as_bytes()))
        .filter(|coding| !coding.is_empty());
    let mut chunked = 0;
    let present = head.headers.contains_key(TRANSFER_ENCODING);
    for coding in codings.by_ref() {
        if !coding.eq_ignore_ascii_case(b"chunked") {
            return Err(Refusal {
                status: StatusCode::NOT_IMPLEMENTED,
                reason: "the request body has a transfer coding other than chunked",
            });
        }
        chunked += 1;
    }
    if chunked > 1 {
        return Err(Refusal::bad("the request body is chunked more than once"));
    }
    if present && chunked == 0 {
        return Err(Refusal::bad(
            "the request's Transfer-Encoding names no coding",
        ));
    }
    Ok(())
}

/// RFC 9112 §3.2: exactly one Host in an HTTP/1.1 request, at most one in any other, and a valid
/// `host[:port]`; the authority of an absolute-form target (or HTTP/2's `:authority`) must be
/// one too, without userinfo (RFC 9110 §4.2.4), and HTTP/2's Host, when sent, must name the
/// same host (RFC 9113 §8.3.1). An `http` URI with an empty host is invalid (RFC 9110 §4.2.1).
fn host(head: &Parts) -> Result<Option<&HeaderValue>, Refusal> {
    let mut fields = head.headers.get_all(HOST).iter();
    let field = fields.next();
    if fields.next().is_some() {
        return Err(Refusal::bad("the request has more than one Host"));
    }
    if let Some(field) = field
        && !is_authority(field.as_bytes())
    {
        return Err(Refusal::bad(
            "the request's Host is not a valid host[:port]",
        ));
    }
    match head.uri.authority() {
        Some(authority) => {
            if !is_authority(authority.as_str().as_bytes()) {
                return Err(Refusal::bad(
                    "the request-target's authority is not a valid host[:port]",
                ));
            }
            if head.version >= Version::HTTP_2
                && field.is_some_and(|field| !same_host(field, authority.as_str()))
            {
                return Err(Refusal::bad(
                    "the request's Host differs from its :authority",
                ));
            }
        }
        None if field.is_none() && head.version != Version::HTTP_10 => {
            return Err(Refusal::bad("the request has no Host"));
        }
        None => {}
    }
    Ok(field)
}

fn same_host(field: &HeaderValue, authority: &str) -> bool {
    field.as_bytes().eq_ignore_ascii_case(authority.as_bytes())
}

/// `host [ ":" port ]` as RFC 3986 §3.2 has it, with a non-empty host (IP-literal, IPv4 or
/// reg-name; percent-encoded octets allowed in a reg-name) and a port of at most five digits
/// below 65536. Userinfo (`@`), a path (`/`), whitespace and control characters are not in it.
pub fn is_authority(bytes: &[u8]) -> bool {
    let (host, port) = if bytes.first() == Some(&b'[') {
        let Some(end) = bytes.iter().position(|&b| b == b']') else {
            return false;
        };
        let (literal, rest) = bytes.split_at(end + 1);
        if !is_ip_literal(literal) {
            return false;
        }
        match rest.split_first() {
            None => return true,
            Some((b':', port)) => (literal, port),
            Some(_) => return false,
        }
    } else {
        match bytes.iter().rposition(|&b| b == b':') {
            Some(colon) => (&bytes[..colon], &bytes[colon + 1..]),
            None => (bytes, &[][..]),
        }
    };
    let port_ok = port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
        && port
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
            .le(&65535);
    port_ok && !host.is_empty() && (host.first() == Some(&b'[') || is_reg_name(host))
}

/// A reg-name (which includes every IPv4 address): unreserved, sub-delims and `%HH`.
fn is_reg_name(host: &[u8]) -> bool {
    first_fault(host, &REG_NAME).is_none()
}

/// Why bytes are not what RFC 3986 allows somewhere.
enum Fault {
    /// A byte the place does not allow.
    Byte,
    /// A `%` not followed by two hexadecimal digits.
    Percent,
}

/// The first way `bytes` leaves `allowed` (plus `%HH`, which every place allows), if any.
fn first_fault(bytes: &[u8], allowed: &[bool; 256]) -> Option<Fault> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |at: usize| bytes.get(at).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Some(Fault::Percent);
            }
            i += 3;
        } else if allowed[usize::from(bytes[i])] {
            i += 1;
        } else {
            return Some(Fault::Byte);
        }
    }
    None
}

/// RFC 3986's unreserved characters and sub-delims, plus `extra`, plus every byte above 0x7F
/// when `high`.
const fn table(extra: &[u8], high: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
            | b'-' | b'.' | b'_' | b'~'
            | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=')
            || (high && b >= 0x80);
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}

/// The bytes a reg-name holds as they are (RFC 3986 §3.2.2).
static REG_NAME: [bool; 256] = table(b"", false);

/// `[` IPv6address `]` or `[v` HEXDIG+ `.` ( unreserved / sub-delims / `:` )+ `]`.
fn is_ip_literal(literal: &[u8]) -> bool {
    let Some(inner) = literal
        .strip_prefix(b"[")
        .and_then(|rest| rest.strip_suffix(b"]"))
    else {
        return false;
    };
    if let Some(future) = inner
        .strip_prefix(b"v")
        .or_else(|| inner.strip_prefix(b"V"))
    {
        let Some(dot) = future.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, rest) = (&future[..dot], &future[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !rest.is_empty()
            && rest.iter().all(|&b| b == b':' || REG_NAME[usize::from(b)]);
    }
    std::str::from_utf8(inner).is_ok_and(|text| text.parse::<std::net::Ipv6Addr>().is_ok())
}

/// The request-target's path and query hold only characters RFC 3986 allows, `%` always
/// followed by two hexadecimal digits. Bytes above 0x7F (a UTF-8 path as some clients send it)
/// are let through and carried byte for byte; everything else outside RFC 3986 — whitespace,
/// control characters, `\`, `"`, `<`, `>`, `^`, `` ` ``, `{`, `|`, `}` — is refused, so no
/// backend ever reads a target two parsers would split differently.
fn target(head: &Parts) -> Result<(), Refusal> {
    let Some(target) = head.uri.path_and_query() else {
        return Ok(());
    };
    match first_fault(target.as_str().as_bytes(), &TARGET) {
        None => Ok(()),
        Some(Fault::Percent) => Err(Refusal::bad(
            "the request-target has a % not followed by two hexadecimal digits",
        )),
        Some(Fault::Byte) => Err(Refusal::bad(
            "the request-target has a character RFC 3986 does not allow",
        )),
    }
}

/// The bytes a request-target may hold as they are: RFC 3986's unreserved, gen-delims and
/// sub-delims (`%` is checked apart), and every byte above 0x7F.
static TARGET: [bool; 256] = table(b":/?#[]@", true);

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    fn head(version: Version, target: &str, hosts: &[&str]) -> Parts {
        let mut builder = Request::builder().version(version).uri(target);
        for host in hosts {
            builder = builder.header(HOST, *host);
        }
        builder.body(()).expect("a request").into_parts().0
    }

    fn status(version: Version, target: &str, hosts: &[&str]) -> Option<u16> {
        check(&head(version, target, hosts), false)
            .err()
            .map(|r| r.status.as_u16())
    }

    #[test]
    fn an_http11_request_needs_exactly_one_host() {
        assert_eq!(status(Version::HTTP_11, "/", &["a.example"]), None);
        assert_eq!(status(Version::HTTP_11, "/", &[]), Some(400));
        assert_eq!(status(Version::HTTP_11, "/", &["a", "a"]), Some(400));
        // HTTP/1.0 may leave it out, but never send two.
        assert_eq!(status(Version::HTTP_10, "/", &[]), None);
        assert_eq!(status(Version::HTTP_10, "/", &["a", "b"]), Some(400));
        // HTTP/2 carries it as :authority.
        assert_eq!(status(Version::HTTP_2, "http://a.example/", &[]), None);
        assert_eq!(status(Version::HTTP_2, "/", &[]), Some(400));
    }

    #[test]
    fn a_host_must_be_a_valid_host_and_port() {
        for good in [
            "a.example",
            "A.Example:8080",
            "10.0.0.1:80",
            "[::1]",
            "[2001:db8::7]:443",
            "[v1.fe]",
            "a.example:",
            "xn--caf-dma.example",
            "my%2Dhost",
        ] {
            assert_eq!(status(Version::HTTP_11, "/", &[good]), None, "{good}");
        }
        for bad in [
            "",
            ":80",
            "a b",
            "a/b",
            "user@a.example",
            "a.example:80:80",
            "a.example:65536",
            "a.example:123456",
            "a.example:x",
            "[::1",
            "[::g]",
            "[::1]x",
            "a\\b",
            "a%zz",
            "a\tb",
        ] {
            assert_eq!(status(Version::HTTP_11, "/", &[bad]), Some(400), "{bad:?}");
        }
    }

    #[test]
    fn an_absolute_form_authority_is_held_to_the_same_rules_and_has_no_userinfo() {
        assert_eq!(
            status(Version::HTTP_11, "http://a.example/x", &["b.example"]),
            None
        );
        assert_eq!(
            status(Version::HTTP_11, "http://u:p@a.example/x", &["a.example"]),
            Some(400)
        );
        assert_eq!(
            status(Version::HTTP_2, "http://a.example/x", &["b.example"]),
            Some(400)
        );
        assert_eq!(
            status(Version::HTTP_2, "http://a.example/x", &["A.example"]),
            None
        );
    }

    #[test]
    fn a_target_holds_only_what_rfc_3986_allows() {
        for good in [
            "/a/b?c=d&e=f",
            "/filter[name]=x",
            "/a/caf\u{e9}/x",
            "/%2F%41",
            "/~user/!$&'()*+,;=:@",
            "*",
        ] {
            assert_eq!(status(Version::HTTP_11, good, &["h"]), None, "{good}");
        }
        // `<`, `>` and a backquote in a path the URI parser refuses already (hyper answers
        // 400); these it lets by.
        for refused in ["/a<b>", "/a`b"] {
            assert!(refused.parse::<http::Uri>().is_err(), "{refused}");
        }
        for bad in [
            "/a\\b", "/a\"b", "/a^b", "/?q=`", "/a{b}", "/a|b", "/a%2", "/a%zz", "/?q=%", "/?q=\\",
        ] {
            let mut parts = head(Version::HTTP_11, "/", &["h"]);
            parts.uri = bad
                .parse()
                .unwrap_or_else(|e| panic!("the URI parser lets {bad} by: {e}"));
            assert_eq!(
                check(&parts, true).err().map(|r| r.status.as_u16()),
                Some(400),
                "{bad}"
            );
        }
    }

    #[test]
    fn transfer_codings_other_than_chunked_alone_are_refused() {
        let coded = |value: &str| {
            let mut parts = head(Version::HTTP_11, "/", &["h"]);
            parts
                .headers
                .insert(TRANSFER_ENCODING, value.parse().expect("a value"));
            check(&parts, false).err().map(|r| r.status.as_u16())
        };
        assert_eq!(coded("chunked"), None);
        assert_eq!(coded("gzip, chunked"), Some(501));
        assert_eq!(coded("chunked, chunked"), Some(400));
        assert_eq!(coded(" , "), Some(400));
    }
}
