//! `helm upgrade` from the previous chart version (`tests/fixtures/chart-0.1.0`, see its
//! README) to this one, on the real API server: the operator keeps its Lease through the
//! rollout (the new replicas name the same Lease and wait for it, so there is never a second
//! leader), and the gateway pods are not restarted, since their template does not change;
//! until an upgrade that changes it (a new gateway image), which rolls them.
//!
//! The operator replicas are real `portcullis controller` processes started with the arguments
//! of the Deployment each chart version renders (kwok's pods run nothing), old ones first, then
//! the new ones as a rollout replaces them.

#[path = "chart_support/mod.rs"]
mod chart_support;
#[path = "operator_support/mod.rs"]
mod operator_support;
mod support;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease, core::v1::Pod};
use kube::{Api, api::ListParams};
use operator_support::{TIMEOUT, apply_all, await_programmed, examples};
use serde_json::Value;
use support::control_plane::{TestContext, eventually};

/// A `portcullis controller` process, stopped with SIGTERM (so that it hands its Lease over)
/// or killed when dropped.
struct Controller(Child);

impl Controller {
    /// Starts the operator with the arguments of the Deployment in `manifest` (helm's rendered
    /// release), as pod `pod` of namespace `namespace`.
    fn start(ctx: &TestContext, manifest: &str, pod: &str) -> Self {
        let deployment = chart_support::documents(manifest)
            .into_iter()
            .find(|d| d["kind"] == "Deployment")
            .expect("the operator's Deployment");
        let args: Vec<String> = chart_support::args_of(&deployment)
            .into_iter()
            .map(|arg| {
                if arg.starts_with("--metrics-addr=") {
                    "--metrics-addr=127.0.0.1:0".to_owned()
                } else {
                    arg
                }
            })
            .chain(["--resync=2".to_owned()])
            .collect();
        let child = Command::new(
            std::env::var("PORTCULLIS_BIN")
                .unwrap_or_else(|_| env!("CARGO_BIN_EXE_portcullis").to_owned()),
        )
        .args(&args)
        .env("KUBECONFIG", ctx.control_plane.kubeconfig())
        .env("POD_NAME", pod)
        .env("POD_NAMESPACE", &ctx.namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("portcullis controller starts");
        Self(child)
    }

    /// SIGTERM, then wait: the operator releases its Lease on the way out.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Lease holder, once there is one.
async fn holder(leases: &Api<Lease>, name: &str) -> String {
    eventually(&format!("a holder of Lease {name}"), TIMEOUT, || async {
        leases.get(name).await.ok()?.spec?.holder_identity
    })
    .await
}

/// The UIDs of the gateway pods of Gateway `edge`, sorted.
async fn gateway_pods(ctx: &TestContext) -> Vec<String> {
    let pods: Api<Pod> = ctx.api();
    let mut uids: Vec<String> = pods
        .list(&ListParams::default().labels("portcullis.dev/gateway=edge"))
        .await
        .expect("the gateway pods")
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.uid)
        .collect();
    uids.sort();
    uids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_upgrade_from_the_previous_chart_keeps_the_lease_and_the_gateway_pods() {
    let ctx = TestContext::new("chart-upgrade").await;
    ctx.control_plane.require_workloads();
    let kubeconfig = ctx.control_plane.kubeconfig().display().to_string();
    let namespace = ctx.namespace.clone();
    // Real helm on a blocking thread, against the test's namespace.
    let helm = move |args: &[&str]| {
        let all: Vec<String> = ["--kubeconfig", &kubeconfig, "--namespace", &namespace]
            .iter()
            .chain(args)
            .map(|a| (*a).to_owned())
            .collect();
        async move {
            tokio::task::spawn_blocking(move || {
                let all: Vec<&str> = all.iter().map(String::as_str).collect();
                chart_support::run_helm(&all)
            })
            .await
            .expect("helm runs")
        }
    };
    // The previous version, with the operator watching only the test's namespace.
    let watch = format!("controller.watchNamespace={}", ctx.namespace);
    helm(&[
        "install",
        "shop",
        "tests/fixtures/chart-0.1.0",
        "--set",
        &watch,
        "--wait",
        "--timeout",
        "90s",
    ])
    .await;
    let old_manifest = helm(&["get", "manifest", "shop"]).await;
    let old = Controller::start(&ctx, &old_manifest, "shop-portcullis-controller-old");
    let leases: Api<Lease> = ctx.api();
    let lease = "shop-portcullis-controller";
    assert_eq!(
        holder(&leases, lease).await,
        "shop-portcullis-controller-old"
    );

    // A Gateway, rolled out by the old operator.
    apply_all(&ctx.client, &examples(&ctx.namespace)).await;
    let deployments: Api<Deployment> = ctx.api();
    // Converged: the Deployment's rollout is complete and stays so for a few of the old
    // operator's resyncs (the examples' Secret, applied after the Gateway, changes the pod
    // template once more when the operator sees it).
    await_programmed(&ctx, "edge").await;
    let rolled_out = || async {
        let deployment = deployments.get("edge").await.ok()?;
        let status = deployment.status.as_ref()?;
        let complete = status.observed_generation == deployment.metadata.generation
            && status.replicas == Some(3)
            && status.updated_replicas == Some(3)
            && status.ready_replicas == Some(3);
        let pods = gateway_pods(&ctx).await;
        (complete && pods.len() == 3).then_some((deployment.metadata.generation, pods))
    };
    let (generation, pods_before) = eventually(
        "the rollout to be complete and stay so",
        TIMEOUT,
        || async {
            let first = rolled_out().await?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            (rolled_out().await? == first).then_some(first)
        },
    )
    .await;

    // The upgrade: the new Deployment names the same Lease; its first new replica waits for it.
    helm(&[
        "upgrade",
        "shop",
        "charts/portcullis",
        "--set",
        &watch,
        "--wait",
        "--timeout",
        "90s",
    ])
    .await;
    let new_manifest = helm(&["get", "manifest", "shop"]).await;
    let lease_args = |manifest: &str| -> Vec<String> {
        let deployment: Value = chart_support::documents(manifest)
            .into_iter()
            .find(|d| d["kind"] == "Deployment")
            .expect("a Deployment");
        chart_support::args_of(&deployment)
            .into_iter()
            .filter(|a| a.starts_with("--lease") || a.starts_with("--leader"))
            .collect()
    };
    assert_eq!(lease_args(&new_manifest), lease_args(&old_manifest));
    let new = Controller::start(&ctx, &new_manifest, "shop-portcullis-controller-new");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        holder(&leases, lease).await,
        "shop-portcullis-controller-old",
        "a new replica never takes a held Lease"
    );
    old.stop();
    eventually("the new replica to lead", TIMEOUT, || async {
        let holder = leases.get(lease).await.ok()?.spec?.holder_identity?;
        (holder == "shop-portcullis-controller-new").then_some(())
    })
    .await;
    // Some resyncs of the new leader later, the gateway pods are the same.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = deployments
        .get("edge")
        .await
        .expect("edge")
        .metadata
        .generation;
    assert_eq!(after, generation, "the gateway Deployment is untouched");
    assert_eq!(
        gateway_pods(&ctx).await,
        pods_before,
        "the gateway pods are the same"
    );

    // A change to the gateway pods' template does roll them: a new gateway image.
    helm(&[
        "upgrade",
        "shop",
        "charts/portcullis",
        "--reuse-values",
        "--set",
        "controller.proxyImage=registry.example/portcullis:next",
        "--wait",
        "--timeout",
        "90s",
    ])
    .await;
    let newest = helm(&["get", "manifest", "shop"]).await;
    new.stop();
    let _newest = Controller::start(&ctx, &newest, "shop-portcullis-controller-newest");
    eventually(
        "the gateway pods to roll to the new image",
        TIMEOUT,
        || async {
            let deployment = deployments.get("edge").await.ok()?;
            let image = deployment
                .spec?
                .template
                .spec?
                .containers
                .first()?
                .image
                .clone()?;
            (image == "registry.example/portcullis:next"
                && deployment.metadata.generation > generation)
                .then_some(())
        },
    )
    .await;
}
