//! Test harness: real upstream servers, a gateway on real sockets, snapshot builders, a client.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use portcullis_config::snapshot::*;
use portcullis_proxy::{DataPlane, DataPlaneOptions, compile::Secrets, server::ServerLimits};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

/// The listener port every test snapshot uses (the key of the routes; the bound port differs).
pub const PORT: u16 = 8080;

/// A real HTTP server that answers with a JSON description of the request it got.
///
/// Paths: `/delay/<ms>/...` waits, `/status/<code>/...` answers that status, `/ws` upgrades and
/// echoes bytes, `/text/...` answers plain text, `/big/<bytes>/...` a JSON string that long.
/// Every answer carries `x-upstream: <name>`.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Upstream {
    pub async fn start(name: &str) -> Self {
        Self::start_on(name, "127.0.0.1:0".parse().expect("addr"), false).await
    }

    pub async fn start_h2(name: &str) -> Self {
        Self::start_on(name, "127.0.0.1:0".parse().expect("addr"), true).await
    }

    pub async fn start_on(name: &str, addr: SocketAddr, h2: bool) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let (name_owned, hits_task) = (name.to_owned(), hits.clone());
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let conns = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let name = name_owned.clone();
                let hits = hits_task.clone();
                let conn = tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let name = name.clone();
                        let hits = hits.clone();
                        async move { Ok::<_, Infallible>(answer(&name, &hits, req).await) }
                    });
                    let io = TokioIo::new(stream);
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .with_upgrades()
                            .await;
                    }
                });
                if let Ok(mut conns) = conns.lock() {
                    conns.push(conn.abort_handle());
                }
            }
        });
        Self {
            name: name.to_owned(),
            addr,
            hits,
            task,
            connections,
        }
    }

    /// Stops the server: new connections are refused and open ones are closed.
    pub fn stop(&self) {
        self.task.abort();
        if let Ok(conns) = self.connections.lock() {
            for conn in conns.iter() {
                conn.abort();
            }
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A body that sends one chunk, then stalls for a while before ending.
struct StallBody {
    first: Option<Bytes>,
    stall: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for StallBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if let Some(first) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(first))));
        }
        match self.stall.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

type TestBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// `/stall/<ms>`: the head and a first chunk at once, the end of the body after `ms`.
async fn answer(name: &str, hits: &AtomicUsize, req: Request<Incoming>) -> Response<TestBody> {
    if let Some(ms) = req
        .uri()
        .path()
        .strip_prefix("/stall/")
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        hits.fetch_add(1, Ordering::SeqCst);
        let body = StallBody {
            first: Some(Bytes::from_static(b"head arrives in time; ")),
            stall: Box::pin(tokio::time::sleep(Duration::from_millis(ms))),
        };
        return Response::new(BodyExt::boxed(body));
    }
    answer_full(name, hits, req).await.map(BodyExt::boxed)
}

async fn answer_full(
    name: &str,
    hits: &AtomicUsize,
    mut req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    let mut status = StatusCode::OK;
    let segments: Vec<&str> = path.split('/').collect();
    if segments.get(1) == Some(&"delay")
        && let Some(ms) = segments.get(2).and_then(|s| s.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if segments.get(1) == Some(&"status")
        && let Some(code) = segments.get(2).and_then(|s| s.parse::<u16>().ok())
    {
        status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    }
    if segments.get(1) == Some(&"text") {
        return Response::builder()
            .status(status)
            .header("x-upstream", name)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(format!("{name} {path}"))))
            .expect("response");
    }
    if segments.get(1) == Some(&"big")
        && let Some(bytes) = segments.get(2).and_then(|s| s.parse::<usize>().ok())
    {
        return Response::builder()
            .status(status)
            .header("x-upstream", name)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!(
                "\"{}\"",
                "x".repeat(bytes.saturating_sub(2))
            ))))
            .expect("response");
    }
    if path == "/ws" {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let (mut r, mut w) = tokio::io::split(&mut io);
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Full::new(Bytes::new()))
            .expect("response");
    }
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let method = req.method().to_string();
    let query = req.uri().query().map(str::to_owned);
    let version = format!("{:?}", req.version());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let description = json!({
        "upstream": name,
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "version": version,
        "body": String::from_utf8_lossy(&body),
    });
    Response::builder()
        .status(status)
        .header("x-upstream", name)
        .header("x-backend-header", "from-backend")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(description.to_string())))
        .expect("response")
}

/// A data plane on 127.0.0.1 with its client port bound to an ephemeral port.
pub struct Gateway {
    pub plane: DataPlane,
    pub addr: SocketAddr,
}

impl Gateway {
    pub async fn start(snapshot: &Snapshot) -> Self {
        Self::start_with(snapshot, ServerLimits::default()).await
    }

    pub async fn start_with(snapshot: &Snapshot, limits: ServerLimits) -> Self {
        Self::start_options(snapshot, Self::options(limits)).await
    }

    /// The options every test gateway starts with.
    pub fn options(limits: ServerLimits) -> DataPlaneOptions {
        DataPlaneOptions {
            admin: "127.0.0.1:0".parse().expect("addr"),
            listen_host: "127.0.0.1".parse().expect("ip"),
            access_log: false,
            trusted_proxies: vec!["10.0.0.0/8".into()],
            limits,
            purge_token_file: None,
        }
    }

    pub async fn start_options(snapshot: &Snapshot, options: DataPlaneOptions) -> Self {
        let plane = DataPlane::start(options).await.expect("start data plane");
        // Compile and install without binding the snapshot's port; the test binds its own.
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gateway");
        let addr = listener.local_addr().expect("addr");
        plane.server().serve(listener, PORT);
        let table =
            portcullis_proxy::compile::compile(snapshot, &plane.gateway().table(), &secrets());
        plane.gateway().install(table, std::time::Instant::now());
        Self { plane, addr }
    }

    /// Swaps in another snapshot (like a reload, without binding ports).
    pub fn reload(&self, snapshot: &Snapshot) {
        let table =
            portcullis_proxy::compile::compile(snapshot, &self.plane.gateway().table(), &secrets());
        self.plane
            .gateway()
            .install(table, std::time::Instant::now());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.plane.admin_addr())
    }
}

pub fn secrets() -> Secrets {
    Secrets::new(PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

/// A keep-alive HTTP client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// A reply: status, headers, body text, and the upstream's description when it is JSON.
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn upstream(&self) -> Option<String> {
        self.headers
            .get("x-upstream")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// A request header as the upstream saw it.
    pub fn seen_header(&self, name: &str) -> Option<String> {
        self.json()["headers"][name].as_str().map(str::to_owned)
    }

    pub fn seen_path(&self) -> Option<String> {
        self.json()["path"].as_str().map(str::to_owned)
    }
}

pub async fn send(request: Request<Full<Bytes>>) -> Reply {
    let response = client()
        .request(request)
        .await
        .expect("request goes through");
    read(response).await
}

pub async fn read(response: Response<Incoming>) -> Reply {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// GET `path` on the gateway with `Host: host`.
/// A GET of `path` on the gateway's admin listener.
pub fn admin_get(gw: &Gateway, path: &str) -> Request<Full<Bytes>> {
    Request::get(gw.admin_url(path))
        .body(Full::new(Bytes::new()))
        .expect("a request")
}

pub async fn get(gw: &Gateway, host: &str, path: &str) -> Reply {
    send(request(gw, "GET", host, path)).await
}

pub fn request(gw: &Gateway, method: &str, host: &str, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(gw.url(path))
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

/// A port nothing listens on right now, for snapshots whose ports the data plane binds itself.
pub async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Polls `check` until it holds, for at most 10 s (no timing assertion: only a bound).
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

// ---------------------------------------------------------------- snapshot builders

/// A snapshot under construction: one HTTP listener on [`PORT`].
pub struct Snap(pub Snapshot);

impl Snap {
    pub fn new() -> Self {
        Snap(Snapshot {
            api_version: API_VERSION.to_owned(),
            gateway: ObjectKey::new("test", "gw"),
            revision: String::new(),
            listeners: vec![ListenerConfig {
                port: PORT,
                protocol: Protocol::Http,
                tls: None,
                virtual_hosts: Vec::new(),
            }],
            rules: Vec::new(),
            backends: BTreeMap::new(),
            drain: DrainConfig {
                delay_ms: 0,
                timeout_ms: 5000,
            },
            shared_state: None,
        })
    }

    pub fn backend(self, name: &str, endpoints: &[SocketAddr]) -> Self {
        self.backend_with(name, endpoints, |_| {})
    }

    pub fn backend_with(
        mut self,
        name: &str,
        endpoints: &[SocketAddr],
        edit: impl FnOnce(&mut BackendConfig),
    ) -> Self {
        let mut config = BackendConfig {
            discovery: Discovery::Static {
                endpoints: endpoints
                    .iter()
                    .map(|a| EndpointConfig {
                        address: a.ip().to_string(),
                        port: a.port(),
                    })
                    .collect(),
            },
            protocol: UpstreamProtocol::Http1,
            tls: None,
            connect_timeout_ms: 1000,
            load_balancer: LoadBalancerConfig {
                policy: LoadBalancerPolicy::RoundRobin,
                hash_on: None,
            },
            health_check: None,
            outlier_detection: None,
            circuit_breaker: None,
            failover: Vec::new(),
        };
        edit(&mut config);
        self.0.backends.insert(format!("test/{name}"), config);
        self
    }

    /// Adds a rule and one entry for it under `host` (entries keep the order of the calls, so
    /// tests add them in precedence order).
    pub fn route(mut self, host: &str, matcher: MatchConfig, rule: RuleConfig) -> Self {
        let index = self.0.rules.len();
        self.0.rules.push(rule);
        self.entry(host, matcher, index)
    }

    /// Adds another entry for an existing rule.
    pub fn entry(mut self, host: &str, matcher: MatchConfig, rule: usize) -> Self {
        let listener = &mut self.0.listeners[0];
        let vhost = match listener
            .virtual_hosts
            .iter()
            .position(|v| v.hostname == host)
        {
            Some(i) => &mut listener.virtual_hosts[i],
            None => {
                listener.virtual_hosts.push(VirtualHost {
                    hostname: host.to_owned(),
                    listener: "http".to_owned(),
                    routes: Vec::new(),
                });
                listener.virtual_hosts.last_mut().expect("just pushed")
            }
        };
        vhost.routes.push(RouteEntry {
            rule,
            match_index: 0,
            r#match: matcher,
        });
        self
    }

    pub fn edit(mut self, f: impl FnOnce(&mut Snapshot)) -> Self {
        f(&mut self.0);
        self
    }

    pub fn build(mut self) -> Snapshot {
        self.0.seal();
        self.0
    }
}

pub fn prefix(value: &str) -> MatchConfig {
    path_match(PathMatchType::PathPrefix, value)
}

pub fn exact(value: &str) -> MatchConfig {
    path_match(PathMatchType::Exact, value)
}

pub fn path_match(kind: PathMatchType, value: &str) -> MatchConfig {
    MatchConfig {
        path: PathMatchConfig {
            kind,
            value: value.to_owned(),
        },
        method: None,
        headers: Vec::new(),
        query_params: Vec::new(),
    }
}

/// A rule of Route `test/<route>` forwarding to weighted backends (`None` = unresolved).
pub fn to(route: &str, backends: &[(Option<&str>, u32)]) -> RuleConfig {
    rule(
        route,
        Action::Backends {
            backends: backends
                .iter()
                .map(|(name, weight)| WeightedBackend {
                    backend: name.map(|n| format!("test/{n}")),
                    weight: *weight,
                })
                .collect(),
        },
    )
}

pub fn rule(route: &str, action: Action) -> RuleConfig {
    RuleConfig {
        route: ObjectKey::new("test", route),
        rule_index: 0,
        name: None,
        filters: Vec::new(),
        action,
        policies: ResolvedPolicies::default(),
        upgrades: None,
    }
}

/// A gateway routing everything to one upstream, `a`, served with `limits`.
pub async fn one_upstream(limits: ServerLimits) -> (Upstream, Gateway) {
    let a = Upstream::start("a").await;
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), to("r", &[(Some("a"), 1)]))
        .build();
    (a, Gateway::start_with(&snapshot, limits).await)
}

/// A circuit breaker that lets one request at a time through to the backend.
pub fn one_at_a_time(backend: &mut BackendConfig) {
    backend.circuit_breaker = Some(CircuitBreakerConfig {
        max_connections: 1,
        max_pending_requests: 0,
        max_requests: 1,
    });
}

/// Everything the gateway sends on `stream` until it closes the connection; `None` when it did
/// not close within 5 s. A reset counts as the close (the gateway may close with bytes of the
/// client's still unread, which the kernel answers with a reset).
pub async fn until_closed(stream: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 16 * 1024];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// A connection to the gateway, Nagle off (so that the pieces a test writes go out apart).
pub async fn connect(gw: &Gateway) -> tokio::net::TcpStream {
    let stream = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Reads the gateway's reply on `client` until `done` says it is complete; fails if the gateway
/// closes the connection first, or 5 s pass.
pub async fn read_until(
    client: &mut tokio::net::TcpStream,
    done: impl Fn(&[u8]) -> bool,
) -> String {
    use tokio::io::AsyncReadExt;
    let mut reply = Vec::new();
    while !done(&reply) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "reply incomplete after 5 s: {}",
                    String::from_utf8_lossy(&reply)
                )
            })
            .expect("read");
        assert!(
            n > 0,
            "reply cut short: {}",
            String::from_utf8_lossy(&reply)
        );
        reply.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// The `Content-Length` of a message head, its field names in any case.
pub fn content_length(head: &str) -> Option<usize> {
    head.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// Whether `reply` holds a whole answer framed by its `Content-Length`.
pub fn sized_answer_complete(reply: &[u8]) -> bool {
    let text = String::from_utf8_lossy(reply);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    content_length(head).is_some_and(|length| body.len() >= length)
}

/// Sends `request` on a new connection (Nagle off) and returns everything the gateway sent
/// until it closed the connection, which it must within 5 s.
pub async fn raw(gw: &Gateway, request: &[u8]) -> String {
    use tokio::io::AsyncWriteExt;
    let mut stream = connect(gw).await;
    stream.write_all(request).await.expect("write");
    until_closed(&mut stream)
        .await
        .expect("the gateway answered and closed the connection within 5 s")
}

// ---------------------------------------------------------------- processes

/// The `serve_snapshot` example, built by `cargo test` next to the test binaries.
/// A missing binary fails the test: passing without running it would hide the gap.
pub fn serve_snapshot() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary sits in <target>/<profile>/deps")
        .join("examples")
        .join("serve_snapshot");
    assert!(
        path.exists(),
        "the serve_snapshot example is missing at {}; build it first: \
         cargo build -p portcullis-proxy --example serve_snapshot; make test builds it",
        path.display()
    );
    path
}

/// Kills the child if the test fails before it exits.
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// Starts `serve_snapshot serve FILE ADMIN` (what `portcullis proxy --config FILE` runs), its
/// output discarded; killed when the guard drops.
pub fn spawn_serving(file: &std::path::Path, admin: u16) -> (std::process::Child, KillOnDrop) {
    let child = std::process::Command::new(serve_snapshot())
        .arg("serve")
        .arg(file)
        .arg(format!("127.0.0.1:{admin}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let guard = KillOnDrop(child.id());
    (child, guard)
}

/// GET `url`, or `None` when nothing answers.
pub async fn fetch(url: String) -> Option<Reply> {
    let req = Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("req");
    Some(read(client().request(req).await.ok()?).await)
}

/// Polls `url` until it answers 200, for at most 10 s.
pub async fn answers_ok(url: String) -> bool {
    eventually(|| async {
        fetch(url.clone())
            .await
            .is_some_and(|reply| reply.status == StatusCode::OK)
    })
    .await
}

/// A gateway sending everything to `primary` and a copy of each request to `shadow`, with at
/// most `max_in_flight` copies in flight.
pub async fn mirrored(max_in_flight: u32) -> (Upstream, Upstream, Gateway) {
    let (primary, shadow) = (
        Upstream::start("primary").await,
        Upstream::start("shadow").await,
    );
    let mut rule = to("mirrored", &[(Some("primary"), 1)]);
    rule.filters = vec![FilterConfig::RequestMirror(MirrorConfig {
        backend: Some("test/shadow".into()),
        percent: 100,
        max_in_flight,
    })];
    let snapshot = Snap::new()
        .backend("primary", &[primary.addr])
        .backend("shadow", &[shadow.addr])
        .route("*", prefix("/"), rule)
        .build();
    let gw = Gateway::start(&snapshot).await;
    (primary, shadow, gw)
}
