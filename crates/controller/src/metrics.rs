//! The operator's Prometheus metrics, and a tower layer that counts the API writes of a kube
//! `Client`.
//!
//! Writes are what a converged operator must not make: a resync that finds nothing to change
//! writes nothing, and `portcullis_controller_api_writes_total` shows it (by verb and resource).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context as TaskContext, Poll},
    time::Instant,
};

use http::{Method, Request};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tower::{Layer, Service};

/// Labels of the reconcile error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The controller: `gateway` or `servicebackend`.
    pub controller: &'static str,
    /// The stage that failed: `fetch`, `compile`, `build`, `apply`, `status`.
    pub stage: &'static str,
}

/// Labels of the reconcile counter and duration histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// The controller: `gateway` or `servicebackend`.
    pub controller: &'static str,
}

/// Labels of the API write counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// `create`, `update`, `patch` or `delete`.
    pub verb: &'static str,
    /// The resource written, e.g. `deployments` or `gateways/status`.
    pub resource: String,
}

/// The operator's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<ControllerLabels, Histogram>,
    writes: Family<WriteLabels, Counter>,
    writes_total: Arc<AtomicU64>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("portcullis_controller");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<ControllerLabels, Histogram>::new_with_constructor(
            (|| {
                Histogram::new([
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }) as fn() -> Histogram,
        );
        let writes = Family::<WriteLabels, Counter>::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by stage",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles take",
            duration.clone(),
        );
        registry.register(
            "api_writes",
            "Writes to the Kubernetes API (create, update, patch, delete)",
            writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this instance holds the leader lease and runs the controllers",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            duration,
            writes,
            writes_total: Arc::default(),
            leader,
        }
    }
}

impl Metrics {
    /// Counts a reconcile and returns a guard that records its duration when dropped.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer {
        let labels = ControllerLabels { controller };
        self.reconciles.get_or_create(&labels).inc();
        ReconcileTimer {
            histogram: self.duration.get_or_create_owned(&labels),
            started: Instant::now(),
        }
    }

    /// Counts a failed reconcile.
    pub fn error(&self, controller: &'static str, stage: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels { controller, stage })
            .inc();
    }

    /// Reconciles run so far by `controller`.
    pub fn reconciles(&self, controller: &'static str) -> u64 {
        self.reconciles
            .get(&ControllerLabels { controller })
            .map_or(0, |c| c.get())
    }

    /// API writes made so far through clients built with [`Metrics::api_writes_layer`],
    /// leader-election renewals (`leases`) excepted.
    pub fn api_writes(&self) -> u64 {
        self.writes_total.load(Ordering::Relaxed)
    }

    /// Whether this instance leads (runs the controllers) now.
    pub fn is_leader(&self) -> bool {
        self.leader.get() == 1
    }

    /// Marks whether this instance leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// A tower layer for a kube `ClientBuilder` that counts the client's writes here.
    pub fn api_writes_layer(self: &Arc<Self>) -> ApiWritesLayer {
        ApiWritesLayer {
            writes: self.writes.clone(),
            total: self.writes_total.clone(),
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Records a reconcile's duration when dropped.
pub struct ReconcileTimer {
    histogram: Histogram,
    started: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

/// Counts the non-GET requests of the service it wraps, by verb and resource.
#[derive(Clone, Debug)]
pub struct ApiWritesLayer {
    writes: Family<WriteLabels, Counter>,
    total: Arc<AtomicU64>,
}

impl<S> Layer<S> for ApiWritesLayer {
    type Service = ApiWrites<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiWrites {
            inner,
            writes: self.writes.clone(),
            total: self.total.clone(),
        }
    }
}

/// The service of [`ApiWritesLayer`].
#[derive(Clone, Debug)]
pub struct ApiWrites<S> {
    inner: S,
    writes: Family<WriteLabels, Counter>,
    total: Arc<AtomicU64>,
}

impl<S, B> Service<Request<B>> for ApiWrites<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let verb = match *request.method() {
            Method::POST => Some("create"),
            Method::PUT => Some("update"),
            Method::PATCH => Some("patch"),
            Method::DELETE => Some("delete"),
            _ => None,
        };
        if let Some(verb) = verb {
            let resource = resource_of(request.uri().path());
            if !resource.starts_with("leases") {
                self.total.fetch_add(1, Ordering::Relaxed);
            }
            self.writes
                .get_or_create(&WriteLabels { verb, resource })
                .inc();
        }
        self.inner.call(request)
    }
}

/// The resource (and subresource) of an API path: `/apis/apps/v1/namespaces/shop/deployments/edge`
/// → `deployments`; `.../gateways/edge/status` → `gateways/status`.
fn resource_of(path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/<group>/<version>/...
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or_default();
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    match rest {
        [resource, _, subresource, ..] => format!("{resource}/{subresource}"),
        [resource, ..] => (*resource).to_owned(),
        [] => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_name_their_resource() {
        assert_eq!(
            resource_of("/apis/apps/v1/namespaces/shop/deployments/edge"),
            "deployments"
        );
        assert_eq!(
            resource_of("/apis/portcullis.dev/v1alpha1/namespaces/shop/gateways/edge/status"),
            "gateways/status"
        );
        assert_eq!(
            resource_of("/api/v1/namespaces/shop/configmaps"),
            "configmaps"
        );
        assert_eq!(resource_of("/api/v1/namespaces/shop"), "namespaces");
        assert_eq!(resource_of("/api/v1/namespaces"), "namespaces");
    }

    #[test]
    fn writes_are_counted_and_reads_are_not() {
        let metrics = Arc::new(Metrics::default());
        let layer = metrics.api_writes_layer();
        let mut service = layer.layer(tower::service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(())
        }));
        for method in [Method::GET, Method::PATCH, Method::DELETE] {
            let request = Request::builder()
                .method(method)
                .uri("/api/v1/namespaces/shop/configmaps/edge-config")
                .body(())
                .expect("a request");
            drop(service.call(request));
        }
        assert_eq!(metrics.api_writes(), 2);
        assert!(
            metrics
                .encode()
                .contains("portcullis_controller_api_writes_total")
        );
    }
}
