//! What the operator knows of the cluster: reflector stores fed by watches.
//!
//! The same watch feeds a store and triggers reconciles, so the apply stage can tell a converged
//! child from a drifted one without a read, and the fetch stage reads Routes and
//! ServiceBackends from memory.

use k8s_openapi::api::{
    apps::v1::Deployment,
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount},
    policy::v1::PodDisruptionBudget,
    rbac::v1::{Role, RoleBinding},
};
use kube::{core::PartialObjectMeta, runtime::reflector::Store};
use portcullis_api::{Gateway, Route, ServiceBackend};

/// The stores of the objects the operator creates (selected by `managed-by: portcullis`).
#[derive(Clone)]
pub struct ChildStores {
    /// Gateway ConfigMaps.
    pub config_maps: Store<ConfigMap>,
    /// Gateway ServiceAccounts.
    pub service_accounts: Store<ServiceAccount>,
    /// Roles, in the Gateways' namespaces and in backend namespaces.
    pub roles: Store<Role>,
    /// RoleBindings, likewise.
    pub role_bindings: Store<RoleBinding>,
    /// Copied Secrets.
    pub secrets: Store<Secret>,
    /// Gateway Deployments.
    pub deployments: Store<Deployment>,
    /// Gateway Services.
    pub services: Store<Service>,
    /// Gateway PodDisruptionBudgets.
    pub pod_disruption_budgets: Store<PodDisruptionBudget>,
    /// Gateway HorizontalPodAutoscalers.
    pub horizontal_pod_autoscalers: Store<HorizontalPodAutoscaler>,
}

/// Every store the Gateway controller reads.
#[derive(Clone)]
pub struct Stores {
    /// Gateways (the controller's own store).
    pub gateways: Store<Gateway>,
    /// Every Route.
    pub routes: Store<Route>,
    /// Every ServiceBackend.
    pub backends: Store<ServiceBackend>,
    /// Every Namespace (for `allowedRoutes.namespaces.from: Selector`).
    pub namespaces: Store<Namespace>,
    /// The metadata of every Secret: which referenced Secrets exist.
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// The operator's own children.
    pub children: ChildStores,
}

/// A store stopped being fed (the operator is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the {0} store is no longer fed")]
pub struct StoreGone(&'static str);

impl Stores {
    /// Waits until every store has its initial list, so that no reconcile ever compiles a
    /// Gateway from a partial view (which would publish a config missing Routes).
    pub async fn ready(&self) -> Result<(), StoreGone> {
        let children = &self.children;
        wait(&self.gateways, "Gateway").await?;
        wait(&self.routes, "Route").await?;
        wait(&self.backends, "ServiceBackend").await?;
        wait(&self.namespaces, "Namespace").await?;
        wait(&self.secrets, "Secret").await?;
        wait(&children.config_maps, "ConfigMap").await?;
        wait(&children.service_accounts, "ServiceAccount").await?;
        wait(&children.roles, "Role").await?;
        wait(&children.role_bindings, "RoleBinding").await?;
        wait(&children.secrets, "copied Secret").await?;
        wait(&children.deployments, "Deployment").await?;
        wait(&children.services, "Service").await?;
        wait(&children.pod_disruption_budgets, "PodDisruptionBudget").await?;
        wait(
            &children.horizontal_pod_autoscalers,
            "HorizontalPodAutoscaler",
        )
        .await
    }
}

async fn wait<K>(store: &Store<K>, what: &'static str) -> Result<(), StoreGone>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.wait_until_ready().await.map_err(|_| StoreGone(what))
}
