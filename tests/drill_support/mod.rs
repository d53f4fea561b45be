//! The stage the drills run on, all real processes on this machine: the test control plane,
//! two operator instances sharing a Lease, three `portcullis proxy --configmap` replicas
//! following one Gateway (each on a loopback address of its own, as pods have their own IPs),
//! a two-endpoint service behind them (a Kubernetes Service with hand-made EndpointSlices),
//! HAProxy in front, and a steady client load through HAProxy.

pub mod backend;
pub mod haproxy;
pub mod load;
pub mod report;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use portcullis_controller::{ControllerConfig, LeaderElection};
use serde_json::{Value, json};

use self::{
    backend::{Endpoint, Ledger},
    haproxy::{HaProxy, Server},
    load::Load,
    report::Row,
};
use crate::{
    operator_support::{Mortal, TIMEOUT, apply_all},
    proxy_support::{
        GATEWAY, Identity, Proxy, await_config, create_service, free_addr, gateway, host_ip,
        proxy_binary, put_endpoint_slice,
    },
    support::control_plane::{TestContext, eventually},
};

/// The gateway replicas, as many as a Gateway's default plus one, so that one can be lost
/// while two still share the load.
pub const REPLICAS: usize = 3;

/// The product's default Lease: a dead leader is replaced after at most this long.
pub const LEASE: Duration = Duration::from_secs(15);

/// How long a draining replica keeps accepting after `/ready` turns 503 (the Gateway's
/// `drain.delay`): ten of the load balancer's health-check intervals.
pub const DRAIN_DELAY: &str = "2s";

/// Where a drill's event began: the load's clock and the POSTs run twice so far.
pub struct Mark {
    /// When, on the load's clock.
    pub from: Duration,
    duplicates: u64,
}

/// Everything the drills act on.
pub struct Stage {
    /// The test's client and namespace.
    pub ctx: TestContext,
    /// The operator instances still alive; one leads.
    pub operators: Vec<Mortal>,
    /// What the service behind the gateway has run.
    pub ledger: Arc<Ledger>,
    /// The service's two endpoints.
    pub endpoints: [Endpoint; 2],
    /// The gateway replicas, `r1`..`r3`.
    pub replicas: Vec<Proxy>,
    admins: Vec<SocketAddr>,
    _haproxy: HaProxy,
    _dir: tempfile::TempDir,
    /// The clients' load through HAProxy.
    pub load: Load,
}

impl Stage {
    /// Starts everything and waits until each replica answers clients through HAProxy.
    pub async fn start() -> Self {
        // The operators run in this process: `PORTCULLIS_DRILL_LOG=info` shows what they do.
        if let Ok(filter) = std::env::var("PORTCULLIS_DRILL_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let ctx = TestContext::new("drill").await;
        let ledger = Arc::new(Ledger::default());
        let endpoints = [
            Endpoint::start("web-a", SocketAddr::new(host_ip(), 0), ledger.clone()).await,
            Endpoint::start("web-b", SocketAddr::new(host_ip(), 0), ledger.clone()).await,
        ];
        create_service(&ctx, "web", 80).await;
        put_endpoint_slice(&ctx, "web-a", "web", endpoints[0].addr, true).await;
        put_endpoint_slice(&ctx, "web-b", "web", endpoints[1].addr, true).await;

        let first = Mortal::start(&ctx, operator_config(&ctx, "operator-1"));
        eventually("the first operator to lead", TIMEOUT, || async {
            first.metrics.is_leader().then_some(())
        })
        .await;
        let standby = Mortal::start(&ctx, operator_config(&ctx, "operator-2"));

        let port = free_addr().port();
        apply_all(&ctx.client, &manifests(&ctx.namespace, port)).await;
        let config = await_config(&ctx, |s| s.rules.len() >= 2).await;
        let binary = proxy_binary();
        let admins: Vec<SocketAddr> = (0..REPLICAS).map(|_| free_addr()).collect();
        let mut replicas = Vec::new();
        for (index, admin) in admins.iter().enumerate() {
            replicas.push(Proxy::spawn_as(&ctx, &config, &binary, &identity(index, *admin)).await);
        }

        let dir = tempfile::tempdir().expect("a temporary directory");
        let servers: Vec<Server> = replicas
            .iter()
            .enumerate()
            .map(|(index, replica)| Server {
                name: replica_name(index),
                addr: replica.addr,
                admin: replica.admin,
            })
            .collect();
        let haproxy = HaProxy::start(dir.path(), free_addr(), &servers).await;
        let load = Load::start(haproxy.front);
        for index in 0..REPLICAS {
            let name = replica_name(index);
            load.first_served_by(&name, Duration::ZERO, TIMEOUT)
                .await
                .unwrap_or_else(|| panic!("{name} serves no request through HAProxy"));
        }
        Self {
            ctx,
            operators: vec![first, standby],
            ledger,
            endpoints,
            replicas,
            admins,
            _haproxy: haproxy,
            _dir: dir,
            load,
        }
    }

    /// Starts replica `index` again, on its address, from the ConfigMap as it is now (the
    /// start-up copy a new pod gets); returns once it is ready.
    pub async fn restart(&mut self, index: usize) {
        let config = await_config(&self.ctx, |_| true).await;
        let identity = identity(index, self.admins[index]);
        self.replicas[index] =
            Proxy::spawn_as(&self.ctx, &config, &proxy_binary(), &identity).await;
    }

    /// Points the Route `edits` at the exact path `path`, through the API.
    pub async fn edit(&self, path: &str) {
        let edits = route(&self.ctx.namespace, "edits", &[exact(path, "web")]);
        apply_all(&self.ctx.client, &[edits]).await;
    }

    /// Waits until every replica answers `path` with `status` and returns how long that took
    /// from `since`.
    pub async fn served_everywhere(&self, path: &str, status: u16, since: Instant) -> Duration {
        for replica in &self.replicas {
            eventually(
                &format!("{path} to answer {status} on {}", replica.addr),
                TIMEOUT,
                || async { (replica.get(path).await.ok()?.status == status).then_some(()) },
            )
            .await;
        }
        since.elapsed()
    }

    /// Waits until every replica serves the revision in the Gateway's ConfigMap.
    pub async fn converged(&self) -> String {
        let revision = await_config(&self.ctx, |_| true).await.revision;
        for replica in &self.replicas {
            eventually(
                &format!("{} to serve revision {revision}", replica.addr),
                TIMEOUT,
                || async {
                    (replica.config().await?["revision"].as_str()? == revision).then_some(())
                },
            )
            .await;
        }
        revision
    }

    /// Marks the start of a drill's event.
    pub fn mark(&self) -> Mark {
        Mark {
            from: self.load.now(),
            duplicates: self.ledger.duplicates(),
        }
    }

    /// The drill's row: the requests from `mark` to now, once finished, and the POSTs run twice
    /// meanwhile.
    pub async fn row(&self, mark: &Mark, drill: &'static str, recovery: String) -> Row {
        Row {
            drill,
            window: self.load.window(mark.from, self.load.now()).await,
            duplicated_posts: self.ledger.duplicates() - mark.duplicates,
            recovery,
        }
    }
}

/// The name of replica `index` in HAProxy (`r1`..).
pub fn replica_name(index: usize) -> String {
    format!("r{}", index + 1)
}

/// Replica `index`: clients on its own loopback address (127.0.0.1..), admin on `admin`.
fn identity(index: usize, admin: SocketAddr) -> Identity {
    Identity {
        listen: IpAddr::from([127, 0, 0, u8::try_from(index + 1).expect("a few replicas")]),
        pod: None,
        admin: Some(admin),
    }
}

/// The operator instance `identity`, with the product's default Lease.
fn operator_config(ctx: &TestContext, identity: &str) -> ControllerConfig {
    ControllerConfig {
        identity: identity.to_owned(),
        leader_election: Some(LeaderElection::new(
            "portcullis-controller",
            &ctx.namespace,
            LEASE,
        )),
        ..ControllerConfig::default()
    }
}

/// The Gateway (three replicas, a short drain delay so that the drill stays short), the
/// ServiceBackend `web` (the Service's endpoints, with outlier detection) and the Routes:
/// `api` (`/api`, retried as a user would configure it) and `edits` (what the drills edit).
fn manifests(namespace: &str, port: u16) -> Vec<Value> {
    let mut gateway = gateway(namespace, port);
    gateway["spec"]["replicas"] = json!(REPLICAS);
    gateway["spec"]["drain"] = json!({ "delay": DRAIN_DELAY, "timeout": "10s" });
    let retried = json!({
        "matches": [{ "path": { "type": "PathPrefix", "value": "/api" } }],
        "backendRefs": [{ "name": "web" }],
        "retry": { "attempts": 2, "retryOn": ["ConnectFailure", "GatewayError"], "backoff": "25ms" },
    });
    vec![
        gateway,
        json!({
            "apiVersion": "portcullis.dev/v1alpha1",
            "kind": "ServiceBackend",
            "metadata": { "name": "web", "namespace": namespace },
            "spec": {
                "service": { "name": "web", "port": 80 },
                "outlierDetection": { "consecutiveGatewayErrors": 2, "ejectionTime": "30s" },
            },
        }),
        route(namespace, "api", &[retried]),
        route(namespace, "edits", &[exact("/edit-0", "web")]),
    ]
}

/// The Route `name` on the Gateway with `rules`.
pub fn route(namespace: &str, name: &str, rules: &[Value]) -> Value {
    json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "Route",
        "metadata": { "name": name, "namespace": namespace },
        "spec": { "parentRefs": [{ "name": GATEWAY }], "rules": rules },
    })
}

/// A rule sending the exact path `path` to the ServiceBackend `backend`.
pub fn exact(path: &str, backend: &str) -> Value {
    json!({
        "matches": [{ "path": { "type": "Exact", "value": path } }],
        "backendRefs": [{ "name": backend }],
    })
}
