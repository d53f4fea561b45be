//! Status conditions: the types and reasons the operator writes (Gateway API vocabulary where
//! the concept exists), constructors for them, and the merge that keeps `lastTransitionTime`
//! unless a condition's status actually flips.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

/// Condition type: the Gateway (or a Route on one parent, or a ServiceBackend) is valid and
/// taken into account.
pub const ACCEPTED: &str = "Accepted";
/// Condition type: the Gateway's config and children are applied.
pub const PROGRAMMED: &str = "Programmed";
/// Condition type: at least one gateway replica serves.
pub const READY: &str = "Ready";
/// Condition type: fewer replicas serve than desired.
pub const DEGRADED: &str = "Degraded";
/// Condition type: every reference resolved.
pub const RESOLVED_REFS: &str = "ResolvedRefs";
/// Condition type, on a Route's parent: some of its rules are not served (they answer 503),
/// the others are. Gateway API's type for "a combination of valid and invalid rules" (v1.1+),
/// written only while it is True, as Gateway API implementations do. Accepted stays True: the
/// Route is attached, and its unserved rules still take their requests (answering 503) so
/// that those never fall through to a less specific rule without the protection they ask for.
pub const PARTIALLY_INVALID: &str = "PartiallyInvalid";
/// Condition type: `status.addresses` holds an address clients can use. False while a
/// `LoadBalancer` Service waits for its external address (the addresses are then empty: the
/// cluster IP is not what a client outside the cluster can use). Kept apart from `Programmed`,
/// which says whether the replicas serve the config.
pub const ADDRESS_ASSIGNED: &str = "AddressAssigned";

/// Reasons the operator writes, besides those of the config compiler
/// ([`portcullis_config::diagnostics::reason`]), which Route conditions carry as they are.
pub mod reason {
    /// Accepted=True.
    pub const ACCEPTED: &str = "Accepted";
    /// Accepted=False: the spec has errors the operator cannot serve around.
    pub const INVALID: &str = "Invalid";
    /// Programmed=True: the snapshot and every child are applied, and every ready replica
    /// reports serving the snapshot's revision.
    pub const PROGRAMMED: &str = "Programmed";
    /// Programmed=False: the compiled config does not fit in a ConfigMap, or cannot be built.
    pub const INVALID_CONFIG: &str = "InvalidConfig";
    /// Programmed=False: a child could not be applied (see the message and the Events).
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// Programmed=False: the config is applied, but rules of attached Routes answer 503
    /// because this build cannot serve them (the message names each Route, rule and reason).
    /// Gateway API has no reason for it (its `Invalid` would say the Gateway itself is wrong),
    /// so the operator names it.
    pub const RULES_NOT_SERVED: &str = "RulesNotServed";
    /// `Programmed` False: the current revision is applied but not yet live on every ready
    /// replica (Gateway API's reason for a Gateway not programmed yet).
    pub const PENDING: &str = "Pending";
    /// `Programmed` False: a replica refused the current revision and serves its previous one.
    pub const REPLICAS_REJECTED: &str = "ReplicasRejected";
    /// Event: every rule is served again after some were not.
    pub const RULES_SERVED: &str = "RulesServed";
    /// AddressAssigned=True: the Service has the address in `status.addresses`.
    pub const ADDRESS_ASSIGNED: &str = "AddressAssigned";
    /// AddressAssigned=False: the Service does not exist yet, or its load balancer has no
    /// external address yet (Gateway API's reason for a Gateway without an address).
    pub const ADDRESS_NOT_ASSIGNED: &str = "AddressNotAssigned";
    /// Ready=True: at least one replica serves.
    pub const REPLICAS_READY: &str = "ReplicasReady";
    /// Ready=False: no replica serves.
    pub const NO_READY_REPLICAS: &str = "NoReadyReplicas";
    /// Degraded=True: some, not all, desired replicas serve.
    pub const REPLICAS_UNAVAILABLE: &str = "ReplicasUnavailable";
    /// Degraded=False: every desired replica serves (or none is desired).
    pub const ALL_REPLICAS_READY: &str = "AllReplicasReady";
    /// ResolvedRefs=True.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// ResolvedRefs=False: a Secret of another namespace referenced by the Gateway itself (the
    /// operator only copies Secrets that a Route or ServiceBackend of the same namespace names).
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    /// ResolvedRefs=False: a referenced Secret does not exist.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// ResolvedRefs=False on a ServiceBackend: its Kubernetes Service does not exist.
    pub const SERVICE_NOT_FOUND: &str = "ServiceNotFound";
    /// ResolvedRefs=False on a ServiceBackend: a failover target does not exist.
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
}

/// A condition as the operator means it; [`merge`] turns it into a Kubernetes `Condition`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The condition type, e.g. [`READY`].
    pub type_: &'static str,
    /// True or False.
    pub status: bool,
    /// A CamelCase reason.
    pub reason: String,
    /// For the user: what is the case and, when it is bad, what to do.
    pub message: String,
}

impl Observed {
    /// A condition that holds.
    pub fn yes(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: true,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn no(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: false,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// `status` as Kubernetes writes it.
fn status_string(status: bool) -> String {
    if status { "True" } else { "False" }.to_owned()
}

/// The conditions to write: `observed` in order, each keeping the `lastTransitionTime` of the
/// previous condition of its type when the status did not change (`now` otherwise).
pub fn merge(
    previous: &[Condition],
    observed: Vec<Observed>,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    observed
        .into_iter()
        .map(|condition| {
            let status = status_string(condition.status);
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == condition.type_ && p.status == status)
                .map_or(Time(now), |p| p.last_transition_time.clone());
            Condition {
                type_: condition.type_.to_owned(),
                status,
                reason: condition.reason,
                message: condition.message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// The status of condition `type_`, if present: `Some(true)` for `True`.
pub fn status_of(conditions: &[Condition], type_: &str) -> Option<bool> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).expect("a valid timestamp")
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_flips() {
        let first = merge(
            &[],
            vec![Observed::yes(READY, reason::REPLICAS_READY, "2/2")],
            Some(1),
            at(100),
        );
        assert_eq!(first[0].last_transition_time, Time(at(100)));

        // Same status, another message and generation: the time stays.
        let same = merge(
            &first,
            vec![Observed::yes(READY, reason::REPLICAS_READY, "1/2")],
            Some(2),
            at(200),
        );
        assert_eq!(same[0].last_transition_time, Time(at(100)));
        assert_eq!(same[0].message, "1/2");
        assert_eq!(same[0].observed_generation, Some(2));

        let flipped = merge(
            &same,
            vec![Observed::no(READY, reason::NO_READY_REPLICAS, "0/2")],
            Some(2),
            at(300),
        );
        assert_eq!(flipped[0].last_transition_time, Time(at(300)));
        assert_eq!(flipped[0].status, "False");
        assert_eq!(status_of(&flipped, READY), Some(false));
        assert_eq!(status_of(&flipped, DEGRADED), None);
    }
}
