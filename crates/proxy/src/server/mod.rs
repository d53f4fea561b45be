//! The client-facing server: one accept loop per port, HTTP/1.1 and HTTP/2 (TLS by rustls with
//! SNI), connection limits and timeouts, graceful shutdown of every connection, and the refusal
//! of HTTP/1 requests that carry both `Content-Length` and `Transfer-Encoding`.
//!
//! HTTP/1.1 connections start on Portcullis's own server for plain requests (`plain`: no
//! upgrade or `Expect`, and no body or a small sized one; most of an API gateway's traffic) and
//! move to hyper at the first other request; HTTP/2 connections are hyper's throughout.

mod activity;
mod connection;
mod framing;
mod plain;
mod supervise;
pub mod workers;

/// What the fuzz targets reach of the server (`crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    pub(crate) use super::{connection::default_http1, framing::FramingScanner, plain::fuzzing::*};
}

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    net::TcpListener,
    sync::{Notify, watch},
    task::JoinHandle,
};
use workers::{WORKER_COUNT, Worker};

use crate::gateway::Gateway;

/// Limits that protect the gateway from slow or abusive clients.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Most request headers (HTTP/1); more → 431.
    pub max_headers: usize,
    /// Most bytes of request head (HTTP/1 buffer, HTTP/2 header list); more → 431.
    pub max_header_bytes: usize,
    /// Time a client has to send a request head: the first from the accept (and, for HTTPS,
    /// the handshake has as long), every later one from its first byte. A client that runs out
    /// of it is disconnected without an answer, also while the server drains. HTTP/1 only
    /// (HTTP/2 streams have no such head). Checked every quarter of the shorter of this and the
    /// idle timeout, so a head is cut off between this long and half again as long.
    pub header_read_timeout: Duration,
    /// A connection on which no byte moved for this long is closed (gracefully: requests in
    /// flight finish). This is what a keep-alive connection waits for its next request.
    pub idle_timeout: Duration,
    /// Concurrent streams per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// Connection worker threads; 0 means one per core.
    pub workers: usize,
    /// Most client connections open at once, over every listener; 0 means no cap. At the cap
    /// the gateway stops accepting (new clients wait in the kernel's accept queue) until a
    /// connection closes, so a flood of connections cannot exhaust file descriptors.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_concurrent_streams: 1024,
            workers: 0,
            max_connections: 0,
        }
    }
}

/// Counts open connections and wakes the drain when the last one closes.
#[derive(Debug, Default)]
struct Connections {
    open: AtomicUsize,
    closed: Notify,
}

/// One accepted client connection, counted from the accept until it is dropped (whatever path
/// the connection takes), so the connection cap sees it at once.
struct Counted {
    connections: Arc<Connections>,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl Counted {
    fn new(server: &Server) -> Self {
        server.connections.open.fetch_add(1, Ordering::SeqCst);
        let gauge = server.gateway.metrics.open_connections.clone();
        gauge.inc();
        Self {
            connections: server.connections.clone(),
            gauge,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.gauge.dec();
        self.connections.open.fetch_sub(1, Ordering::SeqCst);
        self.connections.closed.notify_waiters();
    }
}

/// The running server: accept loops per port and every open connection.
#[derive(Debug)]
pub struct Server {
    gateway: Arc<Gateway>,
    limits: ServerLimits,
    accepting: Mutex<HashMap<u16, JoinHandle<()>>>,
    shutdown: watch::Sender<bool>,
    connections: Arc<Connections>,
    workers: Vec<Worker>,
    next_worker: AtomicUsize,
    /// The HTTP/1.1 and HTTP/2 settings every connection is served with.
    protocols: connection::Protocols,
}

impl Server {
    /// A server for `gateway` with its worker threads started; no port is open yet. Without
    /// workers (when their threads cannot start) connections are served on the caller's
    /// runtime.
    pub fn new(gateway: Arc<Gateway>, limits: ServerLimits) -> Arc<Self> {
        let (shutdown, _) = watch::channel(false);
        let count = match limits.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let workers: Vec<Worker> = (1..=count)
            .map_while(|index| {
                Worker::start(index)
                    .inspect_err(|error| tracing::warn!(%error, "worker not started"))
                    .ok()
            })
            .collect();
        WORKER_COUNT.fetch_max(workers.len(), Ordering::Relaxed);
        Arc::new(Self {
            gateway,
            accepting: Mutex::new(HashMap::new()),
            shutdown,
            connections: Arc::new(Connections::default()),
            workers,
            next_worker: AtomicUsize::new(0),
            protocols: connection::Protocols::new(&limits),
            limits,
        })
    }

    /// Starts accepting on `listener`. Requests are routed by the table's routes for `port`
    /// (the listener port in the snapshot, which may differ from the bound port in tests).
    pub fn serve(self: &Arc<Self>, listener: TcpListener, port: u16) {
        let server = self.clone();
        let task = tokio::spawn(async move { server.accept_loop(listener, port).await });
        if let Ok(mut accepting) = self.accepting.lock()
            && let Some(previous) = accepting.insert(port, task)
        {
            previous.abort();
        }
    }

    /// Binds every port of the current table that is not served yet, and stops accepting on
    /// ports the table no longer has. Errors name the ports that could not be bound.
    pub async fn sync_ports(self: &Arc<Self>, host: std::net::IpAddr) -> Result<(), String> {
        let table = self.gateway.table();
        let wanted: Vec<u16> = table.listeners.keys().copied().collect();
        let missing: Vec<u16> = match self.accepting.lock() {
            Ok(mut accepting) => {
                accepting.retain(|port, task| {
                    let keep = wanted.contains(port);
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                wanted
                    .iter()
                    .copied()
                    .filter(|p| !accepting.contains_key(p))
                    .collect()
            }
            Err(_) => return Err("server state poisoned".to_owned()),
        };
        let mut errors = Vec::new();
        for port in missing {
            match TcpListener::bind(SocketAddr::new(host, port)).await {
                Ok(listener) => {
                    tracing::info!(%host, port, "listening");
                    self.serve(listener, port);
                }
                Err(e) => errors.push(format!("cannot listen on {host}:{port}: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Stops accepting new connections on every port.
    pub fn stop_accepting(&self) {
        if let Ok(mut accepting) = self.accepting.lock() {
            for (_, task) in accepting.drain() {
                task.abort();
            }
        }
    }

    /// Asks every connection to finish its requests and close, then waits up to `timeout` for
    /// them. Returns the number of connections still open when it gave up.
    pub async fn shutdown_connections(&self, timeout: Duration) -> usize {
        let _ = self.shutdown.send(true);
        let wait = async {
            loop {
                let closed = self.connections.closed.notified();
                if self.connections.open.load(Ordering::SeqCst) == 0 {
                    return;
                }
                closed.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        self.connections.open.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.connections.open.load(Ordering::SeqCst)
    }

    /// Waits while the connection cap is reached.
    async fn below_connection_cap(&self) {
        let cap = self.limits.max_connections;
        if cap == 0 {
            return;
        }
        let mut warned = false;
        loop {
            let closed = self.connections.closed.notified();
            if self.connections.open.load(Ordering::SeqCst) < cap {
                return;
            }
            if !warned {
                tracing::warn!(cap, "connection cap reached; new connections wait");
                warned = true;
            }
            closed.await;
        }
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, port: u16) {
        loop {
            self.below_connection_cap().await;
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, port, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let counted = Counted::new(&self);
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            if self.workers.is_empty() {
                tokio::spawn(async move { server.connection(stream, peer, port, counted).await });
                continue;
            }
            // Hand the socket to a worker: it is registered with that worker's reactor.
            let Ok(stream) = stream.into_std() else {
                continue;
            };
            let index = self.next_worker.fetch_add(1, Ordering::Relaxed) % self.workers.len();
            self.workers[index].spawn(async move {
                match tokio::net::TcpStream::from_std(stream) {
                    Ok(stream) => server.connection(stream, peer, port, counted).await,
                    Err(error) => tracing::warn!(%error, "connection lost moving to a worker"),
                }
            });
        }
    }
}
