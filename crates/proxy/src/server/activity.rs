//! An I/O wrapper around every client connection: it counts the reads and writes that moved
//! bytes, for the idle timeout, and shows the bytes read to the request-framing scanner, for the
//! smuggling defence (see [`super::framing`]).
//!
//! A counter instead of a timestamp keeps the clock out of the hot path: the idle check compares
//! the count between two ticks of its own timer.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::framing::{ConflictingFraming, FramingScanner, HeadProgress};

/// Wraps a stream, counts every read or write that moved bytes, and follows the request framing
/// of what the client sends.
#[derive(Debug)]
pub struct ActivityIo<T> {
    inner: T,
    /// Bytes read from `inner` before it was wrapped, given out first.
    start: Vec<u8>,
    /// How many of them were given out.
    replayed: usize,
    activity: Arc<AtomicU64>,
    /// Dropped once it switches off (HTTP/2, upgrades, framing it cannot follow, or after the
    /// first conflict): from then on reads cost nothing extra.
    framing: Option<Box<FramingScanner>>,
    conflicts: Arc<ConflictingFraming>,
    heads: Arc<HeadProgress>,
}

impl<T> ActivityIo<T> {
    /// Wraps `inner`; `activity` is incremented on every read or write that moved bytes, the
    /// first request head carrying both `Content-Length` and `Transfer-Encoding` is recorded in
    /// `conflicts`, and whether a request head is being read in `heads`.
    ///
    /// `start` is what was read from `inner` already (to tell the protocol): reads return it
    /// first.
    pub fn new(
        inner: T,
        start: Vec<u8>,
        activity: Arc<AtomicU64>,
        conflicts: Arc<ConflictingFraming>,
        heads: Arc<HeadProgress>,
    ) -> Self {
        Self {
            inner,
            start,
            replayed: 0,
            activity,
            framing: Some(Box::default()),
            conflicts,
            heads,
        }
    }

    /// Like [`ActivityIo::new`] without the framing scanner, for a reader that parses the
    /// request heads itself (see [`super::plain`]); [`ActivityIo::hand_over`] starts it.
    pub fn unscanned(inner: T, activity: Arc<AtomicU64>, heads: Arc<HeadProgress>) -> Self {
        Self {
            inner,
            start: Vec::new(),
            replayed: 0,
            activity,
            framing: None,
            // Given at the hand-over, with the scanner.
            conflicts: Arc::default(),
            heads,
        }
    }

    /// Starts following the request framing at a request boundary, for a reader that takes
    /// over the connection there: `unread` (bytes read but not served) is given out first, and
    /// a conflict is recorded in `conflicts`, counted from the next request.
    pub fn hand_over(&mut self, unread: Vec<u8>, conflicts: Arc<ConflictingFraming>) {
        self.start = unread;
        self.replayed = 0;
        self.framing = Some(Box::default());
        self.conflicts = conflicts;
    }

    fn touch(&self) {
        self.activity.fetch_add(1, Ordering::Relaxed);
    }

    fn scan(&mut self, read: &[u8]) {
        let Some(scanner) = self.framing.as_mut() else {
            return;
        };
        scanner.feed(read);
        self.heads.publish(scanner);
        if scanner.is_off() {
            if let Some(head) = scanner.conflicting_head() {
                self.conflicts.record(head);
            }
            self.framing = None;
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = match this.start.get(this.replayed..) {
            Some(rest) if !rest.is_empty() => {
                let n = rest.len().min(buf.remaining());
                buf.put_slice(rest.get(..n).unwrap_or_default());
                this.replayed += n;
                if this.replayed == this.start.len() {
                    this.start = Vec::new();
                    this.replayed = 0;
                }
                Poll::Ready(Ok(()))
            }
            _ => Pin::new(&mut this.inner).poll_read(cx, buf),
        };
        if buf.filled().len() > before {
            this.touch();
            this.scan(buf.filled().get(before..).unwrap_or_default());
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
