//! The Helm chart (`charts/portcullis`) and `deploy/install.yaml`, offline: helm accepts the
//! chart; install.yaml is exactly the chart rendered; the chart grants exactly the ClusterRole the
//! operator's code asks for, ships exactly the repository's CRDs and carries the crate's
//! version; and its values reach the operator's flags. `chart_install.rs` puts it in a cluster.
//!
//! helm comes from `$PORTCULLIS_HELM` (which `make test` exports after running
//! `hack/build-helm.sh`), else from that script's cache.

#[path = "chart_support/mod.rs"]
mod chart_support;

use std::process::{Command, Stdio};

use chart_support::*;
use k8s_openapi::api::{policy::v1::PodDisruptionBudget, rbac::v1::ClusterRole};
use portcullis_controller::permissions;
use serde_json::Value;

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
