//! The Deployment, its Service, PodDisruptionBudget and HorizontalPodAutoscaler.

use std::collections::BTreeSet;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment},
        autoscaling::v2::{
            CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
            MetricSpec, MetricTarget, ResourceMetricSource,
        },
        core::v1::{Service, ServicePort, ServiceSpec},
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use portcullis_api::{
    Gateway,
    gateway::{ExternalTrafficPolicy, ServiceType},
};
use portcullis_config::snapshot::Snapshot;

use super::{BuildOptions, Owner, pod, secrets::SecretMount};
use crate::meta;

/// The gateway Deployment. Without autoscaling it runs `spec.replicas`; with autoscaling the
/// `replicas` field is left out entirely, so the HPA alone decides the count and the operator
/// never resets it.
pub(super) fn deployment(
    owner: &Owner<'_>,
    gateway: &Gateway,
    snapshot: &Snapshot,
    mounts: &[SecretMount],
    options: &BuildOptions,
) -> Deployment {
    Deployment {
        metadata: owner.metadata(meta::workload_name(owner.name)),
        spec: Some(DeploymentSpec {
            replicas: gateway
                .spec
                .autoscaling
                .is_none()
                .then_some(gateway.spec.replicas),
            selector: selector(owner),
            // Never below the desired count during a rollout: surge one new pod, wait for it to
            // be ready, then retire an old one.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: pod::template(owner, gateway, snapshot, mounts, options),
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The Service: one port per distinct listener port, named after the first listener on it.
pub(super) fn service(owner: &Owner<'_>, gateway: &Gateway) -> Service {
    let mut seen = BTreeSet::new();
    let ports: Vec<ServicePort> = gateway
        .spec
        .listeners
        .iter()
        .filter(|listener| seen.insert(listener.port))
        .map(|listener| ServicePort {
            name: Some(listener.name.clone()),
            port: i32::from(listener.port),
            target_port: Some(IntOrString::Int(i32::from(listener.port))),
            protocol: Some("TCP".to_owned()),
            ..ServicePort::default()
        })
        .collect();
    let kind = gateway.spec.service.kind;
    let mut metadata = owner.metadata(meta::workload_name(owner.name));
    if !gateway.spec.service.annotations.is_empty() {
        metadata.annotations = Some(gateway.spec.service.annotations.clone());
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(
                match kind {
                    ServiceType::LoadBalancer => "LoadBalancer",
                    ServiceType::NodePort => "NodePort",
                    ServiceType::ClusterIp => "ClusterIP",
                }
                .to_owned(),
            ),
            selector: Some(meta::selector_labels(owner.name)),
            ports: Some(ports),
            // Only meaningful for traffic from outside, which ClusterIP Services do not get.
            external_traffic_policy: gateway
                .spec
                .service
                .external_traffic_policy
                .filter(|_| kind != ServiceType::ClusterIp)
                .map(|policy| match policy {
                    ExternalTrafficPolicy::Cluster => "Cluster".to_owned(),
                    ExternalTrafficPolicy::Local => "Local".to_owned(),
                }),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// At most `disruptionBudget.maxUnavailable` replicas voluntarily down at once. Pods that are
/// not ready may always be evicted, so a broken replica never blocks a node drain.
pub(super) fn pod_disruption_budget(owner: &Owner<'_>, gateway: &Gateway) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: owner.metadata(meta::workload_name(owner.name)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(
                gateway.spec.disruption_budget.max_unavailable,
            )),
            selector: Some(selector(owner)),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
            min_available: None,
        }),
        status: None,
    }
}

/// The HPA, when the Gateway asks for autoscaling: CPU utilisation of the requests.
pub(super) fn horizontal_pod_autoscaler(
    owner: &Owner<'_>,
    gateway: &Gateway,
) -> Option<HorizontalPodAutoscaler> {
    let autoscaling = gateway.spec.autoscaling.as_ref()?;
    Some(HorizontalPodAutoscaler {
        metadata: owner.metadata(meta::workload_name(owner.name)),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: meta::workload_name(owner.name),
            },
            min_replicas: Some(autoscaling.min_replicas),
            max_replicas: autoscaling.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(autoscaling.target_cpu_utilization_percentage),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: None,
        }),
        status: None,
    })
}

fn selector(owner: &Owner<'_>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(meta::selector_labels(owner.name)),
        match_expressions: None,
    }
}
