//! The two ways users install Portcullis, in a real cluster (the test control plane,
//! Kubernetes 1.36): the API server takes every object of `deploy/install.yaml` with strict
//! field validation and rolls the operator's Deployment out under the restricted Pod Security
//! Standard; its ServiceAccount holds every permission the code asks for; the real binary starts
//! with the Deployment's flags as that ServiceAccount and one replica leads; and `helm install`
//! of the chart waits for the operator and uninstalls cleanly.

#[path = "chart_support/mod.rs"]
mod chart_support;
mod support;

use std::{
    collections::BTreeSet,
    fs,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use chart_support::*;
use k8s_openapi::api::{
    apps::v1::Deployment,
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
    coordination::v1::Lease,
    core::v1::Pod,
    policy::v1::PodDisruptionBudget,
    rbac::v1::ClusterRole,
};
use kube::{
    Api, Client,
    api::{
        ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    },
    discovery::{self, Scope},
};
use portcullis_controller::permissions;
use serde_json::Value;
use support::control_plane::{ControlPlane, TestContext, eventually};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    sync::OnceCell,
};

/// The field manager install.yaml is applied with, as `kubectl apply --server-side` would.
const FIELD_MANAGER: &str = "portcullis-install-test";

/// How long the control plane gets to roll the operator out and the binary to start.
const TIMEOUT: Duration = Duration::from_secs(90);

/// Applies deploy/install.yaml once per test binary, document by document in file order, with
/// server-side apply and strict field validation (an unknown or misspelt field is an error, not a
/// warning). Panics naming the object the API server refuses.
async fn install(client: &Client) {
    static INSTALLED: OnceCell<()> = OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            let params = PatchParams::apply(FIELD_MANAGER).validation_strict();
            for document in install_yaml() {
                let object: DynamicObject =
                    serde_json::from_value(document.clone()).expect("a Kubernetes object");
                let types = object.types.clone().expect("apiVersion and kind");
                let (group, version) = match types.api_version.split_once('/') {
                    Some((group, version)) => (group, version),
                    None => ("", types.api_version.as_str()),
                };
                let gvk = GroupVersionKind::gvk(group, version, &types.kind);
                let (resource, capabilities): (ApiResource, _) =
                    discovery::pinned_kind(client, &gvk)
                        .await
                        .unwrap_or_else(|e| panic!("the API server serves {gvk:?}: {e}"));
                let name = object.metadata.name.clone().expect("a name");
                let api: Api<DynamicObject> = match capabilities.scope {
                    Scope::Cluster => Api::all_with(client.clone(), &resource),
                    Scope::Namespaced => {
                        let namespace = object.metadata.namespace.as_deref().expect("a namespace");
                        Api::namespaced_with(client.clone(), namespace, &resource)
                    }
                };
                api.patch(&name, &params, &Patch::Apply(&document))
                    .await
                    .unwrap_or_else(|e| {
                        panic!("the API server refuses {} {name}: {e}", types.kind)
                    });
            }
        })
        .await;
}

#[tokio::test]
async fn install_yaml_applies_and_rolls_out_two_spread_operator_replicas_under_restricted_pod_security()
 {
    let control_plane = ControlPlane::shared().await;
    let client = control_plane.client().await;
    install(&client).await;
    control_plane.require_workloads();
    // Pods that break the namespace's restricted Pod Security Standard are refused, and the
    // Deployment would never become available.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    eventually(
        "the operator's Deployment to have 2 available replicas",
        TIMEOUT,
        || async {
            let deployment = deployments.get("portcullis-controller").await.ok()?;
            let status = deployment.status?;
            (status.available_replicas == Some(2)).then_some(())
        },
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let nodes: BTreeSet<String> = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=controller"))
        .await
        .expect("the operator's pods")
        .into_iter()
        .filter_map(|pod| pod.spec?.node_name)
        .collect();
    assert_eq!(nodes.len(), 2, "one replica per node: {nodes:?}");
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), NAMESPACE);
    eventually(
        "the PodDisruptionBudget to allow one disruption",
        TIMEOUT,
        || async {
            let status = budgets.get("portcullis-controller").await.ok()?.status?;
            (status.current_healthy == 2 && status.disruptions_allowed == 1).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn the_operators_service_account_holds_every_permission_the_code_asks_for() {
    let control_plane = ControlPlane::shared().await;
    let client = control_plane.client().await;
    install(&client).await;
    let deployment: Deployment = the(&install_yaml(), "Deployment");
    let account = deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.service_account_name)
        .expect("the Deployment names its ServiceAccount");
    let user = format!("system:serviceaccount:{NAMESPACE}:{account}");
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let rules = permissions::cluster_role("any").rules.unwrap_or_default();
    for rule in &rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    let (resource, subresource) = match resource.split_once('/') {
                        Some((resource, sub)) => (resource.to_owned(), Some(sub.to_owned())),
                        None => (resource.clone(), None),
                    };
                    let review = SubjectAccessReview {
                        spec: SubjectAccessReviewSpec {
                            user: Some(user.clone()),
                            resource_attributes: Some(ResourceAttributes {
                                group: Some(group.clone()),
                                resource: Some(resource.clone()),
                                subresource: subresource.clone(),
                                verb: Some(verb.clone()),
                                namespace: Some("shop".to_owned()),
                                ..ResourceAttributes::default()
                            }),
                            ..SubjectAccessReviewSpec::default()
                        },
                        ..SubjectAccessReview::default()
                    };
                    let allowed = reviews
                        .create(&PostParams::default(), &review)
                        .await
                        .expect("a SubjectAccessReview")
                        .status
                        .is_some_and(|s| s.allowed);
                    assert!(
                        allowed,
                        "{user} may not {verb} {group}/{resource} {subresource:?}"
                    );
                }
            }
        }
    }
}

/// A `portcullis controller` process, killed when dropped.
struct Controller {
    child: Child,
    log: PathBuf,
}

impl Controller {
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP status of `GET path` on 127.0.0.1:`port`, if it answers within a second.
async fn http_status(port: u16, path: &str) -> Option<u16> {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        std::io::Result::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(1), probe)
        .await
        .ok()?
        .ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn the_binary_starts_with_the_deployments_flags_as_its_service_account_and_one_leads() {
    let control_plane = ControlPlane::shared().await;
    let client = control_plane.client().await;
    install(&client).await;
    let documents = install_yaml();
    let deployment = documents
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    let account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .expect("a ServiceAccount");

    // The admin kubeconfig, acting as the operator's ServiceAccount.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut kubeconfig: Value = serde_json::from_str(
        &fs::read_to_string(control_plane.kubeconfig()).expect("the kubeconfig"),
    )
    .expect("the harness writes JSON");
    kubeconfig["users"][0]["user"]["as"] =
        format!("system:serviceaccount:{NAMESPACE}:{account}").into();
    let kubeconfig_path = dir.path().join("kubeconfig");
    fs::write(&kubeconfig_path, kubeconfig.to_string()).expect("kubeconfig written");

    // Two replicas, as the Deployment runs them: its arguments, POD_NAME and POD_NAMESPACE;
    // only the metrics address moves to a free loopback port.
    let mut replicas = Vec::new();
    for name in ["portcullis-controller-a", "portcullis-controller-b"] {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let args: Vec<String> = args_of(deployment)
            .into_iter()
            .map(|arg| {
                if arg.starts_with("--metrics-addr=") {
                    format!("--metrics-addr=127.0.0.1:{port}")
                } else {
                    arg
                }
            })
            .collect();
        let log = dir.path().join(format!("{name}.log"));
        let output = fs::File::create(&log).expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(&args)
            .env("KUBECONFIG", &kubeconfig_path)
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", NAMESPACE)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("a log file handle"))
            .stderr(output)
            .spawn()
            .expect("portcullis controller starts");
        replicas.push((name, port, Controller { child, log }));
    }

    for (name, port, controller) in &mut replicas {
        let ready = tokio::time::timeout(TIMEOUT, async {
            loop {
                if http_status(*port, "/readyz").await == Some(200) {
                    return true;
                }
                if controller.child.try_wait().ok().flatten().is_some() {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        assert!(
            ready == Ok(true),
            "{name} did not become ready:\n{}",
            controller.log_tail()
        );
        assert_eq!(http_status(*port, "/healthz").await, Some(200));
    }

    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let holder = eventually("one replica to hold the Lease", TIMEOUT, || async {
        leases
            .get("portcullis-controller")
            .await
            .ok()?
            .spec?
            .holder_identity
    })
    .await;
    assert!(
        replicas.iter().any(|(name, ..)| *name == holder),
        "the Lease is held by {holder}"
    );
}

#[tokio::test]
async fn helm_installs_the_chart_waits_for_the_operator_and_uninstalls_it() {
    let ctx = TestContext::new("helm-install").await;
    ctx.control_plane.require_workloads();
    let kubeconfig = ctx.control_plane.kubeconfig().display().to_string();
    let namespace = ctx.namespace.clone();
    // A release name of its own: its cluster-wide objects (ClusterRole, binding) are
    // `edge-portcullis`, apart from install.yaml's. The CRDs are there already (Helm skips them).
    let helm_in_cluster = move |args: &[&str]| {
        let mut all = vec!["--kubeconfig", &kubeconfig, "--namespace", &namespace];
        all.extend_from_slice(args);
        run_helm(&all)
    };
    let install = helm_in_cluster.clone();
    let notes = tokio::task::spawn_blocking(move || {
        install(&[
            "install",
            "edge",
            "charts/portcullis",
            "--wait",
            "--timeout",
            "90s",
        ])
    })
    .await
    .expect("helm install runs");
    assert!(
        notes.contains(&format!(
            "Portcullis {} is installed in namespace {}",
            env!("CARGO_PKG_VERSION"),
            ctx.namespace
        )),
        "{notes}"
    );
    let deployment: Deployment = ctx
        .api()
        .get("edge-portcullis-controller")
        .await
        .expect("the operator's Deployment");
    assert_eq!(deployment.status.and_then(|s| s.ready_replicas), Some(2));

    tokio::task::spawn_blocking(move || helm_in_cluster(&["uninstall", "edge", "--wait"]))
        .await
        .expect("helm uninstall runs");
    let roles: Api<ClusterRole> = Api::all(ctx.client.clone());
    assert!(
        roles
            .get_opt("edge-portcullis")
            .await
            .expect("a ClusterRole lookup")
            .is_none(),
        "helm uninstall removes the ClusterRole"
    );
}
