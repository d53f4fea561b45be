//! Children no longer wanted, and the Roles in other namespaces that owner references cannot
//! cover.
//!
//! Children in the Gateway's namespace carry its owner reference, so the garbage collector
//! removes them with the Gateway; one no longer wanted while the Gateway lives (the HPA once
//! autoscaling is off, the copy of a Secret no Route reads any more) is deleted here, found by
//! label and owner UID. The RBAC in backend namespaces cannot be owned across namespaces: while
//! a Gateway has any, it carries the [`FINALIZER`], and on deletion the operator removes them
//! before letting the Gateway go.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
    runtime::reflector::Store,
};
use portcullis_api::Gateway;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::info;

use super::apply::{ApplyError, Wanted};
use crate::{meta, stores::ChildStores};

/// The finalizer a Gateway carries while it has RBAC in other namespaces.
pub const FINALIZER: &str = "portcullis.dev/foreign-rbac";

/// Whether `object` is a child of `gateway`: owned by its UID, or (outside its namespace)
/// labelled with its name and namespace.
fn belongs_to<K: Resource>(object: &K, gateway: &Gateway) -> bool {
    let uid = gateway.uid();
    let owned = object
        .owner_references()
        .iter()
        .any(|owner| Some(&owner.uid) == uid.as_ref());
    owned || is_foreign_child(object, gateway)
}

fn is_foreign_child<K: Resource>(object: &K, gateway: &Gateway) -> bool {
    let labels = object.labels();
    labels.get(meta::GATEWAY_LABEL) == Some(&meta::label_value(&gateway.name_any()))
        && labels.get(meta::GATEWAY_NAMESPACE_LABEL) == gateway.namespace().as_ref()
}

/// Deletes the children of `gateway` in the stores that `wanted` does not list; returns how
/// many.
pub async fn delete_unwanted(
    client: &Client,
    stores: &ChildStores,
    gateway: &Gateway,
    wanted: &Wanted,
) -> Result<usize, ApplyError> {
    let mut deleted = 0;
    deleted += delete_where(client, &stores.roles, gateway, |role| {
        !wanted.roles.contains(&full_name(role))
    })
    .await?;
    deleted += delete_where(client, &stores.role_bindings, gateway, |binding| {
        !wanted.role_bindings.contains(&full_name(binding))
    })
    .await?;
    deleted += delete_where(client, &stores.secrets, gateway, |secret| {
        !wanted.secrets.contains(&full_name(secret))
    })
    .await?;
    if !wanted.autoscaler {
        deleted += delete_where(client, &stores.horizontal_pod_autoscalers, gateway, |_| {
            true
        })
        .await?;
    }
    Ok(deleted)
}

/// `namespace/name` of an object.
pub fn full_name<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// Deletes the objects of `store` that belong to `gateway` and match `unwanted`.
async fn delete_where<K>(
    client: &Client,
    store: &Store<K>,
    gateway: &Gateway,
    unwanted: impl Fn(&K) -> bool,
) -> Result<usize, ApplyError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let doomed: Vec<_> = store
        .state()
        .into_iter()
        .filter(|object| object.meta().deletion_timestamp.is_none())
        .filter(|object| belongs_to(&**object, gateway) && unwanted(object))
        .collect();
    for object in &doomed {
        let namespace = object.namespace().unwrap_or_default();
        let name = object.name_any();
        let kind = K::kind(&()).into_owned();
        info!(%kind, %namespace, %name, "deleting a child no longer wanted");
        let api: Api<K> = Api::namespaced(client.clone(), &namespace);
        // The UID precondition keeps a stale store from deleting a newer object of that name.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: object.uid(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(source) => {
                return Err(ApplyError::Delete {
                    kind,
                    namespace,
                    name,
                    source: Box::new(source),
                });
            }
        }
    }
    Ok(doomed.len())
}

/// Whether `gateway` has children outside its namespace (in the stores).
pub fn has_foreign_children(stores: &ChildStores, gateway: &Gateway) -> bool {
    stores
        .roles
        .state()
        .iter()
        .any(|r| is_foreign_child(&**r, gateway))
        || stores
            .role_bindings
            .state()
            .iter()
            .any(|b| is_foreign_child(&**b, gateway))
}

/// Adds or removes the [`FINALIZER`] so that the Gateway carries it exactly while it has (or
/// is about to have) children in other namespaces.
pub async fn sync_finalizer(
    client: &Client,
    gateway: &Gateway,
    needed: bool,
) -> Result<(), ApplyError> {
    let present = gateway.finalizers().iter().any(|f| f == FINALIZER);
    if present == needed {
        return Ok(());
    }
    let mut finalizers: Vec<String> = gateway
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if needed {
        finalizers.push(FINALIZER.to_owned());
    }
    let api: Api<Gateway> =
        Api::namespaced(client.clone(), &gateway.namespace().unwrap_or_default());
    // The resourceVersion makes this a compare-and-swap with whoever else edits finalizers.
    let patch = json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": gateway.resource_version(),
        }
    });
    api.patch(
        &gateway.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|e| ApplyError::Finalizer(Box::new(e)))
}

/// A Gateway being deleted: removes its children in other namespaces, then its finalizer. The
/// garbage collector takes the rest.
pub async fn finalize(
    client: &Client,
    stores: &ChildStores,
    gateway: &Gateway,
) -> Result<(), ApplyError> {
    let mut remaining = delete_where(client, &stores.roles, gateway, |r| {
        is_foreign_child(r, gateway)
    })
    .await?;
    remaining += delete_where(client, &stores.role_bindings, gateway, |b| {
        is_foreign_child(b, gateway)
    })
    .await?;
    if remaining == 0 || !has_foreign_children(stores, gateway) {
        sync_finalizer(client, gateway, false).await?;
    }
    Ok(())
}
