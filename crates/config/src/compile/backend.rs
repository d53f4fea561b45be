//! ServiceBackends: resolving references to them, compiling the ones in use, and flattening
//! their failover chains.

use std::collections::{BTreeMap, BTreeSet};

use portcullis_api::{
    ServiceBackend,
    backend::{ConsistentHash, LoadBalancer, LoadBalancerPolicy, ServiceBackendSpec},
};

use super::{Ctx, Invalid, namespace_of};
use crate::{
    diagnostics::{Kind, ObjectRef, Sink, reason},
    snapshot::{
        BackendConfig, CircuitBreakerConfig, Discovery, EndpointConfig, HashOn, HealthCheckConfig,
        LoadBalancerConfig, ObjectKey, OutlierDetectionConfig, SecretFile, UpstreamTlsConfig,
    },
};

/// What a reference to a ServiceBackend resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// It exists and is valid: this is its key in the snapshot's `backends`.
    Found(String),
    /// No ServiceBackend of that name in that namespace.
    Missing,
    /// It exists but is invalid (its own diagnostics say why).
    Invalid,
}

/// Resolves references to ServiceBackends, compiling each one the first time it is used.
pub(crate) struct Resolver<'a> {
    available: BTreeMap<ObjectKey, &'a ServiceBackend>,
    compiled: BTreeMap<ObjectKey, Option<BackendConfig>>,
}

impl<'a> Resolver<'a> {
    /// A resolver over the given ServiceBackends (the first of duplicate keys wins; the
    /// duplicate is reported).
    pub(crate) fn new(backends: &'a [ServiceBackend], sink: &mut Sink) -> Self {
        let mut available = BTreeMap::new();
        for b in backends {
            let key = ObjectKey::new(
                namespace_of(&b.metadata),
                b.metadata.name.clone().unwrap_or_default(),
            );
            if available.contains_key(&key) {
                sink.error(
                    &ObjectRef::new(Kind::ServiceBackend, key),
                    "metadata.name",
                    reason::INVALID,
                    "the ServiceBackend is defined more than once; only the first definition is used",
                );
                continue;
            }
            available.insert(key, b);
        }
        Self {
            available,
            compiled: BTreeMap::new(),
        }
    }

    /// Resolves `namespace/name`, compiling the ServiceBackend on first use.
    pub(crate) fn lookup(&mut self, namespace: &str, name: &str, sink: &mut Sink) -> Lookup {
        let key = ObjectKey::new(namespace, name);
        if !self.compiled.contains_key(&key) {
            let Some(backend) = self.available.get(&key) else {
                return Lookup::Missing;
            };
            let object = ObjectRef::new(Kind::ServiceBackend, key.clone());
            let mut ctx = Ctx::new(sink, &object);
            let config = compile(&backend.spec, namespace, &mut ctx).ok();
            self.compiled.insert(key.clone(), config);
        }
        match self.compiled.get(&key) {
            Some(Some(_)) => Lookup::Found(key.to_string()),
            _ => Lookup::Invalid,
        }
    }

    /// The snapshot's `backends`: the valid backends among `roots` (the ones used by served
    /// rules), plus their failover targets (transitively), each with its flattened failover
    /// list.
    pub(crate) fn finish(
        mut self,
        roots: Vec<ObjectKey>,
        sink: &mut Sink,
    ) -> BTreeMap<String, BackendConfig> {
        // Close the set over failover targets, checking each backend's own list once.
        let mut direct: BTreeMap<ObjectKey, Vec<ObjectKey>> = BTreeMap::new();
        let mut pending: Vec<ObjectKey> = roots
            .into_iter()
            .filter(|k| matches!(self.compiled.get(k), Some(Some(_))))
            .collect();
        while let Some(key) = pending.pop() {
            if direct.contains_key(&key) {
                continue;
            }
            let targets = self.failover_targets(&key, sink);
            pending.extend(targets.iter().cloned());
            direct.insert(key, targets);
        }
        for key in direct.keys() {
            if let Some(cycle) = find_cycle(key, &direct) {
                let object = ObjectRef::new(Kind::ServiceBackend, key.clone());
                let path: Vec<String> = cycle.iter().map(|k| k.name.clone()).collect();
                sink.warning(
                    &object,
                    "spec.failover",
                    reason::INVALID,
                    format!(
                        "failover cycle {}: each backend fails over to the others once, in order",
                        path.join(" -> ")
                    ),
                );
            }
        }
        let mut out = BTreeMap::new();
        for (key, config) in std::mem::take(&mut self.compiled) {
            let Some(mut config) = config else { continue };
            if !direct.contains_key(&key) {
                continue;
            }
            config.failover = flatten(&key, &direct)
                .into_iter()
                .map(|k| k.to_string())
                .collect();
            out.insert(key.to_string(), config);
        }
        out
    }

    /// The valid, distinct failover targets of `key`, in order, with diagnostics for the rest.
    fn failover_targets(&mut self, key: &ObjectKey, sink: &mut Sink) -> Vec<ObjectKey> {
        let Some(backend) = self.available.get(key).copied() else {
            return Vec::new();
        };
        let object = ObjectRef::new(Kind::ServiceBackend, key.clone());
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, target) in backend.spec.failover.iter().enumerate() {
            let field = format!("spec.failover[{i}]");
            if target.name == key.name {
                sink.warning(
                    &object,
                    field,
                    reason::INVALID,
                    "a ServiceBackend cannot fail over to itself; entry ignored",
                );
                continue;
            }
            if !seen.insert(target.name.clone()) {
                sink.warning(
                    &object,
                    field,
                    reason::INVALID,
                    format!(
                        "{:?} is listed twice; the second entry is ignored",
                        target.name
                    ),
                );
                continue;
            }
            match self.lookup(&key.namespace, &target.name, sink) {
                Lookup::Found(_) => out.push(ObjectKey::new(&key.namespace, &target.name)),
                Lookup::Missing => sink.error(
                    &object,
                    field,
                    reason::BACKEND_NOT_FOUND,
                    format!(
                        "ServiceBackend {:?} not found in namespace {:?}; no failover to it",
                        target.name, key.namespace
                    ),
                ),
                Lookup::Invalid => sink.error(
                    &object,
                    field,
                    reason::INVALID_BACKEND,
                    format!(
                        "ServiceBackend {:?} is invalid; no failover to it",
                        target.name
                    ),
                ),
            }
        }
        out
    }
}

/// Depth-first, in order: the backend's targets, each followed by its own targets; each
/// backend once, never the starting one.
fn flatten(start: &ObjectKey, direct: &BTreeMap<ObjectKey, Vec<ObjectKey>>) -> Vec<ObjectKey> {
    fn visit(
        key: &ObjectKey,
        start: &ObjectKey,
        direct: &BTreeMap<ObjectKey, Vec<ObjectKey>>,
        out: &mut Vec<ObjectKey>,
    ) {
        for target in direct.get(key).into_iter().flatten() {
            if target != start && !out.contains(target) {
                out.push(target.clone());
                visit(target, start, direct, out);
            }
        }
    }
    let mut out = Vec::new();
    visit(start, start, direct, &mut out);
    out
}

/// A failover path from `start` back to itself, if there is one: `[start, ..., start]`.
fn find_cycle(
    start: &ObjectKey,
    direct: &BTreeMap<ObjectKey, Vec<ObjectKey>>,
) -> Option<Vec<ObjectKey>> {
    fn visit(
        key: &ObjectKey,
        start: &ObjectKey,
        direct: &BTreeMap<ObjectKey, Vec<ObjectKey>>,
        path: &mut Vec<ObjectKey>,
        seen: &mut BTreeSet<ObjectKey>,
    ) -> bool {
        for target in direct.get(key).into_iter().flatten() {
            path.push(target.clone());
            if target == start {
                return true;
            }
            if seen.insert(target.clone()) && visit(target, start, direct, path, seen) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![start.clone()];
    let mut seen = BTreeSet::new();
    visit(start, start, direct, &mut path, &mut seen).then_some(path)
}

/// Compiles one ServiceBackend (its failover list is filled in by [`Resolver::finish`]).
fn compile(
    spec: &ServiceBackendSpec,
    namespace: &str,
    ctx: &mut Ctx<'_>,
) -> Result<BackendConfig, Invalid> {
    let discovery = match (&spec.service, &spec.endpoints) {
        (Some(service), None) => Ok(Discovery::Service {
            namespace: namespace.to_owned(),
            name: service.name.clone(),
            port: service.port,
        }),
        (None, Some(endpoints)) if !endpoints.is_empty() => Ok(Discovery::Static {
            endpoints: endpoints
                .iter()
                .map(|e| EndpointConfig {
                    address: e.address.clone(),
                    port: e.port,
                })
                .collect(),
        }),
        (None, Some(_)) => {
            ctx.error(
                "spec.endpoints",
                reason::INVALID,
                "list at least one endpoint",
            );
            Err(Invalid)
        }
        _ => {
            ctx.error(
                "spec",
                reason::INVALID,
                "set exactly one of spec.service or spec.endpoints",
            );
            Err(Invalid)
        }
    };
    let connect_timeout_ms = ctx.millis(&spec.connect_timeout, "spec.connectTimeout");
    let load_balancer = load_balancer(&spec.load_balancer, ctx);
    let health_check = spec
        .health_check
        .as_ref()
        .map(|h| {
            let interval = ctx.millis(&h.interval, "spec.healthCheck.interval");
            let timeout = ctx.millis(&h.timeout, "spec.healthCheck.timeout");
            Ok(HealthCheckConfig {
                path: h.path.clone(),
                interval_ms: interval?,
                timeout_ms: timeout?,
                healthy_threshold: h.healthy_threshold,
                unhealthy_threshold: h.unhealthy_threshold,
                ends_ejection: h.ends_ejection,
            })
        })
        .transpose();
    let outlier_detection = spec
        .outlier_detection
        .as_ref()
        .map(|o| {
            Ok(OutlierDetectionConfig {
                consecutive_5xx: o.consecutive5xx,
                consecutive_gateway_errors: o.consecutive_gateway_errors,
                ejection_time_ms: ctx
                    .millis(&o.ejection_time, "spec.outlierDetection.ejectionTime")?,
                max_ejection_percent: o.max_ejection_percent,
            })
        })
        .transpose();
    Ok(BackendConfig {
        discovery: discovery?,
        protocol: spec.protocol,
        tls: spec.tls.as_ref().map(|t| UpstreamTlsConfig {
            sni: t.sni.clone(),
            ca: t
                .ca_secret_ref
                .as_ref()
                .map(|r| SecretFile::new(namespace, &r.name, &r.key)),
        }),
        connect_timeout_ms: connect_timeout_ms?,
        load_balancer: load_balancer?,
        health_check: health_check?,
        outlier_detection: outlier_detection?,
        circuit_breaker: spec.circuit_breaker.as_ref().map(|c| CircuitBreakerConfig {
            max_connections: c.max_connections,
            max_pending_requests: c.max_pending_requests,
            max_requests: c.max_requests,
        }),
        failover: Vec::new(),
    })
}

fn load_balancer(lb: &LoadBalancer, ctx: &mut Ctx<'_>) -> Result<LoadBalancerConfig, Invalid> {
    let hash_on = match (lb.policy, &lb.consistent_hash) {
        (LoadBalancerPolicy::ConsistentHash, Some(hash)) => Some(hash_on(hash, ctx)?),
        (LoadBalancerPolicy::ConsistentHash, None) => {
            ctx.error(
                "spec.loadBalancer.consistentHash",
                reason::INVALID,
                "consistentHash must be set when policy is ConsistentHash",
            );
            return Err(Invalid);
        }
        (_, Some(_)) => {
            ctx.warning(
                "spec.loadBalancer.consistentHash",
                reason::INVALID,
                "consistentHash is ignored unless policy is ConsistentHash",
            );
            None
        }
        (_, None) => None,
    };
    Ok(LoadBalancerConfig {
        policy: lb.policy,
        hash_on,
    })
}

fn hash_on(hash: &ConsistentHash, ctx: &mut Ctx<'_>) -> Result<HashOn, Invalid> {
    match (&hash.header, &hash.cookie, hash.client_ip) {
        (Some(header), None, false) => Ok(HashOn::Header {
            name: header.to_ascii_lowercase(),
        }),
        (None, Some(cookie), false) => Ok(HashOn::Cookie {
            name: cookie.clone(),
        }),
        (None, None, true) => Ok(HashOn::ClientIp),
        _ => {
            ctx.error(
                "spec.loadBalancer.consistentHash",
                reason::INVALID,
                "set exactly one of header, cookie or clientIP",
            );
            Err(Invalid)
        }
    }
}
