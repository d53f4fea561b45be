//! What the operator knows of the cluster: reflector stores fed by watches.
//!
//! The same watch feeds a store and triggers reconciles, so the apply stage can tell a converged
//! child from a drifted one without a read, and the fetch stage reads Routes and
//! ServiceBackends from memory.

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::Deployment,
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount},
    policy::v1::PodDisruptionBudget,
    rbac::v1::{Role, RoleBinding},
};
use kube::{core::PartialObjectMeta, runtime::reflector::Store};
use portcullis_api::{Gateway, Route, ServiceBackend};
use tokio::sync::watch;

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
    /// The gateway pods (made by the Deployments' ReplicaSets, labelled like every child):
    /// which replicas are ready, and the config revision each one reports serving.
    pub pods: Store<Pod>,
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
    /// Whether every store but the Gateways' holds its initial list (the controller starts no
    /// reconcile before its own Gateway store is listed).
    pub readiness: Readiness,
}

/// Which watched kinds have had their initial list, so that a reconcile can wait for a complete
/// view of the cluster.
///
/// Not [`Store::wait_until_ready`]: that future is backed by a one-shot channel which remembers
/// only the last task that polled it, so when several reconciles wait at once (every Gateway at
/// the start of leadership) all but one are never woken, and their Gateways are never
/// reconciled again. A `watch` channel wakes every waiter. The flags are set by the watch
/// streams themselves (`runtime::reflect`), right after their store applied the initial list.
#[derive(Clone, Default)]
pub struct Readiness {
    flags: Vec<(&'static str, watch::Receiver<bool>)>,
}

/// The sending half of one kind's readiness flag: set once its store holds the initial list.
#[derive(Clone)]
pub struct ReadyFlag(watch::Sender<bool>);

impl ReadyFlag {
    /// Marks the kind listed.
    pub fn set(&self) {
        self.0.send_replace(true);
    }
}

impl Readiness {
    /// A new flag for `kind`, not set yet.
    pub fn flag(&mut self, kind: &'static str) -> ReadyFlag {
        let (sender, receiver) = watch::channel(false);
        self.flags.push((kind, receiver));
        ReadyFlag(sender)
    }

    /// Waits until every kind has been listed, at most `timeout`.
    ///
    /// # Errors
    /// The kinds still unlisted when the time is up, or the first whose watch is gone.
    pub async fn wait(&self, timeout: Duration) -> Result<(), StoresNotReady> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut missing = Vec::new();
        for (kind, flag) in &self.flags {
            let mut flag = flag.clone();
            match tokio::time::timeout_at(deadline, flag.wait_for(|listed| *listed)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Err(StoresNotReady::Gone(kind)),
                Err(_) => missing.push(*kind),
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(StoresNotReady::Timeout {
                kinds: missing.join(", "),
                timeout,
            })
        }
    }
}

/// The watches have not given a complete view of the cluster.
#[derive(Debug, thiserror::Error)]
pub enum StoresNotReady {
    /// A watch is no longer fed (the operator is shutting down).
    #[error("the {0} watch is no longer fed")]
    Gone(&'static str),
    /// The initial lists did not all arrive in time (the API server is slow or unreachable);
    /// the reconcile is retried.
    #[error("the initial list of {kinds} has not arrived after {timeout:?}")]
    Timeout {
        /// The kinds not listed yet.
        kinds: String,
        /// How long was waited.
        timeout: Duration,
    },
}

impl Stores {
    /// Waits until every store has its initial list, so that no reconcile ever compiles a
    /// Gateway from a partial view (which would publish a config missing Routes); at most
    /// `timeout`, so that a reconcile never waits forever.
    ///
    /// # Errors
    /// See [`Readiness::wait`].
    pub async fn ready(&self, timeout: Duration) -> Result<(), StoresNotReady> {
        self.readiness.wait(timeout).await
    }
}
