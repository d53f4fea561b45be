//! Portcullis's own HTTP/1.1 server for plain requests: a request without an upgrade or
//! `Expect`, and with at most a small sized body, over a keep-alive connection — most of what
//! an API gateway is asked.
//!
//! It reads heads into one buffer per connection, hands each request to the gateway on the
//! connection's task and writes the response head and body from one buffer, without the
//! channels and per-request state of a general HTTP/1.1 server. The first request that is not
//! plain (see [`head`]) hands the connection, with the bytes not yet served, to hyper, which
//! serves it from then on: one implementation of the rarer parts of HTTP/1.1 and of the
//! refusals (400, 431, request smuggling).

#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
mod head;
mod response;

use std::{
    future::{Future, poll_fn},
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderValue, Uri, header::TRAILER, request::Parts};
use http_body_util::Full;
use hyper::body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use self::{
    head::{HeadLimits, Parsed, PlainRequest, Scratch, empty_head},
    response::{BodyFraming, Fields, encode_head},
};
use super::{activity::ActivityIo, framing::HeadProgress};
use crate::{
    forward::{Connection, ObservedBody},
    gateway::Gateway,
    upstream::CarriesRelayed,
    wire::{push_chunk_size, push_last_chunk},
};

/// Most bytes of request body the plain server reads whole before serving the request; a
/// larger body goes to hyper with its connection, and streams.
const MAX_BODY: usize = 64 * 1024;
/// Reads that fill less than this much of the buffer make room first.
const READ_ROOM: usize = 4096;
/// What each of a connection's buffers starts with.
const BUFFER: usize = 8192;
/// A buffer that grew past this (a large response, a burst of pipelined requests) is let go
/// once empty, so that idle connections hold little memory.
const BUFFER_KEPT: usize = 32 * 1024;
/// Response bytes gathered before they are written.
const WRITE_BATCH: usize = 64 * 1024;

/// How the plain server's part of a connection ended.
pub(super) enum Ended<T> {
    /// The connection is done: closed by either side, or by the server.
    Closed,
    /// A request that is not plain arrived: the connection and its unserved bytes (that
    /// request's head first) go to hyper.
    HandOver(ActivityIo<T>, BytesMut),
}

/// What the plain server needs from the connection's server.
pub(super) struct Setup {
    /// Serves the requests.
    pub gateway: Arc<Gateway>,
    /// The connection, as the gateway sees it.
    pub conn: Arc<Connection>,
    /// Where the connection's supervisor reads whether a head is awaited (header timeout).
    pub heads: Arc<HeadProgress>,
    /// Most header fields in a plain head.
    pub max_headers: usize,
    /// Most bytes of a plain head.
    pub max_header_bytes: usize,
}

/// A connection served by the plain server, as the connection supervisor drives it.
pub(super) struct PlainConnection<F> {
    closing: Arc<AtomicBool>,
    serving: Pin<Box<F>>,
}

/// Serves `io` (whose first bytes are `start`) until it closes or hands over.
pub(super) fn serve<T>(
    io: ActivityIo<T>,
    start: &[u8],
    setup: Setup,
) -> PlainConnection<impl Future<Output = std::io::Result<Ended<T>>>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let closing = Arc::new(AtomicBool::new(false));
    let mut buf = BytesMut::with_capacity(BUFFER.max(start.len()));
    buf.extend_from_slice(start);
    PlainConnection {
        closing: closing.clone(),
        serving: Box::pin(run(io, buf, setup, closing)),
    }
}

impl<F: Future> Future for PlainConnection<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.serving.as_mut().poll(cx)
    }
}

impl<F: Future> PlainConnection<F> {
    /// Finishes the request in flight (its response says `Connection: close`) and closes; an
    /// idle connection closes at its next poll.
    pub(super) fn shut_down(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }
}

/// The connection's loop: read a head, serve it, write the response, until the connection
/// closes or a request that is not plain arrives.
async fn run<T>(
    mut io: ActivityIo<T>,
    mut buf: BytesMut,
    setup: Setup,
    closing: Arc<AtomicBool>,
) -> std::io::Result<Ended<T>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let limits = HeadLimits {
        max_headers: setup.max_headers,
        max_bytes: setup.max_header_bytes,
        max_body: MAX_BODY,
    };
    let mut scratch = Scratch::default();
    // Each request's head, parsed into and lent to the gateway where it is: not moved.
    let mut head = empty_head();
    let mut out = Vec::with_capacity(BUFFER);
    let mut served = 0u64;
    loop {
        let mut body_pending = false;
        let request = loop {
            if !buf.is_empty() {
                match head::parse_request(&mut buf, limits, &mut scratch, &mut head) {
                    Parsed::Plain(request) => break request,
                    Parsed::Partial { head } => body_pending = head,
                    Parsed::HandOver => return Ok(Ended::HandOver(io, buf)),
                }
            }
            // The first head is awaited from the accept, later ones from their first byte; a
            // body is not a head (the idle timeout watches it).
            let in_head = (served == 0 || !buf.is_empty()) && !body_pending;
            setup.heads.set(served, in_head);
            if !read_more(&mut io, &mut buf, &closing).await? {
                return Ok(Ended::Closed);
            }
        };
        served += 1;
        setup.heads.set(served, false);
        let buffers = Buffers {
            read: &mut buf,
            write: &mut out,
            scratch: &mut scratch,
        };
        if respond(&mut io, buffers, &mut head, request, &setup, &closing).await? {
            io.shutdown().await?;
            return Ok(Ended::Closed);
        }
        if out.capacity() > BUFFER_KEPT {
            out = Vec::with_capacity(BUFFER);
        }
        if buf.is_empty() && buf.capacity() > BUFFER_KEPT {
            buf = BytesMut::with_capacity(BUFFER);
        }
    }
}

/// Reads more of the client's bytes into `buf`. `false` when the client closed, or when the
/// server is closing and no request is complete.
async fn read_more<T: AsyncRead + Unpin>(
    io: &mut ActivityIo<T>,
    buf: &mut BytesMut,
    closing: &AtomicBool,
) -> std::io::Result<bool> {
    if buf.capacity() - buf.len() < READ_ROOM {
        buf.reserve(READ_ROOM);
    }
    let read = poll_fn(|cx| {
        if closing.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(0));
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf)
    })
    .await?;
    Ok(read > 0)
}

/// A connection's buffers, lent to the request being served.
struct Buffers<'a> {
    /// What the client sent and was not served yet.
    read: &'a mut BytesMut,
    /// The response being written.
    write: &'a mut Vec<u8>,
    /// The request parser's.
    scratch: &'a mut Scratch,
}

/// Serves one request and writes its response. `true` when the connection ends with it: the
/// client or the response said `Connection: close`, or the server is closing.
async fn respond<T: AsyncRead + AsyncWrite + Unpin>(
    io: &mut ActivityIo<T>,
    buffers: Buffers<'_>,
    head: &mut Parts,
    request: PlainRequest,
    setup: &Setup,
    closing: &AtomicBool,
) -> std::io::Result<bool> {
    let Buffers {
        read: buf,
        write: out,
        scratch,
    } = buffers;
    let PlainRequest {
        body,
        close,
        trailers,
    } = request;
    let method = head.method.clone();
    let response = {
        // Pinned where it is made: moving a kilobytes-large future into a helper costs a copy.
        let mut handling = pin!(
            setup
                .gateway
                .clone()
                .handle(&setup.conn, head, Full::new(body))
        );
        let room = setup.max_header_bytes;
        poll_fn(|cx| poll_while_connected(handling.as_mut(), io, buf, room, cx)).await?
    };
    // What the gateway left of the head goes now: its bytes would keep the read buffer's
    // memory from being reused.
    head.uri = Uri::default();
    head.headers.clear();
    let (parts, mut body) = response.into_parts();
    let close = close || closing.load(Ordering::Relaxed);
    out.clear();
    let relayed = body.take_relayed();
    let fields = Fields {
        relayed: relayed.as_deref(),
        headers: &parts.headers,
    };
    let written = encode_head(
        out,
        &method,
        parts.status,
        fields,
        body.size_hint().exact(),
        close,
    );
    drop(relayed);
    // The trailer fields the response announces, for a client that takes them (rare).
    let announced = trailers
        .then(|| parts.headers.get(TRAILER).cloned())
        .flatten();
    scratch.recycle(parts.headers);
    write_body(io, out, &mut body, written.framing, announced.as_ref()).await?;
    if !out.is_empty() {
        io.write_all(out).await?;
    }
    // TLS holds records back until flushed (a no-op on TCP).
    io.flush().await?;
    Ok(written.closes)
}

/// Polls `handling` while watching the client, as hyper does: what the client sends meanwhile
/// (pipelined requests) is kept in `buf`, up to `room` bytes; when it closes the connection, the
/// request is abandoned (its exchange with the backend is cancelled) and the connection ends.
///
/// Costs no read on the socket in the common case: the read that brought the request drained
/// it, which the runtime remembers.
fn poll_while_connected<T, F>(
    handling: Pin<&mut F>,
    io: &mut ActivityIo<T>,
    buf: &mut BytesMut,
    room: usize,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<F::Output>>
where
    T: AsyncRead + Unpin,
    F: Future,
{
    if let Poll::Ready(output) = handling.poll(cx) {
        return Poll::Ready(Ok(output));
    }
    while buf.len() < room {
        if buf.capacity() - buf.len() < READ_ROOM {
            buf.reserve(READ_ROOM);
        }
        match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf) {
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the client closed the connection before the response",
                )));
            }
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => break,
        }
    }
    Poll::Pending
}

/// Appends the body to `out`, framed, writing `out` whenever it fills or the body has to wait.
async fn write_body<T: AsyncWrite + Unpin>(
    io: &mut ActivityIo<T>,
    out: &mut Vec<u8>,
    body: &mut ObservedBody,
    framing: BodyFraming,
    announced: Option<&HeaderValue>,
) -> std::io::Result<()> {
    let mut left = match framing {
        BodyFraming::None => return Ok(()),
        BodyFraming::Length(n) => Some(n),
        BodyFraming::Chunked => None,
    };
    let mut trailer_fields: Option<HeaderMap> = None;
    loop {
        let frame = match poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                // Nothing more yet: what is gathered goes out while the body waits.
                io.write_all(out).await?;
                io.flush().await?;
                out.clear();
                poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
            }
        };
        let frame = match frame {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(error)) => return Err(std::io::Error::other(error)),
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Ok(fields) = frame.into_trailers() {
                    trailer_fields
                        .get_or_insert_with(HeaderMap::new)
                        .extend(fields);
                }
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        // More than the length announced cannot be sent: the response ends there.
        let take = match left {
            Some(left) => usize::try_from(left).unwrap_or(usize::MAX).min(data.len()),
            None => data.len(),
        };
        let payload = data.chunk().get(..take).unwrap_or_default();
        if left.is_none() {
            push_chunk_size(out, data.len() as u64);
        }
        if payload.len() >= WRITE_BATCH {
            // A large frame goes out as it is, not copied into the batch.
            io.write_all(out).await?;
            out.clear();
            io.write_all(payload).await?;
        } else {
            out.extend_from_slice(payload);
        }
        match left.as_mut() {
            Some(left) => {
                *left -= take as u64;
                if take < data.len() {
                    return Err(std::io::Error::other(
                        "response body longer than its length",
                    ));
                }
            }
            None => out.extend_from_slice(b"\r\n"),
        }
        if out.len() >= WRITE_BATCH {
            io.write_all(out).await?;
            out.clear();
        }
    }
    match left {
        // A body that ended short of its length: the client must not wait for the rest.
        Some(left) if left > 0 => Err(std::io::Error::other(
            "response body shorter than its length",
        )),
        Some(_) => Ok(()),
        None => {
            push_last_chunk(out, trailer_fields.as_ref(), announced);
            Ok(())
        }
    }
}
