//! What the Gateway and Route statuses say for what the stages saw.

use std::collections::BTreeSet;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStatus},
        core::v1::{LoadBalancerIngress, LoadBalancerStatus, Service, ServiceSpec, ServiceStatus},
    },
    jiff::Timestamp,
};
use kube::runtime::events::EventType;
use portcullis_api::{Gateway, Route, gateway::ConfigStatus};
use portcullis_config::{
    capability::{Gap, UnservedRule},
    diagnostics::{ConditionResult, RouteParentResult},
    replica::Report,
    snapshot::ObjectKey,
};
use serde_json::json;

use super::{
    replicas::Replica,
    rollout::{Revisions, Rollout},
    route_status::parents,
    status::{Facts, Programmed, gateway_status, problem_transition, rules_transition, transition},
};
use crate::conditions::status_of;

fn gateway() -> Gateway {
    serde_json::from_value(json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "Gateway",
        "metadata": { "name": "edge", "namespace": "shop", "generation": 4 },
        "spec": { "listeners": [{ "name": "http", "port": 80, "protocol": "HTTP" }] },
    }))
    .expect("a valid Gateway")
}

fn deployment(desired: i32, ready: i32) -> Deployment {
    Deployment {
        spec: Some(DeploymentSpec {
            replicas: Some(desired),
            ..DeploymentSpec::default()
        }),
        status: Some(DeploymentStatus {
            replicas: Some(desired),
            ready_replicas: Some(ready),
            updated_replicas: Some(desired),
            ..DeploymentStatus::default()
        }),
        ..Deployment::default()
    }
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).expect("a valid time")
}

fn status_for(
    gateway: &Gateway,
    deployment: &Deployment,
    service: Option<&Service>,
) -> portcullis_api::gateway::GatewayStatus {
    let missing = BTreeSet::new();
    let facts = Facts {
        compilation: None,
        programmed: Programmed::Yes,
        deployment: Some(deployment),
        service,
        missing_secrets: &missing,
        unserved: &[],
        config_bytes: None,
        replicas: &[],
    };
    gateway_status(gateway, &facts, at(1_000))
}

#[test]
fn ready_and_degraded_follow_the_ready_replicas() {
    let gateway = gateway();
    let cases = [
        (0, Some(false), Some(false), "0/2"),
        (1, Some(true), Some(true), "1/2"),
        (2, Some(true), Some(false), "2/2"),
    ];
    for (ready, is_ready, is_degraded, shown) in cases {
        let status = status_for(&gateway, &deployment(2, ready), None);
        assert_eq!(
            status_of(&status.conditions, "Ready"),
            is_ready,
            "{ready} ready"
        );
        assert_eq!(
            status_of(&status.conditions, "Degraded"),
            is_degraded,
            "{ready} ready"
        );
        assert_eq!(status.ready.as_deref(), Some(shown));
        assert_eq!(status.ready_replicas, ready);
        assert_eq!(status.observed_generation, Some(4));
    }
}

#[test]
fn a_condition_keeps_its_transition_time_until_it_flips() {
    let mut gateway = gateway();
    gateway.status = Some(status_for(&gateway, &deployment(2, 2), None));
    let later = {
        let missing = BTreeSet::new();
        let facts = Facts {
            compilation: None,
            programmed: Programmed::Yes,
            deployment: Some(&deployment(2, 1)),
            service: None,
            missing_secrets: &missing,
            unserved: &[],
            config_bytes: None,
            replicas: &[],
        };
        gateway_status(&gateway, &facts, at(2_000))
    };
    let time = |status: &portcullis_api::gateway::GatewayStatus, type_: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.last_transition_time.0)
    };
    // Ready stayed True; Degraded flipped.
    assert_eq!(time(&later, "Ready"), Some(at(1_000)));
    assert_eq!(time(&later, "Degraded"), Some(at(2_000)));
}

fn address_condition(status: &portcullis_api::gateway::GatewayStatus) -> (&str, &str) {
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "AddressAssigned")
        .expect("an AddressAssigned condition");
    (condition.status.as_str(), condition.reason.as_str())
}

#[test]
fn a_load_balancer_without_an_external_address_shows_none_and_says_it_is_pending() {
    let gateway = gateway();
    let mut service = Service {
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".to_owned()),
            cluster_ip: Some("10.0.0.7".to_owned()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let status = status_for(&gateway, &deployment(2, 2), Some(&service));
    // The cluster IP is not what a client outside the cluster can use.
    assert!(status.addresses.is_empty(), "{:?}", status.addresses);
    assert_eq!(address_condition(&status), ("False", "AddressNotAssigned"));
    service.status = Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(vec![LoadBalancerIngress {
                hostname: Some("lb.example.com".to_owned()),
                ..LoadBalancerIngress::default()
            }]),
        }),
        ..ServiceStatus::default()
    });
    let status = status_for(&gateway, &deployment(2, 2), Some(&service));
    assert_eq!(status.addresses.len(), 1);
    assert_eq!(
        (
            status.addresses[0].kind.as_str(),
            status.addresses[0].value.as_str()
        ),
        ("Hostname", "lb.example.com")
    );
    assert_eq!(address_condition(&status), ("True", "AddressAssigned"));
}

#[test]
fn a_cluster_ip_service_is_reached_at_its_cluster_ip() {
    let gateway = gateway();
    let service = Service {
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            cluster_ip: Some("10.0.0.7".to_owned()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let status = status_for(&gateway, &deployment(2, 2), Some(&service));
    assert_eq!(status.addresses[0].value, "10.0.0.7");
    assert_eq!(address_condition(&status), ("True", "AddressAssigned"));
}

#[test]
fn a_route_keeps_the_entries_other_gateways_wrote() {
    let route: Route = serde_json::from_value(json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "Route",
        "metadata": { "name": "orders", "namespace": "shop", "generation": 2 },
        "spec": {
            "parentRefs": [{ "name": "edge" }, { "name": "internal" }],
            "rules": [{ "backendRefs": [{ "name": "orders" }] }],
        },
        "status": { "parents": [
            { "parentRef": { "name": "internal" }, "conditions": [] },
            { "parentRef": { "name": "edge" }, "conditions": [] },
        ]},
    }))
    .expect("a valid Route");
    let result = RouteParentResult {
        route: ObjectKey::new("shop", "orders"),
        parent_ref_index: 0,
        parent_ref: route.spec.parent_refs[0].clone(),
        accepted: ConditionResult {
            status: true,
            reason: "Accepted",
            message: "Accepted".to_owned(),
        },
        resolved_refs: ConditionResult {
            status: false,
            reason: "BackendNotFound",
            message: "ServiceBackend \"orders\" not found".to_owned(),
        },
        listeners: vec!["http".to_owned()],
    };
    let written = parents(
        &route,
        &ObjectKey::new("shop", "edge"),
        &[&result],
        &[],
        &Rollout::unknown(),
        at(5),
    );
    assert_eq!(written.len(), 2);
    assert_eq!(
        written[0].parent_ref.name, "internal",
        "left as the other Gateway wrote it"
    );
    assert_eq!(written[1].parent_ref.name, "edge");
    assert_eq!(status_of(&written[1].conditions, "Accepted"), Some(true));
    assert_eq!(
        status_of(&written[1].conditions, "ResolvedRefs"),
        Some(false)
    );
    assert_eq!(written[1].conditions[1].reason, "BackendNotFound");
    assert_eq!(written[1].conditions[1].observed_generation, Some(2));
}

#[test]
fn events_go_out_when_a_serving_gateway_loses_replicas_and_when_it_recovers() {
    let gateway = gateway();
    let status = |ready| status_for(&gateway, &deployment(2, ready), None);
    let (none, one, two) = (status(0), status(1), status(2));
    let reason = |t: Option<super::status::Transition>| t.map(|t| t.reason);
    // A first rollout (0 → 1 → 2) publishes nothing.
    assert_eq!(reason(transition(&Default::default(), &none, false)), None);
    assert_eq!(reason(transition(&none, &one, false)), None);
    assert_eq!(reason(transition(&one, &two, false)), None);
    // A serving gateway losing a replica, then all of them, then coming back.
    assert_eq!(reason(transition(&two, &one, false)), Some("Degraded"));
    assert_eq!(
        reason(transition(&one, &none, true)),
        Some("NoReadyReplicas")
    );
    assert_eq!(reason(transition(&one, &two, true)), Some("Recovered"));
}

fn unserved_rule(route: &str, field: &str) -> UnservedRule {
    UnservedRule {
        route: ObjectKey::new("shop", route),
        rule_index: 0,
        name: None,
        gaps: vec![Gap::new(
            0,
            field,
            "UnsupportedValue",
            format!("{field} is not supported by this version of the gateway yet"),
        )],
    }
}

fn status_with_unserved(
    gateway: &Gateway,
    unserved: &[UnservedRule],
) -> portcullis_api::gateway::GatewayStatus {
    let missing = BTreeSet::new();
    let facts = Facts {
        compilation: None,
        programmed: Programmed::Yes,
        deployment: Some(&deployment(2, 2)),
        service: None,
        missing_secrets: &missing,
        unserved,
        config_bytes: None,
        replicas: &[],
    };
    gateway_status(gateway, &facts, at(1_000))
}

#[test]
fn programmed_is_false_naming_route_and_rule_while_rules_are_not_served() {
    let gateway = gateway();
    let status = status_with_unserved(&gateway, &[unserved_rule("orders", "rateLimit")]);
    let programmed = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Programmed")
        .expect("Programmed");
    assert_eq!(programmed.status, "False");
    assert_eq!(programmed.reason, "RulesNotServed");
    assert!(
        programmed
            .message
            .contains("Route shop/orders spec.rules[0].rateLimit: rateLimit is not supported"),
        "{}",
        programmed.message
    );
    // The listener itself is programmed: a rule is not a listener's.
    assert_eq!(
        status_of(&status.listeners[0].conditions, "Programmed"),
        Some(true)
    );
}

#[test]
fn the_rules_event_goes_out_once_per_change_and_when_all_are_served_again() {
    let gateway = gateway();
    let served = status_with_unserved(&gateway, &[]);
    let one = status_with_unserved(&gateway, &[unserved_rule("orders", "rateLimit")]);
    let two = status_with_unserved(
        &gateway,
        &[
            unserved_rule("orders", "rateLimit"),
            unserved_rule("users", "auth"),
        ],
    );
    let event = |before, after| rules_transition(before, after).map(|t| (t.type_, t.reason));
    assert_eq!(
        event(&served, &one),
        Some((EventType::Warning, "RulesNotServed"))
    );
    assert_eq!(event(&one, &one), None, "a resync changes nothing");
    assert_eq!(
        event(&one, &two),
        Some((EventType::Warning, "RulesNotServed"))
    );
    assert_eq!(
        event(&two, &served),
        Some((EventType::Normal, "RulesServed"))
    );
    assert_eq!(event(&served, &served), None);
}

fn replica(name: &str, report: Option<Report>) -> Replica {
    Replica {
        name: name.to_owned(),
        report,
    }
}

fn serving(revision: &str) -> Option<Report> {
    Some(Report::Served {
        revision: revision.to_owned(),
    })
}

/// The status of a Gateway whose stored revision is `current`, with these ready replicas.
fn status_with_replicas(replicas: &[Replica]) -> portcullis_api::gateway::GatewayStatus {
    let mut gateway = gateway();
    gateway.status = Some(portcullis_api::gateway::GatewayStatus {
        config: Some(ConfigStatus {
            revision: "current".to_owned(),
            size_bytes: 100,
            ..ConfigStatus::default()
        }),
        ..Default::default()
    });
    let missing = BTreeSet::new();
    let facts = Facts {
        compilation: None,
        programmed: Programmed::Yes,
        deployment: Some(&deployment(2, 2)),
        service: None,
        missing_secrets: &missing,
        unserved: &[],
        config_bytes: None,
        replicas,
    };
    gateway_status(&gateway, &facts, at(1_000))
}

fn programmed(status: &portcullis_api::gateway::GatewayStatus) -> (String, String, String) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Programmed")
        .expect("a Programmed condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[test]
fn programmed_is_true_only_when_every_ready_replica_serves_the_current_revision() {
    let status = status_with_replicas(&[
        replica("edge-a", serving("current")),
        replica("edge-b", serving("current")),
    ]);
    let (state, reason, message) = programmed(&status);
    assert_eq!((state.as_str(), reason.as_str()), ("True", "Programmed"));
    assert!(message.contains("2/2"), "{message}");
    let config = status.config.expect("config status");
    assert_eq!(
        (
            config.live_replicas,
            config.stale_replicas,
            config.rejected_replicas
        ),
        (2, 0, 0)
    );
    assert_eq!(config.live.as_deref(), Some("2/2"));
    assert_eq!(config.last_error, None);
}

#[test]
fn a_replica_still_on_an_older_revision_keeps_programmed_pending_and_is_named() {
    let status = status_with_replicas(&[
        replica("edge-a", serving("current")),
        replica("edge-b", serving("older")),
        replica("edge-c", None),
    ]);
    let (state, reason, message) = programmed(&status);
    assert_eq!((state.as_str(), reason.as_str()), ("False", "Pending"));
    assert!(
        message.contains("1 of 3") && message.contains("edge-b, edge-c"),
        "{message}"
    );
    let config = status.config.expect("config status");
    assert_eq!((config.live_replicas, config.stale_replicas), (1, 2));
    assert_eq!(config.live.as_deref(), Some("1/3"));
}

#[test]
fn no_ready_replica_is_not_programmed() {
    let (state, reason, _) = programmed(&status_with_replicas(&[]));
    assert_eq!((state.as_str(), reason.as_str()), ("False", "Pending"));
}

#[test]
fn a_refused_revision_names_the_replica_and_its_error() {
    let refused = Report::Refused {
        serving: Some("older".to_owned()),
        refused: "current".to_owned(),
        error: "unknown apiVersion".to_owned(),
    };
    let status = status_with_replicas(&[
        replica("edge-a", serving("current")),
        replica("edge-b", Some(refused)),
    ]);
    let (state, reason, message) = programmed(&status);
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("False", "ReplicasRejected")
    );
    assert!(
        message.contains("edge-b") && message.contains("unknown apiVersion"),
        "{message}"
    );
    let config = status.config.expect("config status");
    assert_eq!((config.live_replicas, config.rejected_replicas), (1, 1));
    assert_eq!(
        config.last_error.as_deref(),
        Some("replica edge-b: unknown apiVersion")
    );
}

#[test]
fn a_refused_revision_gets_one_warning_until_what_is_wrong_changes() {
    let live = status_with_replicas(&[replica("edge-a", serving("current"))]);
    let refusal = |error: &str| {
        Some(Report::Refused {
            serving: Some("older".to_owned()),
            refused: "current".to_owned(),
            error: error.to_owned(),
        })
    };
    let refused = status_with_replicas(&[replica("edge-a", refusal("unreadable"))]);
    let other = status_with_replicas(&[replica("edge-a", refusal("another reason"))]);
    let event = |before, after| problem_transition(before, after).map(|t| (t.type_, t.reason));
    assert_eq!(
        event(&live, &refused),
        Some((EventType::Warning, "ReplicasRejected"))
    );
    assert_eq!(event(&refused, &refused), None, "a resync says nothing new");
    assert_eq!(
        event(&refused, &other),
        Some((EventType::Warning, "ReplicasRejected"))
    );
    assert_eq!(event(&refused, &live), None);
    let pending = status_with_replicas(&[replica("edge-a", serving("older"))]);
    assert_eq!(
        event(&live, &pending),
        None,
        "a replica loading is no problem"
    );
}

#[test]
fn a_route_says_programmed_once_every_replica_serves_its_generation() {
    let route: Route = serde_json::from_value(json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "Route",
        "metadata": { "name": "orders", "namespace": "shop", "generation": 2 },
        "spec": {
            "parentRefs": [{ "name": "edge" }],
            "rules": [{ "backendRefs": [{ "name": "orders" }] }],
        },
    }))
    .expect("a valid Route");
    let ok = |reason: &'static str| ConditionResult {
        status: true,
        reason,
        message: reason.to_owned(),
    };
    let result = RouteParentResult {
        route: ObjectKey::new("shop", "orders"),
        parent_ref_index: 0,
        parent_ref: route.spec.parent_refs[0].clone(),
        accepted: ok("Accepted"),
        resolved_refs: ok("ResolvedRefs"),
        listeners: vec!["http".to_owned()],
    };
    let gateway = ObjectKey::new("shop", "edge");
    let revisions = Revisions::default();
    revisions.record(&gateway, "r1", [(ObjectKey::new("shop", "orders"), 1)]);
    revisions.record(&gateway, "r2", [(ObjectKey::new("shop", "orders"), 2)]);
    let programmed_with = |route: &Route, revisions_served: &[&str]| {
        let replicas: Vec<Replica> = revisions_served
            .iter()
            .map(|revision| replica("edge-x", serving(revision)))
            .collect();
        let rollout = revisions.rollout(&gateway, &replicas);
        let written = parents(route, &gateway, &[&result], &[], &rollout, at(5));
        written[0]
            .conditions
            .iter()
            .find(|c| c.type_ == "Programmed")
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    assert_eq!(
        programmed_with(&route, &["r2", "r1"]),
        Some(("False".to_owned(), "Pending".to_owned())),
        "a replica still serves generation 1"
    );
    assert_eq!(
        programmed_with(&route, &["r2", "r2"]),
        Some(("True".to_owned(), "Programmed".to_owned()))
    );
    // A replica whose revision the operator does not know: what the Route said stands.
    let mut said = route.clone();
    said.status = Some(portcullis_api::route::RouteStatus {
        parents: parents(
            &route,
            &gateway,
            &[&result],
            &[],
            &revisions.rollout(&gateway, &[replica("edge-a", serving("r2"))]),
            at(5),
        ),
    });
    assert_eq!(
        programmed_with(&said, &["r2", "unknown"]),
        Some(("True".to_owned(), "Programmed".to_owned()))
    );
}
