//! The HTTP/1.1 client's response parsing (`upstream/h1/codec.rs`) and body decoding
//! (`upstream/h1/body.rs`), given whatever a broken or hostile backend might send.
//!
//! The input is what an endpoint sent on a connection. The parser must never panic. A head it
//! accepts must be framed consistently: the framing follows RFC 9112 §6.3, the client is never
//! told a length the gateway does not read by, and fields relayed as they came say what the
//! header map would have said. The body decodes to the same thing however the endpoint's bytes
//! are cut into reads.

#![no_main]

use bytes::BytesMut;
use http::{HeaderMap, Method, StatusCode, header::CONTENT_LENGTH};
use libfuzzer_sys::fuzz_target;
use portcullis_fuzz::reads;
use portcullis_proxy::fuzzing::{
    UpstreamBody, UpstreamFraming, UpstreamHead, UpstreamParser, decode_upstream_body,
};

/// The head parsed answering `method`, relayed or not, and the bytes after it.
fn parse(
    input: &[u8],
    method: &Method,
    relay: bool,
) -> (Result<Option<UpstreamHead>, String>, BytesMut) {
    let mut buf = BytesMut::from(input);
    let head = UpstreamParser::default().parse(&mut buf, method, relay);
    (head, buf)
}

/// The transfer codings the final response head in `heads` (the interim heads first) names,
/// in order, as the endpoint sent them.
fn codings(mut heads: &[u8]) -> Vec<String> {
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut response = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(len)) = response.parse(heads) else {
            return Vec::new();
        };
        if len < heads.len() {
            heads = &heads[len..];
            continue;
        }
        return response
            .headers
            .iter()
            .filter(|field| field.name.eq_ignore_ascii_case("transfer-encoding"))
            .flat_map(|field| field.value.split(|&b| b == b','))
            .map(|token| String::from_utf8_lossy(token.trim_ascii()).to_ascii_lowercase())
            .filter(|token| !token.is_empty())
            .collect();
    }
}

/// The fields other than `Content-Length`, which the relayed path carries apart.
fn without_length(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    headers.remove(CONTENT_LENGTH);
    headers
}

fn check_framing(head: &UpstreamHead, method: &Method) {
    assert!(
        !head.status.is_informational() || head.status == StatusCode::SWITCHING_PROTOCOLS,
        "interim responses are skipped"
    );
    let bodiless = *method == Method::HEAD
        || matches!(
            head.status,
            StatusCode::SWITCHING_PROTOCOLS | StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        );
    if bodiless {
        assert_eq!(
            head.framing,
            UpstreamFraming::Length(0),
            "no body after {}",
            head.status
        );
    }
    match head.framing {
        UpstreamFraming::Close => assert!(!head.keep_alive, "a body to the close keeps nothing"),
        UpstreamFraming::Chunked => assert!(
            !head.headers.contains_key(CONTENT_LENGTH),
            "a length beside the coding is not passed on"
        ),
        UpstreamFraming::Length(n) if !bodiless => {
            for value in head.headers.get_all(CONTENT_LENGTH) {
                let text = value.to_str().expect("a length read as digits is ASCII");
                for token in text.split(',') {
                    assert_eq!(
                        token.trim().parse::<u64>().ok(),
                        Some(n),
                        "the client is told {text}"
                    );
                }
            }
        }
        UpstreamFraming::Length(_) => {}
    }
}

fn check_body(framing: UpstreamFraming, rest: &[u8]) {
    let whole = decode_upstream_body(framing, [rest]);
    let same = |other: UpstreamBody, how: &str| match (&whole.error, &other.error) {
        (None, None) => assert_eq!(other, whole, "{how}"),
        (Some(_), Some(_)) => {}
        _ => panic!(
            "{how}: {:?} against {:?} in one read",
            other.error, whole.error
        ),
    };
    same(
        decode_upstream_body(framing, rest.chunks(1)),
        "one byte at a time",
    );
    same(
        decode_upstream_body(framing, reads(rest, 16)),
        "in reads of varied sizes",
    );
    if whole.error.is_none() {
        match framing {
            UpstreamFraming::Length(n) => assert_eq!(whole.data.len() as u64, n),
            UpstreamFraming::Close => assert_eq!(whole.data, rest),
            UpstreamFraming::Chunked => assert!(whole.data.len() <= rest.len()),
        }
        let used = rest.len() - whole.rest.len();
        assert_eq!(
            &rest[used..],
            whole.rest,
            "what follows the body is left as it came"
        );
    }
}

fuzz_target!(|input: &[u8]| {
    for method in [Method::GET, Method::HEAD] {
        let (mapped, rest) = parse(input, &method, false);
        let (relayed, relayed_rest) = parse(input, &method, true);
        match (mapped, relayed) {
            (Ok(Some(mapped)), Ok(Some(relayed))) => {
                check_framing(&mapped, &method);
                check_framing(&relayed, &method);
                assert_eq!(
                    (
                        mapped.status,
                        mapped.version,
                        mapped.framing,
                        mapped.keep_alive
                    ),
                    (
                        relayed.status,
                        relayed.version,
                        relayed.framing,
                        relayed.keep_alive
                    ),
                    "relaying the fields changes nothing of the framing"
                );
                assert_eq!(
                    without_length(&mapped.headers),
                    without_length(&relayed.headers),
                    "relayed fields say what the map says"
                );
                assert_eq!(rest, relayed_rest);
                // Issue 15: a response coded other than by chunked alone is refused, never
                // relabelled (only the chunked coding is undone, once; RFC 9112 §6.1 forbids
                // applying it twice).
                let codings = codings(&input[..input.len() - rest.len()]);
                assert!(
                    codings.is_empty() || codings == ["chunked"],
                    "accepted with the codings {codings:?}"
                );
                check_body(mapped.framing, &rest);
            }
            (Ok(None), Ok(None)) => {}
            (Err(_), Err(_)) => {}
            (mapped, relayed) => panic!(
                "relaying changes the verdict: {:?} against {:?}",
                mapped.map(|h| h.is_some()),
                relayed.map(|h| h.is_some())
            ),
        }
    }
});
