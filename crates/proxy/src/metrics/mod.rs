//! Prometheus metrics of the data plane, served on the admin listener's `/metrics`.

mod handles;

use std::sync::Arc;

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::guard::{CacheOutcome, Stopped};

/// The class of a status code (`2xx`, ...), to keep label cardinality bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusClass(u8);

impl EncodeLabelValue for StatusClass {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        write!(encoder, "{}xx", self.0)
    }
}

impl StatusClass {
    /// The class of `status`.
    pub fn of(status: http::StatusCode) -> Self {
        StatusClass(u8::try_from(status.as_u16() / 100).unwrap_or(5))
    }
}

/// A label value shared by reference: counting a request clones a pointer, never a string.
/// `None` encodes as the empty string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Label(pub Option<Arc<str>>);

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(self.0.as_deref().unwrap_or(""))
    }
}

/// Labels of a served request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// `namespace/name` of the Route, or empty when none matched.
    pub route: Label,
    /// `namespace/name` of the backend, or empty.
    pub backend: Label,
    /// The status class.
    pub code: StatusClass,
}

/// Labels of a latency observation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    /// `namespace/name` of the Route, or empty.
    pub route: Label,
}

/// Labels of an upstream failure.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    /// The backend.
    pub backend: String,
    /// `connect`, `reset`, `timeout`, `overloaded` or `no_endpoint`.
    pub kind: &'static str,
}

/// Labels naming a backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct BackendLabels {
    /// The backend.
    pub backend: String,
}

/// Labels naming an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EndpointLabels {
    /// The backend.
    pub backend: String,
    /// `host:port`.
    pub endpoint: String,
}

/// Labels of a reload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `success` or `failure`.
    pub result: &'static str,
}

/// Labels of a rule that answers 503 because this build cannot serve it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UnservedLabels {
    /// `namespace/name` of the Route.
    pub route: Label,
    /// The rule's index in the Route.
    pub rule: String,
    /// The first reason (`UnsupportedValue`, `SecretNotFound`, `InvalidSecret`, `Invalid`).
    pub reason: &'static str,
}

/// Labels of a policy's decision on a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PolicyLabels {
    /// `namespace/name` of the Route.
    pub route: Label,
    /// `auth`, `rate_limit` or `cache`.
    pub policy: &'static str,
    /// What it decided: an authentication refusal's reason (`missing`, `expired`, ...),
    /// `limited`, `failed_open` or `failed_closed` (a global limit whose Redis gave no
    /// answer), or the cache's `hit`, `miss` or `stale`.
    pub result: &'static str,
}

/// Labels of a shared-state operation that got no answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SharedStateErrorLabels {
    /// What needed Redis: `rate_limit`.
    pub operation: &'static str,
    /// `timeout`, `error`, or `unavailable` (within the back-off after a failure).
    pub error: &'static str,
}

/// Labels carrying the loaded revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RevisionLabels {
    /// The snapshot revision.
    pub revision: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric of the data plane, registered in one registry.
#[derive(Debug)]
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Requests served, by route, backend and status class.
    pub requests: Family<RequestLabels, Counter>,
    /// Request duration in seconds (until the response body ends), by route.
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Failed attempts towards backends, by kind.
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    /// Retries, by backend.
    pub retries: Family<BackendLabels, Counter>,
    /// Mirrored copies dropped because the rule already had its most in flight, by mirror
    /// backend.
    pub mirrors_dropped: Family<BackendLabels, Counter>,
    /// 1 when an endpoint may get traffic, 0 when it failed its checks or is ejected.
    pub endpoint_healthy: Family<EndpointLabels, Gauge>,
    /// Client connections open now.
    pub open_connections: Gauge,
    /// Config reloads, by result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// Always 1, labelled with the revision being served.
    pub revision: Family<RevisionLabels, Gauge>,
    /// Routes entries being served.
    pub route_entries: Gauge,
    /// Access-log lines dropped because stdout could not keep up (set at scrape time).
    pub access_log_dropped: Gauge,
    /// Requests answered 503 because their rule cannot be served by this build.
    pub unserved_requests: Family<UnservedLabels, Counter>,
    /// 1 for each rule of the table being served that answers 503 (set when a table is
    /// installed).
    pub unserved_rules: Family<UnservedLabels, Gauge>,
    /// Requests refused by authentication or rate limiting, requests a global rate limit
    /// decided without Redis, and cache lookups, by route, policy and result.
    pub policy_decisions: Family<PolicyLabels, Counter>,
    /// Requests whose policy needed the shared Redis and got no answer, by operation and error.
    pub shared_state_errors: Family<SharedStateErrorLabels, Counter>,
    /// Tells this instance's cached metric handles from another's (see `handles`).
    id: u64,
}

impl Metrics {
    /// Creates and registers every metric under the `portcullis_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let retries = Family::<BackendLabels, Counter>::default();
        let mirrors_dropped = Family::<BackendLabels, Counter>::default();
        let endpoint_healthy = Family::<EndpointLabels, Gauge>::default();
        let open_connections = Gauge::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        let revision = Family::<RevisionLabels, Gauge>::default();
        let route_entries = Gauge::default();
        let access_log_dropped = Gauge::default();
        let unserved_requests = Family::<UnservedLabels, Counter>::default();
        let unserved_rules = Family::<UnservedLabels, Gauge>::default();
        let policy_decisions = Family::<PolicyLabels, Counter>::default();
        let shared_state_errors = Family::<SharedStateErrorLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests served, by route, backend and status class",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request to the end of the response body",
            latency.clone(),
        );
        registry.register(
            "upstream_errors",
            "Failed attempts towards backends, by kind",
            upstream_errors.clone(),
        );
        registry.register("retries", "Retried attempts, by backend", retries.clone());
        registry.register(
            "mirrors_dropped",
            "Mirrored copies dropped because their rule had its most in flight, by mirror backend",
            mirrors_dropped.clone(),
        );
        registry.register(
            "endpoint_healthy",
            "1 when the endpoint may get traffic (passes health checks, not ejected)",
            endpoint_healthy.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections open now",
            open_connections.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads, by result",
            reloads.clone(),
        );
        registry.register(
            "config_revision",
            "1, labelled with the revision served",
            revision.clone(),
        );
        registry.register(
            "route_entries",
            "Route entries in the table being served",
            route_entries.clone(),
        );
        registry.register(
            "access_log_dropped_lines",
            "Access-log lines dropped because standard output could not keep up",
            access_log_dropped.clone(),
        );
        registry.register(
            "unserved_requests",
            "Requests answered 503 because this build cannot serve their rule, by route, rule \
             and reason",
            unserved_requests.clone(),
        );
        registry.register(
            "unserved_rules",
            "1 for each rule that answers 503 because this build cannot serve it, by route, rule \
             and reason",
            unserved_rules.clone(),
        );
        registry.register(
            "policy_decisions",
            "Requests refused by authentication (by reason) or rate limiting, requests a global \
             rate limit decided without Redis (failed_open, failed_closed), and cache hits, \
             misses and stale answers, by route",
            policy_decisions.clone(),
        );
        registry.register(
            "shared_state_errors",
            "Requests whose policy needed the shared Redis and got no answer in time (the rule's \
             failureMode decided them), by operation and error",
            shared_state_errors.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            upstream_errors,
            retries,
            mirrors_dropped,
            endpoint_healthy,
            open_connections,
            reloads,
            revision,
            route_entries,
            access_log_dropped,
            unserved_requests,
            unserved_rules,
            policy_decisions,
            shared_state_errors,
            id: handles::next_id(),
        }
    }

    /// Counts a request the guard answered itself.
    pub fn policy_stopped(&self, route: &Arc<str>, stopped: Stopped) {
        let (policy, result) = match stopped {
            Stopped::Auth(reason) => ("auth", reason),
            Stopped::RateLimited => ("rate_limit", "limited"),
            Stopped::RateUncounted(error) => return self.rate_uncounted(route, false, error),
        };
        self.policy_decision(route, policy, result);
    }

    /// Counts a request a global rate limit could not count (Redis gave no answer), admitted
    /// or refused by the rule's failure mode.
    pub fn rate_uncounted(&self, route: &Arc<str>, admitted: bool, error: &'static str) {
        let result = if admitted {
            "failed_open"
        } else {
            "failed_closed"
        };
        self.policy_decision(route, "rate_limit", result);
        self.shared_state_errors
            .get_or_create(&SharedStateErrorLabels {
                operation: "rate_limit",
                error,
            })
            .inc();
    }

    /// Counts a cache lookup.
    pub fn cache_outcome(&self, route: &Arc<str>, outcome: CacheOutcome) {
        self.policy_decision(route, "cache", outcome.label());
    }

    fn policy_decision(&self, route: &Arc<str>, policy: &'static str, result: &'static str) {
        self.policy_decisions
            .get_or_create(&PolicyLabels {
                route: Label(Some(route.clone())),
                policy,
                result,
            })
            .inc();
    }

    /// Counts a failed attempt.
    pub fn upstream_error(&self, backend: &str, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                backend: backend.to_owned(),
                kind,
            })
            .inc();
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
