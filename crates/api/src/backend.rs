//! `ServiceBackend`: a named pool of endpoints and how the gateway treats them.

// Several `printcolumn(...)` entries each carry `type_`; clippy reads them as one repeated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A pool of endpoints behind one name, with load balancing, health checking, outlier ejection,
/// circuit breaking and failover.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "portcullis.dev",
    version = "v1alpha1",
    kind = "ServiceBackend",
    namespaced,
    status = "ServiceBackendStatus",
    derive = "PartialEq",
    shortname = "psb",
    category = "portcullis",
    doc = "A Portcullis backend: the endpoints of one service and how the gateway balances, checks and fails over between them.",
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.endpoints.ready",
        description = "Ready endpoints"
    ),
    printcolumn(
        name = "Total",
        type_ = "integer",
        json_path = ".status.endpoints.total",
        description = "All endpoints"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[x_kube(
    validation = Rule::new("has(self.service) != has(self.endpoints)")
        .message("set exactly one of service or endpoints")
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBackendSpec {
    /// A Kubernetes Service in the same namespace; endpoints come from its EndpointSlices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceTarget>,
    /// Static endpoints (IP addresses or DNS names), for services outside the cluster and for
    /// `portcullis run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub endpoints: Option<Vec<StaticEndpoint>>,
    /// The protocol spoken to the endpoints.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// TLS to the endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
    /// How long to wait for a connection to an endpoint.
    #[serde(default = "default_connect_timeout")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    pub connect_timeout: String,
    /// How requests are spread over endpoints.
    #[serde(default)]
    pub load_balancer: LoadBalancer,
    /// Active health checks: endpoints failing them get no traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Passive health checks: endpoints that keep failing real requests are ejected for a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Limits that protect the endpoints from overload; requests beyond them get 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// ServiceBackends, in order, that take the traffic when this one has no healthy endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub failover: Vec<crate::route::BackendName>,
}

fn default_connect_timeout() -> String {
    "2s".to_owned()
}

/// A Kubernetes Service and port.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceTarget {
    /// Name of the Service, in the ServiceBackend's namespace.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The Service port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
}

/// One static endpoint.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StaticEndpoint {
    /// IP address or DNS name.
    #[schemars(length(min = 1, max = 253))]
    pub address: String,
    /// Port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
}

/// The protocol spoken to the endpoints.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    #[serde(rename = "HTTP1")]
    Http1,
    /// HTTP/2 (with prior knowledge over plain TCP, by ALPN over TLS).
    #[serde(rename = "HTTP2")]
    Http2,
}

/// TLS from the gateway to the endpoints.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamTls {
    /// The server name to send and verify; the endpoint's address when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub sni: Option<String>,
    /// A Secret key holding the CA bundle (PEM) that signs the endpoints' certificates; the
    /// system roots when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<crate::policy::SecretKeyRef>,
}

/// Load-balancing algorithms.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoadBalancerPolicy {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// The less busy of two random endpoints (power of two choices).
    LeastRequest,
    /// The same key always goes to the same endpoint while it is healthy (a hash ring).
    ConsistentHash,
    /// A random endpoint.
    Random,
}

/// How requests are spread over endpoints.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(self.policy == 'ConsistentHash') == has(self.consistentHash)")
        .message("consistentHash must be set when policy is ConsistentHash, and only then")
)]
pub struct LoadBalancer {
    /// `RoundRobin` (default), `LeastRequest`, `ConsistentHash` or `Random`.
    #[serde(default)]
    pub policy: LoadBalancerPolicy,
    /// What to hash, for `ConsistentHash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHash>,
}

/// The key of consistent hashing: exactly one of a header, a cookie or the client IP.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.header) ? 1 : 0) + (has(self.cookie) ? 1 : 0) + (self.clientIP ? 1 : 0) == 1")
        .message("set exactly one of header, cookie or clientIP")
)]
pub struct ConsistentHash {
    /// Hash this request header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub header: Option<String>,
    /// Hash this cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub cookie: Option<String>,
    /// Hash the client IP.
    #[serde(default, rename = "clientIP")]
    pub client_ip: bool,
}

/// Active health checking.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// The path requested with GET; a 2xx answer is healthy.
    #[serde(default = "default_health_path")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("health check path must start with '/'"))]
    pub path: String,
    /// Time between checks.
    #[serde(default = "default_health_interval")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    pub interval: String,
    /// Time a check may take.
    #[serde(default = "default_health_timeout")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    pub timeout: String,
    /// Successes in a row that make an unhealthy endpoint healthy.
    #[serde(default = "default_healthy_threshold")]
    #[schemars(range(min = 1, max = 100))]
    pub healthy_threshold: u32,
    /// Failures in a row that make a healthy endpoint unhealthy.
    #[serde(default = "default_unhealthy_threshold")]
    #[schemars(range(min = 1, max = 100))]
    pub unhealthy_threshold: u32,
    /// Whether a check that passes ends an endpoint's outlier ejection at once, so that an
    /// endpoint that recovered gets traffic as soon as it is seen to, not when its ejection
    /// time runs out.
    #[serde(default = "default_true")]
    pub ends_ejection: bool,
}

fn default_true() -> bool {
    true
}

fn default_health_path() -> String {
    "/healthz".to_owned()
}
fn default_health_interval() -> String {
    "5s".to_owned()
}
fn default_health_timeout() -> String {
    "1s".to_owned()
}
fn default_healthy_threshold() -> u32 {
    2
}
fn default_unhealthy_threshold() -> u32 {
    3
}

/// Passive outlier detection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// 5xx answers in a row that eject an endpoint.
    #[serde(default = "default_consecutive_5xx")]
    #[schemars(range(min = 1, max = 1000))]
    pub consecutive5xx: u32,
    /// Gateway errors (connect failure, reset, 502/503/504) in a row that eject an endpoint.
    #[serde(default = "default_consecutive_gateway_errors")]
    #[schemars(range(min = 1, max = 1000))]
    pub consecutive_gateway_errors: u32,
    /// How long an ejected endpoint stays out (longer each time it is ejected again).
    #[serde(default = "default_ejection_time")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    pub ejection_time: String,
    /// At most this share of a backend's endpoints is ejected at once.
    #[serde(default = "default_max_ejection_percent")]
    #[schemars(range(min = 0, max = 100))]
    pub max_ejection_percent: u32,
}

fn default_consecutive_5xx() -> u32 {
    5
}
fn default_consecutive_gateway_errors() -> u32 {
    3
}
fn default_ejection_time() -> String {
    "30s".to_owned()
}
fn default_max_ejection_percent() -> u32 {
    50
}

/// Overload protection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreaker {
    /// Open connections to all endpoints together.
    #[serde(default = "default_cb_limit")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_connections: u32,
    /// Requests waiting for a connection.
    #[serde(default = "default_cb_limit")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_pending_requests: u32,
    /// Requests in flight.
    #[serde(default = "default_cb_limit")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_requests: u32,
}

fn default_cb_limit() -> u32 {
    1024
}

/// What the operator observed of a ServiceBackend.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBackendStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Accepted` and `ResolvedRefs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Endpoint counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<EndpointCounts>,
}

/// Ready and total endpoints.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EndpointCounts {
    /// Endpoints ready to serve.
    pub ready: i32,
    /// All endpoints.
    pub total: i32,
}
