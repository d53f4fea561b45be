//! Which Gateways a changed Route, ServiceBackend or Secret affects.
//!
//! Each reconcile records what its Gateway used: the Routes that name it, every ServiceBackend
//! name those Routes (and the failover lists of their backends) mention — found or not, so that
//! creating a missing one requeues the Gateway — and every Secret its snapshot reads. The
//! watches' mappers look changes up here, so one Route edit requeues exactly the Gateways it
//! touches.

use std::{
    collections::{BTreeSet, HashMap},
    sync::RwLock,
};

use kube::{ResourceExt, runtime::reflector::ObjectRef};
use portcullis_api::{Gateway, Route, ServiceBackend};
use portcullis_config::snapshot::ObjectKey;

/// What one Gateway used in its last reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Used {
    /// Routes whose parentRefs name the Gateway.
    pub routes: BTreeSet<ObjectKey>,
    /// ServiceBackends mentioned by those Routes, directly or through failover.
    pub backends: BTreeSet<ObjectKey>,
    /// Secrets the snapshot reads.
    pub secrets: BTreeSet<ObjectKey>,
    /// Of those, the ones that did not exist (so an Event is published once, when one goes
    /// missing, not at every reconcile).
    pub missing_secrets: BTreeSet<ObjectKey>,
}

/// The relations of every Gateway, updated by reconciles, read by the watch mappers.
#[derive(Debug, Default)]
pub struct Relations {
    used: RwLock<HashMap<ObjectKey, Used>>,
}

impl Relations {
    /// Records what `gateway` uses now; returns what it used before.
    pub fn record(&self, gateway: ObjectKey, used: Used) -> Used {
        self.used
            .write()
            .ok()
            .and_then(|mut map| map.insert(gateway, used))
            .unwrap_or_default()
    }

    /// Forgets a deleted Gateway.
    pub fn forget(&self, gateway: &ObjectKey) {
        if let Ok(mut map) = self.used.write() {
            map.remove(gateway);
        }
    }

    fn gateways_where(&self, uses: impl Fn(&Used) -> bool) -> Vec<ObjectKey> {
        self.used
            .read()
            .map(|map| {
                map.iter()
                    .filter(|(_, used)| uses(used))
                    .map(|(gateway, _)| gateway.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The Gateways a change of `route` affects: those it names now, those it named when last
    /// compiled, and those whose status it carries.
    pub fn gateways_of_route(&self, route: &Route) -> Vec<ObjectRef<Gateway>> {
        let namespace = route.namespace().unwrap_or_default();
        let key = ObjectKey::new(namespace.clone(), route.name_any());
        let mut gateways: BTreeSet<ObjectKey> = route
            .spec
            .parent_refs
            .iter()
            .chain(
                route
                    .status
                    .iter()
                    .flat_map(|s| &s.parents)
                    .map(|p| &p.parent_ref),
            )
            .map(|parent| {
                ObjectKey::new(
                    parent
                        .namespace
                        .clone()
                        .unwrap_or_else(|| namespace.clone()),
                    parent.name.clone(),
                )
            })
            .collect();
        gateways.extend(self.gateways_where(|used| used.routes.contains(&key)));
        gateways.into_iter().map(gateway_ref).collect()
    }

    /// The Gateways whose Routes mention `backend`.
    pub fn gateways_of_backend(&self, backend: &ServiceBackend) -> Vec<ObjectRef<Gateway>> {
        let key = ObjectKey::new(backend.namespace().unwrap_or_default(), backend.name_any());
        self.gateways_where(|used| used.backends.contains(&key))
            .into_iter()
            .map(gateway_ref)
            .collect()
    }

    /// The Gateways whose snapshot reads Secret `namespace/name`.
    pub fn gateways_of_secret(&self, namespace: &str, name: &str) -> Vec<ObjectRef<Gateway>> {
        let key = ObjectKey::new(namespace, name);
        self.gateways_where(|used| used.secrets.contains(&key))
            .into_iter()
            .map(gateway_ref)
            .collect()
    }
}

/// The reference of Gateway `key`.
pub fn gateway_ref(key: ObjectKey) -> ObjectRef<Gateway> {
    ObjectRef::new(&key.name).within(&key.namespace)
}

/// The ServiceBackends `routes` mention (backendRefs, mirrors, aggregate parts), in the Routes'
/// namespaces, plus, transitively, the failover targets of those that exist in `backends`.
pub fn mentioned_backends<'a>(
    routes: impl IntoIterator<Item = &'a Route>,
    backends: &[ServiceBackend],
) -> BTreeSet<ObjectKey> {
    let mut mentioned = BTreeSet::new();
    for route in routes {
        let namespace = route.namespace().unwrap_or_default();
        for rule in &route.spec.rules {
            let names = rule
                .backend_refs
                .iter()
                .map(|b| &b.name)
                .chain(
                    rule.aggregate
                        .iter()
                        .flat_map(|a| &a.parts)
                        .map(|p| &p.backend_ref.name),
                )
                .chain(
                    rule.filters
                        .iter()
                        .filter_map(|f| f.request_mirror.as_ref())
                        .map(|m| &m.backend_ref.name),
                );
            mentioned.extend(names.map(|name| ObjectKey::new(&namespace, name)));
        }
    }
    let mut pending: Vec<ObjectKey> = mentioned.iter().cloned().collect();
    while let Some(key) = pending.pop() {
        let found = backends
            .iter()
            .find(|b| b.namespace().as_deref() == Some(&key.namespace) && b.name_any() == key.name);
        for target in found.iter().flat_map(|b| &b.spec.failover) {
            let target = ObjectKey::new(&key.namespace, &target.name);
            if mentioned.insert(target.clone()) {
                pending.push(target);
            }
        }
    }
    mentioned
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn route(name: &str, parent: serde_json::Value, backend: &str) -> Route {
        serde_json::from_value(json!({
            "apiVersion": "portcullis.dev/v1alpha1",
            "kind": "Route",
            "metadata": { "name": name, "namespace": "shop" },
            "spec": {
                "parentRefs": [parent],
                "rules": [{ "backendRefs": [{ "name": backend }] }],
            },
        }))
        .expect("a valid Route")
    }

    fn backend(name: &str, failover: &[&str]) -> ServiceBackend {
        serde_json::from_value(json!({
            "apiVersion": "portcullis.dev/v1alpha1",
            "kind": "ServiceBackend",
            "metadata": { "name": name, "namespace": "shop" },
            "spec": {
                "endpoints": [{ "address": "10.0.0.1", "port": 80 }],
                "failover": failover.iter().map(|n| json!({ "name": n })).collect::<Vec<_>>(),
            },
        }))
        .expect("a valid ServiceBackend")
    }

    #[test]
    fn a_route_maps_to_the_gateways_it_names_and_those_it_used_to_attach_to() {
        let relations = Relations::default();
        relations.record(
            ObjectKey::new("shop", "old"),
            Used {
                routes: BTreeSet::from([ObjectKey::new("shop", "orders")]),
                ..Used::default()
            },
        );
        relations.record(ObjectKey::new("shop", "unrelated"), Used::default());
        let orders = route(
            "orders",
            json!({ "name": "edge", "namespace": "infra" }),
            "orders",
        );
        let gateways = relations.gateways_of_route(&orders);
        assert_eq!(
            gateways,
            [
                ObjectRef::new("edge").within("infra"),
                ObjectRef::new("old").within("shop")
            ]
        );
    }

    #[test]
    fn backends_map_through_failover_even_before_they_exist() {
        let routes = [route("orders", json!({ "name": "edge" }), "orders")];
        let backends = [backend("orders", &["standby"])];
        let mentioned = mentioned_backends(&routes, &backends);
        assert_eq!(
            mentioned,
            BTreeSet::from([
                ObjectKey::new("shop", "orders"),
                ObjectKey::new("shop", "standby")
            ])
        );
        let relations = Relations::default();
        relations.record(
            ObjectKey::new("shop", "edge"),
            Used {
                backends: mentioned,
                ..Used::default()
            },
        );
        assert_eq!(
            relations.gateways_of_backend(&backend("standby", &[])),
            [ObjectRef::new("edge").within("shop")]
        );
        assert!(
            relations
                .gateways_of_backend(&backend("other", &[]))
                .is_empty()
        );
    }
}
