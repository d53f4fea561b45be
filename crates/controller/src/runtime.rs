//! Running the operator: start-up checks, leader election, the controllers and the health
//! endpoints, until shutdown.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use futures::{FutureExt, StreamExt, future};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::ListParams,
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::Config as ControllerSettings,
        events::{Recorder, Reporter},
        reflector::{self, ObjectRef, Store},
        watcher::{self, watcher},
    },
};
use portcullis_api::{Gateway, Route, ServiceBackend, gateway::FromNamespaces};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::{
    backends,
    children::BuildOptions,
    health::{self, Health},
    leader::{self, LeaderElection, Stop},
    meta,
    metrics::Metrics,
    reconcile::{self, Context},
    relations::Relations,
    stores::{ChildStores, Readiness, ReadyFlag, Stores},
};

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// How gateway children are built (the proxy image).
    pub options: BuildOptions,
    /// Leader election; `None` runs the controllers at once (a single replica, or tests).
    pub leader_election: Option<LeaderElection>,
    /// Where to serve `/healthz`, `/readyz` and `/metrics`; `None` serves nothing.
    pub metrics_addr: Option<SocketAddr>,
    /// How often a converged Gateway is reconciled again.
    pub resync: Duration,
    /// How long a burst of changes to one Gateway is gathered into one reconcile. Zero by
    /// default: kube's debounce restarts with every change, so under steady Route churn a
    /// non-zero value could postpone a Gateway indefinitely; without it, changes arriving
    /// during a reconcile are still merged into the next one.
    pub debounce: Duration,
    /// This instance's name, in the Lease and in Events (the pod name in a cluster).
    pub identity: String,
    /// The metrics; share them with the client's [`Metrics::api_writes_layer`].
    pub metrics: Arc<Metrics>,
    /// Watch only this namespace's Gateways, Routes, ServiceBackends and children (a
    /// namespace-scoped install, and tests sharing one API server); `None` watches all.
    pub namespace: Option<String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            options: BuildOptions::default(),
            leader_election: None,
            metrics_addr: None,
            resync: Duration::from_secs(300),
            debounce: Duration::ZERO,
            identity: "portcullis-controller".to_owned(),
            metrics: Arc::default(),
            namespace: None,
        }
    }
}

impl ControllerConfig {
    /// An `Api` over the watched namespace (or all of them).
    pub(crate) fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match &self.namespace {
            Some(namespace) => Api::namespaced(client.clone(), namespace),
            None => Api::all(client.clone()),
        }
    }
}

/// Why the operator could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The CRDs are not installed.
    #[error(
        "the Portcullis CRDs are not installed ({resource} is unknown to the API server): \
         install them with `portcullis crds | kubectl apply --server-side -f -`"
    )]
    CrdsMissing {
        /// The resource the API server does not know.
        resource: String,
    },
    /// RBAC forbids what the operator needs.
    #[error(
        "the operator may not list {resource} across namespaces: grant its ServiceAccount the \
         ClusterRole from deploy/install.yaml ({message})"
    )]
    Forbidden {
        /// The resource.
        resource: String,
        /// The API server's message.
        message: String,
    },
    /// The API server could not be reached.
    #[error("cannot reach the Kubernetes API: {0}")]
    Api(#[source] kube::Error),
    /// The metrics address could not be bound.
    #[error("cannot listen on {addr} for /healthz, /readyz and /metrics: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// Leader election failed.
    #[error("leader election on Lease {namespace}/{name} failed: {message}")]
    Lease {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// Runs the operator with `client` until `shutdown` resolves: in-flight reconciles finish, the
/// Lease is released, and the function returns.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let shutdown = shutdown.boxed().shared();
    let health = Arc::new(Health::default());
    let server = match config.metrics_addr {
        Some(addr) => {
            let listener = health::bind(addr)
                .await
                .map_err(|source| RunError::Bind { addr, source })?;
            info!(%addr, "serving /healthz, /readyz and /metrics");
            Some(tokio::spawn(health::serve(
                listener,
                health.clone(),
                config.metrics.clone(),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    preflight(&client, &config).await?;
    health.ready.store(true, Ordering::Relaxed);

    let outcome = match &config.leader_election {
        None => {
            config.metrics.set_leader(true);
            run_controllers(client, &config, shutdown.clone()).await;
            Ok(())
        }
        Some(election) => leader::lead(client, &config, election, shutdown.clone()).await,
    };
    config.metrics.set_leader(false);
    if let Some(server) = server {
        let _ = server.await;
    }
    outcome
}

/// Fails with a message the user can act on when the CRDs are missing or RBAC forbids listing
/// what the operator watches.
async fn preflight(client: &Client, config: &ControllerConfig) -> Result<(), RunError> {
    async fn check<K>(client: &Client, config: &ControllerConfig) -> Result<(), RunError>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = config.api(client);
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Err(RunError::CrdsMissing {
                resource: format!("{}.{}", K::plural(&()), K::group(&())),
            }),
            Err(kube::Error::Api(status)) if status.code == 403 => Err(RunError::Forbidden {
                resource: K::plural(&()).into_owned(),
                message: status.message,
            }),
            Err(error) => Err(RunError::Api(error)),
        }
    }
    check::<Gateway>(client, config).await?;
    check::<Route>(client, config).await?;
    check::<ServiceBackend>(client, config).await?;
    check::<k8s_openapi::api::core::v1::Secret>(client, config).await?;
    check::<k8s_openapi::api::apps::v1::Deployment>(client, config).await?;
    Ok(())
}

/// A watched kind's store and the stream that feeds it (and triggers reconciles); the stream
/// sets `listed` once the store holds the initial list.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    listed: ReadyFlag,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config)
        .backoff(crate::backoff::WatchBackoff::default())
        // The operator never reads managed fields back, except on its Deployments.
        .modify(|object: &mut K| {
            if K::kind(&()) != "Deployment" {
                object.managed_fields_mut().clear();
            }
        })
        .reflect(writer)
        .inspect(move |event| mark_listed(event, &listed))
        .touched_objects();
    (store, stream)
}

/// Sets `listed` when `event` ends an initial list (the reflector has applied it to the store).
fn mark_listed<K>(event: &Result<watcher::Event<K>, watcher::Error>, listed: &ReadyFlag) {
    if let Ok(watcher::Event::InitDone) = event {
        listed.set();
    }
}

/// The Gateway a child belongs to: its controller owner reference, or for children in other
/// namespaces the owner annotation.
fn owner_of<K: Resource>(child: &K) -> Option<ObjectRef<Gateway>> {
    if let Some(owner) = child
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "Gateway")
    {
        return Some(ObjectRef::new(&owner.name).within(&child.namespace().unwrap_or_default()));
    }
    let (namespace, name) = child
        .annotations()
        .get(meta::OWNER_ANNOTATION)?
        .split_once('/')?;
    Some(ObjectRef::new(name).within(namespace))
}

/// Runs the Gateway and ServiceBackend controllers until `stop` resolves.
pub(crate) async fn run_controllers(client: Client, config: &ControllerConfig, stop: Stop) {
    let mut readiness = Readiness::default();
    let managed = watcher::Config::default().labels(&meta::managed_selector());
    macro_rules! child {
        ($kind:ty, $name:literal) => {
            reflect(
                config.api::<$kind>(&client),
                managed.clone(),
                readiness.flag($name),
            )
        };
    }
    let (config_maps, config_map_events) =
        child!(k8s_openapi::api::core::v1::ConfigMap, "ConfigMap");
    let (service_accounts, service_account_events) =
        child!(k8s_openapi::api::core::v1::ServiceAccount, "ServiceAccount");
    let (roles, role_events) = child!(k8s_openapi::api::rbac::v1::Role, "Role");
    let (role_bindings, role_binding_events) =
        child!(k8s_openapi::api::rbac::v1::RoleBinding, "RoleBinding");
    let (copied_secrets, copied_secret_events) =
        child!(k8s_openapi::api::core::v1::Secret, "copied Secret");
    let (deployments, deployment_events) =
        child!(k8s_openapi::api::apps::v1::Deployment, "Deployment");
    let (services, service_events) = child!(k8s_openapi::api::core::v1::Service, "Service");
    let (pdbs, pdb_events) = child!(
        k8s_openapi::api::policy::v1::PodDisruptionBudget,
        "PodDisruptionBudget"
    );
    let (hpas, hpa_events) = child!(
        k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
        "HorizontalPodAutoscaler"
    );
    let (pods, pod_events) = child!(k8s_openapi::api::core::v1::Pod, "Pod");

    let everything = watcher::Config::default();
    let (routes, route_events) = reflect(
        config.api::<Route>(&client),
        everything.clone(),
        readiness.flag("Route"),
    );
    let (backends, backend_events) = reflect(
        config.api::<ServiceBackend>(&client),
        everything.clone(),
        readiness.flag("ServiceBackend"),
    );
    let (namespaces, namespace_events) = reflect(
        Api::<Namespace>::all(client.clone()),
        everything.clone(),
        readiness.flag("Namespace"),
    );
    let (secrets, secret_writer) = reflector::store();
    let secrets_listed = readiness.flag("Secret");
    let secret_events = watcher(
        config.api::<PartialObjectMeta<k8s_openapi::api::core::v1::Secret>>(&client),
        everything.clone(),
    )
    .backoff(crate::backoff::WatchBackoff::default())
    .modify(|secret| secret.managed_fields_mut().clear())
    .reflect(secret_writer)
    .inspect(move |event| mark_listed(event, &secrets_listed))
    .touched_objects();

    let controller = Controller::new(config.api::<Gateway>(&client), everything.clone());
    let gateways = controller.store();
    let orphan_sweep = reconcile::orphans::sweep(
        client.clone(),
        routes.clone(),
        gateways.clone(),
        config.namespace.clone(),
        stop.clone(),
    );
    let relations = Arc::new(Relations::default());
    let context = Arc::new(Context {
        client: client.clone(),
        stores: Stores {
            gateways: gateways.clone(),
            routes,
            backends,
            namespaces,
            secrets,
            children: ChildStores {
                config_maps,
                service_accounts,
                roles,
                role_bindings,
                secrets: copied_secrets,
                deployments,
                services,
                pod_disruption_budgets: pdbs,
                horizontal_pod_autoscalers: hpas,
                pods,
            },
            readiness,
        },
        relations: relations.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "portcullis".to_owned(),
                instance: Some(config.identity.clone()),
            },
        ),
        metrics: config.metrics.clone(),
        options: config.options.clone(),
        alerted: std::sync::Mutex::default(),
        revisions: crate::reconcile::rollout::Revisions::default(),
        stop: stop.clone(),
        resync: config.resync,
    });

    let by_route = relations.clone();
    let by_backend = relations.clone();
    let by_secret = relations.clone();
    let gateway_controller = controller
        .with_config(ControllerSettings::default().debounce(config.debounce))
        .watches_stream(config_map_events, |o| owner_of(&o))
        .watches_stream(service_account_events, |o| owner_of(&o))
        .watches_stream(role_events, |o| owner_of(&o))
        .watches_stream(role_binding_events, |o| owner_of(&o))
        .watches_stream(copied_secret_events, |o| owner_of(&o))
        .watches_stream(deployment_events, |o| owner_of(&o))
        .watches_stream(service_events, |o| owner_of(&o))
        .watches_stream(pdb_events, |o| owner_of(&o))
        .watches_stream(hpa_events, |o| owner_of(&o))
        // A pod's owner is its ReplicaSet; its Gateway is in its labels.
        .watches_stream(pod_events, |pod| {
            let gateway = pod.labels().get(meta::GATEWAY_LABEL)?;
            Some(ObjectRef::new(gateway).within(&pod.namespace().unwrap_or_default()))
        })
        .watches_stream(route_events, move |route| {
            by_route.gateways_of_route(&route)
        })
        .watches_stream(backend_events, move |backend| {
            by_backend.gateways_of_backend(&backend)
        })
        .watches_stream(secret_events, move |secret| {
            by_secret
                .gateways_of_secret(&secret.namespace().unwrap_or_default(), &secret.name_any())
        })
        .watches_stream(namespace_events, move |_namespace: Namespace| {
            // A namespace's labels decide attachment only for listeners selecting by label.
            gateways
                .state()
                .iter()
                .filter(|g| {
                    g.spec
                        .listeners
                        .iter()
                        .any(|l| l.allowed_routes.namespaces.from == FromNamespaces::Selector)
                })
                .map(|g| ObjectRef::from_obj(&**g))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stop.clone())
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|outcome| {
            if let Err(error) = outcome {
                match error {
                    // Logged by the error policy.
                    kube::runtime::controller::Error::ReconcilerFailed(..) => {}
                    // A change to a Gateway's child or Route arrived for a Gateway that is
                    // being created or was just deleted: nothing to do, nothing to warn about.
                    kube::runtime::controller::Error::ObjectNotFound(object) => {
                        debug!("gateway controller: {object} is not (or no longer) in the store");
                    }
                    other => warn!("gateway controller: {other}"),
                }
            }
            future::ready(())
        });
    let backend_controller = backends::controller(client, config, stop);
    future::join3(gateway_controller, backend_controller, orphan_sweep).await;
    info!("controllers stopped");
}

/// Logs a fatal run error the way the CLI reports it.
pub fn report(error: &RunError) {
    error!("{error}");
}

/// A `watch` channel whose receiver resolves once `true` is sent: a shutdown trigger for
/// [`run`] that tests and the CLI can fire.
pub fn shutdown_trigger() -> (
    watch::Sender<bool>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (sender, mut receiver) = watch::channel(false);
    let fired = async move {
        let _ = receiver.wait_for(|fired| *fired).await;
    };
    (sender, fired)
}
