//! The gateway pods' identity and the least they may do: read their own ConfigMap and the
//! EndpointSlices of the namespaces where their `service` backends live, and report the config
//! revision they serve as a condition on their own Pod (`patch` on `pods/status` only — see
//! `portcullis_config::replica` for why that grant and not another).
//!
//! A Role in another namespace cannot be owned by the Gateway (owner references never cross
//! namespaces), so those carry the Gateway's name and namespace as labels and the operator
//! deletes them itself when they are no longer wanted or the Gateway goes away.

use std::collections::BTreeSet;

use k8s_openapi::api::{
    core::v1::ServiceAccount,
    rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
};
use portcullis_config::snapshot::{Discovery, Snapshot};

use super::Owner;
use crate::meta;

/// The ServiceAccount the gateway pods run as.
pub(super) fn service_account(owner: &Owner<'_>) -> ServiceAccount {
    ServiceAccount {
        metadata: owner.metadata(meta::workload_name(owner.name)),
        ..ServiceAccount::default()
    }
}

/// The namespaces whose EndpointSlices the gateway reads, sorted.
pub fn endpoint_namespaces(snapshot: &Snapshot) -> BTreeSet<String> {
    snapshot
        .backends
        .values()
        .filter_map(|backend| match &backend.discovery {
            Discovery::Service { namespace, .. } => Some(namespace.clone()),
            Discovery::Static { .. } => None,
        })
        .collect()
}

/// The Roles and RoleBindings: the Gateway's namespace first, then every other namespace with
/// a `service` backend, sorted.
pub(super) fn roles(owner: &Owner<'_>, snapshot: &Snapshot) -> (Vec<Role>, Vec<RoleBinding>) {
    let namespaces = endpoint_namespaces(snapshot);
    let mut local_rules = vec![PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["configmaps".to_owned()]),
        resource_names: Some(vec![meta::config_map_name(owner.name)]),
        verbs: read_verbs(),
        ..PolicyRule::default()
    }];
    local_rules.push(report_rule());
    if namespaces.contains(owner.namespace) {
        local_rules.extend(discovery_rules());
    }
    let local_name = meta::local_role_name(owner.name);
    let mut roles = vec![Role {
        metadata: owner.metadata(local_name.clone()),
        rules: Some(local_rules),
    }];
    let mut bindings = vec![RoleBinding {
        metadata: owner.metadata(local_name.clone()),
        role_ref: role_ref(local_name),
        subjects: Some(vec![subject(owner)]),
    }];
    for namespace in namespaces.iter().filter(|ns| *ns != owner.namespace) {
        let name = meta::foreign_role_name(owner.namespace, owner.name);
        let mut metadata = owner.metadata(name.clone());
        metadata.namespace = Some(namespace.clone());
        metadata.owner_references = None;
        metadata.labels.get_or_insert_default().insert(
            meta::GATEWAY_NAMESPACE_LABEL.to_owned(),
            owner.namespace.to_owned(),
        );
        metadata.annotations = Some(std::collections::BTreeMap::from([(
            meta::OWNER_ANNOTATION.to_owned(),
            format!("{}/{}", owner.namespace, owner.name),
        )]));
        roles.push(Role {
            metadata: metadata.clone(),
            rules: Some(discovery_rules().to_vec()),
        });
        bindings.push(RoleBinding {
            metadata,
            role_ref: role_ref(name),
            subjects: Some(vec![subject(owner)]),
        });
    }
    (roles, bindings)
}

/// Reporting the served revision on the replica's own Pod. RBAC cannot name the Pod (its name
/// is made by the ReplicaSet), so the grant is the status subresource of the namespace's Pods,
/// which cannot change their labels, annotations or spec.
fn report_rule() -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["pods/status".to_owned()]),
        verbs: vec!["patch".to_owned()],
        ..PolicyRule::default()
    }
}

fn read_verbs() -> Vec<String> {
    ["get", "list", "watch"].map(str::to_owned).to_vec()
}

/// What the proxy reads to find a `service` backend's endpoints: the EndpointSlices, and the
/// Service itself to map its port number to the slices' port name.
fn discovery_rules() -> [PolicyRule; 2] {
    [
        PolicyRule {
            api_groups: Some(vec!["discovery.k8s.io".to_owned()]),
            resources: Some(vec!["endpointslices".to_owned()]),
            verbs: read_verbs(),
            ..PolicyRule::default()
        },
        PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["services".to_owned()]),
            verbs: vec!["get".to_owned()],
            ..PolicyRule::default()
        },
    ]
}

fn role_ref(name: String) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".to_owned(),
        kind: "Role".to_owned(),
        name,
    }
}

fn subject(owner: &Owner<'_>) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: meta::workload_name(owner.name),
        namespace: Some(owner.namespace.to_owned()),
        api_group: None,
    }
}
