//! One client connection: TLS, the protocol it speaks (ALPN over TLS, the preface in
//! cleartext), the plain HTTP/1.1 server or hyper serving it, and its supervision (graceful
//! shutdown, idle and header-read timeouts).

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http::{HeaderValue, StatusCode, Version, header::CONNECTION};
use hyper::{
    Request,
    body::Incoming,
    server::conn::{http1, http2},
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite},
    net::TcpStream,
};

use super::{
    Counted, Server, ServerLimits,
    activity::ActivityIo,
    framing::{ConflictingFraming, HeadProgress},
    plain::{self, Ended},
    supervise::{Event, Supervisor},
};
use crate::{
    clock::now_ms,
    filters::Scheme,
    forward::{Connection, FramingConflict, ObservedBody},
    gateway::Gateway,
    upstream::materialize,
};

/// The HTTP/1.1 and HTTP/2 settings of client connections, from `limits`.
#[derive(Debug, Clone)]
pub(super) struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Protocols {
    pub(super) fn new(limits: &ServerLimits) -> Self {
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

/// hyper's HTTP/1.1 settings for the client connections of a server with default limits: the
/// reference the plain server is fuzzed against (`crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) fn default_http1() -> http1::Builder {
    Protocols::new(&ServerLimits::default()).http1
}

/// The HTTP/2 connection preface (RFC 9113 §3.4): what a client speaking HTTP/2 without TLS
/// sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether a cleartext client speaks HTTP/2 (prior knowledge), from its first bytes, and those
/// bytes (to be replayed to the protocol that serves it). Reads only as far as it takes to
/// decide: a request line tells at its first byte that differs from the preface. `None` when
/// the client closed or did not decide within `timeout`.
async fn sniff_h2(stream: &mut TcpStream, timeout: Duration) -> Option<(bool, Vec<u8>)> {
    let sniff = async {
        let mut seen = Vec::with_capacity(H2_PREFACE.len());
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            let want = H2_PREFACE.len() - seen.len();
            let n = stream.read(buf.get_mut(..want)?).await.ok()?;
            if n == 0 {
                return None;
            }
            seen.extend_from_slice(buf.get(..n)?);
            if !H2_PREFACE.starts_with(&seen) {
                return Some((false, seen));
            }
            if seen.len() == H2_PREFACE.len() {
                return Some((true, seen));
            }
        }
    };
    tokio::time::timeout(timeout, sniff).await.ok().flatten()
}

/// A client connection being served, whichever protocol it speaks.
trait Served: Future {
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

impl<F: Future> Served for plain::PlainConnection<F> {
    fn shut_down(self: Pin<&mut Self>) {
        plain::PlainConnection::shut_down(&self);
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

impl Server {
    pub(super) async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
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
                    let accepted = Accepted {
                        peer,
                        port,
                        scheme: Scheme::Https,
                        accepted_ms,
                    };
                    self.serve_http(stream, Vec::new(), accepted, h2).await;
                }
            }
            None => {
                let mut stream = stream;
                let sniffed = sniff_h2(&mut stream, self.limits.header_read_timeout).await;
                if let Some((h2, start)) = sniffed {
                    let accepted = Accepted {
                        peer,
                        port,
                        scheme: Scheme::Http,
                        accepted_ms,
                    };
                    self.serve_http(stream, start, accepted, h2).await;
                }
            }
        }
    }

    /// Serves `stream`, whose first bytes, already read, are `start`: HTTP/1.1 by the plain
    /// server until a request it does not take (then by hyper), HTTP/2 by hyper.
    async fn serve_http<T>(&self, stream: T, start: Vec<u8>, accepted: Accepted, h2: bool)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(AtomicU64::new(0));
        let heads = Arc::new(HeadProgress::default());
        let conn_info = Connection::new(accepted.peer, accepted.port, accepted.scheme);
        let watch = Watch {
            activity: activity.clone(),
            // HTTP/2 has no request heads to wait for; its connections idle between streams.
            heads: (!h2).then(|| heads.clone()),
            accepted_ms: accepted.accepted_ms,
        };
        if h2 {
            let conflicts = Arc::new(ConflictingFraming::default());
            let io = ActivityIo::new(stream, start, activity, conflicts.clone(), heads.clone());
            let service =
                hyper_service(self.gateway.clone(), Arc::new(conn_info), conflicts, heads);
            let conn = self
                .protocols
                .http2
                .serve_connection(TokioIo::new(io), service);
            self.drive_to_end(conn, accepted.peer, &watch).await;
            return;
        }
        let io = ActivityIo::unscanned(stream, activity, heads.clone());
        // The plain server writes an endpoint's fields as they came; hyper, after a hand-over,
        // from the header map.
        let plain_conn = Arc::new(Connection {
            relays_heads: true,
            ..conn_info
        });
        let setup = plain::Setup {
            gateway: self.gateway.clone(),
            conn: plain_conn.clone(),
            heads: heads.clone(),
            max_headers: self.limits.max_headers,
            max_header_bytes: self.limits.max_header_bytes,
        };
        let served = self
            .drive(plain::serve(io, &start, setup), accepted.peer, &watch)
            .await;
        let (mut io, unread) = match served {
            Some(Ok(Ended::HandOver(io, unread))) => (io, unread),
            Some(Err(error)) => {
                tracing::debug!(%error, peer = %accepted.peer, "connection ended with an error");
                return;
            }
            Some(Ok(Ended::Closed)) | None => return,
        };
        let conflicts = Arc::new(ConflictingFraming::default());
        io.hand_over(unread.to_vec(), conflicts.clone());
        let conn_info = Arc::new(Connection {
            relays_heads: false,
            ..Connection::clone(&plain_conn)
        });
        let service = hyper_service(self.gateway.clone(), conn_info, conflicts, heads);
        let conn = self
            .protocols
            .http1
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        self.drive_to_end(conn, accepted.peer, &watch).await;
    }

    /// [`Server::drive`] for hyper's connections, which end with nothing to hand on.
    async fn drive_to_end<C>(&self, conn: C, peer: SocketAddr, watch: &Watch)
    where
        C: Served<Output = hyper::Result<()>>,
    {
        if let Some(Err(error)) = self.drive(conn, peer, watch).await {
            tracing::debug!(%error, %peer, "connection ended with an error");
        }
    }

    /// Serves `conn` until it ends: closed gracefully when the server shuts down or when no
    /// byte moved for the idle timeout, and at once when a request head (the first from the
    /// accept, later ones from their first byte) took longer than the header read timeout.
    /// `None` when the supervisor cut the connection off.
    async fn drive<C: Served>(
        &self,
        conn: C,
        peer: SocketAddr,
        watch: &Watch,
    ) -> Option<C::Output> {
        tokio::pin!(conn);
        let mut shutdown = self.shutdown.subscribe();
        let idle = self.limits.idle_timeout;
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let header_timeout = self.limits.header_read_timeout;
        let header_ms = u64::try_from(header_timeout.as_millis()).unwrap_or(u64::MAX);
        // Timeouts are checked at ticks: a quarter of the shortest one that applies (a head's
        // wait starts counting at the first tick that sees it, so it ends within 1.5 times its
        // limit at most).
        let shortest = if watch.heads.is_some() {
            idle.min(header_timeout)
        } else {
            idle
        };
        let period = (shortest / 4).max(Duration::from_millis(10));
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
                // While closing, the header read timeout still applies: a connection stuck in a
                // request head does not close gracefully.
                let changed = pin!(shutdown.changed());
                let changed = (!closing).then_some(changed);
                supervisor
                    .next(conn.as_mut(), changed, Some(&mut ticker))
                    .await
            };
            match event {
                Event::Done(output) => return Some(output),
                Event::Shutdown(changed) => {
                    if changed.is_err() || *shutdown.borrow() {
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
                                return None;
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
                    if !closing && now.saturating_sub(quiet_since) >= idle_ms {
                        closing = true;
                        conn.as_mut().shut_down();
                    }
                }
            }
        }
    }
}

/// The service hyper calls for each request of a connection.
fn hyper_service(
    gateway: Arc<Gateway>,
    conn_info: Arc<Connection>,
    conflicts: Arc<ConflictingFraming>,
    heads: Arc<HeadProgress>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = hyper::Response<ObservedBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<hyper::Response<ObservedBody>, Infallible>> + Send,
> + Clone {
    service_fn(move |mut req: Request<Incoming>| {
        let gateway = gateway.clone();
        let conn_info = conn_info.clone();
        // Counted here, as hyper hands over each request in order; HTTP/2 requests are not
        // counted (the scanner is off on HTTP/2 connections).
        let http1 = req.version() <= Version::HTTP_11;
        if http1 {
            heads.request_started();
            if conflicts.next_request_conflicts() {
                req.extensions_mut().insert(FramingConflict);
            }
        }
        let heads = heads.clone();
        async move {
            let (mut head, body) = req.into_parts();
            let mut response = gateway.handle(&conn_info, &mut head, body).await;
            // hyper writes the header map (its connections never ask for relayed fields).
            materialize(&mut response);
            // Once the scanner stopped following the requests (an upgrade or tunnel the
            // backend refused, framing it cannot follow), neither the smuggling defence nor
            // the header read timeout covers a next request: the connection ends here.
            if http1 && heads.is_off() && response.status() != StatusCode::SWITCHING_PROTOCOLS {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(response)
        }
    })
}
