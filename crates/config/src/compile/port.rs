//! The per-port plan of the snapshot: virtual hosts, most specific first, each with its route
//! entries in precedence order, and the certificates of HTTPS ports.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use portcullis_api::gateway::{Listener, ListenerProtocol};

use super::{attach::Attachment, hostname, precedence, rule::CompiledRule};
use crate::{
    diagnostics::{Kind, ObjectRef, Sink, reason},
    snapshot::{CertificateConfig, ObjectKey, Protocol, SecretFile, TlsConfig},
};

/// A Route accepted on at least one listener of the Gateway.
pub(crate) struct AttachedRoute<'r> {
    pub(crate) key: ObjectKey,
    /// `namespace/name`, the precedence tie-breaker.
    pub(crate) id: String,
    pub(crate) created: Option<&'r Time>,
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) attachments: Vec<Attachment>,
}

/// What one port will serve, before rules are numbered.
pub(crate) struct PortPlan {
    pub(crate) port: u16,
    pub(crate) protocol: Protocol,
    /// The usable Gateway listeners on the port.
    pub(crate) listeners: Vec<usize>,
    pub(crate) virtual_hosts: Vec<HostPlan>,
}

/// A virtual host whose entries are (attached route, rule, match) in precedence order.
pub(crate) struct HostPlan {
    pub(crate) hostname: String,
    pub(crate) listener: String,
    pub(crate) candidates: Vec<(usize, usize, usize)>,
}

/// What each port serves: its virtual hosts, most specific first, each with its entries in
/// precedence order.
pub(crate) fn plan_ports(
    listeners: &[Listener],
    usable: &[bool],
    attached: &[AttachedRoute<'_>],
    sink: &mut Sink,
) -> Vec<PortPlan> {
    let mut ports: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, l) in listeners.iter().enumerate() {
        if usable[i] {
            ports.entry(l.port).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for (port, on_port) in ports {
        let protocol = match listeners[on_port[0]].protocol {
            ListenerProtocol::Http => Protocol::Http,
            ListenerProtocol::Https => Protocol::Https,
        };
        let mut vhosts: BTreeMap<String, HostPlan> = BTreeMap::new();
        for &i in &on_port {
            if let Some(h) = &listeners[i].hostname {
                host_slot(&mut vhosts, h, &listeners[i].name);
            }
        }
        for (ai, route) in attached.iter().enumerate() {
            for a in route
                .attachments
                .iter()
                .filter(|a| on_port.contains(&a.listener))
            {
                let listener = &listeners[a.listener];
                for name in &a.hostnames {
                    if let Some(other) = shadowing_listener(listeners, &on_port, a.listener, name) {
                        // Only worth saying when the Route does not also serve the host through
                        // the more specific listener.
                        let served_there = route.attachments.iter().any(|b| {
                            b.listener == other
                                && b.hostnames.iter().any(|h| hostname::contains(h, name))
                        });
                        if served_there {
                            continue;
                        }
                        sink.warning(
                            &ObjectRef::new(Kind::Route, route.key.clone()),
                            "spec.hostnames",
                            reason::NO_MATCHING_LISTENER_HOSTNAME,
                            format!(
                                "requests for {name} are served by the more specific listener {:?}, \
                                 not by listener {:?} this Route attached to",
                                listeners[other].name, listener.name
                            ),
                        );
                        continue;
                    }
                    let candidates = host_slot(&mut vhosts, name, &listener.name);
                    for (ri, rule) in route.rules.iter().enumerate() {
                        for mi in 0..rule.matches.len() {
                            candidates.push((ai, ri, mi));
                        }
                    }
                }
            }
        }
        let mut virtual_hosts: Vec<HostPlan> = vhosts
            .into_values()
            .map(|mut plan| {
                plan.candidates.sort_by_cached_key(|&(ai, ri, mi)| {
                    let route = &attached[ai];
                    let rule = &route.rules[ri];
                    precedence::key(&precedence::Candidate {
                        r#match: &rule.matches[mi],
                        created: route.created,
                        route: &route.id,
                        rule_index: rule.config.rule_index,
                        match_index: mi,
                    })
                });
                plan.candidates.dedup();
                plan
            })
            .collect();
        virtual_hosts.sort_by(|a, b| hostname::specificity(&a.hostname, &b.hostname));
        out.push(PortPlan {
            port,
            protocol,
            listeners: on_port,
            virtual_hosts,
        });
    }
    out
}

/// The entries of the virtual host `hostname`, created (for `listener`) when missing.
fn host_slot<'v>(
    vhosts: &'v mut BTreeMap<String, HostPlan>,
    hostname: &str,
    listener: &str,
) -> &'v mut Vec<(usize, usize, usize)> {
    &mut vhosts
        .entry(hostname.to_owned())
        .or_insert_with(|| HostPlan {
            hostname: hostname.to_owned(),
            listener: listener.to_owned(),
            candidates: Vec::new(),
        })
        .candidates
}

/// Another listener on the port whose hostname covers `name` and is more specific than the
/// hostname of `listener`: requests for `name` select that listener, so `listener`'s routes
/// for `name` must not be reachable (Gateway API listener isolation).
fn shadowing_listener(
    listeners: &[Listener],
    on_port: &[usize],
    listener: usize,
    name: &str,
) -> Option<usize> {
    let own = listeners[listener]
        .hostname
        .as_deref()
        .unwrap_or(hostname::ANY);
    on_port.iter().copied().find(|&j| {
        j != listener
            && listeners[j].hostname.as_deref().is_some_and(|other| {
                other != own && hostname::contains(other, name) && hostname::contains(own, other)
            })
    })
}

/// The certificates of a port: most specific listener hostname first, no hostname last.
pub(crate) fn tls_config(
    listeners: &[Listener],
    on_port: &[usize],
    gateway_namespace: &str,
) -> TlsConfig {
    let mut ordered: Vec<usize> = on_port.to_vec();
    ordered.sort_by(|&a, &b| {
        hostname::specificity(
            listeners[a].hostname.as_deref().unwrap_or(hostname::ANY),
            listeners[b].hostname.as_deref().unwrap_or(hostname::ANY),
        )
    });
    let certificates = ordered
        .into_iter()
        .flat_map(|i| {
            let l = &listeners[i];
            l.tls.iter().flat_map(move |tls| {
                tls.certificate_refs.iter().map(move |r| {
                    let ns = r.namespace.as_deref().unwrap_or(gateway_namespace);
                    CertificateConfig {
                        hostname: l.hostname.clone(),
                        cert: SecretFile::new(ns, &r.name, "tls.crt"),
                        key: SecretFile::new(ns, &r.name, "tls.key"),
                    }
                })
            })
        })
        .collect();
    TlsConfig { certificates }
}
