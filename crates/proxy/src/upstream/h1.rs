//! HTTP/1.1 connections to endpoints, driven by the request that uses them.
//!
//! A pooled client that runs every upstream connection in a task of its own makes each proxied
//! request hop between the client connection's task and the upstream connection's task several
//! times (request written, response head read, each body chunk, back to the pool). Here the
//! request's own task polls the upstream connection instead: while it waits for the response
//! head, and then from the response body as the client connection writes it out. When the body
//! has ended and the connection is ready for another request, it goes back to the endpoint's idle
//! list of the calling worker (most recently used first).
//!
//! An idle connection is polled by nobody, so a backend closing it is noticed when it is next
//! used: polling it for the next request reads the end of stream before writing anything, and
//! a request that a reused connection refused before writing a byte is sent again on a new
//! connection ([`SendError::Unsent`]); one that may have been written is not (retries are the
//! route's policy).

use std::{
    collections::VecDeque,
    future::{Future, poll_fn},
    pin::{Pin, pin},
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use hyper::{
    body::{Body as HttpBody, Frame, Incoming, SizeHint},
    client::conn::http1,
};

use super::{Endpoint, UpstreamIo};
use crate::{body::Body, clock::now_ms};

/// Idle connections kept per endpoint and worker; more are closed when they come back.
const MAX_IDLE: usize = 512;
/// An idle connection older than this is closed instead of reused.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const IDLE_TIMEOUT_MS: u64 = IDLE_TIMEOUT.as_millis() as u64;

/// A connection that has not failed yet: the request sender and the connection state machine.
pub struct H1Conn {
    send: http1::SendRequest<Body>,
    /// `None` once the connection has finished (closed by either side or failed).
    conn: Option<Pin<Box<http1::Connection<UpstreamIo, Body>>>>,
    idle_since_ms: u64,
    reused: bool,
}

impl std::fmt::Debug for H1Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Conn")
            .field("open", &self.conn.is_some())
            .field("reused", &self.reused)
            .finish_non_exhaustive()
    }
}

impl H1Conn {
    /// Handshakes HTTP/1.1 over a fresh connection.
    pub async fn handshake(io: UpstreamIo) -> hyper::Result<Self> {
        let (send, conn) = http1::Builder::new().handshake(io).await?;
        Ok(Self {
            send,
            conn: Some(Box::pin(conn)),
            idle_since_ms: 0,
            reused: false,
        })
    }

    /// Lets the connection make progress: write the request, read the response, feed the body.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(conn) = &mut self.conn
            && let Poll::Ready(result) = conn.as_mut().poll(cx)
        {
            if let Err(error) = result {
                tracing::debug!(%error, "upstream connection ended");
            }
            self.conn = None;
        }
    }

    /// Whether the connection can take another request now.
    fn is_ready(&self) -> bool {
        self.conn.is_some() && self.send.is_ready()
    }

    /// Sends `request` and drives the connection until the response head arrives. On success
    /// the connection comes back with the response, to drive its body.
    pub async fn send(
        mut self,
        request: Request<Body>,
    ) -> Result<(Response<Incoming>, Self), SendError> {
        let mut response = pin!(self.send.try_send_request(request));
        let result = poll_fn(|cx| {
            self.drive(cx);
            response.as_mut().poll(cx)
        })
        .await;
        match result {
            Ok(response) => Ok((response, self)),
            Err(mut error) => match error.take_message() {
                Some(request) if self.reused => Err(SendError::Unsent(Box::new(request))),
                _ => Err(SendError::Failed(error.into_error())),
            },
        }
    }
}

/// Why [`H1Conn::send`] failed.
#[derive(Debug)]
pub enum SendError {
    /// A reused connection closed before the request was written; here it is back, to send on
    /// a new connection.
    Unsent(Box<Request<Body>>),
    /// The exchange failed; the request may have reached the backend.
    Failed(hyper::Error),
}

/// One endpoint's idle connections: a list per connection worker, so a connection stays on the
/// thread whose reactor it is registered with.
pub struct IdlePool {
    lists: Vec<Mutex<VecDeque<H1Conn>>>,
}

impl std::fmt::Debug for IdlePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdlePool")
            .field("lists", &self.lists.len())
            .finish()
    }
}

impl IdlePool {
    /// An empty pool with `lists` lists (one per worker, plus one for other threads).
    pub fn new(lists: usize) -> Self {
        Self {
            lists: (0..lists.max(1))
                .map(|_| Mutex::new(VecDeque::new()))
                .collect(),
        }
    }

    fn list(&self) -> &Mutex<VecDeque<H1Conn>> {
        let index = crate::server::workers::current() % self.lists.len();
        &self.lists[index]
    }

    /// The most recently used idle connection of the calling worker that is still open.
    pub fn take(&self) -> Option<H1Conn> {
        let Ok(mut list) = self.list().lock() else {
            return None;
        };
        let now = now_ms();
        let mut cx = Context::from_waker(Waker::noop());
        while let Some(mut conn) = list.pop_back() {
            if now.saturating_sub(conn.idle_since_ms) > IDLE_TIMEOUT_MS {
                // Everything older is further down the list.
                list.clear();
                return None;
            }
            if !conn.is_ready() {
                // It has not taken in the end of its last exchange yet, or it was closed.
                conn.drive(&mut cx);
            }
            if conn.is_ready() {
                return Some(conn);
            }
        }
        None
    }

    /// Closes the idle connections past the idle limit and those the backend has closed (they
    /// would otherwise hold a socket until the endpoint is used again).
    pub fn prune(&self) {
        let now = now_ms();
        let mut cx = Context::from_waker(Waker::noop());
        for list in &self.lists {
            let Ok(mut list) = list.lock() else {
                continue;
            };
            list.retain_mut(|conn| {
                if now.saturating_sub(conn.idle_since_ms) > IDLE_TIMEOUT_MS {
                    return false;
                }
                // A closed connection reads its end of stream here and finishes.
                conn.drive(&mut cx);
                conn.conn.is_some()
            });
        }
    }

    /// Idle connections kept, over every worker.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lists
            .iter()
            .filter_map(|list| list.lock().ok().map(|l| l.len()))
            .sum()
    }

    /// Puts a connection whose exchange is complete back, unless it has closed. One that still
    /// has to take in the end of the exchange does so when it is next taken.
    fn put(&self, mut conn: H1Conn) {
        if conn.conn.is_none() {
            return;
        }
        let Ok(mut list) = self.list().lock() else {
            return;
        };
        let now = now_ms();
        while list
            .front()
            .is_some_and(|c| now.saturating_sub(c.idle_since_ms) > IDLE_TIMEOUT_MS)
        {
            list.pop_front();
        }
        if list.len() < MAX_IDLE {
            conn.idle_since_ms = now;
            conn.reused = true;
            list.push_back(conn);
        }
    }
}

/// A response body from an [`H1Conn`]: polling it drives the connection, and when it has ended
/// the connection returns to its endpoint's idle list.
pub struct H1Body {
    incoming: Incoming,
    conn: Option<H1Conn>,
    endpoint: Arc<Endpoint>,
}

impl H1Body {
    /// The body of `response`, read through `conn`, which returns to `endpoint`'s pool.
    pub fn new(incoming: Incoming, conn: H1Conn, endpoint: Arc<Endpoint>) -> Self {
        Self {
            incoming,
            conn: Some(conn),
            endpoint,
        }
    }

    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.endpoint.idle.put(conn);
        }
    }
}

impl HttpBody for H1Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let mut polled = Pin::new(&mut this.incoming).poll_frame(cx);
        if polled.is_pending()
            && let Some(conn) = &mut this.conn
        {
            conn.drive(cx);
            polled = Pin::new(&mut this.incoming).poll_frame(cx);
        }
        match polled {
            Poll::Ready(None) => {
                this.release();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                // The connection is in an unknown state: close it.
                this.conn = None;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if this.incoming.is_end_stream() {
                    this.release();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

impl Drop for H1Body {
    fn drop(&mut self) {
        // A body dropped before its end leaves the connection mid-message: it closes.
        if self.incoming.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper_util::rt::TokioIo;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    #[tokio::test]
    async fn pruning_closes_the_idle_connections_the_backend_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let tcp = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (backend_side, _) = listener.accept().await.expect("accept");
        let conn = H1Conn::handshake(UpstreamIo::Plain(TokioIo::new(tcp)))
            .await
            .expect("handshake");
        let pool = IdlePool::new(1);
        pool.put(conn);
        pool.prune();
        assert_eq!(pool.len(), 1, "an open idle connection is kept");

        drop(backend_side);
        let mut tries = 0;
        while pool.len() > 0 && tries < 500 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            pool.prune();
            tries += 1;
        }
        assert_eq!(pool.len(), 0, "the closed connection is dropped");
    }
}
