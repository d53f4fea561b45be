//! The Kubernetes objects that make up one gateway: pure functions from a Gateway and its
//! compiled snapshot to the objects the operator applies (and `portcullis render` prints).
//!
//! Nothing here does I/O, and nothing in the pod template depends on the snapshot's revision or
//! content beyond *which* Secrets it mounts: a Route edit changes the ConfigMap, never the
//! Deployment, so config changes never restart pods (the proxy follows its ConfigMap through
//! the API).

mod config_map;
mod pod;
mod rbac;
pub mod secrets;
mod workload;

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{ConfigMap, Secret, Service, ServiceAccount},
        policy::v1::PodDisruptionBudget,
        rbac::v1::{Role, RoleBinding},
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{Resource, ResourceExt};
use portcullis_api::Gateway;
use portcullis_config::snapshot::{ObjectKey, Snapshot};
use serde::Serialize;

pub use self::{
    config_map::MAX_CONFIG_BYTES,
    pod::{ADMIN_PORT, CONFIG_DIR},
};
use crate::meta;

/// Settings of the operator that shape every gateway it builds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// The image of the gateway pods (the `portcullis` binary, run as `portcullis proxy`).
    pub proxy_image: String,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            proxy_image: default_proxy_image(),
        }
    }
}

/// The released image of this version: `ghcr.io/portcullis-dev/portcullis:<version>`.
pub fn default_proxy_image() -> String {
    format!(
        "ghcr.io/portcullis-dev/portcullis:{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Every object of one gateway, one field per kind.
///
/// Code that handles children destructures this without `..`, so adding a kind here fails to
/// compile until apply, cleanup and render handle it too.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    /// `<gateway>-config`: the snapshot the replicas serve.
    pub config_map: ConfigMap,
    /// The proxy's identity.
    pub service_account: ServiceAccount,
    /// Read access to the ConfigMap (in the Gateway's namespace) and to EndpointSlices (in every
    /// namespace with a `service` backend).
    pub roles: Vec<Role>,
    /// Binds each Role to the ServiceAccount.
    pub role_bindings: Vec<RoleBinding>,
    /// Owned copies of Secrets referenced from other namespaces.
    pub secrets: Vec<Secret>,
    /// The gateway replicas.
    pub deployment: Deployment,
    /// Where clients reach the replicas.
    pub service: Service,
    /// Limits voluntary disruptions of the replicas.
    pub pod_disruption_budget: PodDisruptionBudget,
    /// Scales the replicas, when the Gateway asks for autoscaling.
    pub horizontal_pod_autoscaler: Option<HorizontalPodAutoscaler>,
}

impl Children {
    /// Every object as JSON, in the order the operator applies them (what a pod needs exists
    /// before the Deployment), with `apiVersion` and `kind` filled in: the documents of
    /// `portcullis render`.
    pub fn to_values(&self) -> Result<Vec<serde_json::Value>, BuildError> {
        let Children {
            config_map,
            service_account,
            roles,
            role_bindings,
            secrets,
            deployment,
            service,
            pod_disruption_budget,
            horizontal_pod_autoscaler,
        } = self;
        let mut values = vec![to_value(service_account)?];
        for role in roles {
            values.push(to_value(role)?);
        }
        for binding in role_bindings {
            values.push(to_value(binding)?);
        }
        for secret in secrets {
            values.push(to_value(secret)?);
        }
        values.push(to_value(config_map)?);
        values.push(to_value(deployment)?);
        values.push(to_value(service)?);
        values.push(to_value(pod_disruption_budget)?);
        if let Some(autoscaler) = horizontal_pod_autoscaler {
            values.push(to_value(autoscaler)?);
        }
        Ok(values)
    }
}

/// An object as JSON with its `apiVersion` and `kind`.
pub fn to_value<K>(object: &K) -> Result<serde_json::Value, BuildError>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let mut value = serde_json::to_value(object).map_err(|e| BuildError::Serialize {
        kind: K::kind(&()).into_owned(),
        message: e.to_string(),
    })?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".to_owned(), K::api_version(&()).into());
        map.insert("kind".to_owned(), K::kind(&()).into());
    }
    Ok(value)
}

/// Why the children of a Gateway could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    /// The Gateway has no namespace (it did not come from the API server or a namespaced
    /// manifest).
    #[error("Gateway {0:?} has no namespace")]
    NoNamespace(String),
    /// The snapshot does not fit in a ConfigMap.
    #[error(
        "the compiled config of Gateway {gateway} is {size} bytes, above the {MAX_CONFIG_BYTES} \
         bytes a ConfigMap can hold: split its Routes over several Gateways"
    )]
    ConfigTooLarge {
        /// `namespace/name` of the Gateway.
        gateway: String,
        /// Size of the serialized snapshot.
        size: usize,
    },
    /// The stored snapshot would not load in the proxy (it does not read back from the
    /// ConfigMap as written): it is not applied, the replicas keep serving the previous one. A
    /// bug in the compiler or the snapshot format; the message says which.
    #[error("the compiled snapshot would not load in the proxy: {0}")]
    Unloadable(String),
    /// An object could not be serialized (a bug).
    #[error("cannot serialize the {kind}: {message}")]
    Serialize {
        /// The kind of object.
        kind: String,
        /// The serializer's message.
        message: String,
    },
}

/// The Gateway as the owner of its children: their namespace, common labels and owner
/// reference.
pub(crate) struct Owner<'a> {
    /// The Gateway's name.
    pub name: &'a str,
    /// The Gateway's namespace: where the children live.
    pub namespace: &'a str,
    /// The controller owner reference; absent for a Gateway read from a file (no uid), as in
    /// `portcullis render`.
    pub reference: Option<OwnerReference>,
}

impl Owner<'_> {
    /// Metadata of a child named `name` in the Gateway's namespace.
    pub fn metadata(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.to_owned()),
            labels: Some(meta::child_labels(self.name)),
            owner_references: self.reference.clone().map(|r| vec![r]),
            ..ObjectMeta::default()
        }
    }
}

/// Builds every child of `gateway` for `snapshot`.
///
/// `secret_sources` holds the Secrets of other namespaces that the snapshot references, so that
/// they can be copied into the Gateway's namespace; one that is missing gets no copy (the
/// operator reports it). Secrets in the Gateway's namespace are mounted directly and need not
/// be given.
pub fn build_children(
    gateway: &Gateway,
    snapshot: &Snapshot,
    secret_sources: &BTreeMap<ObjectKey, Secret>,
    options: &BuildOptions,
) -> Result<Children, BuildError> {
    let name = gateway.name_any();
    let namespace = gateway
        .namespace()
        .ok_or_else(|| BuildError::NoNamespace(name.clone()))?;
    let owner = Owner {
        name: &name,
        namespace: &namespace,
        reference: gateway.controller_owner_ref(&()),
    };
    let referenced = secrets::secret_refs(snapshot, &namespace).mounted;
    let mounts = secrets::mounts(&namespace, &name, &referenced);
    let (roles, role_bindings) = rbac::roles(&owner, snapshot);
    Ok(Children {
        config_map: config_map::build(&owner, snapshot)?,
        service_account: rbac::service_account(&owner),
        roles,
        role_bindings,
        secrets: secrets::copies(&owner, &referenced, secret_sources),
        deployment: workload::deployment(&owner, gateway, snapshot, &mounts, options),
        service: workload::service(&owner, gateway),
        pod_disruption_budget: workload::pod_disruption_budget(&owner, gateway),
        horizontal_pod_autoscaler: workload::horizontal_pod_autoscaler(&owner, gateway),
    })
}

#[cfg(test)]
mod tests;
