//! The client-facing server: one accept loop per port, HTTP/1.1 and HTTP/2 (TLS by rustls with
//! SNI), connection limits and timeouts, graceful shutdown of every connection, and the refusal
//! of HTTP/1 requests that carry both `Content-Length` and `Transfer-Encoding`.

mod activity;
mod framing;
mod supervise;
pub mod workers;

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use activity::ActivityIo;
use framing::{ConflictingFraming, HeadProgress};
use http::Version;
use hyper::{
    Request,
    body::Incoming,
    server::conn::{http1, http2},
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use supervise::{Event, Supervisor};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::{Notify, watch},
    task::JoinHandle,
};
use workers::{WORKER_COUNT, Worker};

use crate::{
    clock::now_ms,
    filters::Scheme,
    forward::{Connection, FramingConflict, ObservedBody},
    gateway::Gateway,
};

/// Limits that protect the gateway from slow or abusive clients.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Most request headers (HTTP/1); more → 431.
    pub max_headers: usize,
    /// Most bytes of request head (HTTP/1 buffer, HTTP/2 header list); more → 431.
    pub max_header_bytes: usize,
    /// Time a client has to send the request head (and, for HTTPS, finish the handshake).
    pub header_read_timeout: Duration,
    /// A connection on which no byte moved for this long is closed (gracefully: requests in
    /// flight finish).
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

/// The HTTP/1.1 and HTTP/2 settings of client connections, from `limits`.
#[derive(Debug, Clone)]
struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Protocols {
    fn new(limits: &ServerLimits) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            // The header read timeout is the connection supervisor's (see `Server::drive`): a
            // timer per request costs more than the supervisor's timer per connection.
            .header_read_timeout(None)
            .max_headers(limits.max_headers)
            // A response head and a small body go out in one buffer: cheaper than queueing the
            // body for a vectored write, and larger bodies are copied in chunks of at most
            // the buffer size.
            .writev(false)
            .max_header_size(limits.max_header_bytes)
            .max_buf_size(limits.max_header_bytes.max(8192));
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(limits.max_concurrent_streams)
            .keep_alive_interval(Duration::from_secs(30));
        Self { http1, http2 }
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4): what a client speaking HTTP/2 without TLS
/// sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a cleartext client speaks HTTP/2 (prior knowledge), from its first bytes, read
/// without consuming them. `None` when the client closed or sent nothing in time.
async fn speaks_h2(stream: &tokio::net::TcpStream, timeout: Duration) -> Option<bool> {
    let sniff = async {
        let mut start = [0u8; H2_PREFACE.len()];
        loop {
            let n = stream.peek(&mut start).await.ok()?;
            let seen = start.get(..n)?;
            if n == 0 {
                return None;
            }
            if !H2_PREFACE.starts_with(seen) {
                return Some(false);
            }
            if n == H2_PREFACE.len() {
                return Some(true);
            }
            // Part of the preface so far (rare: clients send it in one packet). Peeking again
            // at once would find the same bytes.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(timeout, sniff).await.ok().flatten()
}

/// A client connection being served, whichever protocol it speaks.
trait Served: Future<Output = hyper::Result<()>> {
    /// Finishes the requests in flight, refuses new ones and closes.
    fn shut_down(self: Pin<&mut Self>);
}

impl<I, S> Served for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = ObservedBody>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> Served for http2::Connection<I, S, TokioExecutor>
where
    S: hyper::service::HttpService<Incoming, ResBody = ObservedBody>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// A connection as accepted.
#[derive(Debug, Clone, Copy)]
struct Accepted {
    peer: SocketAddr,
    port: u16,
    scheme: Scheme,
    /// When it was accepted (`clock::now_ms`).
    accepted_ms: u64,
}

/// What the connection supervisor watches.
struct Watch {
    /// Reads and writes that moved bytes.
    activity: Arc<AtomicU64>,
    /// The request head being read (HTTP/1).
    heads: Option<Arc<HeadProgress>>,
    /// When the connection was accepted.
    accepted_ms: u64,
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
    protocols: Protocols,
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
            protocols: Protocols::new(&limits),
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

    async fn connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        port: u16,
        _counted: Counted,
    ) {
        let accepted_ms = now_ms();
        let tls = self
            .gateway
            .table()
            .listener(port)
            .and_then(|l| l.tls.clone());
        match tls {
            Some(config) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let handshake =
                    tokio::time::timeout(self.limits.header_read_timeout, acceptor.accept(stream))
                        .await;
                if let Ok(Ok(stream)) = handshake {
                    // RFC 9113 §3.3: over TLS, HTTP/2 is chosen by ALPN.
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    let scheme = Scheme::Https;
                    self.serve_http(
                        stream,
                        Accepted {
                            peer,
                            port,
                            scheme,
                            accepted_ms,
                        },
                        h2,
                    )
                    .await;
                }
            }
            None => {
                if let Some(h2) = speaks_h2(&stream, self.limits.header_read_timeout).await {
                    let scheme = Scheme::Http;
                    self.serve_http(
                        stream,
                        Accepted {
                            peer,
                            port,
                            scheme,
                            accepted_ms,
                        },
                        h2,
                    )
                    .await;
                }
            }
        }
    }

    async fn serve_http<T>(&self, stream: T, accepted: Accepted, h2: bool)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(AtomicU64::new(0));
        let conflicts = Arc::new(ConflictingFraming::default());
        let heads = Arc::new(HeadProgress::default());
        let io = TokioIo::new(ActivityIo::new(
            stream,
            activity.clone(),
            conflicts.clone(),
            heads.clone(),
        ));
        let conn_info = Arc::new(Connection::new(
            accepted.peer,
            accepted.port,
            accepted.scheme,
        ));
        let gateway = self.gateway.clone();
        let service_heads = heads.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            let gateway = gateway.clone();
            let conn_info = conn_info.clone();
            // Counted here, as hyper hands over each request in order; HTTP/2 requests are not
            // counted (the scanner is off on HTTP/2 connections).
            if req.version() <= Version::HTTP_11 {
                service_heads.request_started();
                if conflicts.next_request_conflicts() {
                    req.extensions_mut().insert(FramingConflict);
                }
            }
            async move { Ok::<_, Infallible>(gateway.handle(conn_info, req).await) }
        });
        let watch = Watch {
            activity,
            // HTTP/2 has no request heads to wait for; its connections idle between streams.
            heads: (!h2).then_some(heads),
            accepted_ms: accepted.accepted_ms,
        };
        if h2 {
            let conn = self.protocols.http2.serve_connection(io, service);
            self.drive(conn, accepted.peer, watch).await;
        } else {
            let conn = self
                .protocols
                .http1
                .serve_connection(io, service)
                .with_upgrades();
            self.drive(conn, accepted.peer, watch).await;
        }
    }

    /// Serves `conn` until it ends: closed gracefully when the server shuts down or when no
    /// byte moved for the idle timeout, and at once when a request head (the first from the
    /// accept, later ones from their first byte) took longer than the header read timeout.
    async fn drive<C: Served>(&self, conn: C, peer: SocketAddr, watch: Watch) {
        tokio::pin!(conn);
        let mut shutdown = self.shutdown.subscribe();
        let idle = self.limits.idle_timeout;
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let header_timeout = self.limits.header_read_timeout;
        let header_ms = u64::try_from(header_timeout.as_millis()).unwrap_or(u64::MAX);
        let period = (idle.min(header_timeout) / 4).max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval(period);
        let (mut last_count, mut quiet_since) = (0u64, now_ms());
        // The head awaited and since when.
        let mut head_since = watch
            .heads
            .as_ref()
            .and_then(|heads| heads.pending_head())
            .map(|head| (head, watch.accepted_ms));
        let mut closing = *shutdown.borrow();
        if closing {
            conn.as_mut().shut_down();
        }
        let supervisor = Supervisor::new();
        loop {
            let event = {
                let changed = pin!(shutdown.changed());
                let (changed, ticker) = if closing {
                    (None, None)
                } else {
                    (Some(changed), Some(&mut ticker))
                };
                supervisor.next(conn.as_mut(), changed, ticker).await
            };
            match event {
                Event::Done(result) => {
                    if let Err(error) = result {
                        tracing::debug!(%error, %peer, "connection ended with an error");
                    }
                    return;
                }
                Event::Shutdown => {
                    if shutdown.has_changed().is_err() || *shutdown.borrow() {
                        closing = true;
                        conn.as_mut().shut_down();
                    }
                }
                Event::Tick => {
                    let now = now_ms();
                    let pending = watch.heads.as_ref().and_then(|heads| heads.pending_head());
                    head_since = match (pending, head_since) {
                        (Some(head), Some((since_head, since))) if head == since_head => {
                            if now.saturating_sub(since) >= header_ms {
                                tracing::debug!(%peer, "request head not received in time");
                                return;
                            }
                            Some((head, since))
                        }
                        (Some(head), _) => Some((head, now)),
                        (None, _) => None,
                    };
                    let count = watch.activity.load(Ordering::Relaxed);
                    if count != last_count {
                        (last_count, quiet_since) = (count, now);
                    }
                    if now.saturating_sub(quiet_since) >= idle_ms {
                        closing = true;
                        conn.as_mut().shut_down();
                    }
                }
            }
        }
    }
}
