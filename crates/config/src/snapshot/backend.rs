//! Backends: where a ServiceBackend's endpoints come from and how they are treated.

use serde::{Deserialize, Serialize};

use super::{LoadBalancerPolicy, SecretFile, UpstreamProtocol};

/// A ServiceBackend: where its endpoints come from and how they are treated.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendConfig {
    /// Where the endpoints come from.
    pub discovery: Discovery,
    /// `HTTP1` or `HTTP2` towards the endpoints.
    pub protocol: UpstreamProtocol,
    /// TLS towards the endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTlsConfig>,
    /// Time allowed to connect to an endpoint, in milliseconds.
    pub connect_timeout_ms: u64,
    /// How requests are spread over endpoints.
    pub load_balancer: LoadBalancerConfig,
    /// Active health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckConfig>,
    /// Passive outlier ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetectionConfig>,
    /// Overload limits; requests beyond them get 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// Keys into [`Snapshot::backends`](super::Snapshot::backends), in order, that take the traffic when this backend has no
    /// healthy endpoint: the first with a healthy endpoint serves. Already flattened (each
    /// target is followed by its own failover targets, depth first, each backend once, never
    /// this one), so the proxy does not follow the targets' own lists. Only valid backends that
    /// exist are listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<String>,
}

/// Where a backend's endpoints come from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Discovery {
    /// Fixed addresses (IPs or DNS names, resolved by the proxy).
    Static {
        /// The endpoints, in the order the ServiceBackend lists them.
        endpoints: Vec<EndpointConfig>,
    },
    /// The ready endpoints of a Kubernetes Service, from its EndpointSlices.
    Service {
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        name: String,
        /// The Service port (the proxy maps it to the endpoints' target port through the
        /// EndpointSlices).
        port: u16,
    },
}

/// A static endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointConfig {
    /// IP address or DNS name.
    pub address: String,
    /// Port.
    pub port: u16,
}

/// TLS from the gateway to a backend's endpoints.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// Server name to send and verify; the endpoint's address when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// CA bundle (PEM) that signs the endpoints' certificates; system roots when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<SecretFile>,
}

/// Load balancing over a backend's endpoints.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerConfig {
    /// `RoundRobin`, `LeastRequest`, `ConsistentHash` or `Random`.
    pub policy: LoadBalancerPolicy,
    /// What to hash; set exactly when `policy` is `ConsistentHash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<HashOn>,
}

/// The key of consistent hashing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum HashOn {
    /// A request header (name lowercase).
    Header {
        /// The header name.
        name: String,
    },
    /// A cookie.
    Cookie {
        /// The cookie name.
        name: String,
    },
    /// The client IP (same trust rules as rate limiting).
    #[serde(rename = "ClientIP")]
    ClientIp,
}

/// Active health checking.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Path requested with GET; 2xx is healthy.
    pub path: String,
    /// Time between checks, in milliseconds.
    pub interval_ms: u64,
    /// Time a check may take, in milliseconds.
    pub timeout_ms: u64,
    /// Successes in a row that make an endpoint healthy.
    pub healthy_threshold: u32,
    /// Failures in a row that make an endpoint unhealthy.
    pub unhealthy_threshold: u32,
    /// Whether a passing check ends an outlier ejection.
    #[serde(default = "ends_ejection_default", skip_serializing_if = "is_true")]
    pub ends_ejection: bool,
}

fn ends_ejection_default() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// Passive outlier detection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetectionConfig {
    /// 5xx answers in a row that eject an endpoint.
    pub consecutive_5xx: u32,
    /// Gateway errors in a row (connect failure, reset, 502/503/504) that eject an endpoint.
    pub consecutive_gateway_errors: u32,
    /// Base ejection time, in milliseconds (longer on each repeated ejection, shorter again
    /// after quiet periods).
    pub ejection_time_ms: u64,
    /// At most this share of the endpoints is ejected at once.
    pub max_ejection_percent: u32,
}

/// Overload limits of a backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Open connections to all endpoints together.
    pub max_connections: u32,
    /// Requests waiting for a connection.
    pub max_pending_requests: u32,
    /// Requests in flight.
    pub max_requests: u32,
}
