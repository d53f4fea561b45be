//! The compiler: a Gateway, Routes and ServiceBackends in, a [`Snapshot`] and [`Diagnostics`]
//! out. Pure and deterministic: no I/O, and the same input (in any order) gives the same bytes.
//!
//! Stages: check the Gateway (listeners, drain, shared state, defaults) → for each Route naming
//! the Gateway, compile its rules and attach each parentRef to listeners → group the attached
//! rules per port into virtual hosts, sorted by precedence → resolve the ServiceBackends in use.

mod attach;
mod auth;
pub use auth::is_tchar;
mod backend;
mod ctx;
mod hostname;
mod policy;
mod port;
mod precedence;
mod rule;

pub(crate) use self::ctx::{Ctx, Invalid, namespace_of};

use std::collections::{BTreeMap, BTreeSet};

use portcullis_api::{
    Gateway, Route, ServiceBackend,
    gateway::{Listener, ListenerProtocol},
    route::ParentRef,
};

use self::{
    attach::Attachment,
    policy::CompiledPolicies,
    port::{AttachedRoute, plan_ports, tls_config},
    rule::RuleEnv,
};
use crate::{
    diagnostics::{
        Diagnostics, Kind, ListenerResult, ObjectRef, RouteParentResult, Sink, accepted_ok, not,
        reason, resolved_ok,
    },
    snapshot::{
        API_VERSION, Action, DrainConfig, FilterConfig, ListenerConfig, ObjectKey, Protocol,
        RedisConfig, RouteEntry, RuleConfig, SecretFile, SharedStateConfig, Snapshot, VirtualHost,
    },
};

/// A namespace's name and labels, for listeners that admit Routes with `from: Selector`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// The namespace's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// The compiler's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compiled {
    /// What the gateway replicas serve (sealed: `revision` is set).
    pub snapshot: Snapshot,
    /// Findings and attachment results, for status conditions and `portcullis check`.
    pub diagnostics: Diagnostics,
}

/// Compiles `gateway` with the Routes that name it and the ServiceBackends they use.
///
/// `routes` and `backends` may hold more than is needed (Routes of other Gateways are ignored,
/// unused ServiceBackends left out) and may come in any order. `namespaces` is only consulted
/// for listeners with `allowedRoutes.namespaces.from: Selector`; a namespace missing from it has
/// no labels. Objects without namespace count as being in `default`.
pub fn compile(
    gateway: &Gateway,
    routes: &[Route],
    backends: &[ServiceBackend],
    namespaces: &[NamespaceInfo],
) -> Compiled {
    let gw_key = ObjectKey::new(
        namespace_of(&gateway.metadata),
        gateway.metadata.name.clone().unwrap_or_default(),
    );
    let gw_object = ObjectRef::new(Kind::Gateway, gw_key.clone());
    let spec = &gateway.spec;
    let mut sink = Sink::default();

    let (drain, shared_state, defaults, usable) = {
        let mut ctx = Ctx::new(&mut sink, &gw_object);
        let drain = DrainConfig {
            delay_ms: ctx
                .millis(&spec.drain.delay, "spec.drain.delay")
                .unwrap_or(5_000),
            timeout_ms: ctx
                .millis(&spec.drain.timeout, "spec.drain.timeout")
                .unwrap_or(30_000),
        };
        let shared_state = spec.shared_state.as_ref().map(|s| SharedStateConfig {
            redis: RedisConfig {
                address: s.redis.address.clone(),
                password: s
                    .redis
                    .password_secret_ref
                    .as_ref()
                    .map(|r| SecretFile::new(&gw_key.namespace, &r.name, &r.key)),
            },
        });
        let defaults = spec
            .defaults
            .as_ref()
            .map_or_else(CompiledPolicies::default, |d| {
                policy::compile(
                    d.into(),
                    &mut ctx,
                    "spec.defaults",
                    &gw_key.namespace,
                    shared_state.is_some(),
                )
            });
        let usable = check_listeners(&spec.listeners, &mut ctx);
        (drain, shared_state, defaults, usable)
    };

    let mut resolver = backend::Resolver::new(backends, &mut sink);
    let mut sorted: Vec<(ObjectKey, &Route)> = routes
        .iter()
        .map(|r| {
            let key = ObjectKey::new(
                namespace_of(&r.metadata),
                r.metadata.name.clone().unwrap_or_default(),
            );
            (key, r)
        })
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for pair in sorted.windows(2) {
        if pair[0].0 == pair[1].0 {
            sink.error(
                &ObjectRef::new(Kind::Route, pair[0].0.clone()),
                "metadata.name",
                reason::INVALID,
                "the Route is defined more than once; only the first definition is used",
            );
        }
    }
    sorted.dedup_by(|a, b| a.0 == b.0);

    let mut attached: Vec<AttachedRoute<'_>> = Vec::new();
    let mut parents: Vec<RouteParentResult> = Vec::new();
    for (key, route) in sorted {
        let refs: Vec<(usize, &ParentRef)> = route
            .spec
            .parent_refs
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.name == gw_key.name
                    && p.namespace.as_deref().unwrap_or(&key.namespace) == gw_key.namespace
            })
            .collect();
        if refs.is_empty() {
            continue;
        }
        let object = ObjectRef::new(Kind::Route, key.clone());
        let mut ctx = Ctx::new(&mut sink, &object);
        let mut env = RuleEnv {
            resolver: &mut resolver,
            defaults: &defaults,
            gateway: &gw_key,
            shared_state: shared_state.is_some(),
        };
        let rules = rule::compile_rules(route, &key, &mut env, &mut ctx);
        let unresolved = ctx.unresolved.take();
        let rejected = match (&rules, ctx.rejected.take()) {
            (Ok(_), _) => None,
            (Err(_), Some(r)) => Some(r),
            (Err(_), None) => Some((reason::INVALID, "the Route is invalid".to_owned())),
        };
        let resolved_refs = match unresolved {
            None => resolved_ok(),
            Some((r, m)) => not(r, m),
        };
        let hostnames: Vec<String> = route.spec.hostnames.iter().map(|h| h.0.clone()).collect();
        let mut attachments: Vec<Attachment> = Vec::new();
        for (index, parent) in refs {
            let result = attach::attach(
                &spec.listeners,
                &gw_key.namespace,
                &key.namespace,
                &hostnames,
                parent,
                namespaces,
            );
            let (accepted, listeners) = match (result, &rejected) {
                (Err((r, m)), _) => (not(r, m), Vec::new()),
                (Ok(_), Some((r, m))) => (not(r, format!("the Route is invalid: {m}")), Vec::new()),
                (Ok(found), None) => {
                    let names = found
                        .iter()
                        .map(|a| spec.listeners[a.listener].name.clone())
                        .collect();
                    attachments.extend(found);
                    (accepted_ok(), names)
                }
            };
            parents.push(RouteParentResult {
                route: key.clone(),
                parent_ref_index: index,
                parent_ref: parent.clone(),
                accepted,
                resolved_refs: resolved_refs.clone(),
                listeners,
            });
        }
        if let Ok(rules) = rules
            && !attachments.is_empty()
        {
            attached.push(AttachedRoute {
                id: key.to_string(),
                key,
                created: route.metadata.creation_timestamp.as_ref(),
                rules,
                attachments: merge_attachments(attachments),
            });
        }
    }

    let listener_results = spec
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| ListenerResult {
            name: l.name.clone(),
            attached_routes: count(
                attached
                    .iter()
                    .filter(|r| r.attachments.iter().any(|a| a.listener == i)),
            ),
        })
        .collect();

    let ports = plan_ports(&spec.listeners, &usable, &attached, &mut sink);
    let used: BTreeSet<(usize, usize)> = ports
        .iter()
        .flat_map(|p| &p.virtual_hosts)
        .flat_map(|v| &v.candidates)
        .map(|&(ai, ri, _)| (ai, ri))
        .collect();
    let index: BTreeMap<(usize, usize), usize> =
        used.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let (rules, roots) = rule_table(&attached, &used);
    let listeners = ports
        .into_iter()
        .map(|p| ListenerConfig {
            port: p.port,
            protocol: p.protocol,
            tls: (p.protocol == Protocol::Https)
                .then(|| tls_config(&spec.listeners, &p.listeners, &gw_key.namespace)),
            virtual_hosts: p
                .virtual_hosts
                .into_iter()
                .map(|v| VirtualHost {
                    hostname: v.hostname,
                    listener: v.listener,
                    routes: v
                        .candidates
                        .into_iter()
                        .map(|(ai, ri, mi)| RouteEntry {
                            rule: index.get(&(ai, ri)).copied().unwrap_or_default(),
                            match_index: mi,
                            r#match: attached[ai].rules[ri].matches[mi].clone(),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let backends = resolver.finish(roots, &mut sink);

    let mut snapshot = Snapshot {
        api_version: API_VERSION.to_owned(),
        gateway: gw_key,
        revision: String::new(),
        listeners,
        rules,
        backends,
        drain,
        shared_state,
    };
    snapshot.seal();

    let mut items = sink.items;
    items.sort();
    items.dedup();
    Compiled {
        snapshot,
        diagnostics: Diagnostics {
            items,
            parents,
            listeners: listener_results,
            attached_routes: count(attached.iter()),
        },
    }
}

fn count<T>(items: impl Iterator<Item = T>) -> u32 {
    u32::try_from(items.count()).unwrap_or(u32::MAX)
}

/// One attachment per listener (several parentRefs may select the same one).
fn merge_attachments(attachments: Vec<Attachment>) -> Vec<Attachment> {
    let mut by_listener: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for a in attachments {
        by_listener
            .entry(a.listener)
            .or_default()
            .extend(a.hostnames);
    }
    by_listener
        .into_iter()
        .map(|(listener, hostnames)| Attachment {
            listener,
            hostnames: hostnames.into_iter().collect(),
        })
        .collect()
}

/// The snapshot's rule table for the used (attached route, rule) pairs, in that (sorted)
/// order, and the backends those rules reference.
fn rule_table(
    attached: &[AttachedRoute<'_>],
    used: &BTreeSet<(usize, usize)>,
) -> (Vec<RuleConfig>, Vec<ObjectKey>) {
    let mut roots = BTreeSet::new();
    let rules: Vec<RuleConfig> = used
        .iter()
        .map(|&(ai, ri)| attached[ai].rules[ri].config.clone())
        .collect();
    for rule in &rules {
        let mut add = |key: &Option<String>| {
            if let Some((ns, name)) = key.as_deref().and_then(|k| k.split_once('/')) {
                roots.insert(ObjectKey::new(ns, name));
            }
        };
        match &rule.action {
            Action::Backends { backends } => backends.iter().for_each(|b| add(&b.backend)),
            Action::Aggregate { parts } => parts.iter().for_each(|p| add(&p.backend)),
            Action::Redirect(_) => {}
        }
        for filter in &rule.filters {
            if let FilterConfig::RequestMirror(m) = filter {
                add(&m.backend);
            }
        }
    }
    (rules, roots.into_iter().collect())
}

/// Checks what the CRD schema checks too (for manifests that never met an API server) and what
/// it cannot; returns which listeners can be served.
fn check_listeners(listeners: &[Listener], ctx: &mut Ctx<'_>) -> Vec<bool> {
    let mut usable = Vec::with_capacity(listeners.len());
    for (i, l) in listeners.iter().enumerate() {
        let field = format!("spec.listeners[{i}]");
        let earlier = &listeners[..i];
        let problem = if earlier.iter().any(|o| o.name == l.name) {
            Some((
                field.clone() + ".name",
                format!("listener name {:?} is used twice", l.name),
            ))
        } else if let Some(o) = earlier
            .iter()
            .find(|o| o.port == l.port && o.protocol != l.protocol)
        {
            Some((
                field.clone() + ".protocol",
                format!(
                    "port {} is already used with another protocol by listener {:?}",
                    l.port, o.name
                ),
            ))
        } else if earlier
            .iter()
            .any(|o| o.port == l.port && o.hostname == l.hostname)
        {
            Some((
                field.clone() + ".hostname",
                format!(
                    "another listener on port {} already has this hostname",
                    l.port
                ),
            ))
        } else if l.protocol == ListenerProtocol::Https
            && l.tls.as_ref().is_none_or(|t| t.certificate_refs.is_empty())
        {
            Some((
                field.clone() + ".tls",
                "an HTTPS listener needs tls.certificateRefs".to_owned(),
            ))
        } else {
            None
        };
        if l.protocol == ListenerProtocol::Http && l.tls.is_some() {
            ctx.warning(
                format!("{field}.tls"),
                reason::INVALID,
                "tls is ignored on an HTTP listener",
            );
        }
        match problem {
            Some((f, message)) => {
                ctx.error(
                    f,
                    reason::INVALID,
                    format!("{message}; the listener is not served"),
                );
                usable.push(false);
            }
            None => usable.push(true),
        }
    }
    usable
}
