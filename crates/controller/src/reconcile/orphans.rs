//! Route status entries of Gateways that no longer exist: a deleted Gateway reconciles no more,
//! so nothing else would remove what it wrote in its Routes' `status.parents[]`, and the Route
//! would go on saying it is accepted by a Gateway that is gone.

use std::time::Duration;

use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    runtime::reflector::{ObjectRef, Store},
};
use portcullis_api::{Gateway, Route};
use serde_json::json;
use tracing::{info, warn};

use crate::leader::{Stop, fenced};

/// How often the Routes are checked (in memory; a write only when an entry is orphaned).
const EVERY: Duration = Duration::from_secs(10);

/// The entries of `route`'s `status.parents[]` that name a Gateway missing from `gateways`,
/// as the list to keep (pure). `watched` limits the Gateways this operator answers for (a
/// namespace-scoped operator knows nothing of the others'). `None` when nothing is orphaned.
pub fn without_orphans(
    route: &Route,
    gateways: &Store<Gateway>,
    watched: Option<&str>,
) -> Option<Vec<portcullis_api::route::RouteParentStatus>> {
    let namespace = route.namespace().unwrap_or_default();
    let parents = &route.status.as_ref()?.parents;
    let orphaned = |parent: &portcullis_api::route::RouteParentStatus| {
        let gateway_namespace = parent.parent_ref.namespace.as_deref().unwrap_or(&namespace);
        watched.is_none_or(|w| w == gateway_namespace)
            && gateways
                .get(&ObjectRef::new(&parent.parent_ref.name).within(gateway_namespace))
                .is_none()
    };
    parents.iter().any(orphaned).then(|| {
        parents
            .iter()
            .filter(|parent| !orphaned(parent))
            .cloned()
            .collect()
    })
}

/// Removes orphaned entries from every Route in `routes` every [`EVERY`], once the Gateway
/// store holds its initial list, until `stop`.
pub async fn sweep(
    client: Client,
    routes: Store<Route>,
    gateways: Store<Gateway>,
    watched: Option<String>,
    stop: Stop,
) {
    // Before the Gateways are listed, every entry would look orphaned.
    if fenced(&stop, gateways.wait_until_ready()).await.is_none() {
        return;
    }
    loop {
        for route in routes.state() {
            let Some(kept) = without_orphans(&route, &gateways, watched.as_deref()) else {
                continue;
            };
            let namespace = route.namespace().unwrap_or_default();
            let name = route.name_any();
            let api: Api<Route> = Api::namespaced(client.clone(), &namespace);
            // Guarded by the resourceVersion: a Gateway that reappeared meanwhile wins.
            let patch = json!({
                "metadata": { "resourceVersion": route.resource_version() },
                "status": { "parents": kept },
            });
            let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
            match fenced(&stop, api.patch_status(&name, &params, &patch)).await {
                None => return,
                Some(Ok(_)) => {
                    info!(route = %format!("{namespace}/{name}"), "removed the status of Gateways that no longer exist");
                }
                Some(Err(error)) => {
                    warn!(route = %format!("{namespace}/{name}"), %error, "cannot remove the status of Gateways that no longer exist; retried");
                }
            }
        }
        if fenced(&stop, tokio::time::sleep(EVERY)).await.is_none() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher};
    use serde_json::json;

    use super::*;

    fn gateways(names: &[(&str, &str)]) -> Store<Gateway> {
        let (store, mut writer) = reflector::store();
        for (namespace, name) in names {
            let gateway: Gateway = serde_json::from_value(json!({
                "apiVersion": "portcullis.dev/v1alpha1",
                "kind": "Gateway",
                "metadata": { "name": name, "namespace": namespace },
                "spec": { "listeners": [{ "name": "http", "port": 80, "protocol": "HTTP" }] },
            }))
            .expect("a Gateway");
            writer.apply_watcher_event(&watcher::Event::Apply(gateway));
        }
        store
    }

    fn route() -> Route {
        serde_json::from_value(json!({
            "apiVersion": "portcullis.dev/v1alpha1",
            "kind": "Route",
            "metadata": { "name": "orders", "namespace": "shop" },
            "spec": { "parentRefs": [{ "name": "edge" }], "rules": [{}] },
            "status": { "parents": [
                { "parentRef": { "name": "edge" }, "conditions": [] },
                { "parentRef": { "name": "gone" }, "conditions": [] },
                { "parentRef": { "name": "elsewhere", "namespace": "other" }, "conditions": [] },
            ]},
        }))
        .expect("a Route")
    }

    #[test]
    fn entries_of_gateways_that_are_gone_are_dropped_and_the_others_kept() {
        let store = gateways(&[("shop", "edge"), ("other", "elsewhere")]);
        let kept = without_orphans(&route(), &store, None).expect("an orphan");
        let names: Vec<&str> = kept.iter().map(|p| p.parent_ref.name.as_str()).collect();
        assert_eq!(names, ["edge", "elsewhere"]);
    }

    #[test]
    fn a_namespaced_operator_leaves_other_namespaces_gateways_alone() {
        let store = gateways(&[("shop", "edge"), ("shop", "gone")]);
        assert_eq!(without_orphans(&route(), &store, Some("shop")), None);
        let kept = without_orphans(&route(), &store, None).expect("an orphan");
        assert_eq!(kept.len(), 2);
    }
}
