//! A real Kubernetes control plane for Portcullis' integration tests: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok's fake nodes, built from the upstream Go
//! modules by `hack/build-test-control-plane.sh`.
//!
//! One control plane serves a whole test binary and is started by the first test that asks for
//! it; every test works in a namespace of its own:
//!
//! ```ignore
//! mod support;
//! use support::control_plane::TestContext;
//!
//! #[tokio::test]
//! async fn config_maps_work() {
//!     let ctx = TestContext::new("config-maps-work").await;
//!     let config_maps: Api<ConfigMap> = ctx.api();
//!     // ...
//! }
//! ```
//!
//! The control plane holds only processes and files. A `kube::Client` belongs to the tokio runtime
//! it was made in, and every `#[tokio::test]` has a runtime of its own, so each test makes its own
//! client from the kubeconfig ([`ControlPlane::client`], done by [`TestContext::new`]).
//!
//! **Binaries.** `$PORTCULLIS_K8S_BIN` (which `make test` exports after running the build
//! script), else whatever the build script finds without building (its cache, or
//! `$KUBEBUILDER_ASSETS`). A plain `cargo test` never starts the multi-minute Go build: it fails
//! with a message saying to run `make test` once.
//!
//! **Startup.** Free loopback ports; a CA, serving and admin (O=system:masters) certificates and
//! a service-account key made with rcgen; etcd, then kube-apiserver (RBAC, ServiceAccount
//! admission off, no endpoint reconciler), wait for `/readyz` and the `default` namespace, then
//! every `*.yaml` CRD in the repository's `crds/` (until Established), then
//! kube-controller-manager with the controllers in [`CONTROLLERS`] (until it has created the
//! `default` ServiceAccount), then kube-scheduler and kwok with the fake nodes in [`FAKE_NODES`]
//! (until kwok has made them Ready). A pod scheduled there is marked Running and Ready by kwok
//! at once, without containers, so Deployments really roll out. No kubelet, no node lifecycle:
//! nodes never fail on their own. Processes log to `target/tmp/control-plane/<pid>/*.log`; on a
//! startup failure the tails of those logs are in the panic message of every test.
//!
//! **Teardown.** Statics are never dropped, so nothing here relies on `Drop`. Each process is
//! started through `setpriv --pdeathsig KILL` (util-linux) from a thread that lives as long as
//! the test binary, so the kernel kills it when the binary ends for whatever reason: tests done,
//! a panic, Ctrl-C, even SIGKILL. (The workspace forbids `unsafe`, which rules out calling
//! `prctl(PR_SET_PDEATHSIG)` in `pre_exec` ourselves; setpriv makes the same call between fork
//! and exec.) The data of finished runs is deleted when the next run starts; the logs of the
//! last run stay for reading.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::{
    fs::{self, OpenOptions},
    future::Future,
    io::Write as _,
    net::TcpListener,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::{
    NamespaceResourceScope,
    api::core::v1::{Namespace, Node, ServiceAccount},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client, Config, Resource,
    api::{Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::wait::{await_condition, conditions},
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    sync::{OnceCell, oneshot},
};

/// Directory holding `etcd`, `kube-apiserver`, `kube-controller-manager`, `kube-scheduler`,
/// `kwok` and `kwok-stages.yaml`; `make test` exports it.
pub const BIN_DIR_ENV: &str = "PORTCULLIS_K8S_BIN";

/// Overrides [`DEFAULT_START_TIMEOUT`], in seconds.
pub const START_TIMEOUT_ENV: &str = "PORTCULLIS_K8S_START_TIMEOUT";

/// How long the whole control plane may take to start (generous: CI machines have 2 cores).
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(180);

/// The kube-controller-manager controllers that run: garbage collection and namespace deletion,
/// the `default` ServiceAccount, Deployments → ReplicaSets → Pods, and PodDisruptionBudget status.
pub const CONTROLLERS: &str = "garbage-collector-controller,namespace-controller,\
serviceaccount-controller,deployment-controller,replicaset-controller,disruption-controller";

/// The fake nodes kwok runs pods on, with their zones (`topology.kubernetes.io/zone`): two, so
/// that spreading replicas over nodes and zones can be seen.
pub const FAKE_NODES: [(&str, &str); 2] = [("kwok-node-a", "zone-a"), ("kwok-node-b", "zone-b")];

/// The field manager the harness applies CRDs with.
const FIELD_MANAGER: &str = "portcullis-tests";

/// The repository root (the root package's manifest directory).
const REPO_ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A running control plane: the processes belong to a supervisor thread; this holds what tests
/// need to reach them.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
    controller_manager: bool,
    fake_nodes: bool,
    crds: Vec<String>,
    startup: Duration,
    outages: std::sync::mpsc::Sender<Outage>,
}

/// A request to the supervisor thread: take kube-apiserver down for `down`, then start it
/// again; `done` hears when it has been started (not yet ready).
struct Outage {
    down: Duration,
    done: oneshot::Sender<Result<(), String>>,
}

/// The test binary's control plane, or why it could not start.
static SHARED: OnceCell<Result<ControlPlane, String>> = OnceCell::const_new();

impl ControlPlane {
    /// The test binary's control plane, started on first use (tests calling this concurrently
    /// wait for the one start).
    ///
    /// # Panics
    /// If it cannot start. The message says why and holds the tail of each process's log; every
    /// later caller panics with the same message instead of trying again.
    pub async fn shared() -> &'static ControlPlane {
        let started = SHARED
            .get_or_init(|| async {
                let (tx, rx) = oneshot::channel();
                let spawned = thread::Builder::new()
                    .name("control-plane".to_owned())
                    .spawn(move || supervise(tx));
                match spawned {
                    Ok(_) => rx.await.unwrap_or_else(|_| {
                        Err("the control-plane thread ended while starting".to_owned())
                    }),
                    Err(e) => Err(format!("cannot start the control-plane thread: {e}")),
                }
            })
            .await;
        match started {
            Ok(control_plane) => control_plane,
            Err(e) => panic!("the test control plane did not start: {e}"),
        }
    }

    /// A client for the control plane, acting as cluster admin (group `system:masters`), bound
    /// to the calling tokio runtime.
    ///
    /// # Panics
    /// If the kubeconfig cannot be read or the client cannot be built.
    pub async fn client(&self) -> Client {
        client_from(&self.kubeconfig)
            .await
            .expect("a client from the test control plane's kubeconfig")
    }

    /// The admin kubeconfig, e.g. for `KUBECONFIG=… kubectl` while debugging a test.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The directory with the certificates, etcd data and the processes' logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether kube-controller-manager runs (it is missing from envtest's `KUBEBUILDER_ASSETS`,
    /// and then garbage collection, namespace deletion and Deployment rollouts do not happen).
    pub fn has_controller_manager(&self) -> bool {
        self.controller_manager
    }

    /// Whether kube-scheduler and kwok run the [`FAKE_NODES`], so that pods get scheduled and
    /// become Running and Ready (not with envtest's `KUBEBUILDER_ASSETS`).
    pub fn has_fake_nodes(&self) -> bool {
        self.fake_nodes
    }

    /// Fails the test unless kube-controller-manager runs: a test that needs it must not pass
    /// without checking anything.
    #[track_caller]
    pub fn require_controller_manager(&self) {
        assert!(
            self.has_controller_manager(),
            "this test needs kube-controller-manager, which envtest's KUBEBUILDER_ASSETS lacks: \
             unset KUBEBUILDER_ASSETS and run `make test` to build it"
        );
    }

    /// Fails the test unless Deployments roll out to Running, Ready pods: kube-controller-manager,
    /// and kube-scheduler with kwok's [`FAKE_NODES`].
    #[track_caller]
    pub fn require_workloads(&self) {
        self.require_controller_manager();
        assert!(
            self.has_fake_nodes(),
            "this test needs kube-scheduler and kwok, which envtest's KUBEBUILDER_ASSETS lacks: \
             unset KUBEBUILDER_ASSETS and run `make test` to build them"
        );
    }

    /// The names of the CRDs installed from `crds/`.
    pub fn crds(&self) -> &[String] {
        &self.crds
    }

    /// How long the start took, from locating the binaries to the last readiness check.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Stops kube-apiserver (SIGKILL: every connection to it drops, as when it crashes or its
    /// node goes), leaves it down for `down`, starts it again on the same port and data, and
    /// waits until it is ready. Returns how long it took to be ready once started. Every test
    /// in the binary shares it: only a binary with a single test may do this.
    ///
    /// # Panics
    /// If it cannot be restarted or does not become ready within the start timeout.
    pub async fn stop_api_server(&self, down: Duration) -> Duration {
        let (done, restarted) = oneshot::channel();
        self.outages
            .send(Outage { down, done })
            .expect("the control-plane thread takes requests");
        restarted
            .await
            .expect("the control-plane thread answers")
            .unwrap_or_else(|e| panic!("kube-apiserver did not restart: {e}"));
        let started = Instant::now();
        let client = self.client().await;
        eventually(
            "kube-apiserver to be ready again",
            DEFAULT_START_TIMEOUT,
            || async { api_ready(&client).await.then_some(()) },
        )
        .await;
        started.elapsed()
    }
}

/// What one test works with: a client and a fresh namespace of its own.
#[derive(Clone)]
pub struct TestContext {
    /// A cluster-admin client bound to the test's runtime.
    pub client: Client,
    /// A namespace created for this test alone.
    pub namespace: String,
    /// The shared control plane.
    pub control_plane: &'static ControlPlane,
}

impl TestContext {
    /// Starts (or joins) the control plane and creates a namespace named after `test_name`
    /// (plus a random suffix).
    ///
    /// # Panics
    /// If the control plane cannot start or the namespace cannot be created.
    pub async fn new(test_name: &str) -> Self {
        let control_plane = ControlPlane::shared().await;
        let client = control_plane.client().await;
        let namespace = create_namespace(&client, test_name).await;
        Self {
            client,
            namespace,
            control_plane,
        }
    }

    /// An `Api` for a namespaced kind in the test's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

/// Creates a namespace whose name starts with `prefix` (made a valid DNS label) and returns its
/// name. Namespaces are not deleted: the whole control plane goes away with the test binary.
///
/// # Panics
/// If the API server refuses the namespace.
pub async fn create_namespace(client: &Client, prefix: &str) -> String {
    let mut base: String = prefix
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    base.truncate(40);
    let base = base.trim_matches('-');
    let base = if base.is_empty() { "test" } else { base };
    let namespace = Namespace {
        metadata: ObjectMeta {
            generate_name: Some(format!("{base}-")),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("the API server creates a test namespace")
        .metadata
        .name
        .expect("a created namespace has a name")
}

/// Polls `probe` every 100 ms until it returns `Some`, and returns that value.
///
/// # Panics
/// When `timeout` passes first; the message names `what` was awaited.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Body of the supervisor thread: starts the control plane, reports the outcome, then keeps
/// the processes company for the rest of the test binary's life (their parent-death signal is
/// tied to this thread).
fn supervise(report: oneshot::Sender<Result<ControlPlane, String>>) {
    let began = Instant::now();
    let mut processes = Processes::default();
    let (outages, requests) = std::sync::mpsc::channel();
    let started = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build a tokio runtime")
        .and_then(|runtime| runtime.block_on(start(&mut processes, outages)));
    match started {
        Ok(mut control_plane) => {
            control_plane.startup = began.elapsed();
            note(&format!(
                "control plane up in {:.1?} (logs and kubeconfig in {})",
                control_plane.startup,
                control_plane.dir.display()
            ));
            if report.send(Ok(control_plane)).is_ok() {
                processes.watch(&requests);
            }
            processes.kill_all();
        }
        Err(e) => {
            processes.kill_all();
            let _ = report.send(Err(format!("{e:#}\n{}", processes.log_tails())));
        }
    }
}

/// Starts every process and waits for each to be ready.
async fn start(
    processes: &mut Processes,
    outages: std::sync::mpsc::Sender<Outage>,
) -> Result<ControlPlane> {
    let timeout = match std::env::var(START_TIMEOUT_ENV) {
        Ok(secs) => Duration::from_secs(
            secs.parse()
                .with_context(|| format!("{START_TIMEOUT_ENV}={secs} is not a number"))?,
        ),
        Err(_) => DEFAULT_START_TIMEOUT,
    };
    let deadline = Instant::now() + timeout;
    let bin = binary_dir()?;
    let dir = run_dir()?;
    let pki = Pki::generate(&dir.join("pki"))?;
    let [etcd_port, peer_port, api_port] = free_ports()?;
    let kubeconfig = write_kubeconfig(&dir, api_port, &pki)?;

    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    processes.spawn(
        "etcd",
        &bin.join("etcd"),
        &[
            "--name=portcullis-test".to_owned(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=portcullis-test={peer_url}"),
            // Test data need not survive a crash; fsync would dominate the tests' run time.
            "--unsafe-no-fsync=true".to_owned(),
            "--log-level=warn".to_owned(),
        ],
        &dir,
    )?;
    poll(processes, deadline, "etcd's /health", || {
        etcd_healthy(etcd_port)
    })
    .await?;

    processes.spawn(
        "kube-apiserver",
        &bin.join("kube-apiserver"),
        &[
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={api_port}"),
            format!("--cert-dir={}", pki.dir.display()),
            format!("--tls-cert-file={}", pki.server_cert.display()),
            format!("--tls-private-key-file={}", pki.server_key.display()),
            format!("--client-ca-file={}", pki.ca_cert.display()),
            "--authorization-mode=RBAC".to_owned(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
            format!("--service-account-key-file={}", pki.sa_public.display()),
            format!(
                "--service-account-signing-key-file={}",
                pki.sa_key.display()
            ),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--allow-privileged=true".to_owned(),
            // ServiceAccount: without kube-controller-manager there is no `default`
            // ServiceAccount to admit pods with; keep both set-ups alike (as envtest does).
            // TaintNodesByCondition: it taints new nodes not-ready until the node lifecycle
            // controller, which does not run here, sees them Ready; the fake nodes would
            // never get pods.
            "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition".to_owned(),
            // Loopback addresses cannot go into the `kubernetes` Endpoints; stop it trying.
            "--endpoint-reconciler-type=none".to_owned(),
            // Tests are the only clients: no fairness queues to spend the two CPUs on.
            "--enable-priority-and-fairness=false".to_owned(),
            "--profiling=false".to_owned(),
        ],
        &dir,
    )?;
    let client = client_from(&kubeconfig).await?;
    poll(processes, deadline, "kube-apiserver's /readyz", || {
        api_ready(&client)
    })
    .await?;
    poll(processes, deadline, "the `default` namespace", || async {
        matches!(
            Api::<Namespace>::all(client.clone())
                .get_opt("default")
                .await,
            Ok(Some(_))
        )
    })
    .await?;

    // CRDs go in before kube-controller-manager starts, so that its garbage collector knows
    // their kinds from the start instead of after its next discovery resync.
    let crds = install_crds(&client, deadline).await?;

    let kcm = bin.join("kube-controller-manager");
    let controller_manager = kcm.is_file();
    if controller_manager {
        processes.spawn(
            "kube-controller-manager",
            &kcm,
            &[
                format!("--kubeconfig={}", kubeconfig.display()),
                "--leader-elect=false".to_owned(),
                "--secure-port=0".to_owned(),
                format!("--controllers={CONTROLLERS}"),
                "--use-service-account-credentials=false".to_owned(),
                "--kube-api-qps=200".to_owned(),
                "--kube-api-burst=400".to_owned(),
            ],
            &dir,
        )?;
        // The serviceaccount controller's first act doubles as a sign that the controllers run.
        poll(
            processes,
            deadline,
            "kube-controller-manager to create the `default` ServiceAccount",
            || async {
                matches!(
                    Api::<ServiceAccount>::namespaced(client.clone(), "default")
                        .get_opt("default")
                        .await,
                    Ok(Some(_))
                )
            },
        )
        .await?;
    } else {
        note(&format!(
            "no kube-controller-manager in {}: no garbage collection, namespace deletion or \
             Deployment rollouts in these tests",
            bin.display()
        ));
    }

    let scheduler = bin.join("kube-scheduler");
    let kwok = bin.join("kwok");
    let kwok_stages = bin.join("kwok-stages.yaml");
    let fake_nodes = scheduler.is_file() && kwok.is_file() && kwok_stages.is_file();
    if fake_nodes {
        processes.spawn(
            "kube-scheduler",
            &scheduler,
            &[
                format!("--kubeconfig={}", kubeconfig.display()),
                "--leader-elect=false".to_owned(),
                "--secure-port=0".to_owned(),
            ],
            &dir,
        )?;
        processes.spawn(
            "kwok",
            &kwok,
            &[
                format!("--kubeconfig={}", kubeconfig.display()),
                format!("--config={}", kwok_stages.display()),
                "--manage-all-nodes=true".to_owned(),
                // Pod IPs, apart from the Service range above.
                "--cidr=10.244.0.0/16".to_owned(),
                "--node-ip=10.96.0.2".to_owned(),
            ],
            &dir,
        )?;
        create_fake_nodes(&client).await?;
        poll(
            processes,
            deadline,
            "kwok to make the fake nodes Ready",
            || fake_nodes_ready(&client),
        )
        .await?;
    } else {
        note(&format!(
            "no kube-scheduler, kwok or kwok-stages.yaml in {}: pods are not scheduled and \
             never become Ready in these tests",
            bin.display()
        ));
    }

    Ok(ControlPlane {
        dir,
        kubeconfig,
        controller_manager,
        fake_nodes,
        crds,
        startup: Duration::ZERO,
        outages,
    })
}

/// Creates the [`FAKE_NODES`] (kwok manages every node), with room for plenty of pods.
async fn create_fake_nodes(client: &Client) -> Result<()> {
    let nodes = Api::<Node>::all(client.clone());
    for (name, zone) in FAKE_NODES {
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/zone": zone,
                    "type": "kwok",
                },
                "annotations": { "kwok.x-k8s.io/node": "fake" },
            },
            // The API server keeps the status of a Node on create; kwok keeps these figures.
            "status": {
                "capacity": { "cpu": "16", "memory": "64Gi", "pods": "110" },
                "allocatable": { "cpu": "16", "memory": "64Gi", "pods": "110" },
            },
        }))?;
        nodes
            .create(&PostParams::default(), &node)
            .await
            .with_context(|| format!("cannot create fake node {name}"))?;
    }
    Ok(())
}

/// Whether every fake node has the condition `Ready=True`.
async fn fake_nodes_ready(client: &Client) -> bool {
    let nodes = Api::<Node>::all(client.clone());
    for (name, _) in FAKE_NODES {
        let Ok(Some(node)) = nodes.get_opt(name).await else {
            return false;
        };
        let ready = node
            .status
            .and_then(|status| status.conditions)
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
        if !ready {
            return false;
        }
    }
    true
}

/// Finds the directory with the binaries; never builds them (see the module docs).
pub(crate) fn binary_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        let dir = PathBuf::from(dir);
        ensure!(
            dir.join("kube-apiserver").is_file() && dir.join("etcd").is_file(),
            "{BIN_DIR_ENV}={} has no kube-apiserver or etcd",
            dir.display()
        );
        return Ok(dir);
    }
    let script = Path::new(REPO_ROOT).join("hack/build-test-control-plane.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg("--cached-only")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last() {
        Some(dir) if output.status.success() => Ok(PathBuf::from(dir)),
        _ => bail!(
            "the Kubernetes test binaries (etcd, kube-apiserver, kube-controller-manager) are \
             not built yet. Run `make test` once: it builds them from the Go module proxy \
             (10 to 15 minutes on 2 cores, cached in ~/.cache/portcullis/k8s), and later plain \
             `cargo test` runs find them. Or point {BIN_DIR_ENV} or KUBEBUILDER_ASSETS at a \
             directory that has them.\n{}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
}

/// A fresh directory for this run, `target/tmp/control-plane/<pid>`, after deleting those of
/// earlier runs whose process is gone.
fn run_dir() -> Result<PathBuf> {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("control-plane");
    fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    // Without /proc we cannot tell live runs from dead ones, so leave them all.
    if Path::new("/proc/self").exists() {
        for entry in fs::read_dir(&base)?.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if !Path::new("/proc").join(pid.to_string()).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = base.join(std::process::id().to_string());
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Picks `N` distinct free loopback ports (held together while picking, so they differ).
fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("cannot bind a free loopback port")?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// The certificates and keys of one control plane, as files.
struct Pki {
    dir: PathBuf,
    ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
    sa_key: PathBuf,
    sa_public: PathBuf,
}

impl Pki {
    /// A CA; a serving certificate for the API server (loopback and in-cluster names); a client
    /// certificate for `admin` in `system:masters`; and an ECDSA key pair for signing
    /// service-account tokens. All keys are ECDSA P-256 in PKCS#8.
    fn generate(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let pki = Self {
            dir: dir.to_owned(),
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("apiserver.crt"),
            server_key: dir.join("apiserver.key"),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
            sa_key: dir.join("sa.key"),
            sa_public: dir.join("sa.pub"),
        };

        let mut ca = CertificateParams::default();
        ca.distinguished_name
            .push(DnType::CommonName, "portcullis-test-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
        write_file(&pki.ca_cert, &ca.pem(), false)?;

        let mut server = CertificateParams::new(
            [
                "localhost",
                "127.0.0.1",
                "10.0.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ]
            .map(str::to_owned),
        )?;
        server
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        write_file(&pki.server_cert, &server.signed_by(&key, &ca)?.pem(), false)?;
        write_file(&pki.server_key, &key.serialize_pem(), true)?;

        let mut admin = CertificateParams::default();
        admin.distinguished_name.push(DnType::CommonName, "admin");
        admin
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        write_file(&pki.admin_cert, &admin.signed_by(&key, &ca)?.pem(), false)?;
        write_file(&pki.admin_key, &key.serialize_pem(), true)?;

        let key = KeyPair::generate()?;
        write_file(&pki.sa_key, &key.serialize_pem(), true)?;
        write_file(&pki.sa_public, &key.public_key_pem(), false)?;
        Ok(pki)
    }
}

/// Writes `contents` to a new file, readable by the owner only when `private`.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes the admin kubeconfig (JSON, which is YAML too) with paths to the PEM files, and
/// returns its path. kube-controller-manager uses it as well.
fn write_kubeconfig(dir: &Path, api_port: u16, pki: &Pki) -> Result<PathBuf> {
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "portcullis-test",
            "cluster": {
                "server": format!("https://127.0.0.1:{api_port}"),
                "certificate-authority": pki.ca_cert,
            },
        }],
        "users": [{
            "name": "admin",
            "user": {
                "client-certificate": pki.admin_cert,
                "client-key": pki.admin_key,
            },
        }],
        "contexts": [{
            "name": "portcullis-test",
            "context": { "cluster": "portcullis-test", "user": "admin", "namespace": "default" },
        }],
        "current-context": "portcullis-test",
    });
    let path = dir.join("kubeconfig");
    write_file(&path, &serde_json::to_string_pretty(&kubeconfig)?, true)?;
    Ok(path)
}

/// A client from a kubeconfig file, bound to the calling tokio runtime.
async fn client_from(kubeconfig: &Path) -> Result<Client> {
    let file = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("cannot read {}", kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Whether etcd answers `GET /health` with `"health":"true"`.
async fn etcd_healthy(port: u16) -> bool {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        std::io::Result::Ok(response.contains(r#""health":"true""#))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(true))
    )
}

/// Whether kube-apiserver's `/readyz` says `ok` (every post-start hook done, informers synced).
async fn api_ready(client: &Client) -> bool {
    let Ok(request) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), client.request_text(request)).await,
        Ok(Ok(body)) if body.trim() == "ok"
    )
}

/// Applies every CRD in `crds/*.yaml` (multi-document files allowed) and waits until each is
/// Established. Returns their names; none when there is no `crds/` directory.
async fn install_crds(client: &Client, deadline: Instant) -> Result<Vec<String>> {
    let dir = Path::new(REPO_ROOT).join("crds");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();

    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let mut names = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file)?;
        let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
            .with_context(|| format!("{} is not valid YAML", file.display()))?;
        for document in documents.into_iter().filter(|d| !d.is_null()) {
            let crd: CustomResourceDefinition = serde_json::from_value(document)
                .with_context(|| format!("{} holds something other than a CRD", file.display()))?;
            let name = crd
                .metadata
                .name
                .clone()
                .with_context(|| format!("a CRD in {} has no name", file.display()))?;
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .with_context(|| {
                format!("the API server refused CRD {name} from {}", file.display())
            })?;
            names.push(name);
        }
    }
    for name in &names {
        let established = await_condition(api.clone(), name, conditions::is_crd_established());
        tokio::time::timeout_at(deadline.into(), established)
            .await
            .with_context(|| format!("CRD {name} did not become Established"))?
            .with_context(|| format!("cannot watch CRD {name}"))?;
    }
    Ok(names)
}

/// Polls `probe` every 100 ms until it is true, failing early when a process has exited and
/// when `deadline` passes.
async fn poll<F, Fut>(
    processes: &mut Processes,
    deadline: Instant,
    what: &str,
    mut probe: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        if probe().await {
            return Ok(());
        }
        processes.ensure_running()?;
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One child process and its log.
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
    exited: bool,
    program: PathBuf,
    args: Vec<String>,
    dir: PathBuf,
}

/// The control plane's processes, in start order.
#[derive(Default)]
struct Processes(Vec<Process>);

impl Processes {
    /// Starts `program` with `args`, stdout and stderr going to `<dir>/<name>.log`, to be
    /// killed by the kernel when the calling thread ends.
    fn spawn(
        &mut self,
        name: &'static str,
        program: &Path,
        args: &[String],
        dir: &Path,
    ) -> Result<()> {
        let log = dir.join(format!("{name}.log"));
        let child = start_logged(program, args, dir, &log)?;
        self.0.push(Process {
            name,
            child,
            log,
            exited: false,
            program: program.to_owned(),
            args: args.to_owned(),
            dir: dir.to_owned(),
        });
        Ok(())
    }

    /// Kills kube-apiserver, waits `down`, and starts it again as it was first started (its
    /// log goes on in the same file).
    fn restart_api_server(&mut self, down: Duration) -> Result<()> {
        let process = self
            .0
            .iter_mut()
            .find(|p| p.name == "kube-apiserver")
            .context("kube-apiserver is not among the processes")?;
        let _ = process.child.kill();
        let _ = process.child.wait();
        thread::sleep(down);
        process.child = start_logged(&process.program, &process.args, &process.dir, &process.log)?;
        process.exited = false;
        Ok(())
    }

    /// Fails if a process has exited.
    fn ensure_running(&mut self) -> Result<()> {
        for process in &mut self.0 {
            if let Some(status) = process.child.try_wait()? {
                process.exited = true;
                bail!("{} exited during startup ({status})", process.name);
            }
        }
        Ok(())
    }

    /// Runs for the rest of the test binary's life, reporting (bypassing the test harness's
    /// output capture) any process that dies, with the end of its log, and carrying out the
    /// API server outages tests ask for.
    fn watch(&mut self, outages: &std::sync::mpsc::Receiver<Outage>) {
        loop {
            match outages.recv_timeout(Duration::from_millis(500)) {
                Ok(outage) => {
                    let restarted = self
                        .restart_api_server(outage.down)
                        .map_err(|e| format!("{e:#}"));
                    let _ = outage.done.send(restarted);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    thread::sleep(Duration::from_millis(500));
                }
            }
            for process in self.0.iter_mut().filter(|p| !p.exited) {
                if let Ok(Some(status)) = process.child.try_wait() {
                    process.exited = true;
                    note(&format!(
                        "{} exited ({status}) while tests were running{}",
                        process.name,
                        tail(&process.log)
                    ));
                }
            }
        }
    }

    /// Kills every process, the last started first.
    fn kill_all(&mut self) {
        for process in self.0.iter_mut().rev() {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }

    /// The end of every process's log.
    fn log_tails(&self) -> String {
        self.0.iter().map(|p| tail(&p.log)).collect()
    }
}

/// Starts `program` with `args` in `dir` (guarded, see [`guarded_command`]), stdout and stderr
/// appended to `log`.
fn start_logged(program: &Path, args: &[String], dir: &Path, log: &Path) -> Result<Child> {
    let stdout = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let stderr = stdout.try_clone()?;
    guarded_command(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))
}

/// The last lines of a log file, headed by its path.
fn tail(log: &Path) -> String {
    const LINES: usize = 40;
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LINES);
    format!(
        "\n--- {} (last {LINES} lines) ---\n{}",
        log.display(),
        lines[start..].join("\n")
    )
}

/// A command for `program` that the kernel kills (SIGKILL) when the calling thread ends, by way
/// of `setpriv --pdeathsig`. Without setpriv (not Linux, or no util-linux) it warns once and
/// runs `program` unguarded.
fn guarded_command(program: &Path) -> Command {
    static SETPRIV: OnceLock<bool> = OnceLock::new();
    let setpriv = *SETPRIV.get_or_init(|| {
        let works = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !works {
            note(
                "`setpriv --pdeathsig` (util-linux) is unavailable: control-plane processes \
                 outlive an interrupted test run",
            );
        }
        works
    });
    if setpriv {
        let mut command = Command::new("setpriv");
        command.args(["--pdeathsig", "KILL", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Prints a harness message on stderr, past the test harness's output capture (which only
/// catches the `print!` family), so it shows even for passing tests.
fn note(message: &str) {
    let _ = writeln!(std::io::stderr(), "test control plane: {message}");
}
