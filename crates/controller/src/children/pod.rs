//! The gateway pod template: hardened, probed, drain-aware, spread over nodes and zones.
//!
//! It depends on the Gateway's spec (image, resources, placement, drain) and on which Secrets
//! the snapshot mounts, never on the snapshot's revision: the replicas pick up config changes
//! from their ConfigMap through the API without restarting.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
        EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSecurityContext, PodSpec,
        PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Sysctl,
        TopologySpreadConstraint, Volume, VolumeMount,
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use portcullis_api::Gateway;
use portcullis_config::snapshot::Snapshot;

use super::{BuildOptions, Owner, secrets};
use crate::meta;

/// The proxy's admin port: `/healthz`, `/ready`, `/metrics`, `/config`.
pub const ADMIN_PORT: i32 = 9901;
/// Where the ConfigMap is mounted; the proxy reads `config.yaml` there at start-up.
pub const CONFIG_DIR: &str = "/etc/portcullis/config";
/// The user the proxy runs as (distroless `nonroot`).
const RUN_AS: i64 = 65532;
/// Seconds the kubelet waits after the drain (delay + timeout) before killing the proxy.
const TERMINATION_SLACK_SECONDS: i64 = 5;

/// The pod template of the gateway replicas.
pub(super) fn template(
    owner: &Owner<'_>,
    gateway: &Gateway,
    snapshot: &Snapshot,
    mounts: &[secrets::SecretMount],
    options: &BuildOptions,
) -> PodTemplateSpec {
    let mut labels = meta::selector_labels(owner.name);
    labels.extend(meta::child_labels(owner.name));
    let mut volumes = vec![
        Volume {
            name: "config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: meta::config_map_name(owner.name),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let mut volume_mounts = vec![
        VolumeMount {
            name: "config".to_owned(),
            mount_path: CONFIG_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        },
    ];
    for (index, mount) in mounts.iter().enumerate() {
        let (volume, volume_mount) = secrets::volume(index, mount);
        volumes.push(volume);
        volume_mounts.push(volume_mount);
    }
    let drain_ms = snapshot
        .drain
        .delay_ms
        .saturating_add(snapshot.drain.timeout_ms);
    let drain_seconds = i64::try_from(drain_ms.div_ceil(1000)).unwrap_or(i64::MAX / 2);
    let placement = gateway.spec.placement.clone().unwrap_or_default();
    let spread = gateway.spec.placement.as_ref().is_none_or(|p| p.spread);

    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(meta::workload_name(owner.name)),
            automount_service_account_token: Some(true),
            // Service links would put one environment variable per Service of the namespace
            // into the proxy; it needs none of them.
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(drain_seconds + TERMINATION_SLACK_SECONDS),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS),
                run_as_group: Some(RUN_AS),
                fs_group: Some(RUN_AS),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    localhost_profile: None,
                }),
                // Listeners on ports below 1024 without any capability (a "safe", namespaced
                // sysctl every kubelet allows).
                sysctls: Some(vec![Sysctl {
                    name: "net.ipv4.ip_unprivileged_port_start".to_owned(),
                    value: "0".to_owned(),
                }]),
                ..PodSecurityContext::default()
            }),
            containers: vec![container(owner, gateway, options, volume_mounts)],
            volumes: Some(volumes),
            topology_spread_constraints: spread.then(|| spread_constraints(owner)),
            node_selector: (!placement.node_selector.is_empty()).then_some(placement.node_selector),
            tolerations: (!placement.tolerations.is_empty()).then_some(placement.tolerations),
            affinity: placement.affinity,
            ..PodSpec::default()
        }),
    }
}

fn container(
    owner: &Owner<'_>,
    gateway: &Gateway,
    options: &BuildOptions,
    volume_mounts: Vec<VolumeMount>,
) -> Container {
    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("admin".to_owned()),
            scheme: Some("HTTP".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        success_threshold: Some(1),
        timeout_seconds: Some(1),
        ..Probe::default()
    };
    let field = |path: &str| {
        Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                api_version: Some("v1".to_owned()),
            }),
            ..EnvVarSource::default()
        })
    };
    Container {
        name: "proxy".to_owned(),
        image: Some(options.proxy_image.clone()),
        args: Some(vec![
            "proxy".to_owned(),
            "--config".to_owned(),
            format!("{CONFIG_DIR}/{}", meta::CONFIG_KEY),
            "--configmap".to_owned(),
            format!("{}/{}", owner.namespace, meta::config_map_name(owner.name)),
            "--secrets".to_owned(),
            secrets::SECRETS_ROOT.to_owned(),
        ]),
        env: Some(vec![
            EnvVar {
                name: "POD_NAME".to_owned(),
                value_from: field("metadata.name"),
                value: None,
            },
            EnvVar {
                name: "POD_NAMESPACE".to_owned(),
                value_from: field("metadata.namespace"),
                value: None,
            },
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("admin".to_owned()),
            container_port: ADMIN_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        // Alive as soon as the process answers; only then do liveness checks start, so a slow
        // first config load is never mistaken for a hung process.
        startup_probe: Some(probe("/healthz", 1, 60)),
        readiness_probe: Some(probe("/ready", 2, 1)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        resources: Some(resources(gateway)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(volume_mounts),
        ..Container::default()
    }
}

/// The Gateway's resources, or requests of 100m CPU and 64Mi memory (requests are what the
/// scheduler and the HPA's CPU target go by).
fn resources(gateway: &Gateway) -> ResourceRequirements {
    gateway
        .spec
        .resources
        .clone()
        .unwrap_or_else(|| ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity("100m".to_owned())),
                ("memory".to_owned(), Quantity("64Mi".to_owned())),
            ])),
            ..ResourceRequirements::default()
        })
}

/// Spread over nodes, then zones, best effort: a cluster with one zone (or one node) still runs
/// every replica. `pod-template-hash` keeps a rollout's old pods from skewing the new ones.
fn spread_constraints(owner: &Owner<'_>) -> Vec<TopologySpreadConstraint> {
    ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
        .into_iter()
        .map(|key| TopologySpreadConstraint {
            topology_key: key.to_owned(),
            max_skew: 1,
            when_unsatisfiable: "ScheduleAnyway".to_owned(),
            label_selector: Some(LabelSelector {
                match_labels: Some(meta::selector_labels(owner.name)),
                match_expressions: None,
            }),
            match_label_keys: Some(vec!["pod-template-hash".to_owned()]),
            ..TopologySpreadConstraint::default()
        })
        .collect()
}
