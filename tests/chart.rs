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

/// `helm template` of the chart with `--set values`: its standard error when it refuses.
fn refusal(values: &str) -> String {
    let output = helm_output(&["template", "edge", "charts/portcullis", "--set", values]);
    assert!(!output.status.success(), "helm accepts --set {values}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn helm_refuses_a_misspelt_value_and_a_wrong_type_naming_the_value() {
    // A misspelt key would otherwise be ignored silently: leader election stays on.
    let stderr = refusal("controller.leaderElection.enable=false");
    assert!(
        stderr.contains(
            "at '/controller/leaderElection': additional properties 'enable' not allowed"
        ),
        "{stderr}"
    );
    let stderr = refusal("controller.replicas=two");
    assert!(
        stderr.contains("at '/controller/replicas': got string, want integer"),
        "{stderr}"
    );
    let stderr = refusal("controller.topologySpread.whenUnsatisfiable=Never");
    assert!(
        stderr.contains("value must be one of 'ScheduleAnyway', 'DoNotSchedule'"),
        "{stderr}"
    );
    let stderr = refusal("controller.leaderElection.leaseDuration=1");
    assert!(
        stderr.contains("/controller/leaderElection/leaseDuration"),
        "{stderr}"
    );
}

/// Every leaf of `values` (a map the schema leaves open, such as annotations, is a leaf) has a
/// property in `schema` with a type and a description; collects the paths that do not.
fn undescribed(values: &Value, schema: &Value, path: &str, missing: &mut Vec<String>) {
    let Some(entries) = values.as_object() else {
        return;
    };
    if schema.get("properties").is_none() {
        return;
    }
    for (key, value) in entries {
        let at = format!("{path}.{key}");
        let Some(property) = schema["properties"].get(key) else {
            missing.push(format!("{at}: not in values.schema.json"));
            continue;
        };
        let typed = property.get("type").is_some() || property.get("anyOf").is_some();
        if !typed || property.get("description").is_none() && property.get("properties").is_none() {
            missing.push(format!("{at}: no type or description"));
        }
        undescribed(value, property, &at, missing);
    }
}

#[test]
fn the_values_schema_types_every_value_and_closes_every_section() {
    let values: Value =
        serde_saphyr::from_str(&read("charts/portcullis/values.yaml")).expect("YAML");
    let schema: Value =
        serde_json::from_str(&read("charts/portcullis/values.schema.json")).expect("JSON");
    let mut missing = Vec::new();
    undescribed(&values, &schema, "", &mut missing);
    assert!(missing.is_empty(), "{missing:#?}");
    // Every section with properties refuses keys it does not know (a typo is an error).
    fn open_sections(schema: &Value, path: &str, found: &mut Vec<String>) {
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            if schema.get("additionalProperties") != Some(&Value::Bool(false)) {
                found.push(path.to_owned());
            }
            for (key, child) in properties {
                open_sections(child, &format!("{path}.{key}"), found);
            }
        }
    }
    let mut open = Vec::new();
    open_sections(&schema, "", &mut open);
    assert!(
        open.is_empty(),
        "sections that accept unknown keys: {open:?}"
    );
}

#[test]
fn the_monitors_are_off_by_default_and_select_the_operator_and_the_gateway_pods() {
    let kinds = |rendered: &str| -> Vec<String> {
        documents(rendered)
            .iter()
            .filter_map(|d| d["kind"].as_str().map(str::to_owned))
            .collect()
    };
    let default = run_helm(&["template", "edge", "charts/portcullis"]);
    assert!(!kinds(&default).iter().any(|k| k.ends_with("Monitor")));
    let rendered = run_helm(&[
        "template",
        "edge",
        "charts/portcullis",
        "--namespace",
        "ops",
        "--set",
        "metrics.serviceMonitor.enabled=true,gatewayMetrics.podMonitor.enabled=true,\
         metrics.serviceMonitor.labels.release=prometheus",
    ]);
    let documents = documents(&rendered);
    let find = |kind: &str| {
        documents
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("a {kind}"))
            .clone()
    };
    let service_monitor = find("ServiceMonitor");
    let service = find("Service");
    assert_eq!(
        service_monitor["metadata"]["labels"]["release"],
        "prometheus"
    );
    for (key, value) in service_monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(&service["metadata"]["labels"][key], value, "{key}");
    }
    assert_eq!(service_monitor["spec"]["endpoints"][0]["port"], "metrics");
    // The PodMonitor selects what every gateway pod the operator renders carries.
    let pod_monitor = find("PodMonitor");
    let mut labels = portcullis_controller::meta::selector_labels("edge");
    labels.extend(portcullis_controller::meta::child_labels("edge"));
    for (key, value) in pod_monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(labels.get(key).map(String::as_str), value.as_str(), "{key}");
    }
    assert_eq!(pod_monitor["spec"]["namespaceSelector"]["any"], true);
    assert_eq!(
        pod_monitor["spec"]["podMetricsEndpoints"][0]["port"],
        "admin"
    );
    let stderr = refusal("metrics.serviceMonitor.enabled=true,metrics.service.enabled=false");
    assert!(
        stderr.contains("metrics.serviceMonitor.enabled needs metrics.service.enabled"),
        "{stderr}"
    );
}
