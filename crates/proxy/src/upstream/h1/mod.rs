//! HTTP/1.1 exchanges with endpoints, driven by the request that makes them.
//!
//! A proxied request is one write and one read on the upstream side, and this module does just
//! that, on the request's own task: the request head is encoded into the connection's buffer
//! and written (the body after it, sized or chunked), the response head is parsed from the
//! connection's read buffer ([`codec`]), and the response body is decoded from the same buffer
//! as the client connection asks for it ([`H1Body`]). No connection task, channel or timer sits
//! between the client's request and the endpoint's socket. When the body has ended cleanly the
//! connection goes back to the endpoint's idle list of the calling worker ([`IdlePool`]).
//!
//! An idle connection is watched by nobody, so an endpoint closing it is noticed when it is
//! next taken: the pool reads from it first and drops it if it has ended. A request that a
//! reused connection refused before a byte of it was written is handed back
//! ([`SendError::Unsent`]) to be sent on a new connection; one that may have been written is not
//! (retries are the route's policy).

mod body;
mod codec;
/// What the fuzz targets reach of the HTTP/1 client (`crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    pub(crate) use super::{
        body::decode_reads,
        codec::{ResponseFraming, Scratch, parse_response},
    };
}
mod pool;
mod relay;

use std::{
    future::poll_fn,
    io::{self, IoSlice},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

pub use body::H1Body;
use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response, header::TRAILER};
use hyper::body::Body as HttpBody;
pub use pool::{IDLE_TIMEOUT, IdlePool};
pub use relay::{CarriesRelayed, Relayed, materialize};
use tokio::io::AsyncWrite;

use self::codec::{RequestFraming, ResponseHead};
use super::{Endpoint, RequestTemplate, UpstreamIo};
use crate::{
    body::Body,
    wire::{push_chunk_size, push_last_chunk},
};

/// Read buffer growth: when less than this is free, room for [`READ_CHUNK`] more is made.
const READ_SPARE: usize = 2048;
/// Bytes read at most per read call (a body's frames are at most this large).
const READ_CHUNK: usize = 16 * 1024;

/// An open connection to an endpoint, between exchanges or during one.
pub struct H1Conn {
    io: UpstreamIo,
    /// Bytes read and not yet consumed: a response head, body bytes.
    read: BytesMut,
    /// The request head being written (kept between exchanges for its capacity).
    head: Vec<u8>,
    /// What the response parser keeps between responses.
    scratch: codec::Scratch,
    /// When it went idle, while it is in the idle list (stamped by the list).
    idle_since_ms: u64,
    reused: bool,
}

impl std::fmt::Debug for H1Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Conn")
            .field("reused", &self.reused)
            .finish_non_exhaustive()
    }
}

/// Why [`H1Conn::send`] failed.
#[derive(Debug)]
pub enum SendError {
    /// A reused connection failed before any byte of the request was written; here the body
    /// is back, to send the request on a new connection.
    Unsent(Body),
    /// The exchange failed; the request may have reached the endpoint.
    Failed(io::Error),
}

impl H1Conn {
    /// A connection over a freshly connected `io`, boxed once for its life: responses carry it
    /// and the idle list keeps it, and both move it as a pointer.
    pub fn new(io: UpstreamIo) -> Box<Self> {
        Box::new(Self {
            io,
            read: BytesMut::with_capacity(READ_CHUNK),
            head: Vec::with_capacity(1024),
            scratch: codec::Scratch::default(),
            idle_since_ms: 0,
            reused: false,
        })
    }

    /// Reads what the endpoint sent into the read buffer. `Ok(0)`: the endpoint closed.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < READ_SPARE {
            self.read.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read)
    }

    /// Sends the request `template` describes (origin-form target; `Host` is the endpoint's
    /// authority when the template has none), with `body`, and reads the response head. The
    /// response body streams from this connection, which returns to `endpoint`'s idle list
    /// after it. `last`: the template's header map may be taken to hold the response's fields
    /// (no other attempt reads it).
    pub async fn send(
        mut self: Box<Self>,
        template: &mut RequestTemplate,
        body: Body,
        last: bool,
        endpoint: &Arc<Endpoint>,
    ) -> Result<Response<Body>, SendError> {
        let framing = codec::encode_request(
            &mut self.head,
            template,
            body.is_end_stream(),
            body.size_hint().exact(),
            endpoint.authority.as_str(),
        );
        let mut written = 0;
        let wrote = poll_fn(|cx| {
            while written < self.head.len() {
                let head = self.head.get(written..).unwrap_or_default();
                match ready!(Pin::new(&mut self.io).poll_write(cx, head)) {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(n) => written += n,
                    Err(error) => return Poll::Ready(Err(error)),
                }
            }
            // Out of TLS's buffers too (a no-op on plain TCP): a request without a body has
            // nothing else to push it.
            Pin::new(&mut self.io).poll_flush(cx)
        })
        .await;
        if let Err(error) = wrote {
            if written == 0 && self.reused {
                return Err(SendError::Unsent(body));
            }
            return Err(SendError::Failed(error));
        }
        let method = &template.method;
        // The trailer fields a chunked body may end with (rare).
        let announced = (framing == RequestFraming::Chunked)
            .then(|| template.headers.get(TRAILER).cloned())
            .flatten();
        // The request's header map, written out, holds the response's fields when no other
        // attempt needs it.
        let mut headers = if last {
            std::mem::take(&mut template.headers)
        } else {
            HeaderMap::new()
        };
        let mut writer = BodyWriter::new(body, framing, announced);
        let head = poll_fn(|cx| {
            if !writer.done
                && let Poll::Ready(Err(error)) = writer.poll(&mut self.io, cx)
            {
                return Poll::Ready(Err(error));
            }
            loop {
                if !self.read.is_empty() {
                    match codec::parse_response(
                        &mut self.read,
                        method,
                        &mut headers,
                        &mut self.scratch,
                        template.relay,
                    ) {
                        Ok(Some(head)) => return Poll::Ready(Ok(head)),
                        Ok(None) => {}
                        Err(error) => {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                error,
                            )));
                        }
                    }
                }
                match ready!(self.poll_fill(cx)) {
                    Ok(0) => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the endpoint closed the connection before a response",
                        )));
                    }
                    Ok(_) => {}
                    Err(error) => return Poll::Ready(Err(error)),
                }
            }
        })
        .await
        .map_err(SendError::Failed)?;
        // A response that came before the whole request body leaves the request unfinished on
        // this connection: it is not reused.
        let keep_alive = head.keep_alive && writer.done;
        let endpoint = endpoint.clone();
        let ResponseHead {
            response,
            framing,
            relayed,
            ..
        } = head;
        Ok(response
            .map(|()| Body::Upstream(H1Body::new(self, framing, keep_alive, endpoint, relayed))))
    }
}

/// Writes a request body in its framing, frame by frame as the client sends it.
struct BodyWriter {
    body: Body,
    framing: RequestFraming,
    /// The request's `Trailer` header: the trailer fields that may be sent.
    announced: Option<HeaderValue>,
    /// Bytes taken from the body and not yet written, in order.
    pending: Vec<Bytes>,
    /// Bytes the body has produced so far (checked against a declared length).
    produced: u64,
    flushing: bool,
    done: bool,
}

impl BodyWriter {
    fn new(body: Body, framing: RequestFraming, announced: Option<HeaderValue>) -> Self {
        Self {
            body,
            framing,
            announced,
            pending: Vec::new(),
            produced: 0,
            flushing: false,
            done: framing == RequestFraming::Empty,
        }
    }

    /// Makes progress; `Ready(Ok)` once the whole body is written and flushed.
    fn poll(&mut self, io: &mut UpstreamIo, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            while !self.pending.is_empty() {
                let mut slices = [IoSlice::new(&[]); 4];
                for (slot, bytes) in slices.iter_mut().zip(&self.pending) {
                    *slot = IoSlice::new(bytes);
                }
                let count = self.pending.len().min(slices.len());
                let n = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.consume(n);
            }
            if self.flushing {
                ready!(Pin::new(&mut *io).poll_flush(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
            match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.queue_data(data)?,
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.queue_end(Some(&trailers))?;
                        }
                    }
                },
                Some(Err(error)) => return Poll::Ready(Err(io::Error::other(error))),
                None => self.queue_end(None)?,
            }
        }
    }

    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(first) = self.pending.first_mut() else {
                return;
            };
            if first.len() > n {
                first.advance(n);
                return;
            }
            n -= first.len();
            self.pending.remove(0);
        }
    }

    fn queue_data(&mut self, data: Bytes) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.produced += data.len() as u64;
        match self.framing {
            RequestFraming::Chunked => {
                let mut size = Vec::with_capacity(18);
                push_chunk_size(&mut size, data.len() as u64);
                self.pending.push(Bytes::from(size));
                self.pending.push(data);
                self.pending.push(Bytes::from_static(b"\r\n"));
            }
            RequestFraming::Length(declared) if self.produced > declared => {
                return Err(length_mismatch());
            }
            _ => self.pending.push(data),
        }
        Ok(())
    }

    /// The body has ended (with `trailers`, sent only in the chunked framing).
    fn queue_end(&mut self, trailers: Option<&HeaderMap>) -> io::Result<()> {
        match self.framing {
            RequestFraming::Chunked => {
                let mut end = Vec::new();
                push_last_chunk(&mut end, trailers, self.announced.as_ref());
                self.pending.push(Bytes::from(end));
            }
            RequestFraming::Length(declared) if self.produced != declared => {
                return Err(length_mismatch());
            }
            _ => {}
        }
        self.flushing = true;
        Ok(())
    }
}

fn length_mismatch() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "the request body does not match its Content-Length",
    )
}
