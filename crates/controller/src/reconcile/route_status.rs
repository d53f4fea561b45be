//! Route status: each Route's `status.parents[]` entries for this Gateway, with `Accepted` and
//! `ResolvedRefs` from the compiler's attachment results, `PartiallyInvalid` while rules of the
//! Route answer 503, and `Programmed` once the replicas serve the Route's current generation
//! (see [`super::rollout`]), written only when they changed.
//!
//! `parents` is one list shared by every Gateway a Route names, so each Gateway rewrites its
//! own entries and keeps the others', guarded by the Route's resourceVersion; on a conflict the
//! Route is read again and the entries recomputed.

use std::sync::Arc;

use futures::{StreamExt, stream};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Condition, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::{EventType, Recorder},
};
use portcullis_api::{
    Gateway, Route,
    route::{ParentRef, RouteParentStatus},
};
use portcullis_config::{
    capability::UnservedRule, diagnostics::RouteParentResult, snapshot::ObjectKey,
};
use serde_json::json;

use super::{
    fetch::names_gateway, rollout::Rollout, status::StatusError, unserved::route_condition,
};
use crate::conditions::{self, Observed, reason};

/// Status writes in flight at once (1,000 Routes attach in a few seconds, not minutes).
const CONCURRENT_WRITES: usize = 16;
/// Attempts at a Route whose resourceVersion keeps changing under us.
const ATTEMPTS: usize = 3;

/// Whether `parent` (of a Route in `route_namespace`) is Gateway `gateway`.
fn is_gateway(parent: &ParentRef, route_namespace: &str, gateway: &ObjectKey) -> bool {
    parent.name == gateway.name
        && parent.namespace.as_deref().unwrap_or(route_namespace) == gateway.namespace
}

/// The `parents` list of `route` with this Gateway's entries replaced by `results` (pure).
/// `unserved` are the rules of this Gateway's snapshot that answer 503: those of `route` make
/// its entries `PartiallyInvalid`; `rollout` says whether the replicas serve its generation.
pub fn parents(
    route: &Route,
    gateway: &ObjectKey,
    results: &[&RouteParentResult],
    unserved: &[UnservedRule],
    rollout: &Rollout,
    now: Timestamp,
) -> Vec<RouteParentStatus> {
    let namespace = route.namespace().unwrap_or_default();
    let route_key = ObjectKey::new(&namespace, route.name_any());
    let partially_invalid = route_condition(&route_key, unserved);
    let generation = route.meta().generation;
    let live = route
        .status
        .as_ref()
        .map(|s| s.parents.as_slice())
        .unwrap_or_default();
    let mut parents: Vec<RouteParentStatus> = live
        .iter()
        .filter(|p| !is_gateway(&p.parent_ref, &namespace, gateway))
        .cloned()
        .collect();
    for result in results {
        let before = live
            .iter()
            .find(|p| p.parent_ref == result.parent_ref)
            .map(|p| p.conditions.as_slice())
            .unwrap_or_default();
        let observed = |type_, c: &portcullis_config::diagnostics::ConditionResult| Observed {
            type_,
            status: c.status,
            reason: c.reason.to_owned(),
            message: c.message.clone(),
        };
        let mut wanted = vec![
            observed(conditions::ACCEPTED, &result.accepted),
            observed(conditions::RESOLVED_REFS, &result.resolved_refs),
        ];
        // Only where the Route attached: a Route that is not accepted serves no rule at all.
        if result.accepted.status {
            wanted.extend(partially_invalid.clone());
            let served = generation.and_then(|g| rollout.serves(&route_key, g));
            wanted.extend(programmed(served, &gateway.name, before));
        }
        parents.push(RouteParentStatus {
            parent_ref: result.parent_ref.clone(),
            conditions: conditions::merge(before, wanted, generation, now),
        });
    }
    parents
}

/// The Route's `Programmed` for this Gateway: whether every ready replica serves its current
/// generation, or, when that is not known, what the condition said before (if anything).
fn programmed(served: Option<bool>, gateway: &str, before: &[Condition]) -> Option<Observed> {
    match served {
        Some(true) => Some(Observed::yes(
            conditions::PROGRAMMED,
            reason::PROGRAMMED,
            format!("every ready replica of Gateway {gateway} serves this generation"),
        )),
        Some(false) => Some(Observed::no(
            conditions::PROGRAMMED,
            reason::PENDING,
            format!(
                "not every ready replica of Gateway {gateway} serves this generation yet: its \
                 rules answer as before on those that do not (see the Gateway's status.config)"
            ),
        )),
        None => before
            .iter()
            .find(|c| c.type_ == conditions::PROGRAMMED)
            .map(|c| Observed {
                type_: conditions::PROGRAMMED,
                status: c.status == "True",
                reason: c.reason.clone(),
                message: c.message.clone(),
            }),
    }
}

/// What a Gateway's reconcile found for its Routes.
pub struct Outcome<'a> {
    /// The compiler's attachment results.
    pub results: &'a [RouteParentResult],
    /// The rules of the snapshot that answer 503.
    pub unserved: &'a [UnservedRule],
    /// What the replicas serve.
    pub rollout: &'a Rollout,
    /// The time of the reconcile.
    pub now: Timestamp,
}

/// Writes the status of every Route that names `gateway` or carries an entry for it; returns
/// the number of Routes written.
pub async fn write_all(
    client: &Client,
    recorder: &Recorder,
    routes: Vec<Arc<Route>>,
    gateway: &Gateway,
    outcome: &Outcome<'_>,
) -> Result<usize, StatusError> {
    let key = ObjectKey::new(gateway.namespace().unwrap_or_default(), gateway.name_any());
    let concerned: Vec<Arc<Route>> = routes
        .into_iter()
        .filter(|route| {
            let namespace = route.namespace().unwrap_or_default();
            names_gateway(route, &key.namespace, &key.name)
                || route
                    .status
                    .iter()
                    .flat_map(|s| &s.parents)
                    .any(|p| is_gateway(&p.parent_ref, &namespace, &key))
        })
        .collect();
    let writes = stream::iter(concerned)
        .map(|route| {
            let key = &key;
            async move { write_one(client, recorder, route, key, outcome).await }
        })
        .buffer_unordered(CONCURRENT_WRITES)
        .collect::<Vec<_>>()
        .await;
    let mut written = 0;
    for outcome in writes {
        written += usize::from(outcome?);
    }
    Ok(written)
}

async fn write_one(
    client: &Client,
    recorder: &Recorder,
    route: Arc<Route>,
    gateway: &ObjectKey,
    outcome: &Outcome<'_>,
) -> Result<bool, StatusError> {
    let namespace = route.namespace().unwrap_or_default();
    let name = route.name_any();
    let route_key = ObjectKey::new(&namespace, &name);
    let mine: Vec<&RouteParentResult> = outcome
        .results
        .iter()
        .filter(|r| r.route == route_key)
        .collect();
    let api: Api<Route> = Api::namespaced(client.clone(), &namespace);
    let mut route = route;
    for attempt in 1..=ATTEMPTS {
        let wanted = parents(
            &route,
            gateway,
            &mine,
            outcome.unserved,
            outcome.rollout,
            outcome.now,
        );
        let live = route
            .status
            .as_ref()
            .map(|s| s.parents.as_slice())
            .unwrap_or_default();
        if live == wanted.as_slice() {
            return Ok(false);
        }
        let patch = json!({
            "metadata": { "resourceVersion": route.resource_version() },
            "status": { "parents": wanted },
        });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                publish_warnings(recorder, &route, live, &wanted).await;
                return Ok(true);
            }
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < ATTEMPTS => {
                match api.get_opt(&name).await {
                    Ok(Some(fresh)) => route = Arc::new(fresh),
                    Ok(None) => return Ok(false),
                    Err(source) => {
                        return Err(StatusError::Write {
                            kind: "Route",
                            object: route_key.to_string(),
                            source: Box::new(source),
                        });
                    }
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
            Err(source) => {
                return Err(StatusError::Write {
                    kind: "Route",
                    object: route_key.to_string(),
                    source: Box::new(source),
                });
            }
        }
    }
    Ok(false)
}

/// The Route conditions that deserve a Warning Event, with the status that is bad: a reference
/// that does not resolve, rules that answer 503.
const WARNED: [(&str, &str); 2] = [
    (conditions::RESOLVED_REFS, "False"),
    (conditions::PARTIALLY_INVALID, "True"),
];

/// A Warning Event on the Route for each parent whose condition of [`WARNED`] just turned bad
/// or now says something else (another reference, other rules): once per change, not on every
/// resync (nothing is written then).
async fn publish_warnings(
    recorder: &Recorder,
    route: &Route,
    before: &[RouteParentStatus],
    after: &[RouteParentStatus],
) {
    for parent in after {
        let previous = before
            .iter()
            .find(|p| p.parent_ref == parent.parent_ref)
            .map(|p| p.conditions.as_slice())
            .unwrap_or_default();
        for (type_, bad) in WARNED {
            let Some(condition) = parent
                .conditions
                .iter()
                .find(|c| c.type_ == type_ && c.status == bad)
            else {
                continue;
            };
            let known = previous
                .iter()
                .any(|c| c.type_ == type_ && c.status == bad && c.message == condition.message);
            if !known {
                super::publish(
                    recorder,
                    &route.object_ref(&()),
                    EventType::Warning,
                    &condition.reason,
                    format!("Gateway {}: {}", parent.parent_ref.name, condition.message),
                )
                .await;
            }
        }
    }
}
