//! What the in-cluster proxy tests share: real HTTP upstreams on loopback, the manifests of a
//! Gateway on a free loopback port, and the real `portcullis proxy --configmap` process.
//!
//! A test binary pulls it in next to the harness and the operator support:
//! `mod support; #[path = "operator_support/mod.rs"] mod operator_support;
//! #[path = "proxy_support/mod.rs"] mod proxy_support;`
#![allow(
    dead_code,
    reason = "each proxy test binary uses a different part of these helpers"
)]

use std::{
    convert::Infallible,
    fs,
    net::{SocketAddr, TcpListener as StdListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, ResourceExt as _};
use portcullis_config::{Snapshot, configmap::snapshot_from_configmap};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{
    operator_support::TIMEOUT,
    support::control_plane::{TestContext, eventually},
};

/// The Gateway every proxy test serves.
pub const GATEWAY: &str = "edge";

/// A free loopback address (the port is free now; tests bind it at once).
pub fn free_addr() -> SocketAddr {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// An IPv4 address of this machine that is not loopback: the API server refuses loopback
/// addresses in EndpointSlices, so upstreams behind a `service` backend listen here. Found the
/// way the kernel picks a source address for a UDP "connection" (no packet is sent).
///
/// # Panics
/// When the machine has no route to anything but loopback.
pub fn host_ip() -> std::net::IpAddr {
    [
        "192.0.2.1:9",
        "10.0.0.1:9",
        "172.16.0.1:9",
        "192.168.0.1:9",
        "8.8.8.8:53",
    ]
    .iter()
    .find_map(|destination| {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.connect(destination).ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    })
    .expect(
        "a non-loopback IPv4 address on this machine (EndpointSlices may not hold loopback \
             addresses, so the test's upstreams need one)",
    )
}

/// The `portcullis` binary: `$PORTCULLIS_BIN` (e.g. a release build), else this build's.
pub fn proxy_binary() -> String {
    std::env::var("PORTCULLIS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_portcullis").to_owned())
}

/// A real HTTP/1.1 server on loopback that answers every request `200` with
/// `<name> <path>`, or, to a request that accepts only JSON (as an aggregate's parts do), with
/// `{"upstream": "<name>", "path": "<path>"}`.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    paths: Arc<std::sync::Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Starts the upstream `name` on `addr`.
    pub async fn start(name: &'static str, addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("upstream {name} binds {addr}: {e}"));
        let addr = listener.local_addr().expect("a bound address");
        let hits = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (counter, seen) = (hits.clone(), paths.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (counter, seen) = (counter.clone(), seen.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut seen) = seen.lock() {
                            seen.push(format!("{} {}", request.method(), request.uri().path()));
                        }
                        let path = request.uri().path();
                        let wants_json = request
                            .headers()
                            .get(http::header::ACCEPT)
                            .is_some_and(|accept| accept == "application/json");
                        let response = if wants_json {
                            let body = json!({ "upstream": name, "path": path }).to_string();
                            let mut response = Response::new(Full::new(Bytes::from(body)));
                            response.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static("application/json"),
                            );
                            response
                        } else {
                            Response::new(Full::new(Bytes::from(format!("{name} {path}"))))
                        };
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            hits,
            paths,
            task,
        }
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// The method and path of every request answered so far (`GET /healthz`), in order.
    pub fn requests(&self) -> Vec<String> {
        self.paths.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The Gateway [`GATEWAY`]: one HTTP listener on `port` (the proxy binds it on 127.0.0.1).
pub fn gateway(namespace: &str, port: u16) -> Value {
    json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "Gateway",
        "metadata": { "name": GATEWAY, "namespace": namespace },
        "spec": {
            "listeners": [{ "name": "http", "port": port, "protocol": "HTTP" }],
            "replicas": 1,
        },
    })
}

/// A path match of `kind` (`Exact` or `PathPrefix`) on `path`.
pub fn path_match(kind: &str, path: &str) -> Value {
    json!({ "path": { "type": kind, "value": path } })
}

/// The Route `web`: one rule with `matches` to the ServiceBackend `web`, on Gateway
/// [`GATEWAY`].
pub fn web_route(namespace: &str, matches: Vec<Value>) -> Value {
    json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "Route",
        "metadata": { "name": "web", "namespace": namespace },
        "spec": {
            "parentRefs": [{ "name": GATEWAY }],
            "rules": [{ "matches": matches, "backendRefs": [{ "name": "web" }] }],
        },
    })
}

/// A ServiceBackend with the one static endpoint `addr`.
pub fn static_backend(namespace: &str, name: &str, addr: SocketAddr) -> Value {
    json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "ServiceBackend",
        "metadata": { "name": name, "namespace": namespace },
        "spec": { "endpoints": [{ "address": addr.ip().to_string(), "port": addr.port() }] },
    })
}

/// A ServiceBackend taking its endpoints from the Kubernetes Service `service`, port `port`.
pub fn service_backend(namespace: &str, name: &str, service: &str, port: u16) -> Value {
    json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "ServiceBackend",
        "metadata": { "name": name, "namespace": namespace },
        "spec": { "service": { "name": service, "port": port } },
    })
}

/// The Gateway's ConfigMap and the snapshot it holds.
pub struct Config {
    /// The ConfigMap as read.
    pub config_map: ConfigMap,
    /// Its snapshot.
    pub snapshot: Snapshot,
    /// The snapshot's revision.
    pub revision: String,
}

/// Waits until the Gateway's ConfigMap holds a snapshot satisfying `check`.
pub async fn await_config(ctx: &TestContext, check: impl Fn(&Snapshot) -> bool) -> Config {
    let config_maps: Api<ConfigMap> = ctx.api();
    eventually("the Gateway's ConfigMap", TIMEOUT, || async {
        let config_map = config_maps
            .get_opt(&format!("{GATEWAY}-config"))
            .await
            .ok()??;
        let snapshot = snapshot_from_configmap(&config_map).ok()?;
        check(&snapshot).then(|| Config {
            revision: snapshot.revision.clone(),
            config_map,
            snapshot,
        })
    })
    .await
}

/// A status, headers and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// The body, as text.
    pub body: String,
}

/// The real `portcullis proxy --configmap` process, killed (and waited for) when dropped, on
/// every exit path of a test.
pub struct Proxy {
    child: Child,
    /// The client listener (the Gateway listener's port on 127.0.0.1).
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    dir: tempfile::TempDir,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// Who a [`Proxy`] is, beyond the defaults of [`Proxy::spawn`].
#[derive(Clone, Debug)]
pub struct Identity {
    /// The loopback address its client listener binds (several replicas on one machine each
    /// take their own: 127.0.0.1, 127.0.0.2, ...).
    pub listen: std::net::IpAddr,
    /// The gateway Pod it stands in for: it reports on that Pod, as the gateway's
    /// ServiceAccount (impersonated), so the Role the operator grants is what it may do.
    pub pod: Option<String>,
    /// Its admin listener; a free port when `None`. A replica started again in place keeps
    /// its address, as a pod's probes and a load balancer's health checks expect.
    pub admin: Option<SocketAddr>,
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            listen: std::net::Ipv4Addr::LOCALHOST.into(),
            pod: None,
            admin: None,
        }
    }
}

impl Identity {
    /// The replica standing in for gateway Pod `pod`, listening on `listen`.
    pub fn pod(pod: &str, listen: [u8; 4]) -> Self {
        Self {
            listen: std::net::Ipv4Addr::from(listen).into(),
            pod: Some(pod.to_owned()),
            admin: None,
        }
    }
}

/// A kubeconfig for `dir` that acts as the gateway's ServiceAccount: the admin credentials,
/// impersonating `system:serviceaccount:<namespace>:<gateway>` with the groups a
/// ServiceAccount token carries.
fn service_account_kubeconfig(ctx: &TestContext, dir: &std::path::Path) -> PathBuf {
    let mut kubeconfig = kube::config::Kubeconfig::read_from(ctx.control_plane.kubeconfig())
        .expect("the kubeconfig reads");
    let account = portcullis_controller::meta::workload_name(GATEWAY);
    for named in &mut kubeconfig.auth_infos {
        if let Some(auth) = named.auth_info.as_mut() {
            auth.impersonate = Some(format!("system:serviceaccount:{}:{account}", ctx.namespace));
            auth.impersonate_groups = Some(vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{}", ctx.namespace),
                "system:authenticated".to_owned(),
            ]);
        }
    }
    let path = dir.join("kubeconfig");
    fs::write(
        &path,
        serde_json::to_vec(&kubeconfig).expect("the kubeconfig serializes"),
    )
    .expect("the kubeconfig is written");
    path
}

impl Proxy {
    /// Writes the ConfigMap's `config.yaml` to a file and starts `binary` on it, following the
    /// ConfigMap through the test control plane; returns once the start-up copy is served.
    pub async fn spawn(ctx: &TestContext, config: &Config, binary: &str) -> Self {
        Self::spawn_as(ctx, config, binary, &Identity::default()).await
    }

    /// [`Proxy::spawn`], as `identity`.
    pub async fn spawn_as(
        ctx: &TestContext,
        config: &Config,
        binary: &str,
        identity: &Identity,
    ) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("config.yaml");
        fs::write(
            &file,
            config.snapshot.to_yaml().expect("the snapshot serializes"),
        )
        .expect("the start-up copy is written");
        let secrets = dir.path().join("secrets");
        fs::create_dir(&secrets).expect("the secrets directory");
        let log = fs::File::create(dir.path().join("proxy.log")).expect("the proxy log");
        let admin = identity.admin.unwrap_or_else(free_addr);
        let port = config
            .snapshot
            .listeners
            .first()
            .expect("the snapshot has a listener")
            .port;
        let configmap = format!(
            "{}/{}",
            config.config_map.namespace().expect("a namespace"),
            config.config_map.name_any()
        );
        let mut command = Command::new(binary);
        match &identity.pod {
            Some(pod) => command
                .env("KUBECONFIG", service_account_kubeconfig(ctx, dir.path()))
                .env("POD_NAME", pod)
                .env("POD_NAMESPACE", &ctx.namespace),
            None => command.env("KUBECONFIG", ctx.control_plane.kubeconfig()),
        };
        let child = command
            .arg("proxy")
            .arg("--config")
            .arg(&file)
            .args(["--configmap", &configmap])
            .arg("--secrets")
            .arg(&secrets)
            .args(["--admin", &admin.to_string()])
            .args(["--listen", &identity.listen.to_string()])
            .arg("--no-access-log")
            .env(
                "RUST_LOG",
                std::env::var("PORTCULLIS_PROXY_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{binary} proxy starts: {e}"));
        let mut proxy = Self {
            child,
            addr: SocketAddr::from((identity.listen, port)),
            admin,
            dir,
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        // A replica standing in for a pod may be handed an old start-up copy on purpose (as the
        // kubelet's mounted file lags): it moves on to the ConfigMap's revision at once.
        let revision = config.revision.clone();
        let stand_in = identity.pod.is_some();
        eventually("the proxy to serve its start-up copy", TIMEOUT, || async {
            let serving = proxy.revision_opt().await?;
            (stand_in || serving == revision).then_some(())
        })
        .await;
        // As a load balancer would: no request before the replica says it is ready.
        eventually("the proxy to be ready", TIMEOUT, || async {
            (proxy.admin("/ready").await.ok()?.status == 200).then_some(())
        })
        .await;
        assert!(proxy.is_running(), "the proxy is still running");
        proxy
    }

    /// GET `path` on the client listener (keep-alive connections; 5 s at most).
    pub async fn get(&self, path: &str) -> Result<Answer, String> {
        self.get_url(&format!("http://{}{path}", self.addr)).await
    }

    /// `method` `path` on the client listener, without a body.
    pub async fn send(&self, method: &str, path: &str) -> Result<Answer, String> {
        self.send_with(method, path, &[]).await
    }

    /// `method` `path` on the client listener with `headers`, without a body.
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        self.call_with(method, &format!("http://{}{path}", self.addr), headers)
            .await
    }

    /// Where the process reads Secret files, `<namespace>/<name>/<key>`: what the kubelet
    /// mounts into a gateway pod.
    pub fn secrets_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("secrets")
    }

    /// GET `path` on the admin listener.
    pub async fn admin(&self, path: &str) -> Result<Answer, String> {
        self.get_url(&format!("http://{}{path}", self.admin)).await
    }

    async fn get_url(&self, url: &str) -> Result<Answer, String> {
        self.call("GET", url).await
    }

    async fn call(&self, method: &str, url: &str) -> Result<Answer, String> {
        self.call_with(method, url, &[]).await
    }

    async fn call_with(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok(Answer {
                status,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .map_err(|_| format!("{method} {url} timed out"))?
    }

    /// The admin `/config` document, if the proxy answers.
    pub async fn config(&self) -> Option<Value> {
        let answer = self
            .get_url(&format!("http://{}/config", self.admin))
            .await
            .ok()?;
        serde_json::from_str(&answer.body).ok()
    }

    async fn revision_opt(&self) -> Option<String> {
        Some(self.config().await?["revision"].as_str()?.to_owned())
    }

    /// The revision the proxy serves.
    pub async fn revision(&self) -> String {
        self.revision_opt()
            .await
            .expect("the proxy reports a revision at /config")
    }

    /// `lastReloadError` of `/config`.
    pub async fn last_reload_error(&self) -> Option<String> {
        self.config().await.expect("the proxy answers /config")["lastReloadError"]
            .as_str()
            .map(str::to_owned)
    }

    /// Sends SIGTERM, as the kubelet does to a pod being deleted: the proxy drains and exits.
    pub fn terminate(&self) {
        signal(self.child.id(), "TERM");
    }

    /// Kills the process at once (SIGKILL), as a node failure or the OOM killer would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to exit and returns how it exited.
    pub async fn exited(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The proxy's log (standard error).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("proxy.log")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- the proxy's log, last lines ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Creates the Kubernetes Service `name` with the one port `port`, named `http` (no selector:
/// its EndpointSlices are the test's, see [`put_endpoint_slice`]).
pub async fn create_service(ctx: &TestContext, name: &str, port: u16) {
    let service: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": name },
        "spec": { "ports": [{ "name": "http", "port": port }] },
    }))
    .expect("a Service");
    ctx.api::<k8s_openapi::api::core::v1::Service>()
        .create(&kube::api::PostParams::default(), &service)
        .await
        .unwrap_or_else(|e| panic!("the API server refuses Service {name}: {e}"));
}

/// Applies the EndpointSlice `name` of Service `service`: the one endpoint `upstream`, ready or
/// not. Hand-made, without the EndpointSlice controller's managed-by label, so the control plane
/// leaves it alone; its port is named after the Service port (`http`). The API server refuses
/// loopback addresses here: the upstream listens on [`host_ip`].
pub async fn put_endpoint_slice(
    ctx: &TestContext,
    name: &str,
    service: &str,
    upstream: SocketAddr,
    ready: bool,
) {
    let document = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": { "name": name, "labels": { "kubernetes.io/service-name": service } },
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": [upstream.ip().to_string()],
            "conditions": { "ready": ready },
        }],
        "ports": [{ "name": "http", "port": upstream.port(), "protocol": "TCP" }],
    });
    ctx.api::<k8s_openapi::api::discovery::v1::EndpointSlice>()
        .patch(
            name,
            &kube::api::PatchParams::apply(crate::operator_support::TEST_MANAGER).force(),
            &kube::api::Patch::Apply(&document),
        )
        .await
        .unwrap_or_else(|e| panic!("the API server refuses EndpointSlice {name}: {e}"));
}

/// One real proxy per gateway pod of Gateway [`GATEWAY`] (`count` pods), the `n`th listening
/// on 127.0.0.`n` and reporting the revision it serves on its pod, as replicas do on their own
/// IPs; returns once each serves `config`.
pub async fn spawn_replicas(ctx: &TestContext, config: &Config, count: usize) -> Vec<Proxy> {
    let pods: Vec<String> = crate::operator_support::await_pods(ctx, GATEWAY, count)
        .await
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    let mut replicas = Vec::new();
    for (index, pod) in (1u8..).zip(&pods) {
        let identity = Identity::pod(pod, [127, 0, 0, index]);
        replicas.push(Proxy::spawn_as(ctx, config, &proxy_binary(), &identity).await);
    }
    replicas
}

/// Writes the examples' API keys (Secret `api-keys`) where each replica reads the Secret of
/// the snapshot's API-key rule: what the kubelet's Secret mount does in a gateway pod.
///
/// # Panics
/// When no rule of the snapshot reads API keys.
pub fn mount_example_api_keys(config: &Config, replicas: &[Proxy]) {
    let keys = config
        .snapshot
        .rules
        .iter()
        .find_map(|rule| match &rule.policies.auth {
            Some(portcullis_config::snapshot::AuthConfig::ApiKey { keys, .. }) => {
                Some(keys.path.clone())
            }
            _ => None,
        })
        .expect("a rule reads an API-key Secret");
    for replica in replicas {
        let mounted = replica.secrets_dir().join(&keys);
        fs::create_dir_all(mounted.parent().expect("a folder")).expect("the mount");
        fs::write(
            &mounted,
            "storefront:demo-key-storefront\nmobile:demo-key-mobile\n",
        )
        .expect("the mounted key file");
    }
}

/// Sends `SIG<name>` to `pid` with kill(1) (the workspace forbids the `unsafe` of libc's kill).
///
/// # Panics
/// If kill(1) cannot run or fails.
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill(1): {e}"));
    assert!(status.success(), "kill -{name} {pid} failed: {status}");
}

/// Compiles Gateway [`GATEWAY`] with every Route and ServiceBackend of the test's namespace, as
/// the operator does (the same pure function), and writes the snapshot into the Gateway's
/// ConfigMap; returns its revision. The operator, compiling the same objects, comes to the
/// same revision, so this stands in for it without a conflict.
pub async fn write_compiled_config(ctx: &TestContext) -> String {
    let gateway: portcullis_api::Gateway = ctx.api().get(GATEWAY).await.expect("the Gateway");
    let list = kube::api::ListParams::default();
    let routes: Vec<portcullis_api::Route> = ctx.api().list(&list).await.expect("the Routes").items;
    let backends: Vec<portcullis_api::ServiceBackend> = ctx
        .api()
        .list(&list)
        .await
        .expect("the ServiceBackends")
        .items;
    let compiled = portcullis_config::compile(&gateway, &routes, &backends, &[]);
    let rendered = portcullis_config::configmap::render_configmap(&compiled.snapshot)
        .expect("the snapshot renders");
    let patch = json!({
        "metadata": { "annotations": {
            portcullis_config::configmap::REVISION_ANNOTATION: compiled.snapshot.revision,
        } },
        "data": rendered.data,
        "binaryData": rendered.binary_data,
    });
    ctx.api::<ConfigMap>()
        .patch(
            &format!("{GATEWAY}-config"),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("the ConfigMap is written");
    compiled.snapshot.revision
}
