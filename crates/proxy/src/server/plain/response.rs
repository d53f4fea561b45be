//! Response heads as the plain server writes them (RFC 9112 §4–§7), and the `Date` they carry.

use std::{cell::RefCell, time::SystemTime};

use http::{
    HeaderMap, Method, StatusCode,
    header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING},
};

use crate::{
    upstream::Relayed,
    wire::{first_length, push_content_length, push_field, tokens},
};

/// How the body follows the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyFraming {
    /// No body is sent, whatever the response holds (`HEAD`, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked; trailer fields are sent when the client accepts them.
    Chunked,
}

/// How the head was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Written {
    /// How the body follows.
    pub framing: BodyFraming,
    /// The head says `Connection: close`: the connection ends after this response.
    pub closes: bool,
}

/// A response's fields.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fields<'a> {
    /// The endpoint's, when relayed as they came; they go first.
    pub relayed: Option<&'a Relayed>,
    /// The header map's: all of them, or those the gateway added to relayed ones.
    pub headers: &'a HeaderMap,
}

/// Writes the head of a response to a request with `method` into `out` (appended). `exact` is
/// the body's length when known; `close` adds `Connection: close` unless the response says so.
pub(super) fn encode_head(
    out: &mut Vec<u8>,
    method: &Method,
    status: StatusCode,
    fields: Fields<'_>,
    exact: Option<u64>,
    close: bool,
) -> Written {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // RFC 9110 §8.6: 1xx and 204 never carry a length; a 304 or a HEAD answer keeps the one
    // that describes the resource.
    let no_length = status.is_informational() || status == StatusCode::NO_CONTENT;
    let no_body = no_length || status == StatusCode::NOT_MODIFIED || *method == Method::HEAD;
    // One length line at most, the one that frames the body: a second, different one would
    // leave the client to choose (RFC 9112 §6.3).
    let (mut declared, mut has_date, mut closes) = (None, false, false);
    if let Some(relayed) = fields.relayed {
        // Neither framing nor connection fields among them; its length is apart.
        relayed.write(out);
        declared = relayed.length;
        has_date = relayed.date;
    }
    for (name, value) in fields.headers {
        if *name == CONTENT_LENGTH {
            declared = first_length(declared, value.as_bytes());
            continue;
        } else if *name == TRANSFER_ENCODING {
            // The server frames the body itself.
            continue;
        } else if *name == DATE {
            has_date = true;
        } else if *name == CONNECTION {
            closes |= tokens(value.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"close"));
        }
        push_field(out, name, value);
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    if close && !closes {
        out.extend_from_slice(b"connection: close\r\n");
    }
    closes |= close;
    // A HEAD answer made here (not relayed, which keeps the endpoint's length) says how long the
    // GET answer would be (RFC 9110 §9.3.2); an empty body says nothing, as an endpoint's HEAD
    // answer without a length arrives empty.
    let head = *method == Method::HEAD && !no_length && status != StatusCode::NOT_MODIFIED;
    let length = if no_length {
        None
    } else {
        declared.or(exact.filter(|&n| !no_body || (head && n > 0)))
    };
    if let Some(n) = length {
        push_content_length(out, n);
    }
    let framing = match length {
        _ if no_body => BodyFraming::None,
        Some(n) => BodyFraming::Length(n),
        None => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            BodyFraming::Chunked
        }
    };
    out.extend_from_slice(b"\r\n");
    Written { framing, closes }
}

thread_local! {
    /// The current second and its IMF-fixdate, made once a second per thread.
    static NOW: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

/// Appends the current time as an HTTP date (RFC 9110 §5.6.7).
pub(super) fn date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    NOW.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second || cached.1.is_empty() {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(cached.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn head(
        method: Method,
        status: StatusCode,
        fields: &[(&str, &str)],
        exact: Option<u64>,
        close: bool,
    ) -> (String, Written) {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        let mut out = Vec::new();
        let fields = Fields {
            relayed: None,
            headers: &headers,
        };
        let written = encode_head(&mut out, &method, status, fields, exact, close);
        (String::from_utf8(out).expect("utf-8"), written)
    }

    #[test]
    fn a_sized_body_gets_its_length_and_a_date() {
        let (text, framing) = head(Method::GET, StatusCode::OK, &[("x-a", "b")], Some(5), false);
        assert_eq!(framing.framing, BodyFraming::Length(5));
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\nx-a: b\r\ndate: "),
            "{text}"
        );
        assert!(
            text.ends_with(" GMT\r\ncontent-length: 5\r\n\r\n"),
            "{text}"
        );
    }

    #[test]
    fn a_declared_length_wins_and_an_unknown_one_goes_chunked() {
        let (_, framing) = head(
            Method::GET,
            StatusCode::OK,
            &[("content-length", "7")],
            None,
            false,
        );
        assert_eq!(framing.framing, BodyFraming::Length(7));
        let (text, framing) = head(
            Method::GET,
            StatusCode::OK,
            &[("content-length", "+7"), ("transfer-encoding", "gzip")],
            None,
            false,
        );
        assert_eq!(framing.framing, BodyFraming::Chunked);
        assert!(
            !text.contains("content-length") && !text.contains("gzip"),
            "{text}"
        );
        assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    }

    #[test]
    fn one_length_line_goes_out_the_one_that_frames_the_body() {
        let (text, written) = head(
            Method::GET,
            StatusCode::OK,
            &[
                ("content-length", "x"),
                ("content-length", "3"),
                ("content-length", "9"),
            ],
            None,
            false,
        );
        assert_eq!(written.framing, BodyFraming::Length(3));
        assert_eq!(text.matches("content-length").count(), 1, "{text}");
        assert!(text.contains("content-length: 3\r\n"), "{text}");
    }

    #[test]
    fn bodyless_answers_keep_the_resource_length_but_send_no_body() {
        let (text, framing) = head(
            Method::HEAD,
            StatusCode::OK,
            &[("content-length", "1234")],
            Some(0),
            false,
        );
        assert_eq!(framing.framing, BodyFraming::None);
        assert!(text.contains("content-length: 1234\r\n"), "{text}");
        let (text, framing) = head(
            Method::GET,
            StatusCode::NO_CONTENT,
            &[("content-length", "0")],
            Some(0),
            false,
        );
        assert_eq!(framing.framing, BodyFraming::None);
        assert!(!text.contains("content-length"), "{text}");
        // A HEAD answer the gateway makes itself gives the length of its GET twin.
        let (text, framing) = head(Method::HEAD, StatusCode::NOT_FOUND, &[], Some(9), false);
        assert_eq!(framing.framing, BodyFraming::None);
        assert!(text.contains("content-length: 9\r\n"), "{text}");
    }

    #[test]
    fn closing_says_so_once() {
        let (text, written) = head(Method::GET, StatusCode::OK, &[], Some(0), true);
        assert!(text.contains("connection: close\r\n"), "{text}");
        assert!(written.closes);
        let (_, written) = head(Method::GET, StatusCode::OK, &[], Some(0), false);
        assert!(!written.closes);
        let (_, written) = head(
            Method::GET,
            StatusCode::OK,
            &[("connection", "x-a, Close")],
            Some(0),
            false,
        );
        assert!(written.closes, "a response that says close closes");
        // A response's own `Connection` that does not say close gets the line that does.
        let (text, written) = head(
            Method::GET,
            StatusCode::OK,
            &[("connection", "keep-alive")],
            Some(0),
            true,
        );
        assert!(text.contains("connection: close\r\n"), "{text}");
        assert!(written.closes);
        let (text, _) = head(
            Method::GET,
            StatusCode::OK,
            &[("connection", "close"), ("date", "x")],
            Some(0),
            true,
        );
        assert_eq!(text.matches("connection").count(), 1, "{text}");
        assert_eq!(text.matches("date").count(), 1, "{text}");
    }
}
