//! Stage 5, status: what the Gateway's status says, computed purely from what the stages saw,
//! and written only when it changed.

use std::collections::BTreeSet;

use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Service},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType},
};
use portcullis_api::{
    Gateway,
    gateway::{ConfigStatus, GatewayAddress, GatewayStatus, ListenerStatus},
};
use portcullis_config::{
    Severity,
    capability::UnservedRule,
    diagnostics::{Kind, ObjectRef as DiagnosticObject},
    snapshot::ObjectKey,
};
use serde_json::json;

use super::{
    compile::Compilation,
    replicas::{self, Replica, Served},
    unserved,
};
use crate::{
    conditions::{self, Observed, reason},
    meta::FIELD_MANAGER,
};

/// Why the status stage failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The API server refused a status write.
    #[error("cannot write the status of {kind} {object}: {source}")]
    Write {
        /// Kind of the object.
        kind: &'static str,
        /// `namespace/name`.
        object: String,
        /// The API error.
        source: Box<kube::Error>,
    },
}

/// Whether the config and children were applied, or why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Programmed {
    /// Everything applied.
    Yes,
    /// Not applied: a reason from [`reason`] and a message.
    No(&'static str, String),
}

/// Everything the Gateway's status is computed from.
pub struct Facts<'a> {
    /// The compilation, when the compile stage succeeded.
    pub compilation: Option<&'a Compilation>,
    /// The outcome of build and apply.
    pub programmed: Programmed,
    /// The Deployment as last seen.
    pub deployment: Option<&'a Deployment>,
    /// The Service as last seen.
    pub service: Option<&'a Service>,
    /// Referenced Secrets that do not exist.
    pub missing_secrets: &'a BTreeSet<ObjectKey>,
    /// Rules of the snapshot the replicas answer with 503 (see [`super::unserved`]).
    pub unserved: &'a [UnservedRule],
    /// Size of the stored snapshot, when it was stored.
    pub config_bytes: Option<usize>,
    /// The ready replicas and the revisions they report serving.
    pub replicas: &'a [Replica],
}

/// The status `gateway` should have, given `facts`, at `now` (pure).
pub fn gateway_status(gateway: &Gateway, facts: &Facts<'_>, now: Timestamp) -> GatewayStatus {
    let previous = gateway.status.clone().unwrap_or_default();
    let generation = gateway.meta().generation;
    let desired = facts
        .deployment
        .and_then(|d| d.spec.as_ref())
        .and_then(|spec| spec.replicas)
        .unwrap_or(gateway.spec.replicas);
    let live = facts
        .deployment
        .and_then(|d| d.status.clone())
        .unwrap_or_default();
    let ready = live.ready_replicas.unwrap_or(0);
    let counts = format!("{ready}/{desired}");

    let gateway_key = ObjectKey::new(gateway.namespace().unwrap_or_default(), gateway.name_any());
    let gateway_object = DiagnosticObject::new(Kind::Gateway, gateway_key.clone());
    let errors: Vec<String> = facts
        .compilation
        .iter()
        .flat_map(|c| c.compiled.diagnostics.for_object(&gateway_object))
        .filter(|d| d.severity == Severity::Error)
        .map(|d| format!("{}: {}", d.field, d.message))
        .collect();
    let accepted = if errors.is_empty() {
        Observed::yes(conditions::ACCEPTED, reason::ACCEPTED, "Accepted")
    } else {
        Observed::no(conditions::ACCEPTED, reason::INVALID, errors.join("; "))
    };
    let applied = match &facts.programmed {
        Programmed::Yes => Observed::yes(
            conditions::PROGRAMMED,
            reason::PROGRAMMED,
            facts.compilation.map_or_else(String::new, |c| {
                format!(
                    "config revision {} applied",
                    short(&c.compiled.snapshot.revision)
                )
            }),
        ),
        Programmed::No(why, message) => Observed::no(conditions::PROGRAMMED, why, message.clone()),
    };
    // The current revision: the one just compiled, else the one last stored.
    let revision = facts.compilation.map_or_else(
        || {
            previous
                .config
                .as_ref()
                .map(|c| c.revision.clone())
                .unwrap_or_default()
        },
        |c| c.compiled.snapshot.revision.clone(),
    );
    let served = replicas::served(facts.replicas, &revision);
    // Applied is not served: Programmed is True only once every ready replica reports serving
    // the revision (a refusal and rules answering 503 say so first, as the user must act on
    // them; a replica still loading is only a matter of time). The listeners keep the applied
    // state: a rule is not a listener's.
    let programmed = if !applied.status {
        applied.clone()
    } else if !served.rejected.is_empty() {
        Observed::no(
            conditions::PROGRAMMED,
            reason::REPLICAS_REJECTED,
            rejected_message(&revision, &served),
        )
    } else if !facts.unserved.is_empty() {
        Observed::no(
            conditions::PROGRAMMED,
            reason::RULES_NOT_SERVED,
            unserved::gateway_message(facts.unserved),
        )
    } else if !served.all_live() {
        Observed::no(
            conditions::PROGRAMMED,
            reason::PENDING,
            pending_message(&revision, &served),
        )
    } else {
        Observed::yes(
            conditions::PROGRAMMED,
            reason::PROGRAMMED,
            format!(
                "config revision {} is live on every ready replica ({})",
                short(&revision),
                served.fraction()
            ),
        )
    };
    let ready_condition = if ready > 0 {
        Observed::yes(
            conditions::READY,
            reason::REPLICAS_READY,
            format!("{counts} replicas ready"),
        )
    } else {
        Observed::no(
            conditions::READY,
            reason::NO_READY_REPLICAS,
            format!("{counts} replicas ready: no replica serves"),
        )
    };
    let degraded = if ready > 0 && ready < desired {
        Observed::yes(
            conditions::DEGRADED,
            reason::REPLICAS_UNAVAILABLE,
            format!("only {counts} replicas ready: losing another one may drop traffic"),
        )
    } else if ready == 0 && desired > 0 {
        Observed::no(
            conditions::DEGRADED,
            reason::NO_READY_REPLICAS,
            "no replica is ready (see Ready)",
        )
    } else {
        Observed::no(
            conditions::DEGRADED,
            reason::ALL_REPLICAS_READY,
            format!("{counts} replicas ready"),
        )
    };
    let (addresses, address_assigned) = addresses(facts.service);
    let conditions = conditions::merge(
        &previous.conditions,
        vec![
            accepted,
            programmed.clone(),
            ready_condition,
            degraded,
            address_assigned,
        ],
        generation,
        now,
    );
    GatewayStatus {
        observed_generation: generation,
        conditions,
        replicas: live.replicas.unwrap_or(0),
        ready_replicas: ready,
        updated_replicas: live.updated_replicas.unwrap_or(0),
        ready: Some(counts),
        addresses,
        attached_routes: facts.compilation.map_or(previous.attached_routes, |c| {
            i32::try_from(c.compiled.diagnostics.attached_routes).unwrap_or(i32::MAX)
        }),
        listeners: listeners(gateway, facts, &previous, applied, generation, now),
        config: match (facts.compilation, facts.config_bytes, &facts.programmed) {
            (Some(c), Some(size), Programmed::Yes) => Some(ConfigStatus {
                revision: c.compiled.snapshot.revision.clone(),
                size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
                ..ConfigStatus::default()
            }),
            _ => previous.config,
        }
        .map(|config| observed_config(config, facts.replicas)),
    }
}

/// `config` with the replicas' reports counted against its revision.
fn observed_config(config: ConfigStatus, replicas: &[Replica]) -> ConfigStatus {
    let served = replicas::served(replicas, &config.revision);
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    ConfigStatus {
        live_replicas: count(served.live.len()),
        stale_replicas: count(served.stale.len()),
        rejected_replicas: count(served.rejected.len()),
        live: Some(served.fraction()),
        last_error: served.last_error(),
        ..config
    }
}

/// At most this many replicas are named in a message.
const NAMED_REPLICAS: usize = 5;

fn names<'a>(replicas: impl ExactSizeIterator<Item = &'a String>) -> String {
    let total = replicas.len();
    let mut names: Vec<&str> = replicas.take(NAMED_REPLICAS).map(String::as_str).collect();
    let more = total.saturating_sub(NAMED_REPLICAS);
    let more = format!("and {more} more");
    if total > NAMED_REPLICAS {
        names.push(&more);
    }
    names.join(", ")
}

fn rejected_message(revision: &str, served: &Served) -> String {
    format!(
        "config revision {} was refused by {} of {} ready replicas ({}), which keep serving \
         their previous revision: {}",
        short(revision),
        served.rejected.len(),
        served.ready(),
        names(served.rejected.iter().map(|(name, _)| name)),
        served.last_error().unwrap_or_default()
    )
}

fn pending_message(revision: &str, served: &Served) -> String {
    if served.ready() == 0 {
        return format!(
            "config revision {} is applied; no ready replica serves it yet",
            short(revision)
        );
    }
    format!(
        "config revision {} is live on {} of {} ready replicas; waiting for {} to load it",
        short(revision),
        served.live.len(),
        served.ready(),
        names(served.stale.iter())
    )
}

fn listeners(
    gateway: &Gateway,
    facts: &Facts<'_>,
    previous: &GatewayStatus,
    programmed: Observed,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<ListenerStatus> {
    let namespace = gateway.namespace().unwrap_or_default();
    let gateway_object = DiagnosticObject::new(
        Kind::Gateway,
        ObjectKey::new(&namespace, gateway.name_any()),
    );
    gateway
        .spec
        .listeners
        .iter()
        .enumerate()
        .map(|(index, listener)| {
            let field = format!("spec.listeners[{index}]");
            let errors: Vec<String> = facts
                .compilation
                .iter()
                .flat_map(|c| c.compiled.diagnostics.for_object(&gateway_object))
                .filter(|d| d.severity == Severity::Error && d.field.starts_with(&field))
                .map(|d| format!("{}: {}", d.field, d.message))
                .collect();
            let accepted = if errors.is_empty() {
                Observed::yes(conditions::ACCEPTED, reason::ACCEPTED, "Accepted")
            } else {
                Observed::no(conditions::ACCEPTED, reason::INVALID, errors.join("; "))
            };
            let certificates: Vec<ObjectKey> = listener
                .tls
                .iter()
                .flat_map(|tls| &tls.certificate_refs)
                .map(|r| ObjectKey::new(r.namespace.as_deref().unwrap_or(&namespace), &r.name))
                .collect();
            let refused = facts.compilation.map(|c| &c.secret_refs.refused);
            let resolved = if let Some(key) =
                certificates.iter().find(|k| refused.is_some_and(|r| r.contains(k)))
            {
                Observed::no(
                    conditions::RESOLVED_REFS,
                    reason::REF_NOT_PERMITTED,
                    format!(
                        "certificate Secret {key} is in another namespace: copy it into {namespace:?}"
                    ),
                )
            } else if let Some(key) = certificates.iter().find(|k| facts.missing_secrets.contains(k)) {
                Observed::no(
                    conditions::RESOLVED_REFS,
                    "InvalidCertificateRef",
                    format!("certificate Secret {key} not found"),
                )
            } else {
                Observed::yes(
                    conditions::RESOLVED_REFS,
                    reason::RESOLVED_REFS,
                    "All references resolved",
                )
            };
            let attached = facts
                .compilation
                .and_then(|c| {
                    c.compiled
                        .diagnostics
                        .listeners
                        .iter()
                        .find(|l| l.name == listener.name)
                })
                .map_or(0, |l| i32::try_from(l.attached_routes).unwrap_or(i32::MAX));
            let before = previous
                .listeners
                .iter()
                .find(|l| l.name == listener.name)
                .map(|l| l.conditions.as_slice())
                .unwrap_or_default();
            ListenerStatus {
                name: listener.name.clone(),
                attached_routes: attached,
                conditions: conditions::merge(
                    before,
                    vec![accepted, resolved, programmed.clone()],
                    generation,
                    now,
                ),
            }
        })
        .collect()
}

/// What a client can reach the Gateway at, and the condition that says so: a `LoadBalancer`
/// Service's external addresses (nothing, and `AddressAssigned` False, until the load balancer
/// has one: the cluster IP is not what a client outside can use); the cluster IP of a
/// `ClusterIP` or `NodePort` Service.
fn addresses(service: Option<&Service>) -> (Vec<GatewayAddress>, Observed) {
    let Some(service) = service else {
        return (
            Vec::new(),
            Observed::no(
                conditions::ADDRESS_ASSIGNED,
                reason::ADDRESS_NOT_ASSIGNED,
                "the gateway Service does not exist yet",
            ),
        );
    };
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let spec = service.spec.as_ref();
    if spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer") {
        let ingress: Vec<GatewayAddress> = service
            .status
            .iter()
            .flat_map(|s| s.load_balancer.iter())
            .flat_map(|lb| lb.ingress.iter().flatten())
            .filter_map(|i| match (&i.ip, &i.hostname) {
                (Some(ip), _) => Some(address("IPAddress", ip)),
                (None, Some(host)) => Some(address("Hostname", host)),
                (None, None) => None,
            })
            .collect();
        let condition = if ingress.is_empty() {
            Observed::no(
                conditions::ADDRESS_ASSIGNED,
                reason::ADDRESS_NOT_ASSIGNED,
                format!(
                    "the LoadBalancer Service {name} has no external address yet: clients \
                     outside the cluster cannot reach the Gateway until the cluster's load \
                     balancer assigns one (see `kubectl describe service {name}`)"
                ),
            )
        } else {
            Observed::yes(
                conditions::ADDRESS_ASSIGNED,
                reason::ADDRESS_ASSIGNED,
                format!("the load balancer of Service {name} has an external address"),
            )
        };
        return (ingress, condition);
    }
    match spec
        .and_then(|spec| spec.cluster_ip.as_deref())
        .filter(|ip| !ip.is_empty() && *ip != "None")
    {
        Some(ip) => (
            vec![address("IPAddress", ip)],
            Observed::yes(
                conditions::ADDRESS_ASSIGNED,
                reason::ADDRESS_ASSIGNED,
                format!("Service {name} has the cluster IP {ip}"),
            ),
        ),
        None => (
            Vec::new(),
            Observed::no(
                conditions::ADDRESS_ASSIGNED,
                reason::ADDRESS_NOT_ASSIGNED,
                format!("Service {name} has no cluster IP yet"),
            ),
        ),
    }
}

fn address(kind: &str, value: &str) -> GatewayAddress {
    GatewayAddress {
        kind: kind.to_owned(),
        value: value.to_owned(),
    }
}

/// The first 12 characters of a revision, for messages.
pub fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

/// The current time, to the second (what Kubernetes stores).
pub fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// Writes `status` unless the Gateway already has it; returns whether it wrote.
pub async fn write(
    client: &Client,
    gateway: &Gateway,
    status: &GatewayStatus,
) -> Result<bool, StatusError> {
    if gateway.status.as_ref() == Some(status) {
        return Ok(false);
    }
    let namespace = gateway.namespace().unwrap_or_default();
    let name = gateway.name_any();
    let api: Api<Gateway> = Api::namespaced(client.clone(), &namespace);
    let patch = json!({
        "apiVersion": portcullis_api::API_VERSION,
        "kind": "Gateway",
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| StatusError::Write {
        kind: "Gateway",
        object: format!("{namespace}/{name}"),
        source: Box::new(source),
    })?;
    Ok(true)
}

/// An Event worth publishing about a Gateway's replicas or the rules it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Warning or Normal.
    pub type_: EventType,
    /// `NoReadyReplicas`, `Degraded`, `Recovered`, `RulesNotServed` or `RulesServed`.
    pub reason: &'static str,
    /// For the user.
    pub note: String,
}

/// The Event a status change deserves, if any (pure). Warnings go out when a serving gateway
/// loses replicas (not while a new one comes up); `Recovered` only follows a warning
/// (`alerted`), so a first rollout publishes nothing.
pub fn transition(
    previous: &GatewayStatus,
    status: &GatewayStatus,
    alerted: bool,
) -> Option<Transition> {
    let was = |t| conditions::status_of(&previous.conditions, t);
    let is = |t| conditions::status_of(&status.conditions, t);
    let counts = status.ready.clone().unwrap_or_default();
    if is(conditions::READY) == Some(false) && was(conditions::READY) == Some(true) {
        return Some(Transition {
            type_: EventType::Warning,
            reason: reason::NO_READY_REPLICAS,
            note: format!("no gateway replica is ready ({counts}): the gateway serves nothing"),
        });
    }
    if is(conditions::DEGRADED) == Some(true)
        && was(conditions::DEGRADED) == Some(false)
        && was(conditions::READY) == Some(true)
    {
        return Some(Transition {
            type_: EventType::Warning,
            reason: "Degraded",
            note: format!(
                "only {counts} gateway replicas are ready: losing another may drop traffic"
            ),
        });
    }
    let recovered = is(conditions::READY) == Some(true) && is(conditions::DEGRADED) == Some(false);
    (recovered && alerted).then(|| Transition {
        type_: EventType::Normal,
        reason: "Recovered",
        note: format!("all {counts} gateway replicas are ready again"),
    })
}

/// The Event a change of the rules served deserves, if any (pure): a Warning when rules stop
/// being served or the list of those not served changes, a Normal event when every rule is
/// served again. Nothing while the list stays the same (a resync changes nothing).
pub fn rules_transition(previous: &GatewayStatus, status: &GatewayStatus) -> Option<Transition> {
    let programmed = |s: &GatewayStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == conditions::PROGRAMMED)
            .map(|c| (c.status == "True", c.reason.clone(), c.message.clone()))
    };
    let not_served = |p: &Option<(bool, String, String)>| {
        p.as_ref()
            .filter(|(_, why, _)| why == reason::RULES_NOT_SERVED)
            .map(|(_, _, message)| message.clone())
    };
    let (before, after) = (programmed(previous), programmed(status));
    match (not_served(&before), not_served(&after)) {
        (was, Some(message)) if was.as_ref() != Some(&message) => Some(Transition {
            type_: EventType::Warning,
            reason: reason::RULES_NOT_SERVED,
            note: message,
        }),
        // Served: live everywhere, or on its way there.
        (Some(_), None) if after.is_some_and(|(ok, why, _)| ok || why == reason::PENDING) => {
            Some(Transition {
                type_: EventType::Normal,
                reason: reason::RULES_SERVED,
                note: "every rule of the attached Routes is served".to_owned(),
            })
        }
        _ => None,
    }
}

/// The `Programmed` reasons that need the user (or tell them why a change is not served), and
/// so deserve a Warning Event when they appear or change.
const PROBLEMS: [&str; 3] = [
    reason::INVALID_CONFIG,
    reason::APPLY_FAILED,
    reason::REPLICAS_REJECTED,
];

/// The Warning a change of `Accepted` or `Programmed` deserves, if any (pure): when the Gateway
/// is no longer accepted, when its config cannot be compiled or applied, or when replicas
/// refuse it, and again when what is wrong changes. Nothing while it stays the same.
pub fn problem_transition(previous: &GatewayStatus, status: &GatewayStatus) -> Option<Transition> {
    let find = |s: &GatewayStatus, type_: &str| {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let news = |type_: &str| {
        let after = find(status, type_)?;
        (after.0 == "False" && find(previous, type_) != Some(after.clone())).then_some(after)
    };
    if let Some((_, _, message)) = news(conditions::ACCEPTED) {
        return Some(Transition {
            type_: EventType::Warning,
            reason: reason::INVALID,
            note: format!("the Gateway is not accepted: {message}"),
        });
    }
    let (_, why, message) = news(conditions::PROGRAMMED)?;
    let reason = PROBLEMS.into_iter().find(|r| *r == why)?;
    Some(Transition {
        type_: EventType::Warning,
        reason,
        note: message,
    })
}

/// An Event about one object.
pub fn event(type_: EventType, reason: &str, note: String) -> Event {
    Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: None,
    }
}
