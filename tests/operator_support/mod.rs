//! What the operator tests share: running the operator in-process against the test control
//! plane, applying manifests, and acting as the kubelet the control plane does not have.
//!
//! A test binary pulls it in next to the harness:
//! `mod support; #[path = "operator_support/mod.rs"] mod operator_support;`
#![allow(
    dead_code,
    reason = "each operator test binary uses a different part of these helpers"
)]

use std::{fs, path::Path, sync::Arc, sync::mpsc, thread, time::Duration};

use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Pod},
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{
    Api, Client, Config, ResourceExt,
    api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams},
    client::ClientBuilder,
    config::{KubeConfigOptions, Kubeconfig},
};
use portcullis_api::Gateway;
use portcullis_controller::{ControllerConfig, Metrics, RunError, shutdown_trigger};
use serde_json::{Value, json};
use tokio::{sync::watch, task::JoinHandle};

use crate::support::control_plane::{TestContext, eventually};

/// How long the operator and kube-controller-manager get to act (CI machines have 2 cores).
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// The field manager tests write with (never the operator's).
pub const TEST_MANAGER: &str = "portcullis-tests";

/// An operator running in-process.
pub struct Operator {
    /// Its metrics (API writes, reconciles, leadership).
    pub metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), RunError>>,
}

impl Operator {
    /// Starts the operator on the test's namespace, with `config` (its `namespace` and
    /// `metrics` are set here).
    pub async fn start(ctx: &TestContext, config: ControllerConfig) -> Self {
        Self::start_as(ctx, None, config).await
    }

    /// Starts the operator acting as `user` (see [`client_as`]).
    pub async fn start_as(ctx: &TestContext, user: Option<&str>, config: ControllerConfig) -> Self {
        let metrics = Arc::new(Metrics::default());
        let client = client_as(ctx, user, &metrics).await;
        let config = ControllerConfig {
            namespace: Some(ctx.namespace.clone()),
            metrics: metrics.clone(),
            ..config
        };
        let (stop, shutdown) = shutdown_trigger();
        let task = tokio::spawn(portcullis_controller::run(client, config, shutdown));
        Self {
            metrics,
            stop,
            task,
        }
    }

    /// Starts the operator with the default settings and a short resync.
    pub async fn start_default(ctx: &TestContext) -> Self {
        Self::start(
            ctx,
            ControllerConfig {
                resync: Duration::from_secs(2),
                ..ControllerConfig::default()
            },
        )
        .await
    }

    /// Waits for the operator to end by itself (a start-up failure) and returns how.
    pub async fn outcome(self) -> Result<(), RunError> {
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("the operator ends")
            .expect("the operator task does not panic")
    }

    /// Stops the operator gracefully and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        match tokio::time::timeout(TIMEOUT, self.task).await {
            Ok(Ok(Ok(()))) => {}
            other => panic!("the operator did not stop cleanly: {other:?}"),
        }
    }
}

/// An operator on a runtime of its own, so that it can die abruptly: its runtime is dropped
/// with every task in it, the Lease is never released, as when the process is killed.
pub struct Mortal {
    /// Its metrics (reconciles, leadership).
    pub metrics: Arc<Metrics>,
    kill: mpsc::Sender<()>,
    thread: thread::JoinHandle<()>,
}

impl Mortal {
    /// Starts the operator on the test's namespace with `config`, on a runtime of its own.
    pub fn start(ctx: &TestContext, config: ControllerConfig) -> Self {
        let metrics = Arc::new(Metrics::default());
        let (kill, killed) = mpsc::channel();
        let ctx = ctx.clone();
        let shared = metrics.clone();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime");
            runtime.block_on(async {
                let client = counted_client(&ctx, &shared).await;
                let config = ControllerConfig {
                    namespace: Some(ctx.namespace.clone()),
                    metrics: shared.clone(),
                    ..config
                };
                tokio::spawn(portcullis_controller::run(
                    client,
                    config,
                    std::future::pending(),
                ));
            });
            let _ = killed.recv();
            runtime.shutdown_background();
        });
        Self {
            metrics,
            kill,
            thread,
        }
    }

    /// Kills the operator abruptly: no Lease release, no last write.
    pub fn kill(self) {
        let _ = self.kill.send(());
        self.thread.join().expect("the operator thread ends");
    }
}

/// A client for the test control plane whose writes `metrics` counts.
pub async fn counted_client(ctx: &TestContext, metrics: &Arc<Metrics>) -> Client {
    client_as(ctx, None, metrics).await
}

/// A client acting as `user` (impersonated by the admin), or as the admin; `metrics` counts its
/// writes.
pub async fn client_as(ctx: &TestContext, user: Option<&str>, metrics: &Arc<Metrics>) -> Client {
    let kubeconfig =
        Kubeconfig::read_from(ctx.control_plane.kubeconfig()).expect("the kubeconfig reads");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client config from the kubeconfig");
    if let Some(user) = user {
        config.auth_info.impersonate = Some(user.to_owned());
    }
    ClientBuilder::try_from(config)
        .expect("a client builder")
        .with_layer(&metrics.api_writes_layer())
        .build()
}

/// The `ApiResource` of the kinds tests apply.
fn resource_of(kind: &str) -> ApiResource {
    match kind {
        "Gateway" => ApiResource::erase::<Gateway>(&()),
        "Route" => ApiResource::erase::<portcullis_api::Route>(&()),
        "ServiceBackend" => ApiResource::erase::<portcullis_api::ServiceBackend>(&()),
        "Secret" => ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
        other => panic!("tests do not apply {other}"),
    }
}

/// The documents of every `*.yaml` file in `dir` (sorted), moved into `namespace`.
pub fn manifests(dir: &Path, namespace: &str) -> Vec<Value> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("the manifest folder reads")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("a manifest reads");
        let values: Vec<Value> = serde_saphyr::from_multiple(&text).expect("valid YAML");
        for mut value in values.into_iter().filter(|v| !v.is_null()) {
            value["metadata"]["namespace"] = json!(namespace);
            documents.push(value);
        }
    }
    documents
}

/// The Gateway, ServiceBackends, Routes and Secret of `deploy/examples`, moved into
/// `namespace`. The Deployments and Services of the shop's services are left out: a test that
/// needs a Service makes its own, with EndpointSlices of real upstreams.
pub fn examples(namespace: &str) -> Vec<Value> {
    manifests(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples"),
        namespace,
    )
    .into_iter()
    .filter(|d| d["kind"] != "Deployment" && d["kind"] != "Service")
    .collect()
}

/// Server-side applies `document` as the tests' field manager.
pub async fn apply(client: &Client, document: &Value) {
    let kind = document["kind"].as_str().expect("a kind");
    let namespace = document["metadata"]["namespace"]
        .as_str()
        .expect("a namespace");
    let name = document["metadata"]["name"].as_str().expect("a name");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource_of(kind));
    api.patch(
        name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(document),
    )
    .await
    .unwrap_or_else(|e| panic!("the API server refuses {kind} {namespace}/{name}: {e}"));
}

/// Applies every document.
pub async fn apply_all(client: &Client, documents: &[Value]) {
    for document in documents {
        apply(client, document).await;
    }
}

/// The document of `kind`/`name` among `documents`.
pub fn find<'a>(documents: &'a mut [Value], kind: &str, name: &str) -> &'a mut Value {
    documents
        .iter_mut()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} among the documents"))
}

/// The condition `type_` of `conditions`.
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Waits until Gateway `name` satisfies `check` and returns it.
pub async fn await_gateway(
    ctx: &TestContext,
    name: &str,
    what: &str,
    check: impl Fn(&Gateway) -> bool,
) -> Gateway {
    let gateways: Api<Gateway> = ctx.api();
    eventually(what, TIMEOUT, || async {
        let gateway = gateways.get_opt(name).await.ok()??;
        check(&gateway).then_some(gateway)
    })
    .await
}

/// Whether the Gateway's condition `type_` has `status` (and, if given, `reason`).
pub fn has_condition(gateway: &Gateway, type_: &str, status: &str, reason: Option<&str>) -> bool {
    gateway
        .status
        .as_ref()
        .and_then(|s| condition(&s.conditions, type_))
        .is_some_and(|c| c.status == status && reason.is_none_or(|r| c.reason == r))
}

/// Whether the Gateway's config and children are applied: `Programmed` is True, or False only
/// because rules of its Routes answer 503 (`RulesNotServed`) or because no replica reports
/// serving the revision yet (`Pending`: kwok's pods run nothing, so they never report; the
/// tests with real proxy processes check that reports make it True).
pub fn is_applied(gateway: &Gateway) -> bool {
    has_condition(gateway, "Programmed", "True", None)
        || has_condition(gateway, "Programmed", "False", Some("RulesNotServed"))
        || has_condition(gateway, "Programmed", "False", Some("Pending"))
}

/// Waits until the Gateway's config and children are applied (see [`is_applied`]) with its
/// current generation.
pub async fn await_programmed(ctx: &TestContext, name: &str) -> Gateway {
    await_gateway(ctx, name, "the Gateway to be Programmed", |g| {
        is_applied(g)
            && g.status.as_ref().and_then(|s| s.observed_generation) == g.metadata.generation
    })
    .await
}

/// Waits for the Deployment's pods (made by kube-controller-manager) and returns them.
pub async fn await_pods(ctx: &TestContext, gateway: &str, count: usize) -> Vec<Pod> {
    let pods: Api<Pod> = ctx.api();
    let selector = format!("portcullis.dev/gateway={gateway}");
    eventually(&format!("{count} gateway pods"), TIMEOUT, || async {
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .ok()?;
        let live: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        (live.len() == count).then_some(live)
    })
    .await
}

/// Marks a pod Ready (or not) through its status, as the kubelet would.
pub async fn set_pod_ready(ctx: &TestContext, pod: &Pod, ready: bool) {
    let pods: Api<Pod> = ctx.api();
    let status = if ready { "True" } else { "False" };
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = json!({
        "status": {
            "phase": "Running",
            "conditions": [
                { "type": "Ready", "status": status, "lastTransitionTime": now },
                { "type": "ContainersReady", "status": status, "lastTransitionTime": now },
            ],
        }
    });
    pods.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Strategic(&patch),
    )
    .await
    .expect("the pod status is patched");
}

/// The live Deployment of Gateway `name`.
pub async fn deployment(ctx: &TestContext, name: &str) -> Deployment {
    eventually(&format!("Deployment {name}"), TIMEOUT, || async {
        ctx.api::<Deployment>().get_opt(name).await.ok()?
    })
    .await
}

/// Creates namespace `name` unless it exists.
pub async fn ensure_namespace(client: &Client, name: &str) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let namespace =
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } });
    namespaces
        .patch(
            name,
            &PatchParams::apply(TEST_MANAGER),
            &Patch::Apply(&namespace),
        )
        .await
        .expect("the namespace exists");
}

/// Waits until the operator's reconciles of Gateways grow by `count`.
pub async fn await_reconciles(metrics: &Metrics, count: u64) {
    let start = metrics.reconciles("gateway");
    eventually(&format!("{count} more reconciles"), TIMEOUT, || async {
        (metrics.reconciles("gateway") >= start + count).then_some(())
    })
    .await;
}
