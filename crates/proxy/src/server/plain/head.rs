//! Request heads: which ones the plain server takes itself, and the request it makes of them.
//!
//! A plain request is an HTTP/1.1 request without an upgrade, `Expect` or `CONNECT`, whose head
//! is within the limits and parses cleanly, and whose body, if any, is sized by one
//! `Content-Length` and small enough to be read whole before the request is served (as nginx
//! buffers request bodies). Anything else is handed to hyper with the connection, unread, so
//! there is one implementation of the rarer parts of HTTP/1.1 (chunked and large bodies, and
//! the refusals: 400, 431, smuggling).

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::{
    HeaderMap, HeaderName, Method, Request, Uri, Version,
    header::{CONNECTION, CONTENT_LENGTH, EXPECT, TE, TRANSFER_ENCODING, UPGRADE},
    request::Parts,
};

use crate::wire::{FieldSpan, NameCache, append_fields, content_length, tokens};

/// Most header fields the parser has room for; more is handed over (hyper answers 431 above
/// the configured limit).
const FIELDS: usize = 100;

/// What the head at the start of the buffer is.
#[derive(Debug)]
pub(super) enum Parsed {
    /// A plain request; its head and body were taken out of the buffer, the head into the
    /// caller's [`Parts`].
    Plain(PlainRequest),
    /// Not complete yet: read more. `head` is whether the head is complete and only body
    /// bytes are missing.
    Partial {
        /// The head is complete; its body is not.
        head: bool,
    },
    /// Not a plain request: the connection goes to hyper from this head on, the buffer intact.
    HandOver,
}

/// A plain request, ready for the gateway with its head.
#[derive(Debug)]
pub(super) struct PlainRequest {
    /// The whole body.
    pub body: Bytes,
    /// The client asked to close the connection after the response (`Connection: close`).
    pub close: bool,
    /// The client accepts trailer fields (`TE: trailers`).
    pub trailers: bool,
}

/// The limits a plain head stays within.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeadLimits {
    /// Most header fields.
    pub max_headers: usize,
    /// Most bytes of head.
    pub max_bytes: usize,
    /// Most bytes of body.
    pub max_body: usize,
}

/// What the parser keeps from one head to the next.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// Where the fields of the head being parsed are.
    fields: Vec<FieldSpan>,
    /// The field names the client sends, and what they mean to the plain server.
    names: NameCache<Meaning>,
    /// A header map to fill, emptied: the last response's, whose storage the next request
    /// takes instead of allocating its own.
    spare: Option<HeaderMap>,
}

impl Scratch {
    /// Keeps `headers`, emptied, for the next request.
    pub(super) fn recycle(&mut self, mut headers: HeaderMap) {
        headers.clear();
        self.spare = Some(headers);
    }
}

/// What a field means to the plain server.
#[derive(Debug, Clone, Copy)]
enum Meaning {
    /// Passed on as it is.
    Other,
    /// `Connection`: its tokens matter.
    Connection,
    /// `TE`: whether it accepts trailers.
    Te,
    /// `Content-Length`: plain when every one says the same length, within the limit.
    ContentLength,
    /// `Transfer-Encoding`, `Upgrade`, `Expect`: not plain.
    NotPlain,
}

fn meaning(name: &HeaderName) -> Meaning {
    match *name {
        TE => Meaning::Te,
        EXPECT | UPGRADE | TRANSFER_ENCODING => Meaning::NotPlain,
        CONNECTION => Meaning::Connection,
        CONTENT_LENGTH => Meaning::ContentLength,
        _ => Meaning::Other,
    }
}

/// A request head to parse into, for [`parse_request`]: a connection keeps one for all its
/// requests, and lends it to the gateway.
pub(super) fn empty_head() -> Parts {
    Request::new(()).into_parts().0
}

/// Parses the request head at the start of `buf`; a plain one goes into `into`, whose every
/// field it sets.
pub(super) fn parse_request(
    buf: &mut BytesMut,
    limits: HeadLimits,
    scratch: &mut Scratch,
    into: &mut Parts,
) -> Parsed {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; FIELDS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut parsed,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) if len <= limits.max_bytes => len,
        Ok(httparse::Status::Partial) if buf.len() <= limits.max_bytes => {
            return Parsed::Partial { head: false };
        }
        _ => return Parsed::HandOver,
    };
    if parsed.version != Some(1) || parsed.headers.len() > limits.max_headers {
        return Parsed::HandOver;
    }
    let method = match parsed.method.map(|m| Method::from_bytes(m.as_bytes())) {
        Some(Ok(method)) if method != Method::CONNECT => method,
        _ => return Parsed::HandOver,
    };
    let base = buf.as_ptr() as usize;
    let offsets = |text: &[u8]| (text.as_ptr() as usize - base, text.len());
    let Some(target) = parsed.path.map(|path| offsets(path.as_bytes())) else {
        return Parsed::HandOver;
    };
    let (mut close, mut trailers, mut length) = (false, false, None);
    scratch.fields.clear();
    for (index, field) in parsed.headers.iter().enumerate() {
        let Some((name, meaning)) = scratch.names.name(index, field.name.as_bytes(), meaning)
        else {
            return Parsed::HandOver;
        };
        match meaning {
            Meaning::Other => {}
            Meaning::Connection => {
                for token in tokens(field.value) {
                    close |= token.eq_ignore_ascii_case(b"close");
                }
            }
            Meaning::Te => {
                trailers |= tokens(field.value).any(|t| t.eq_ignore_ascii_case(b"trailers"));
            }
            Meaning::ContentLength => match (body_length(field.value, limits), length) {
                (Some(n), None) => length = Some(n),
                // RFC 9110 §8.6: the same length repeated stands for one, which is what the
                // gateway sees (as from hyper, which keeps only the first).
                (Some(n), Some(previous)) if n == previous => continue,
                _ => return Parsed::HandOver,
            },
            Meaning::NotPlain => return Parsed::HandOver,
        }
        scratch.fields.push(FieldSpan::new(name, field.value, base));
    }
    let body_len = length.unwrap_or(0);
    if buf.len() - len < body_len {
        return Parsed::Partial { head: true };
    }
    let head = buf.split_to(len).freeze();
    let slice = |(at, len): (usize, usize)| head.slice(at..at + len);
    let built = Uri::from_maybe_shared(slice(target))
        .ok()
        .and_then(|uri| Some((uri, headers(&head, scratch)?)));
    let Some((uri, headers)) = built else {
        // Rare (hyper answers it): the head goes back in front of what follows it.
        let mut whole = BytesMut::with_capacity(head.len() + buf.len());
        whole.extend_from_slice(&head);
        whole.extend_from_slice(buf);
        *buf = whole;
        return Parsed::HandOver;
    };
    let body = match body_len {
        // Most requests: no split of the buffer, no reference to it.
        0 => Bytes::new(),
        n => buf.split_to(n).freeze(),
    };
    into.method = method;
    into.uri = uri;
    into.version = Version::HTTP_11;
    into.headers = headers;
    into.extensions.clear();
    Parsed::Plain(PlainRequest {
        body,
        close,
        trailers,
    })
}

/// A `Content-Length` value the plain server takes: digits only, within the body limit.
fn body_length(value: &[u8], limits: HeadLimits) -> Option<usize> {
    content_length(value)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= limits.max_body)
}

/// The head's fields as a header map whose values share the head's bytes.
fn headers(head: &Bytes, scratch: &mut Scratch) -> Option<HeaderMap> {
    let mut headers = scratch.spare.take().unwrap_or_default();
    append_fields(&mut headers, head, &mut scratch.fields).ok()?;
    Some(headers)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_headers: 100,
        max_bytes: 64 * 1024,
        max_body: 16,
    };

    fn parse(raw: &[u8]) -> (Parsed, Parts, BytesMut) {
        let mut buf = BytesMut::from(raw);
        let mut head = empty_head();
        let parsed = parse_request(&mut buf, LIMITS, &mut Scratch::default(), &mut head);
        (parsed, head, buf)
    }

    fn plain(raw: &[u8]) -> (PlainRequest, Parts) {
        match parse(raw) {
            (Parsed::Plain(request), head, _) => (request, head),
            (other, ..) => panic!("{other:?}"),
        }
    }

    fn handed_over(raw: &[u8]) -> bool {
        let (parsed, _, buf) = parse(raw);
        matches!(parsed, Parsed::HandOver) && &buf[..] == raw
    }

    #[test]
    fn a_plain_get_becomes_a_request_and_leaves_what_follows() {
        let (parsed, request, rest) =
            parse(b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Two: 1\r\nX-Two: 2\r\n\r\nGET");
        let Parsed::Plain(plain) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!(request.method, Method::GET);
        assert_eq!(request.uri, "/a?b=c");
        assert_eq!(request.headers["host"], "example.com");
        let twos: Vec<_> = request.headers.get_all("x-two").iter().collect();
        assert_eq!(twos, ["1", "2"]);
        assert!(!plain.close && !plain.trailers);
        assert_eq!(&rest[..], b"GET");
    }

    #[test]
    fn a_recycled_header_map_brings_none_of_its_old_fields() {
        let mut scratch = Scratch::default();
        let mut old = HeaderMap::new();
        old.insert("x-from-the-last-response", HeaderValue::from_static("1"));
        scratch.recycle(old);
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"[..]);
        let mut head = empty_head();
        let parsed = parse_request(&mut buf, LIMITS, &mut scratch, &mut head);
        assert!(matches!(parsed, Parsed::Plain(_)), "{parsed:?}");
        let names: Vec<&str> = head.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["host"]);
    }

    #[test]
    fn connection_close_and_te_trailers_are_noted() {
        let (request, _) =
            plain(b"GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\nTE: trailers\r\n\r\n");
        assert!(request.close && request.trailers);
    }

    #[test]
    fn absolute_form_targets_keep_their_authority() {
        let (_, head) = plain(b"GET http://other.example/x HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.uri.host(), Some("other.example"));
    }

    #[test]
    fn an_empty_body_is_still_plain() {
        plain(b"DELETE /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn a_small_sized_body_is_taken_whole_and_leaves_what_follows() {
        let (parsed, _, rest) =
            parse(b"POST /x HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhelloGET");
        let Parsed::Plain(plain) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!(&plain.body[..], b"hello");
        assert_eq!(&rest[..], b"GET");
    }

    /// Found by the `request_head_vs_hyper` fuzz target: the gateway saw two lengths from the
    /// plain server and one from hyper for the same request.
    #[test]
    fn a_repeated_length_reaches_the_gateway_once_as_from_hyper() {
        let (_, head) = plain(
            b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello",
        );
        let lengths: Vec<_> = head.headers.get_all(CONTENT_LENGTH).iter().collect();
        assert_eq!(lengths, ["5"]);
        let names: Vec<&str> = head.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["host", "content-length"]);
    }

    #[test]
    fn incomplete_heads_and_bodies_ask_for_more_and_leave_the_buffer_alone() {
        let (parsed, ..) = parse(b"GET / HTTP/1.1\r\nHo");
        assert!(
            matches!(parsed, Parsed::Partial { head: false }),
            "{parsed:?}"
        );
        let raw = b"PUT / HTTP/1.1\r\nContent-Length: 10\r\n\r\nhello";
        let (parsed, _, buf) = parse(raw);
        assert!(
            matches!(parsed, Parsed::Partial { head: true }),
            "{parsed:?}"
        );
        assert_eq!(&buf[..], raw);
    }

    #[test]
    fn everything_else_is_handed_over_untouched() {
        for raw in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
            // Larger than the plain server reads whole: hyper streams it.
            b"POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n",
            // Lengths that disagree or are not plain digits (hyper refuses them).
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello",
            b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /chat HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
            b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            // httparse takes the target, the URI parser does not: the head, split off by then,
            // goes back in front of the buffer.
            b"GET http://[::1/ HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            assert!(handed_over(raw), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn heads_beyond_the_limits_are_handed_over() {
        let limits = HeadLimits {
            max_headers: 1,
            max_bytes: 40,
            max_body: 0,
        };
        let mut scratch = Scratch::default();
        for raw in [
            &b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n"[..],
            b"GET /a-long-path-that-goes-over-the-limit HTTP/1.1\r\n\r\n",
            b"GET /a-long-path-that-goes-over-the-limit",
        ] {
            let mut buf = BytesMut::from(raw);
            let parsed = parse_request(&mut buf, limits, &mut scratch, &mut empty_head());
            assert!(matches!(parsed, Parsed::HandOver), "{parsed:?}");
        }
    }
}
