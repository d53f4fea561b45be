//! The two ways users install Portcullis: the Helm chart (`charts/portcullis`) and
//! `deploy/install.yaml`, which is that chart rendered.
//!
//! helm accepts the chart; install.yaml is exactly the chart rendered; the chart grants exactly
//! the ClusterRole the operator's code asks for and ships exactly the repository's CRDs; and the
//! real API server (the test control plane, Kubernetes 1.36) takes every object of install.yaml
//! with strict field validation, rolls the operator's Deployment out under the restricted Pod
//! Security Standard, and the real binary starts with the Deployment's flags as its
//! ServiceAccount.
//!
//! helm comes from `$PORTCULLIS_HELM` (which `make test` exports after running
//! `hack/build-helm.sh`), else from that script's cache.

mod support;

use std::{
    collections::BTreeSet,
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

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

/// The helm binary; `make test` exports it.
const HELM_ENV: &str = "PORTCULLIS_HELM";

/// The namespace install.yaml installs into.
const NAMESPACE: &str = "portcullis-system";

/// The field manager install.yaml is applied with, as `kubectl apply --server-side` would.
const FIELD_MANAGER: &str = "portcullis-install-test";

/// How long the control plane gets to roll the operator out and the binary to start.
const TIMEOUT: Duration = Duration::from_secs(90);

/// The repository root.
const REPO_ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn repo(path: &str) -> PathBuf {
    Path::new(REPO_ROOT).join(path)
}

fn read(path: &str) -> String {
    fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The helm binary: `$PORTCULLIS_HELM`, else what `hack/build-helm.sh` has cached. Never builds
/// it (a cold build takes minutes); panics saying how to get it.
fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os(HELM_ENV) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{HELM_ENV}={} is not a file",
            path.display()
        );
        return path;
    }
    let output = Command::new("bash")
        .arg(repo("hack/build-helm.sh"))
        .arg("--cached-only")
        .stdin(Stdio::null())
        .output()
        .expect("hack/build-helm.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last() {
        Some(path) if output.status.success() => PathBuf::from(path),
        _ => panic!(
            "helm is not built yet. Run `make test` once (it builds helm from the Go module \
             proxy with hack/build-helm.sh, a few minutes, cached in ~/.cache/portcullis/helm), \
             or point {HELM_ENV} at a helm binary.\n{}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
}

/// Runs helm with `args` in the repository and returns its standard output. Helm's own
/// configuration, cache and data stay in the target directory, away from the user's.
fn run_helm(args: &[&str]) -> String {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
    let output = Command::new(helm())
        .args(args)
        .current_dir(REPO_ROOT)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .output()
        .expect("helm runs");
    assert!(
        output.status.success(),
        "helm {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("helm prints UTF-8")
}

/// The documents of a multi-document YAML text (comment-only documents left out).
fn documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .expect("valid YAML")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The documents of deploy/install.yaml.
fn install_yaml() -> Vec<Value> {
    documents(&read("deploy/install.yaml"))
}

/// The one document of `kind` among `documents`.
fn the<T: serde::de::DeserializeOwned>(documents: &[Value], kind: &str) -> T {
    let found: Vec<&Value> = documents.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    serde_json::from_value(found[0].clone()).unwrap_or_else(|e| panic!("a valid {kind}: {e}"))
}

/// The Chart.yaml field `key`.
fn chart_field(key: &str) -> String {
    let chart: Value = serde_saphyr::from_str(&read("charts/portcullis/Chart.yaml")).expect("YAML");
    chart[key]
        .as_str()
        .unwrap_or_else(|| panic!("Chart.yaml has no {key}"))
        .to_owned()
}

#[test]
fn helm_lint_accepts_the_chart_with_default_and_other_values() {
    run_helm(&["lint", "--strict", "charts/portcullis"]);
    run_helm(&[
        "lint",
        "--strict",
        "charts/portcullis",
        "--set",
        "controller.replicas=1,controller.leaderElection.enabled=false,\
         controller.podDisruptionBudget.enabled=false,controller.topologySpread.enabled=false,\
         metrics.service.enabled=false,serviceAccount.create=false,serviceAccount.name=ops,\
         controller.watchNamespace=shop",
    ]);
}

#[test]
fn install_yaml_is_the_chart_rendered() {
    let output = Command::new("bash")
        .arg(repo("hack/render-install-yaml.sh"))
        .env(HELM_ENV, helm())
        .stdin(Stdio::null())
        .output()
        .expect("hack/render-install-yaml.sh runs");
    assert!(
        output.status.success(),
        "hack/render-install-yaml.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stdout == read("deploy/install.yaml").as_bytes(),
        "deploy/install.yaml differs from the chart rendered: run `make install-yaml` and commit"
    );
}

#[test]
fn the_chart_grants_exactly_the_cluster_role_the_operator_code_asks_for() {
    let role: ClusterRole = the(&install_yaml(), "ClusterRole");
    let name = role.metadata.name.clone().expect("a name");
    assert!(
        role.rules == permissions::cluster_role(&name).rules,
        "the chart's ClusterRole differs from permissions::cluster_role: run `make generate` \
         (chart-rbac, then install-yaml) and commit"
    );
}

#[test]
fn the_chart_ships_the_repositorys_crds() {
    assert!(
        read("charts/portcullis/crds/portcullis.yaml") == read("crds/portcullis.yaml"),
        "charts/portcullis/crds/portcullis.yaml differs from crds/portcullis.yaml: run `make crds`"
    );
}

#[test]
fn the_chart_version_and_app_version_are_the_crate_version() {
    assert_eq!(chart_field("version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(chart_field("appVersion"), env!("CARGO_PKG_VERSION"));
}

#[test]
fn install_yaml_runs_two_hardened_probed_operator_replicas_of_this_version() {
    let documents = install_yaml();
    let image = format!(
        "ghcr.io/portcullis-dev/portcullis:{}",
        env!("CARGO_PKG_VERSION")
    );
    // Every namespaced object names its namespace, so a plain `kubectl apply -f` puts it there.
    for document in &documents {
        let kind = document["kind"].as_str().expect("a kind");
        let cluster_scoped = [
            "Namespace",
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
        ];
        if !cluster_scoped.contains(&kind) {
            assert_eq!(document["metadata"]["namespace"], NAMESPACE, "{kind}");
        }
    }

    let deployment: Value = documents
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment")
        .clone();
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(
        pod["topologySpreadConstraints"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["image"], image.as_str());
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    let env_field = |name: &str| {
        container["env"]
            .as_array()
            .expect("env")
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].clone())
    };
    assert_eq!(env_field("POD_NAME"), Some("metadata.name".into()));
    assert_eq!(
        env_field("POD_NAMESPACE"),
        Some("metadata.namespace".into())
    );
    let args = args_of(&deployment);
    assert!(
        args.contains(&"--leader-election=true".to_owned()),
        "{args:?}"
    );
    assert!(args.contains(&format!("--proxy-image={image}")), "{args:?}");

    let budget: PodDisruptionBudget = the(&documents, "PodDisruptionBudget");
    assert_eq!(
        budget.spec.and_then(|s| s.max_unavailable),
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
}

#[test]
fn chart_values_reach_the_operators_flags() {
    let rendered = run_helm(&[
        "template",
        "edge",
        "charts/portcullis",
        "--namespace",
        "gateways",
        "--set",
        "controller.watchNamespace=shop,controller.proxyImage=registry.example/portcullis:dev,\
         controller.leaderElection.enabled=false,controller.replicas=1,metrics.port=9090",
    ]);
    let deployment = documents(&rendered)
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    assert_eq!(deployment["metadata"]["name"], "edge-portcullis-controller");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let args = args_of(&deployment);
    for expected in [
        "--namespace=shop",
        "--proxy-image=registry.example/portcullis:dev",
        "--leader-election=false",
        "--metrics-addr=0.0.0.0:9090",
    ] {
        assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
    }
    assert!(!args.iter().any(|a| a.starts_with("--lease")), "{args:?}");
}

/// The operator container's arguments.
fn args_of(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("a string argument").to_owned())
        .collect()
}

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
    if !(control_plane.has_controller_manager() && control_plane.has_fake_nodes()) {
        eprintln!("no kube-controller-manager or fake nodes: the rollout is not checked");
        return;
    }
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
    if !(ctx.control_plane.has_controller_manager() && ctx.control_plane.has_fake_nodes()) {
        eprintln!("no kube-controller-manager or fake nodes: helm install --wait cannot finish");
        return;
    }
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
