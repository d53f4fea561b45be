//! The plain HTTP/1.1 server's request parsing, differentially against hyper.
//!
//! The input is everything a client sent on one connection. The reference is hyper's HTTP/1.1
//! server, configured as the gateway configures it, serving the whole input. Portcullis serves
//! the same bytes as its server does: the plain server takes requests until one is not plain,
//! then hands the rest of the connection, untouched, to hyper. Both must serve the same
//! requests — method, target, version, header fields in order, body — in the same order, and
//! stop at the same place. A request the plain server hands over must be one it documents as
//! not plain. Each place where the two may rightly differ is spelled out below with its rule.

#![no_main]

use std::{cell::RefCell, rc::Rc, sync::OnceLock, time::Duration};

use bytes::{Bytes, BytesMut};
use http::{
    HeaderMap, HeaderValue, Method, Version,
    header::{CONNECTION, EXPECT, TRANSFER_ENCODING, UPGRADE},
    request::Parts,
};
use http_body_util::{BodyExt, Empty};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use portcullis_proxy::fuzzing::{MAX_PLAIN_BODY, PlainHead, PlainParser, http1_server};
use tokio::{io::AsyncWriteExt, runtime::Runtime};

/// A request as the gateway would have been handed it.
#[derive(Debug, PartialEq, Eq)]
struct Served {
    method: Method,
    target: String,
    version: Version,
    fields: Vec<(String, Vec<u8>)>,
    body: Bytes,
}

impl Served {
    fn new(
        method: &Method,
        target: String,
        version: Version,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Self {
        let fields = headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect();
        Self {
            method: method.clone(),
            target,
            version,
            fields,
            body,
        }
    }

    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }
}

/// One runtime for every input: a current-thread one whose clock is paused, so that waiting
/// for a connection that has nothing left to do ends at once.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime")
    })
}

/// The requests hyper, configured as the gateway's server configures it, hands to its service
/// when a client sends `input` and then waits. A request counts once its whole body arrived.
fn hyper_serves(input: &[u8]) -> Vec<Served> {
    runtime().block_on(async {
        let served = Rc::new(RefCell::new(Vec::new()));
        let recorder = served.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let recorder = recorder.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await?.to_bytes();
                let Parts {
                    method,
                    uri,
                    version,
                    headers,
                    ..
                } = parts;
                recorder.borrow_mut().push(Served::new(
                    &method,
                    uri.to_string(),
                    version,
                    &headers,
                    body,
                ));
                Ok::<_, hyper::Error>(Response::new(Empty::<Bytes>::new()))
            }
        });
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let connection = http1_server().serve_connection(TokioIo::new(server), service);
        client
            .write_all(input)
            .await
            .expect("the pipe takes the input");
        // The client keeps its side open: the connection is driven until it ends or waits
        // for more, when the paused clock runs the timeout out.
        let _ = tokio::time::timeout(Duration::from_secs(3600), connection).await;
        drop(client);
        served.take()
    })
}

/// What Portcullis' server hands to the gateway for the same input: the plain server's
/// requests, then, from a request it does not take, hyper's.
struct PortcullisRun {
    served: Vec<Served>,
    /// Whether the last plain request asked to close the connection.
    closed_by_client: bool,
    /// The index of the first request hyper served after a hand-over.
    handed_over_at: Option<usize>,
}

fn portcullis_serves(input: &[u8]) -> PortcullisRun {
    let mut buf = BytesMut::from(input);
    let mut parser = PlainParser::default();
    let mut run = PortcullisRun {
        served: Vec::new(),
        closed_by_client: false,
        handed_over_at: None,
    };
    // The connection's loop parses only when there are bytes.
    while !buf.is_empty() {
        let before = buf.clone();
        match parser.parse(&mut buf) {
            PlainHead::Plain {
                method,
                uri,
                version,
                headers,
                body,
                close,
            } => {
                run.served.push(Served::new(
                    &method,
                    uri.to_string(),
                    version,
                    &headers,
                    body,
                ));
                if close {
                    run.closed_by_client = true;
                    break;
                }
            }
            PlainHead::Partial { .. } => {
                assert_eq!(buf, before, "an incomplete head leaves the buffer alone");
                break;
            }
            PlainHead::HandOver => {
                assert_eq!(buf, before, "a hand-over leaves the buffer intact");
                run.handed_over_at = Some(run.served.len());
                run.served.extend(hyper_serves(&buf));
                break;
            }
        }
    }
    run
}

/// Whether hyper reads a `close` connection option in the request.
fn hyper_reads_close(request: &Served) -> bool {
    request
        .headers()
        .filter(|(name, _)| *name == CONNECTION.as_str())
        .any(|(_, value)| {
            std::str::from_utf8(value).is_ok_and(|text| {
                text.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("close"))
            })
        })
}

/// Why the plain server did not take a request hyper serves: one of the reasons `head.rs`
/// documents, or `None`.
fn not_plain_because(request: &Served) -> Option<&'static str> {
    if request.version != Version::HTTP_11 {
        // HTTP/1.0 has its own keep-alive rules (RFC 9112 §9.3): hyper's.
        return Some("not HTTP/1.1");
    }
    if request.method == Method::CONNECT {
        // A tunnel (RFC 9110 §9.3.6): hyper's upgrade machinery.
        return Some("CONNECT");
    }
    for (name, value) in request.headers() {
        if [TRANSFER_ENCODING, EXPECT, UPGRADE]
            .iter()
            .any(|n| n.as_str() == name)
        {
            // Chunked bodies (RFC 9112 §7.1), 100-continue (RFC 9110 §10.1.1) and upgrades
            // (RFC 9110 §7.8) are hyper's.
            return Some("Transfer-Encoding, Expect or Upgrade");
        }
        if HeaderValue::from_bytes(value).is_err() {
            // A value the header map refuses (hyper builds its values unchecked).
            return Some("a value the header map refuses");
        }
    }
    if request.body.len() > MAX_PLAIN_BODY {
        // Larger bodies stream through hyper rather than being read whole.
        return Some("a large body");
    }
    None
}

fuzz_target!(|input: &[u8]| {
    let reference = hyper_serves(input);
    let portcullis = portcullis_serves(input);
    let mut expected: &[Served] = &reference;
    if portcullis.closed_by_client && portcullis.handed_over_at.is_none() {
        let last = portcullis.served.len() - 1;
        if reference.get(last).is_some_and(|r| !hyper_reads_close(r)) {
            // RFC 9112 §9.6: a `close` option ends the connection after the response. hyper
            // skips a Connection field whose value holds obs-text (bytes above 0x7F) whole,
            // `close` in it included, and keeps serving; Portcullis honours the option.
            expected = &reference[..=last.min(reference.len() - 1)];
        }
    }
    assert_eq!(
        portcullis.served,
        expected,
        "the plain server and hyper disagree on {:?}",
        String::from_utf8_lossy(input)
    );
    if let Some(at) = portcullis.handed_over_at
        && let Some(request) = portcullis.served.get(at)
    {
        assert!(
            not_plain_because(request).is_some(),
            "the plain server handed over a request it takes: {request:?} in {:?}",
            String::from_utf8_lossy(input)
        );
    }
});
