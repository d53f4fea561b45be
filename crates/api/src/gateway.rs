//! `Gateway`: a replicated gateway deployment and the listeners it serves.

// Several `printcolumn(...)` entries each carry `type_`; clippy reads them as one repeated attribute.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Affinity, ResourceRequirements, Toleration},
    apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector},
};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::Policies;

/// A gateway: the single entry point in front of a set of services.
///
/// The operator turns each Gateway into a Deployment of gateway replicas (two by default, spread
/// over nodes and zones), a Service in front of them, a PodDisruptionBudget, optionally an HPA,
/// and a ConfigMap holding the compiled configuration of every Route attached to it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "portcullis.dev",
    version = "v1alpha1",
    kind = "Gateway",
    namespaced,
    status = "GatewayStatus",
    derive = "PartialEq",
    shortname = "pgw",
    category = "portcullis",
    doc = "A Portcullis gateway: replicated gateway pods, their Service, and the listeners they serve.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.ready",
        description = "Ready replicas / desired replicas"
    ),
    printcolumn(
        name = "Live",
        type_ = "string",
        json_path = ".status.config.live",
        description = "Ready replicas that serve the current config revision / ready replicas"
    ),
    printcolumn(
        name = "Address",
        type_ = "string",
        json_path = ".status.addresses[0].value",
        description = "Where clients reach the gateway"
    ),
    printcolumn(
        name = "Routes",
        type_ = "integer",
        json_path = ".status.attachedRoutes",
        description = "Routes attached to the gateway"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The ports, protocols and hostnames the gateway accepts traffic on.
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(
        validation = Rule::new("self.all(l, self.exists_one(o, o.name == l.name))")
            .message("listener names must be unique"),
        validation = Rule::new("self.all(l, self.all(o, o.port != l.port || o.protocol == l.protocol))")
            .message("listeners on the same port must use the same protocol"),
        validation = Rule::new("self.all(l, self.exists_one(o, o.port == l.port && (has(o.hostname) ? (has(l.hostname) && o.hostname == l.hostname) : !has(l.hostname))))")
            .message("two listeners on the same port must not have the same hostname")
    )]
    pub listeners: Vec<Listener>,
    /// Gateway replicas to run. Two by default, so that losing one pod or node loses no traffic.
    /// Ignored when `autoscaling` is set: the HorizontalPodAutoscaler owns the count then.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// Scale replicas with CPU load through a HorizontalPodAutoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// The PodDisruptionBudget that keeps voluntary evictions (node drains, upgrades) from taking
    /// too many replicas at once.
    #[serde(default)]
    pub disruption_budget: DisruptionBudget,
    /// Where replicas are scheduled. By default they spread over nodes and zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// CPU and memory for each replica (default requests: 100m CPU, 64Mi memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// How a replica shuts down without failing requests.
    #[serde(default)]
    pub drain: Drain,
    /// The Service clients reach the gateway through.
    #[serde(default)]
    pub service: GatewayService,
    /// Policies every route rule on this gateway inherits unless the rule sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Policies>,
    /// State shared by all replicas: global rate limits and shared caches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_state: Option<SharedState>,
}

fn default_replicas() -> i32 {
    2
}

/// The protocol a listener speaks to clients.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListenerProtocol {
    /// Plain HTTP/1.1 (and HTTP/2 with prior knowledge).
    #[serde(rename = "HTTP")]
    Http,
    /// HTTP/1.1 and HTTP/2 over TLS; the certificate is chosen by SNI.
    #[serde(rename = "HTTPS")]
    Https,
}

/// One port (and optionally one hostname) the gateway accepts traffic on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.protocol != 'HTTPS' || has(self.tls)")
        .message("an HTTPS listener needs tls.certificateRefs"),
    validation = Rule::new("self.protocol != 'HTTP' || !has(self.tls)")
        .message("tls is only allowed on HTTPS listeners")
)]
pub struct Listener {
    /// The listener's name, unique in the Gateway; Routes select it with `sectionName`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The port to listen on.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// HTTP or HTTPS.
    pub protocol: ListenerProtocol,
    /// Only requests for this host (or, with a leading `*.`, its subdomains) use this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(
            pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
        )
    )]
    pub hostname: Option<String>,
    /// Certificates for HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Which Routes may attach to this listener.
    #[serde(default)]
    pub allowed_routes: AllowedRoutes,
}

/// TLS settings of an HTTPS listener.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    /// Secrets of type `kubernetes.io/tls`; the gateway picks the certificate whose names match the
    /// client's SNI, the first one otherwise.
    #[schemars(length(min = 1, max = 16))]
    pub certificate_refs: Vec<SecretRef>,
}

/// A reference to a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Secret; the Gateway's own when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

/// Which Routes may attach to a listener.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AllowedRoutes {
    /// The namespaces Routes may come from.
    #[serde(default)]
    pub namespaces: RouteNamespaces,
}

/// Where attachable Routes may live.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FromNamespaces {
    /// Only the Gateway's own namespace.
    #[default]
    Same,
    /// Any namespace.
    All,
    /// Namespaces whose labels match `selector`.
    Selector,
}

/// The namespaces Routes may attach from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(self.from == 'Selector') == has(self.selector)")
        .message("selector is required when from is Selector, and only then")
)]
pub struct RouteNamespaces {
    /// `Same` (default), `All` or `Selector`.
    #[serde(default)]
    pub from: FromNamespaces,
    /// Labels of the namespaces allowed, for `from: Selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// CPU-based autoscaling.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.minReplicas <= self.maxReplicas")
        .message("minReplicas must not be greater than maxReplicas")
)]
pub struct Autoscaling {
    /// Fewest replicas; keep at least 2 for redundancy.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Most replicas.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU utilisation, in percent of the request, that the autoscaler aims for.
    #[serde(default = "default_cpu_target")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

fn default_cpu_target() -> i32 {
    80
}

/// The PodDisruptionBudget of the gateway replicas.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudget {
    /// Replicas that voluntary disruptions may take down at once.
    #[serde(default = "default_max_unavailable")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_unavailable: i32,
}

fn default_max_unavailable() -> i32 {
    1
}

impl Default for DisruptionBudget {
    fn default() -> Self {
        Self {
            max_unavailable: default_max_unavailable(),
        }
    }
}

/// Scheduling of the gateway replicas.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Spread replicas over nodes and zones (best effort, `ScheduleAnyway`). On by default.
    #[serde(default = "default_true")]
    pub spread: bool,
    /// Nodes the replicas may run on, by label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the replicas tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node and pod affinity of the replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

fn default_true() -> bool {
    true
}

/// How a replica leaves without failing requests (on SIGTERM).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Drain {
    /// How long the replica keeps accepting after it reports not-ready, so load balancers notice.
    #[serde(default = "default_drain_delay")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    pub delay: String,
    /// How long in-flight requests may take to finish after accepting stops.
    #[serde(default = "default_drain_timeout")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    pub timeout: String,
}

fn default_drain_delay() -> String {
    "5s".to_owned()
}
fn default_drain_timeout() -> String {
    "30s".to_owned()
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            delay: default_drain_delay(),
            timeout: default_drain_timeout(),
        }
    }
}

/// The kind of Service in front of the replicas.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceType {
    /// An external load balancer (the default).
    #[default]
    LoadBalancer,
    /// A port on every node.
    NodePort,
    /// Reachable inside the cluster only.
    #[serde(rename = "ClusterIP")]
    ClusterIp,
}

/// Whether external traffic may be routed to replicas on other nodes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExternalTrafficPolicy {
    /// Any node (the Kubernetes default).
    Cluster,
    /// Only the node the traffic arrived on: keeps the client IP.
    Local,
}

/// The Service clients reach the gateway through.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayService {
    /// `LoadBalancer` (default), `NodePort` or `ClusterIP`.
    #[serde(default, rename = "type")]
    pub kind: ServiceType,
    /// Annotations for the Service, e.g. for a cloud load balancer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `Cluster` or `Local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<ExternalTrafficPolicy>,
}

/// State shared by all replicas of a gateway.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SharedState {
    /// The Redis server holding global rate-limit counters and shared cache entries.
    pub redis: RedisRef,
}

/// Where the shared Redis is.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RedisRef {
    /// `host:port` of the Redis server.
    #[schemars(length(min = 1, max = 512))]
    pub address: String,
    /// The Secret key holding the Redis password, if it needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<crate::policy::SecretKeyRef>,
}

/// What the operator observed of a Gateway.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Accepted`, `Programmed`, `Ready` and `Degraded`, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Replicas that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Replicas that are ready to serve.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Replicas running the current pod template.
    #[serde(default)]
    pub updated_replicas: i32,
    /// `ready/desired`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Where clients reach the gateway: load balancer ingress, else the cluster IP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<GatewayAddress>,
    /// Routes attached to the gateway, over all listeners.
    #[serde(default)]
    pub attached_routes: i32,
    /// Per listener: attached routes and conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub listeners: Vec<ListenerStatus>,
    /// The compiled configuration the replicas serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigStatus>,
}

/// An address of the gateway.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayAddress {
    /// `IPAddress` or `Hostname`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The address.
    pub value: String,
}

/// The status of one listener.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// Routes attached to this listener.
    pub attached_routes: i32,
    /// `Accepted`, `ResolvedRefs`, `Programmed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The compiled configuration snapshot of a Gateway, and what the replicas report serving.
///
/// Every ready replica is counted once: `liveReplicas + staleReplicas + rejectedReplicas` is
/// the number of ready replicas.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    /// Content hash of the current snapshot (the ConfigMap's).
    pub revision: String,
    /// Size of the stored snapshot in bytes.
    pub size_bytes: i64,
    /// Ready replicas that report serving `revision`.
    #[serde(default)]
    pub live_replicas: i32,
    /// Ready replicas that serve an older revision, or have not reported yet.
    #[serde(default)]
    pub stale_replicas: i32,
    /// Ready replicas that refused `revision` and keep serving the one they had.
    #[serde(default)]
    pub rejected_replicas: i32,
    /// `live/ready`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
    /// Why a replica refused `revision`, naming the replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
