//! Backends: snapshot → [`BackendSpec`], reusing running backends whose spec did not change.

use std::{sync::Arc, time::Duration};

use crate::fast_hash::FastMap;

use http::HeaderName;
use portcullis_config::snapshot::{
    BackendConfig, Discovery, HashOn as HashOnConfig, LoadBalancerPolicy, Snapshot,
    UpstreamProtocol,
};

use super::Secrets;
use crate::{
    route::RouteTable,
    upstream::{
        Backend, BackendSpec, BalancerKind, HashOn, HealthCheckSettings, Limits, OutlierSettings,
        Protocol, TlsSpec,
    },
};

/// Builds every backend of the snapshot. A backend that cannot be built (its CA bundle is
/// missing, say) keeps running as it was when the previous table had it, and is left out
/// otherwise (its shares of traffic answer 500); either way the problem goes to `problems`.
pub fn compile_all(
    snapshot: &Snapshot,
    previous: &RouteTable,
    secrets: &Secrets,
    problems: &mut Vec<String>,
) -> FastMap<String, Arc<Backend>> {
    let mut backends =
        FastMap::with_capacity_and_hasher(snapshot.backends.len(), Default::default());
    for (name, config) in &snapshot.backends {
        let running = previous.backends.get(name);
        let built = spec(name, config, secrets).and_then(|spec| match running {
            Some(running) if running.spec == spec => Ok(running.clone()),
            _ => Backend::new(spec).map(Arc::new),
        });
        match (built, running) {
            (Ok(backend), _) => {
                backends.insert(name.clone(), backend);
            }
            (Err(e), Some(running)) => {
                problems.push(format!(
                    "ServiceBackend {name}: {e}; it keeps its previous definition"
                ));
                backends.insert(name.clone(), running.clone());
            }
            (Err(e), None) => problems.push(format!(
                "ServiceBackend {name}: {e}; requests for it answer 500"
            )),
        }
    }
    backends
}

/// The run-time definition of a backend (reading its CA bundle, if it names one).
pub fn spec(name: &str, config: &BackendConfig, secrets: &Secrets) -> Result<BackendSpec, String> {
    let tls = match &config.tls {
        Some(tls) => Some(TlsSpec {
            sni: tls.sni.clone(),
            ca_pem: tls.ca.as_ref().map(|ca| secrets.read(ca)).transpose()?,
        }),
        None => None,
    };
    let static_endpoints = match &config.discovery {
        Discovery::Static { endpoints } => Some(
            endpoints
                .iter()
                .map(|e| {
                    if e.address.contains(':') && !e.address.starts_with('[') {
                        format!("[{}]:{}", e.address, e.port)
                    } else {
                        format!("{}:{}", e.address, e.port)
                    }
                })
                .collect(),
        ),
        Discovery::Service { .. } => None,
    };
    let balancer = match config.load_balancer.policy {
        LoadBalancerPolicy::RoundRobin => BalancerKind::RoundRobin,
        LoadBalancerPolicy::LeastRequest => BalancerKind::LeastRequest,
        LoadBalancerPolicy::ConsistentHash => BalancerKind::ConsistentHash,
        LoadBalancerPolicy::Random => BalancerKind::Random,
    };
    let hash_on = match &config.load_balancer.hash_on {
        Some(HashOnConfig::Header { name }) => Some(HashOn::Header(
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("hash header {name:?} is not a valid header name"))?,
        )),
        Some(HashOnConfig::Cookie { name }) => Some(HashOn::Cookie(name.clone())),
        Some(HashOnConfig::ClientIp) => Some(HashOn::ClientIp),
        None => None,
    };
    if balancer == BalancerKind::ConsistentHash && hash_on.is_none() {
        return Err("ConsistentHash needs a key (header, cookie or client IP)".to_owned());
    }
    Ok(BackendSpec {
        name: name.to_owned(),
        protocol: match config.protocol {
            UpstreamProtocol::Http1 => Protocol::Http1,
            UpstreamProtocol::Http2 => Protocol::Http2,
        },
        connect_timeout: Duration::from_millis(config.connect_timeout_ms.max(1)),
        balancer,
        hash_on,
        health_check: config.health_check.as_ref().map(|h| HealthCheckSettings {
            path: h.path.clone(),
            interval: Duration::from_millis(h.interval_ms.max(10)),
            timeout: Duration::from_millis(h.timeout_ms.max(1)),
            healthy_threshold: h.healthy_threshold.max(1),
            unhealthy_threshold: h.unhealthy_threshold.max(1),
            ends_ejection: h.ends_ejection,
        }),
        outlier: config.outlier_detection.as_ref().map(|o| OutlierSettings {
            consecutive_5xx: o.consecutive_5xx.max(1),
            consecutive_gateway_errors: o.consecutive_gateway_errors.max(1),
            ejection_time_ms: o.ejection_time_ms,
            max_ejection_percent: o.max_ejection_percent.min(100),
        }),
        limits: config.circuit_breaker.as_ref().map(|c| Limits {
            max_requests: c.max_requests,
            max_connections: c.max_connections,
            max_pending_requests: c.max_pending_requests,
        }),
        failover: config
            .failover
            .iter()
            .filter(|f| f.as_str() != name)
            .cloned()
            .collect(),
        static_endpoints,
        tls,
    })
}
