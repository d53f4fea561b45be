//! Stage 4, apply: server-side apply of every child with the one field manager `portcullis`,
//! skipping each child that is already converged (see [`super::converged`]), then deleting the
//! children no longer wanted.

use std::{collections::BTreeSet, fmt::Debug};

use k8s_openapi::{NamespaceResourceScope, api::apps::v1::Deployment};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::reflector::{ObjectRef, Store},
};
use portcullis_api::Gateway;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tracing::{debug, info};

use super::{cleanup, converged};
use crate::{
    children::{BuildError, Children, to_value},
    meta::{self, FIELD_MANAGER},
    stores::ChildStores,
};

/// The manager that holds a Deployment's `spec.replicas` for the HPA while it takes over: the
/// ownership transfer Kubernetes documents for handing a field to an autoscaler. Without it,
/// the operator dropping `replicas` from its apply would make the API server reset the field to
/// 1 replica.
pub const HANDOVER_MANAGER: &str = "portcullis-autoscaler-handover";

/// Why the apply stage failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A child could not be serialized.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The API server refused a write.
    #[error("cannot apply {kind} {namespace}/{name}: {source}")]
    Write {
        /// Kind of the child.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// The API server refused to delete a child no longer wanted.
    #[error("cannot delete {kind} {namespace}/{name}: {source}")]
    Delete {
        /// Kind of the child.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// The Gateway's finalizer could not be added or removed.
    #[error("cannot update the finalizers of the Gateway: {0}")]
    Finalizer(Box<kube::Error>),
    /// An object with the child's name exists and is controlled by something else.
    #[error(
        "{kind} {namespace}/{name} exists and is controlled by {owner}, not this Gateway: \
         rename or delete it"
    )]
    NotOurs {
        /// Kind of the object.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its controller, as `Kind/name`.
        owner: String,
    },
    /// An object with the child's name exists and was not made by Portcullis.
    #[error(
        "{kind} {namespace}/{name} exists and was not created by Portcullis (it lacks the label \
         {label}={value}): it is left alone and the Gateway is not served from it; rename or \
         delete it, or add the label to hand it over"
    )]
    NotCreated {
        /// Kind of the object.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The label that marks the operator's objects.
        label: &'static str,
        /// Its value.
        value: &'static str,
    },
    /// Whether an object with the child's name already exists could not be read.
    #[error("cannot read {kind} {namespace}/{name}: {source}")]
    Read {
        /// Kind of the child.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        source: Box<kube::Error>,
    },
}

/// The live state of the children that status is computed from.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// The Deployment as last seen (after the write, when one was made).
    pub deployment: Option<Deployment>,
    /// The Service as last seen.
    pub service: Option<k8s_openapi::api::core::v1::Service>,
    /// Writes made (0 when everything was converged).
    pub writes: usize,
}

/// Applies `children`, then deletes the Gateway's children that are no longer among them.
pub async fn apply(
    client: &Client,
    stores: &ChildStores,
    gateway: &Gateway,
    children: Children,
) -> Result<Applied, ApplyError> {
    // Without `..`: a new kind of child fails to compile here until it is applied.
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
    } = children;
    let mut writer = Writer {
        client,
        gateway,
        writes: 0,
    };
    let wanted = Wanted::of(
        &roles,
        &role_bindings,
        &secrets,
        horizontal_pod_autoscaler.is_some(),
    );

    // What the pods mount and the identity they run as exist before the Deployment does.
    writer
        .apply(&stores.service_accounts, service_account)
        .await?;
    for role in roles {
        writer.apply(&stores.roles, role).await?;
    }
    for binding in role_bindings {
        writer.apply(&stores.role_bindings, binding).await?;
    }
    for secret in secrets {
        writer.apply(&stores.secrets, secret).await?;
    }
    writer.apply(&stores.config_maps, config_map).await?;
    let deployment = writer
        .apply_deployment(&stores.deployments, deployment)
        .await?;
    let service = writer.apply(&stores.services, service).await?;
    writer
        .apply(&stores.pod_disruption_budgets, pod_disruption_budget)
        .await?;
    if let Some(autoscaler) = horizontal_pod_autoscaler {
        writer
            .apply(&stores.horizontal_pod_autoscalers, autoscaler)
            .await?;
    }
    let deleted = cleanup::delete_unwanted(client, stores, gateway, &wanted).await?;
    Ok(Applied {
        deployment: Some(deployment),
        service: Some(service),
        writes: writer.writes + deleted,
    })
}

/// The names of the children wanted, per kind that can have zero or several.
#[derive(Debug, Default)]
pub struct Wanted {
    /// Roles as `namespace/name`.
    pub roles: BTreeSet<String>,
    /// RoleBindings as `namespace/name`.
    pub role_bindings: BTreeSet<String>,
    /// Copied Secrets as `namespace/name`.
    pub secrets: BTreeSet<String>,
    /// Whether the HPA is wanted.
    pub autoscaler: bool,
}

impl Wanted {
    fn of<R: Resource, B: Resource, S: Resource>(
        roles: &[R],
        bindings: &[B],
        secrets: &[S],
        autoscaler: bool,
    ) -> Self {
        fn keys<K: Resource>(objects: &[K]) -> BTreeSet<String> {
            objects.iter().map(cleanup::full_name).collect()
        }
        Self {
            roles: keys(roles),
            role_bindings: keys(bindings),
            secrets: keys(secrets),
            autoscaler,
        }
    }
}

/// Applies children one by one, counting writes.
struct Writer<'a> {
    client: &'a Client,
    gateway: &'a Gateway,
    writes: usize,
}

impl Writer<'_> {
    /// Applies `desired` unless the live object in `store` is already converged to it; returns
    /// the object as it now is.
    async fn apply<K>(&mut self, store: &Store<K>, desired: K) -> Result<K, ApplyError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Serialize
            + DeserializeOwned
            + Clone
            + Debug,
    {
        let mut body = to_value(&desired)?;
        converged::stamp(&mut body);
        let namespace = desired.namespace().unwrap_or_default();
        let name = desired.name_any();
        let live = store.get(&ObjectRef::new(&name).within(&namespace));
        match &live {
            Some(live) => {
                self.check_ours(&**live)?;
                let live_value = serde_json::to_value(&**live).unwrap_or(Value::Null);
                if converged::is_converged(&live_value, &body) {
                    return Ok((**live).clone());
                }
            }
            None => self.check_absent::<K>(&namespace, &name).await?,
        }
        self.write(&namespace, &name, &body, FIELD_MANAGER).await
    }

    /// Before creating a child the store does not hold (it holds every object the operator
    /// labels): refuses to take over an object of that name someone else made. A forced
    /// server-side apply would otherwise silently make it the Gateway's.
    async fn check_absent<K>(&self, namespace: &str, name: &str) -> Result<(), ApplyError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + DeserializeOwned
            + Clone
            + Debug,
    {
        let kind = || K::kind(&()).into_owned();
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let existing = api
            .get_metadata_opt(name)
            .await
            .map_err(|source| ApplyError::Read {
                kind: kind(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source: Box::new(source),
            })?;
        match existing {
            Some(object)
                if object
                    .labels()
                    .get(meta::MANAGED_BY_LABEL)
                    .map(String::as_str)
                    != Some(meta::MANAGED_BY) =>
            {
                Err(ApplyError::NotCreated {
                    kind: kind(),
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    label: meta::MANAGED_BY_LABEL,
                    value: meta::MANAGED_BY,
                })
            }
            _ => Ok(()),
        }
    }

    /// Applies the Deployment. With autoscaling, `spec.replicas` is handed to the HPA: a new
    /// Deployment starts at the HPA's minimum, and a Deployment whose replicas the operator
    /// set so far gets them held by [`HANDOVER_MANAGER`] at their current value before the
    /// operator stops setting them, so the count never drops on the way.
    async fn apply_deployment(
        &mut self,
        store: &Store<Deployment>,
        mut desired: Deployment,
    ) -> Result<Deployment, ApplyError> {
        let autoscaling = self.gateway.spec.autoscaling.as_ref();
        let namespace = desired.namespace().unwrap_or_default();
        let name = desired.name_any();
        let live = store.get(&ObjectRef::new(&name).within(&namespace));
        if let Some(autoscaling) = autoscaling {
            let replicas = match &live {
                None => Some(autoscaling.min_replicas),
                Some(live) if applies_replicas(live) => {
                    live.spec.as_ref().and_then(|spec| spec.replicas)
                }
                Some(_) => None,
            };
            if let Some(replicas) = replicas {
                if live.is_none() {
                    // Create with a sensible count, then hand it over right away.
                    if let Some(spec) = desired.spec.as_mut() {
                        spec.replicas = Some(replicas);
                    }
                    self.apply(store, desired.clone()).await?;
                    if let Some(spec) = desired.spec.as_mut() {
                        spec.replicas = None;
                    }
                }
                info!(%namespace, %name, replicas, "handing spec.replicas over to the HPA");
                let handover = json!({
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": { "name": name, "namespace": namespace },
                    "spec": { "replicas": replicas },
                });
                self.write::<Deployment>(&namespace, &name, &handover, HANDOVER_MANAGER)
                    .await?;
                let mut body = to_value(&desired)?;
                converged::stamp(&mut body);
                return self.write(&namespace, &name, &body, FIELD_MANAGER).await;
            }
        }
        self.apply(store, desired).await
    }

    async fn write<K>(
        &mut self,
        namespace: &str,
        name: &str,
        body: &Value,
        manager: &str,
    ) -> Result<K, ApplyError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Serialize
            + DeserializeOwned
            + Clone
            + Debug,
    {
        let kind = K::kind(&()).into_owned();
        debug!(%kind, %namespace, %name, "applying");
        self.writes += 1;
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        api.patch(
            name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(body),
        )
        .await
        .map_err(|source| ApplyError::Write {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source: Box::new(source),
        })
    }

    /// Refuses to take over an object another controller controls.
    fn check_ours<K: Resource<DynamicType = ()>>(&self, live: &K) -> Result<(), ApplyError> {
        let uid = self.gateway.uid();
        let foreign = live
            .owner_references()
            .iter()
            .find(|owner| owner.controller == Some(true) && Some(&owner.uid) != uid.as_ref());
        match foreign {
            Some(owner) => Err(ApplyError::NotOurs {
                kind: K::kind(&()).into_owned(),
                namespace: live.namespace().unwrap_or_default(),
                name: live.name_any(),
                owner: format!("{}/{}", owner.kind, owner.name),
            }),
            None => Ok(()),
        }
    }
}

/// Whether the operator's own apply currently sets the Deployment's `spec.replicas`.
fn applies_replicas(deployment: &Deployment) -> bool {
    deployment.managed_fields().iter().any(|entry| {
        entry.manager.as_deref() == Some(FIELD_MANAGER)
            && entry.operation.as_deref() == Some("Apply")
            && entry
                .fields_v1
                .as_ref()
                .is_some_and(|fields| fields.0["f:spec"]["f:replicas"].is_object())
    })
}

/// Labels identifying children of `gateway` outside its namespace.
pub fn foreign_selector(gateway: &Gateway) -> String {
    format!(
        "{},{}={},{}={}",
        meta::managed_selector(),
        meta::GATEWAY_LABEL,
        meta::label_value(&gateway.name_any()),
        meta::GATEWAY_NAMESPACE_LABEL,
        gateway.namespace().unwrap_or_default()
    )
}
