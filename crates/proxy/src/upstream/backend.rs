//! A backend at run time: its endpoints, balancer, pooled HTTP client and overload limits.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use http::HeaderName;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};

use super::{
    connector::{UpstreamConnector, UpstreamTls},
    endpoint::{Endpoint, Outcome, OutlierSettings},
};
use crate::{
    balance::{Balancer, EndpointSet, Ring},
    body::Body,
};

/// The protocol spoken to the endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2 with prior knowledge.
    Http2,
}

/// The load-balancing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalancerKind {
    /// Each endpoint in turn.
    RoundRobin,
    /// Power of two choices on requests in flight.
    LeastRequest,
    /// A hash ring on [`HashOn`].
    ConsistentHash,
    /// Uniformly random.
    Random,
}

/// What consistent hashing hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// A request header.
    Header(HeaderName),
    /// A cookie.
    Cookie(String),
    /// The client IP (trusted-proxy aware).
    ClientIp,
}

/// Active health checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSettings {
    /// Path requested with GET; 2xx is healthy.
    pub path: String,
    /// Time between checks.
    pub interval: Duration,
    /// Time a check may take.
    pub timeout: Duration,
    /// Successes in a row that make an endpoint healthy.
    pub healthy_threshold: u32,
    /// Failures in a row that make it unhealthy.
    pub unhealthy_threshold: u32,
    /// Whether a passing check ends an outlier ejection.
    pub ends_ejection: bool,
}

/// Overload limits; requests beyond them get 503 at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests in flight to the backend.
    pub max_requests: u32,
    /// Connections; with HTTP/1 each request in flight holds one, so requests beyond
    /// `max_connections + max_pending_requests` are refused too.
    pub max_connections: u32,
    /// Requests waiting for a connection.
    pub max_pending_requests: u32,
}

/// Everything that defines a backend. A reload that leaves it unchanged keeps the running
/// backend, with its connection pool and endpoint health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// `namespace/name`.
    pub name: String,
    /// HTTP/1.1 or HTTP/2.
    pub protocol: Protocol,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// The algorithm.
    pub balancer: BalancerKind,
    /// The key, for consistent hashing.
    pub hash_on: Option<HashOn>,
    /// Active checks.
    pub health_check: Option<HealthCheckSettings>,
    /// Passive ejection.
    pub outlier: Option<OutlierSettings>,
    /// Overload limits.
    pub limits: Option<Limits>,
    /// Backends that take the traffic when this one has no available endpoint, in order.
    pub failover: Vec<String>,
    /// Static `host:port` endpoints; `None` when they are discovered (see
    /// [`Backend::set_endpoints`]).
    pub static_endpoints: Option<Vec<String>>,
    /// TLS towards the endpoints.
    pub tls: Option<TlsSpec>,
}

/// TLS towards a backend's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSpec {
    /// The server name sent and verified; the endpoint's host when `None`.
    pub sni: Option<String>,
    /// The CA bundle (PEM) that signs the endpoints' certificates; the system bundle when
    /// `None`.
    pub ca_pem: Option<Vec<u8>>,
}

/// A backend at run time.
#[derive(Debug)]
pub struct Backend {
    /// What it was built from.
    pub spec: BackendSpec,
    /// The name, shared with metrics labels and access logs.
    pub label: Arc<str>,
    endpoints: ArcSwap<EndpointSet>,
    balancer: Balancer,
    /// One pool per connection worker (index 0 for other threads), so that a request and the
    /// upstream connection it uses live on the same thread.
    clients: Vec<Client<UpstreamConnector, Body>>,
    /// Opens connections to endpoints (the HTTP/1.1 pools of [`super::h1`]).
    pub(super) connector: UpstreamConnector,
    in_flight: AtomicU32,
    retries_in_flight: AtomicU32,
    checks_started: AtomicBool,
}

/// A request admitted by the circuit breaker; releases its slot when dropped (with the
/// response body).
#[derive(Debug)]
pub struct Admission(Arc<Backend>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A retry admitted by the retry budget; releases it when dropped.
#[derive(Debug)]
pub struct RetryToken<'a>(&'a AtomicU32);

impl Drop for RetryToken<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Retries always allowed in flight per backend, whatever the budget percentage, so that a
/// backend with little traffic can still be retried.
const MIN_RETRY_CONCURRENCY: u32 = 3;

impl Backend {
    /// Builds the backend and its connection pool (no connection is opened yet).
    pub fn new(spec: BackendSpec) -> Result<Self, String> {
        let endpoints = match &spec.static_endpoints {
            Some(addresses) => addresses
                .iter()
                .map(|a| {
                    Endpoint::new(a.clone())
                        .map(Arc::new)
                        .map_err(|e| format!("backend {}: endpoint {a:?}: {e}", spec.name))
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let balancer = match spec.balancer {
            BalancerKind::RoundRobin => Balancer::RoundRobin(AtomicUsize::new(0)),
            BalancerKind::LeastRequest => Balancer::LeastRequest,
            BalancerKind::ConsistentHash => Balancer::ConsistentHash,
            BalancerKind::Random => Balancer::Random,
        };
        let set = Self::endpoint_set(&spec, endpoints);
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(spec.connect_timeout));
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(super::h1::IDLE_TIMEOUT)
            .http2_only(spec.protocol == Protocol::Http2);
        let tls = spec
            .tls
            .as_ref()
            .map(|t| UpstreamTls::new(t.sni.as_deref(), t.ca_pem.as_deref(), spec.protocol))
            .transpose()
            .map_err(|e| format!("backend {}: TLS: {e}", spec.name))?;
        let connector = UpstreamConnector::new(connector, tls);
        let pools = 1 + crate::server::workers::WORKER_COUNT.load(Ordering::Relaxed);
        let clients = (0..pools)
            .map(|_| builder.build(connector.clone()))
            .collect();
        Ok(Self {
            label: Arc::from(spec.name.as_str()),
            spec,
            endpoints: ArcSwap::from_pointee(set),
            balancer,
            clients,
            connector,
            in_flight: AtomicU32::new(0),
            retries_in_flight: AtomicU32::new(0),
            checks_started: AtomicBool::new(false),
        })
    }

    fn endpoint_set(spec: &BackendSpec, endpoints: Vec<Arc<Endpoint>>) -> EndpointSet {
        let ring = (spec.balancer == BalancerKind::ConsistentHash).then(|| Ring::new(&endpoints));
        EndpointSet { endpoints, ring }
    }

    /// `namespace/name`.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The pooled client of the calling thread's worker.
    pub fn client(&self) -> &Client<UpstreamConnector, Body> {
        let index = crate::server::workers::current() % self.clients.len();
        &self.clients[index]
    }

    /// The current endpoints.
    pub fn endpoints(&self) -> Arc<EndpointSet> {
        self.endpoints.load_full()
    }

    /// Replaces the endpoints (discovery). Endpoints that stay keep their health state.
    pub fn set_endpoints(&self, addresses: &[String]) -> Result<(), String> {
        let current = self.endpoints.load();
        let mut endpoints = Vec::with_capacity(addresses.len());
        for address in addresses {
            let existing = current.endpoints.iter().find(|e| &e.address == address);
            let endpoint = match existing {
                Some(e) => e.clone(),
                None => Arc::new(
                    Endpoint::new(address.clone())
                        .map_err(|e| format!("endpoint {address:?}: {e}"))?,
                ),
            };
            endpoints.push(endpoint);
        }
        self.endpoints
            .store(Arc::new(Self::endpoint_set(&self.spec, endpoints)));
        Ok(())
    }

    /// Closes idle HTTP/1.1 connections that expired or that their endpoint closed.
    pub fn prune_idle_connections(&self) {
        for endpoint in &self.endpoints.load().endpoints {
            endpoint.idle.prune();
        }
    }

    /// Whether any endpoint may get traffic now.
    pub fn has_available_endpoint(&self) -> bool {
        self.endpoints
            .load()
            .endpoints
            .iter()
            .any(|e| e.is_available())
    }

    /// Picks an endpoint (see [`Balancer::pick`]).
    pub fn pick(&self, hash: Option<u64>, avoid: Option<&Endpoint>) -> Option<Arc<Endpoint>> {
        self.balancer.pick(&self.endpoints.load(), hash, avoid)
    }

    /// Admits a request under the circuit breaker, or `None` when the backend is at its limit.
    pub fn admit(self: &Arc<Self>) -> Option<Admission> {
        let previous = self.in_flight.fetch_add(1, Ordering::Relaxed);
        let admission = Admission(self.clone());
        if let Some(limits) = &self.spec.limits {
            let mut limit = limits.max_requests;
            if self.spec.protocol == Protocol::Http1 {
                limit = limit.min(
                    limits
                        .max_connections
                        .saturating_add(limits.max_pending_requests),
                );
            }
            if previous >= limit {
                return None;
            }
        }
        Some(admission)
    }

    /// Admits a retry under the budget, or `None` when retries would exceed it.
    pub fn admit_retry(&self, budget_percent: u32) -> Option<RetryToken<'_>> {
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        let allowed = (in_flight.saturating_mul(budget_percent) / 100).max(MIN_RETRY_CONCURRENCY);
        let previous = self.retries_in_flight.fetch_add(1, Ordering::Relaxed);
        let token = RetryToken(&self.retries_in_flight);
        (previous < allowed).then_some(token)
    }

    /// Records the outcome of an attempt and ejects the endpoint when outlier detection says so
    /// and the backend's ejection limit allows it.
    pub fn record(&self, endpoint: &Endpoint, outcome: Outcome) {
        let Some(settings) = &self.spec.outlier else {
            return;
        };
        if !endpoint.record_outcome(outcome, settings) {
            return;
        }
        let set = self.endpoints.load();
        let total = set.endpoints.len();
        let ejected = set.endpoints.iter().filter(|e| e.is_ejected()).count();
        let max = total * settings.max_ejection_percent as usize / 100;
        // One endpoint can always be ejected when the percentage allows any, as in Envoy.
        if ejected < max.max(usize::from(settings.max_ejection_percent > 0)) {
            endpoint.eject(settings.ejection_time_ms);
        }
    }

    /// Marks the health checks as started; true only for the first caller.
    pub(crate) fn claim_health_checks(&self) -> bool {
        self.spec.health_check.is_some() && !self.checks_started.swap(true, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(endpoints: &[&str]) -> BackendSpec {
        BackendSpec {
            name: "ns/b".into(),
            protocol: Protocol::Http1,
            connect_timeout: Duration::from_secs(1),
            balancer: BalancerKind::RoundRobin,
            hash_on: None,
            health_check: None,
            outlier: Some(OutlierSettings {
                consecutive_5xx: 1,
                consecutive_gateway_errors: 1,
                ejection_time_ms: 60_000,
                max_ejection_percent: 50,
            }),
            limits: Some(Limits {
                max_requests: 2,
                max_connections: 10,
                max_pending_requests: 10,
            }),
            failover: Vec::new(),
            static_endpoints: Some(endpoints.iter().map(|s| (*s).to_owned()).collect()),
            tls: None,
        }
    }

    #[test]
    fn circuit_breaker_refuses_requests_over_the_limit() {
        let b = Arc::new(Backend::new(spec(&["127.0.0.1:1"])).expect("backend"));
        let first = b.admit();
        let second = b.admit();
        assert!(first.is_some() && second.is_some());
        assert!(b.admit().is_none());
        drop(first);
        assert!(b.admit().is_some());
    }

    #[test]
    fn outlier_ejection_respects_max_ejection_percent() {
        let b = Backend::new(spec(&["127.0.0.1:1", "127.0.0.1:2"])).expect("backend");
        let set = b.endpoints();
        b.record(&set.endpoints[0], Outcome::GatewayError);
        b.record(&set.endpoints[1], Outcome::GatewayError);
        assert!(set.endpoints[0].is_ejected());
        assert!(!set.endpoints[1].is_ejected(), "50% allows one of two");
        assert!(b.has_available_endpoint());
    }

    #[test]
    fn rediscovered_endpoints_keep_their_state() {
        let b = Backend::new(spec(&["127.0.0.1:1"])).expect("backend");
        b.endpoints().endpoints[0].eject(60_000);
        b.set_endpoints(&["127.0.0.1:1".into(), "127.0.0.1:2".into()])
            .expect("set");
        let set = b.endpoints();
        assert!(set.endpoints[0].is_ejected());
        assert!(!set.endpoints[1].is_ejected());
    }

    #[test]
    fn retry_budget_has_a_floor() {
        let b = Backend::new(spec(&["127.0.0.1:1"])).expect("backend");
        let tokens: Vec<_> = (0..3).map(|_| b.admit_retry(20)).collect();
        assert!(tokens.iter().all(Option::is_some));
        assert!(b.admit_retry(20).is_none());
    }
}
