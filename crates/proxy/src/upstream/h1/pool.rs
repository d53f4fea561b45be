//! Idle connections per endpoint, a list per connection worker (most recently used first).

use std::{
    collections::VecDeque,
    sync::Mutex,
    task::{Context, Waker},
    time::Duration,
};

use super::H1Conn;
use crate::clock::now_ms;
use crate::upstream::UpstreamIo;

/// Idle connections kept per endpoint and worker; more are closed when they come back.
const MAX_IDLE: usize = 512;
/// An idle connection older than this is closed instead of reused.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const IDLE_TIMEOUT_MS: u64 = IDLE_TIMEOUT.as_millis() as u64;

/// One endpoint's idle connections: a list per connection worker, so a connection stays on the
/// thread whose reactor it is registered with.
pub struct IdlePool {
    lists: Vec<Mutex<VecDeque<Box<H1Conn>>>>,
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

    fn list(&self) -> &Mutex<VecDeque<Box<H1Conn>>> {
        let index = crate::server::workers::current() % self.lists.len();
        &self.lists[index]
    }

    /// The most recently used idle connection of the calling worker that is still open.
    pub fn take(&self) -> Option<Box<H1Conn>> {
        self.take_at(now_ms())
    }

    /// [`IdlePool::take`] at `now` (`clock::now_ms`).
    fn take_at(&self, now: u64) -> Option<Box<H1Conn>> {
        let Ok(mut list) = self.list().lock() else {
            return None;
        };
        while let Some(mut conn) = list.pop_back() {
            if now.saturating_sub(conn.idle_since_ms) > IDLE_TIMEOUT_MS {
                // Everything older is further down the list.
                list.clear();
                return None;
            }
            if still_open(&mut conn) {
                return Some(conn);
            }
        }
        None
    }

    /// Closes the idle connections past the idle limit and those the endpoint has closed (they
    /// would otherwise hold a socket until the endpoint is used again).
    pub fn prune(&self) {
        let now = now_ms();
        for list in &self.lists {
            let Ok(mut list) = list.lock() else {
                continue;
            };
            list.retain_mut(|conn| {
                now.saturating_sub(conn.idle_since_ms) <= IDLE_TIMEOUT_MS && still_open(conn)
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

    /// Puts back a connection whose exchange is complete.
    pub(super) fn put(&self, conn: Box<H1Conn>) {
        self.put_at(conn, now_ms());
    }

    /// [`IdlePool::put`] at `now`. The connection is idle from `now`: stamped here, so that the
    /// list stays ordered by idle time whatever the exchanges took (`take` relies on it).
    fn put_at(&self, mut conn: Box<H1Conn>, now: u64) {
        let Ok(mut list) = self.list().lock() else {
            return;
        };
        conn.idle_since_ms = now;
        while list
            .front()
            .is_some_and(|c| now.saturating_sub(c.idle_since_ms) > IDLE_TIMEOUT_MS)
        {
            list.pop_front();
        }
        if list.len() < MAX_IDLE {
            conn.reused = true;
            list.push_back(conn);
        }
    }
}

/// Whether an idle connection can carry a request: the endpoint has neither closed it nor sent
/// anything unasked (a read attempt finds nothing to read).
fn still_open(conn: &mut H1Conn) -> bool {
    if !conn.read.is_empty() {
        return false;
    }
    // Plain TCP: a non-blocking read that leaves no waker behind, and costs no system call
    // while the runtime knows the socket is drained (the common case).
    if let UpstreamIo::Plain(stream) = &conn.io {
        let mut byte = [0u8; 1];
        return matches!(stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    }
    let mut cx = Context::from_waker(Waker::noop());
    conn.poll_fill(&mut cx).is_pending()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::upstream::UpstreamIo;

    async fn connected() -> (Box<H1Conn>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let tcp = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (backend_side, _) = listener.accept().await.expect("accept");
        (H1Conn::new(UpstreamIo::Plain(tcp)), backend_side)
    }

    #[tokio::test]
    async fn a_connection_back_from_a_long_exchange_does_not_flush_the_fresh_ones() {
        let pool = IdlePool::new(1);
        // Its exchange began at 0 and ends after the idle timeout.
        let (long, _long_backend) = connected().await;
        let (fresh, _fresh_backend) = connected().await;
        pool.put_at(fresh, IDLE_TIMEOUT_MS - 1_000);
        pool.put_at(long, IDLE_TIMEOUT_MS + 1_000);
        let now = IDLE_TIMEOUT_MS + 1_000;
        assert!(
            pool.take_at(now).is_some(),
            "the connection just put back is not expired"
        );
        assert!(
            pool.take_at(now).is_some(),
            "the fresh connection is still there"
        );
        // Idle past the limit, a connection is not handed out.
        let (stale, _stale_backend) = connected().await;
        pool.put_at(stale, now);
        assert!(pool.take_at(now + IDLE_TIMEOUT_MS + 1).is_none());
    }

    #[tokio::test]
    async fn pruning_closes_the_idle_connections_the_backend_closed() {
        let (conn, backend_side) = connected().await;
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
