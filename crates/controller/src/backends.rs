//! ServiceBackend status: whether the backend is valid, whether what it points at exists, and
//! how many of its endpoints are ready, for `kubectl get psb`.
//!
//! A controller of its own: a ServiceBackend's status does not depend on any one Gateway. It
//! follows the backend's Service and EndpointSlices (metadata only, so watching every slice in
//! the cluster stays cheap) and writes status only when it changed.

use std::{collections::BTreeSet, sync::Arc};

use futures::{StreamExt, future};
use k8s_openapi::api::{core::v1::Service, discovery::v1::EndpointSlice};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        reflector::{ObjectRef, Store},
        watcher::{self, watcher},
    },
};
use portcullis_api::{
    Gateway, Route, ServiceBackend,
    backend::{EndpointCounts, ServiceBackendStatus},
};
use portcullis_config::{
    Severity, compile,
    diagnostics::{Kind, ObjectRef as DiagnosticObject},
    snapshot::ObjectKey,
};
use serde_json::json;
use tracing::warn;

use crate::{
    conditions::{self, Observed, reason},
    meta::FIELD_MANAGER,
    metrics::Metrics,
    runtime::ControllerConfig,
};

/// The controller name, in metrics.
pub const CONTROLLER: &str = "servicebackend";

/// The label EndpointSlices carry naming their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Why a ServiceBackend reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the Service or its EndpointSlices failed.
    #[error("fetch: {0}")]
    Fetch(#[source] kube::Error),
    /// Writing status failed.
    #[error("status: {0}")]
    Status(#[source] kube::Error),
    /// Leadership was lost: the reconcile stopped before its next write.
    #[error("leadership was lost: the reconcile stopped before its next write")]
    Fenced,
}

struct Context {
    client: Client,
    backends: Store<ServiceBackend>,
    metrics: Arc<Metrics>,
    resync: std::time::Duration,
    stop: crate::leader::Stop,
}

/// Runs the ServiceBackend status controller until `stop` resolves.
pub async fn controller(client: Client, config: &ControllerConfig, stop: crate::leader::Stop) {
    let everything = watcher::Config::default();
    let controller = Controller::new(config.api::<ServiceBackend>(&client), everything.clone());
    let backends = controller.store();
    let context = Arc::new(Context {
        client: client.clone(),
        backends: backends.clone(),
        metrics: config.metrics.clone(),
        resync: config.resync,
        stop: stop.clone(),
    });
    let (by_service, by_slice, by_backend) = (backends.clone(), backends.clone(), backends);
    let services = watcher(
        config.api::<PartialObjectMeta<Service>>(&client),
        everything.clone(),
    )
    .backoff(crate::backoff::WatchBackoff::default())
    .touched_objects();
    let slices = watcher(
        config.api::<PartialObjectMeta<EndpointSlice>>(&client),
        everything.clone(),
    )
    .backoff(crate::backoff::WatchBackoff::default())
    .touched_objects();
    let peers = watcher(
        config.api::<PartialObjectMeta<ServiceBackend>>(&client),
        everything,
    )
    .backoff(crate::backoff::WatchBackoff::default())
    .touched_objects();
    controller
        .watches_stream(services, move |service| {
            using_service(
                &by_service,
                &service.namespace().unwrap_or_default(),
                &service.name_any(),
            )
        })
        .watches_stream(slices, move |slice| {
            slice
                .labels()
                .get(SERVICE_NAME_LABEL)
                .map(|service| {
                    using_service(&by_slice, &slice.namespace().unwrap_or_default(), service)
                })
                .unwrap_or_default()
        })
        .watches_stream(peers, move |peer| {
            // A ServiceBackend appearing or going resolves (or breaks) others' failover.
            let namespace = peer.namespace().unwrap_or_default();
            let name = peer.name_any();
            by_backend
                .state()
                .iter()
                .filter(|b| {
                    b.namespace().as_deref() == Some(&namespace)
                        && b.spec.failover.iter().any(|f| f.name == name)
                })
                .map(|b| ObjectRef::from_obj(&**b))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, context)
        .for_each(|_| future::ready(()))
        .await;
}

/// The ServiceBackends targeting Service `namespace/name`.
fn using_service(
    backends: &Store<ServiceBackend>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<ServiceBackend>> {
    backends
        .state()
        .iter()
        .filter(|b| {
            b.namespace().as_deref() == Some(namespace)
                && b.spec.service.as_ref().is_some_and(|s| s.name == name)
        })
        .map(|b| ObjectRef::from_obj(&**b))
        .collect()
}

async fn reconcile(backend: Arc<ServiceBackend>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::leader::fenced(&ctx.stop, reconcile_status(backend, &ctx))
        .await
        .unwrap_or(Err(Error::Fenced))
}

async fn reconcile_status(backend: Arc<ServiceBackend>, ctx: &Context) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let namespace = backend.namespace().unwrap_or_default();
    let mut observed = vec![accepted(&backend)];
    let counts = match &backend.spec.service {
        Some(target) => {
            let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
            let exists = services
                .get_metadata_opt(&target.name)
                .await
                .map_err(Error::Fetch)?
                .is_some();
            if !exists {
                observed.push(Observed::no(
                    conditions::RESOLVED_REFS,
                    reason::SERVICE_NOT_FOUND,
                    format!(
                        "Service {:?} not found in namespace {namespace:?}",
                        target.name
                    ),
                ));
            }
            let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &namespace);
            let selector = format!("{SERVICE_NAME_LABEL}={}", target.name);
            let slices = slices
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(Error::Fetch)?;
            count_endpoints(&slices.items)
        }
        None => {
            let total = backend.spec.endpoints.as_ref().map_or(0, Vec::len);
            let total = i32::try_from(total).unwrap_or(i32::MAX);
            EndpointCounts {
                ready: total,
                total,
            }
        }
    };
    if observed.len() == 1 {
        let missing: Vec<&str> = backend
            .spec
            .failover
            .iter()
            .filter(|f| {
                ctx.backends
                    .get(&ObjectRef::new(&f.name).within(&namespace))
                    .is_none()
            })
            .map(|f| f.name.as_str())
            .collect();
        observed.push(if missing.is_empty() {
            Observed::yes(
                conditions::RESOLVED_REFS,
                reason::RESOLVED_REFS,
                "All references resolved",
            )
        } else {
            Observed::no(
                conditions::RESOLVED_REFS,
                reason::BACKEND_NOT_FOUND,
                format!(
                    "failover ServiceBackends not found in namespace {namespace:?}: {}",
                    missing.join(", ")
                ),
            )
        });
    }
    let previous = backend.status.clone().unwrap_or_default();
    let status = ServiceBackendStatus {
        observed_generation: backend.meta().generation,
        conditions: conditions::merge(
            &previous.conditions,
            observed,
            backend.meta().generation,
            crate::reconcile::status::now(),
        ),
        endpoints: Some(counts),
    };
    if backend.status.as_ref() != Some(&status) {
        let api: Api<ServiceBackend> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = json!({
            "apiVersion": portcullis_api::API_VERSION,
            "kind": "ServiceBackend",
            "status": status,
        });
        api.patch_status(
            &backend.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::Status)?;
    }
    Ok(Action::requeue(ctx.resync))
}

/// Ready and total endpoints over the slices of one Service, each address counted once. An
/// endpoint whose readiness is unknown counts as ready, as EndpointSlice consumers must.
fn count_endpoints(slices: &[EndpointSlice]) -> EndpointCounts {
    let mut total = BTreeSet::new();
    let mut ready = BTreeSet::new();
    for endpoint in slices.iter().flat_map(|s| &s.endpoints) {
        let Some(address) = endpoint.addresses.first() else {
            continue;
        };
        total.insert(address.clone());
        if endpoint
            .conditions
            .as_ref()
            .and_then(|c| c.ready)
            .unwrap_or(true)
        {
            ready.insert(address.clone());
        }
    }
    EndpointCounts {
        ready: i32::try_from(ready.len()).unwrap_or(i32::MAX),
        total: i32::try_from(total.len()).unwrap_or(i32::MAX),
    }
}

/// `Accepted`, by the config compiler's own checks: the backend compiled for a throw-away
/// Gateway and Route in its namespace, and its findings read back.
fn accepted(backend: &ServiceBackend) -> Observed {
    let namespace = backend.namespace().unwrap_or_default();
    let name = backend.name_any();
    let probe: Result<(Gateway, Route), serde_json::Error> = (|| {
        let gateway = serde_json::from_value(json!({
            "apiVersion": portcullis_api::API_VERSION, "kind": "Gateway",
            "metadata": { "name": "portcullis-backend-check", "namespace": namespace },
            "spec": { "listeners": [{ "name": "check", "port": 80, "protocol": "HTTP" }] },
        }))?;
        let route = serde_json::from_value(json!({
            "apiVersion": portcullis_api::API_VERSION, "kind": "Route",
            "metadata": { "name": "portcullis-backend-check", "namespace": namespace },
            "spec": {
                "parentRefs": [{ "name": "portcullis-backend-check" }],
                "rules": [{ "backendRefs": [{ "name": name }] }],
            },
        }))?;
        Ok((gateway, route))
    })();
    let Ok((gateway, route)) = probe else {
        return Observed::yes(conditions::ACCEPTED, reason::ACCEPTED, "Accepted");
    };
    let compiled = compile(&gateway, &[route], std::slice::from_ref(backend), &[]);
    let object = DiagnosticObject::new(Kind::ServiceBackend, ObjectKey::new(&namespace, &name));
    let errors: Vec<String> = compiled
        .diagnostics
        .for_object(&object)
        .filter(|d| d.severity == Severity::Error && d.reason != "BackendNotFound")
        .map(|d| format!("{}: {}", d.field, d.message))
        .collect();
    if errors.is_empty() {
        Observed::yes(conditions::ACCEPTED, reason::ACCEPTED, "Accepted")
    } else {
        Observed::no(conditions::ACCEPTED, reason::INVALID, errors.join("; "))
    }
}

fn error_policy(backend: Arc<ServiceBackend>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(
        backend = %format!("{}/{}", backend.namespace().unwrap_or_default(), backend.name_any()),
        "reconcile failed: {error}"
    );
    let stage = match error {
        Error::Fetch(_) => "fetch",
        Error::Status(_) => "status",
        Error::Fenced => "fenced",
    };
    ctx.metrics.error(CONTROLLER, stage);
    Action::requeue(std::time::Duration::from_secs(5))
}
