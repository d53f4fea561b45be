//! The config snapshot: everything one gateway replica serves, fully resolved.
//!
//! A snapshot is the contract between the operator (which compiles it from a Gateway, its Routes
//! and their ServiceBackends) and the data plane (which turns it into a routing table). It is
//! self-contained: the proxy never looks at a custom resource. Every reference is resolved,
//! every policy inherited from the Gateway's `defaults` is already applied, every duration is an
//! integer number of milliseconds, and routes are pre-sorted by precedence.
//!
//! # Routing model
//!
//! A request arriving on a port is served by the [`ListenerConfig`] of that port:
//!
//! 1. Take the `Host` header (or `:authority`), strip the port, lowercase it.
//! 2. Pick the **first** [`VirtualHost`] of the listener whose `hostname` matches it. Virtual hosts
//!    are ordered most specific first (exact names, then wildcards longest first, then the
//!    catch-all `*`), so the first match is the most specific one. `*.example.com` matches
//!    `a.example.com` and `a.b.example.com`, never `example.com`; `*` matches every host.
//! 3. In that virtual host, the **first** [`RouteEntry`] whose [`MatchConfig`] matches the request
//!    wins; its `rule` indexes [`Snapshot::rules`], which says what to do with the request.
//! 4. No virtual host, or no entry in the chosen one: **404**. There is never a fall-back to a
//!    less specific virtual host: the compiler emits a virtual host (possibly empty) for every
//!    listener hostname, which is what keeps Gateway API listener isolation.
//!
//! # Secrets
//!
//! Credentials never appear in a snapshot. A [`SecretFile`] names a key of a Secret and the file
//! holding it, relative to a *secrets root* the proxy is given: `<namespace>/<name>/<key>`. In a
//! cluster the operator mounts the Secrets there; under `portcullis run` the CLI writes the
//! `Secret` manifests it was given into a private temporary directory with the same layout.
//!
//! # Determinism
//!
//! Only `Vec` (in a defined order) and `BTreeMap` appear here, so the same snapshot always
//! serializes to the same bytes and [`Snapshot::revision`] is a true content hash.

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use portcullis_api::{
    backend::{LoadBalancerPolicy, UpstreamProtocol},
    policy::{AuthType, CacheBackend, JwtAlgorithm, RateLimitKeyType, RateLimitScope, RetryOn},
    route::{Method, PartFailurePolicy, PathMatchType, PathModifierType, Scheme, ValueMatchType},
};

/// The `apiVersion` of every snapshot this crate writes and reads.
pub const API_VERSION: &str = "portcullis.dev/config/v1";

/// What one gateway replica serves: listeners, routes, backends and their policies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Snapshot {
    /// Always [`API_VERSION`]; a proxy refuses snapshots of a version it does not know.
    pub api_version: String,
    /// The Gateway this snapshot was compiled for.
    pub gateway: ObjectKey,
    /// Content hash: lowercase hex SHA-256 of the canonical serialization (compact JSON, in field
    /// order) of this snapshot with `revision` set to the empty string. See
    /// [`Snapshot::compute_revision`].
    pub revision: String,
    /// One entry per port, sorted by port.
    pub listeners: Vec<ListenerConfig>,
    /// Every rule of every attached Route, sorted by Route (`namespace/name`), then rule index.
    /// [`RouteEntry::rule`] indexes this list, so a rule reached through several hostnames,
    /// matches or ports is stored once.
    pub rules: Vec<RuleConfig>,
    /// Every ServiceBackend referenced by a rule (directly, by a mirror, by an aggregate part, or
    /// as a failover target), keyed by `namespace/name`.
    pub backends: BTreeMap<String, BackendConfig>,
    /// How a replica shuts down without failing requests.
    pub drain: DrainConfig,
    /// State shared by all replicas (global rate limits, shared caches), when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_state: Option<SharedStateConfig>,
}

/// The namespace and name of a Kubernetes object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectKey {
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl ObjectKey {
    /// A key from its parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    /// `namespace/name`, the form used as a key in [`Snapshot::backends`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A key of a Secret, and the file the proxy reads it from.
///
/// `path` is always `<namespace>/<name>/<key>`, relative to the secrets root the proxy is started
/// with (the directory where the operator mounts Secrets in a cluster; a temporary directory
/// written from `Secret` manifests under `portcullis run`). The other fields say where the file
/// comes from, for error messages and for whoever mounts it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretFile {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// Key inside the Secret's data.
    pub key: String,
    /// The file, relative to the secrets root: `<namespace>/<name>/<key>`.
    pub path: String,
}

impl SecretFile {
    /// The file holding `key` of Secret `namespace/name`, at its conventional path.
    pub fn new(namespace: &str, name: &str, key: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
            path: format!("{namespace}/{name}/{key}"),
        }
    }
}

/// The protocol a listener port speaks to clients.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// Plain HTTP/1.1 (and HTTP/2 with prior knowledge).
    #[serde(rename = "HTTP")]
    Http,
    /// HTTP/1.1 and HTTP/2 over TLS.
    #[serde(rename = "HTTPS")]
    Https,
}

/// Everything served on one port. All Gateway listeners sharing a port are merged here.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerConfig {
    /// The port to listen on.
    pub port: u16,
    /// HTTP or HTTPS (the same for every Gateway listener on the port).
    pub protocol: Protocol,
    /// Certificates, for HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Virtual hosts, most specific first; the first whose hostname matches the request's host is
    /// the only one consulted.
    pub virtual_hosts: Vec<VirtualHost>,
}

/// The certificates of an HTTPS port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    /// Ordered like virtual hosts: entries of the most specific listener hostname first, entries
    /// without hostname last. For a client's SNI the proxy takes the entries of the first
    /// hostname that matches it (or those without hostname), and among them the first
    /// certificate whose names cover the SNI, else the first of them. Without SNI: the entries
    /// without hostname, else the first entry.
    pub certificates: Vec<CertificateConfig>,
}

/// One certificate and its private key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateConfig {
    /// The hostname of the Gateway listener this certificate belongs to (`*.` wildcards allowed);
    /// absent for a listener without hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The certificate chain, PEM (`tls.crt` of a `kubernetes.io/tls` Secret).
    pub cert: SecretFile,
    /// The private key, PEM (`tls.key`).
    pub key: SecretFile,
}

/// The routes for one hostname (exact, `*.` wildcard, or `*` for any host) on a port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualHost {
    /// `api.example.com`, `*.example.com`, or `*` (every host).
    pub hostname: String,
    /// The name of the Gateway listener these routes attached to (for metrics, and to tell an
    /// HTTPS client whose `Host` belongs to another listener than its SNI).
    pub listener: String,
    /// Route matches in precedence order: the first that matches the request wins. Empty means
    /// every request for this host gets 404.
    pub routes: Vec<RouteEntry>,
}

/// One match of one rule, placed in precedence order.
///
/// Precedence, highest first (Gateway API HTTPRoute, plus our choice for regular expressions):
/// `Exact` path; then `RegularExpression` path (longer expression first); then `PathPrefix`
/// (more characters first); then a method match; then more header matches; then more query
/// matches; then the older Route (creation timestamp); then the Route's `namespace/name`; then
/// the rule's index in the Route; then the match's index in the rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteEntry {
    /// Index into [`Snapshot::rules`]: what to do with a matching request.
    pub rule: usize,
    /// Index of this match in the rule's `matches` (for logs and metrics).
    pub match_index: usize,
    /// The conditions, all of which must hold.
    pub r#match: MatchConfig,
}

/// Conditions on a request; all must hold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchConfig {
    /// The path condition (always present; `PathPrefix /` matches every path).
    pub path: PathMatchConfig,
    /// The exact method; `GET` does not match `HEAD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// Header conditions. Names are lowercase and unique (only the first of duplicates is kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatchConfig>,
    /// Query parameter conditions, case-sensitive. Names are unique (first of duplicates kept).
    /// With a repeated parameter in the request, its first value is compared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<ValueMatchConfig>,
}

/// A path condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathMatchConfig {
    /// `Exact` (whole path, case-sensitive), `PathPrefix` (whole segments) or
    /// `RegularExpression` (Rust `regex` syntax, must match the whole path: the proxy anchors it).
    #[serde(rename = "type")]
    pub kind: PathMatchType,
    /// The path, prefix or expression. A `PathPrefix` is stored without trailing `/` (except the
    /// prefix `/` itself), so `/foo/` and `/foo` mean and are written the same.
    pub value: String,
}

/// A header or query parameter condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueMatchConfig {
    /// The header (lowercase) or parameter name.
    pub name: String,
    /// `Exact` or `RegularExpression` (must match the whole value: the proxy anchors it).
    #[serde(rename = "type")]
    pub kind: ValueMatchType,
    /// The value or expression.
    pub value: String,
}

/// One rule of one Route: what happens to the requests it matches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleConfig {
    /// The Route the rule belongs to.
    pub route: ObjectKey,
    /// The rule's index in the Route's `rules`.
    pub rule_index: usize,
    /// The rule's name, if it has one (for metrics and access logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Request and response filters, in the order the rule lists them. Redirects are not here:
    /// they are an [`Action`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<FilterConfig>,
    /// Where the request goes.
    pub action: Action,
    /// The policies in force, Gateway defaults already applied.
    pub policies: ResolvedPolicies,
}

/// A change to the request or response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum FilterConfig {
    /// Edit the request headers sent upstream.
    RequestHeaderModifier(HeaderModifierConfig),
    /// Edit the response headers sent to the client.
    ResponseHeaderModifier(HeaderModifierConfig),
    /// Rewrite the host and/or path sent upstream.
    #[serde(rename = "URLRewrite")]
    UrlRewrite(UrlRewriteConfig),
    /// Send a copy of the request to another backend and ignore its answer.
    RequestMirror(MirrorConfig),
}

/// Header edits. Names are lowercase; apply `set`, then `add`, then `remove`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderModifierConfig {
    /// Replace every existing value of the header (or add it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HeaderValueConfig>,
    /// Append a value after the existing ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HeaderValueConfig>,
    /// Remove every value of these headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A header name (lowercase) and value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderValueConfig {
    /// Header name, lowercase.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// A path rewrite (for a redirect or an upstream rewrite).
///
/// `ReplacePrefixMatch` replaces the part of the path matched by the entry's `PathPrefix`
/// (whole segments, per Gateway API's table); the compiler guarantees such a rule has exactly one
/// match, of type `PathPrefix`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathModifierConfig {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    pub kind: PathModifierType,
    /// The new full path, or what replaces the matched prefix (may be empty).
    pub value: String,
}

/// Rewrite what is sent upstream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UrlRewriteConfig {
    /// The `Host` sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The path sent upstream (the query string is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifierConfig>,
}

/// Mirror a share of requests to a backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MirrorConfig {
    /// Key into [`Snapshot::backends`]; `None` when the ServiceBackend does not exist (then
    /// nothing is mirrored; the primary request is unaffected).
    #[serde(default)]
    pub backend: Option<String>,
    /// Percentage of requests mirrored, 0–100.
    pub percent: u32,
}

/// What a rule does with a matching request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Action {
    /// Forward to one backend, chosen by weight. Shares whose `backend` is `None` (a reference
    /// that did not resolve) answer 500; an empty list answers 500 to every request; weight 0
    /// receives nothing. If every weight is 0, every request answers 500.
    Backends {
        /// The weighted backends.
        backends: Vec<WeightedBackend>,
    },
    /// Call several backends in parallel and merge their JSON bodies into one object.
    Aggregate {
        /// The parts, keyed in the merged object by their names.
        parts: Vec<AggregatePartConfig>,
    },
    /// Answer with a redirect; no backend is called.
    Redirect(RedirectConfig),
}

/// One weighted share of a rule's traffic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedBackend {
    /// Key into [`Snapshot::backends`]; `None` when the reference did not resolve, so this share
    /// of the traffic answers 500.
    #[serde(default)]
    pub backend: Option<String>,
    /// Relative share (0–1,000,000).
    pub weight: u32,
}

/// One backend call of an aggregate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AggregatePartConfig {
    /// The key of this part in the merged JSON object.
    pub name: String,
    /// Key into [`Snapshot::backends`]; `None` when the reference did not resolve (the part then
    /// fails as if the backend answered 500, and `on_failure` applies).
    #[serde(default)]
    pub backend: Option<String>,
    /// The path (and query) requested; `{path}` stands for the original request path.
    pub path: String,
    /// Time limit for this part, in milliseconds (0: none).
    pub timeout_ms: u64,
    /// `Fail`, `Null` or `Omit`.
    pub on_failure: PartFailurePolicy,
}

/// A redirect answer. Unset fields are taken from the request, per Gateway API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedirectConfig {
    /// Scheme of the location; the request's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Scheme>,
    /// Host of the location; the request's (without port) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Path of the location; the request's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifierConfig>,
    /// Port of the location. When unset: the well-known port of `scheme` if `scheme` is set,
    /// else the port the request arrived on. Omitted from `Location` when it is the scheme's
    /// well-known port (http 80, https 443).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// 301, 302, 303, 307 or 308.
    pub status_code: u16,
}

/// The policies in force for a rule, after inheriting the Gateway's defaults (a rule's policy
/// replaces the default of the same kind as a whole). `None` means the policy does not apply.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResolvedPolicies {
    /// Time limits.
    #[serde(default, skip_serializing_if = "TimeoutsConfig::is_empty")]
    pub timeouts: TimeoutsConfig,
    /// Retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// Authentication (`None` also when the rule opted out with `type: None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Rate limiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// Response caching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheConfig>,
    /// CORS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfig>,
}

/// Time limits, in milliseconds. `None`: not configured (no limit). `Some(0)`: explicitly
/// disabled with `0s` (also no limit).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// The whole transaction, retries included; exceeded → 504.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_ms: Option<u64>,
    /// One attempt against one endpoint; exceeded → that attempt fails with 504.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request_ms: Option<u64>,
}

impl TimeoutsConfig {
    /// True when neither timeout is configured.
    pub fn is_empty(&self) -> bool {
        self.request_ms.is_none() && self.backend_request_ms.is_none()
    }
}

/// Retries of failed attempts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first attempt (`2` means up to three tries).
    pub attempts: u32,
    /// The failures retried (sorted, unique).
    pub on: Vec<RetryOn>,
    /// Wait before the first retry, in milliseconds (doubled each time, with jitter).
    pub backoff_ms: u64,
    /// Retries may add at most this percentage to the requests in flight to a backend.
    pub budget_percent: u32,
    /// Also retry non-idempotent methods.
    pub non_idempotent: bool,
}

/// How a rule authenticates callers; unauthenticated requests get 401.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum AuthConfig {
    /// An API key in a header, checked against `consumer:key` lines.
    ApiKey {
        /// The file of `consumer:key` lines.
        keys: SecretFile,
        /// The request header carrying the key (lowercase).
        header: String,
    },
    /// A JWT bearer token checked against a JWKS.
    #[serde(rename = "JWT")]
    Jwt {
        /// The required `iss`.
        issuer: String,
        /// Accepted `aud` values; empty accepts any.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        audiences: Vec<String>,
        /// The file holding the JWKS document.
        jwks: SecretFile,
        /// Accepted algorithms.
        algorithms: Vec<JwtAlgorithm>,
    },
    /// HTTP Basic credentials checked against `user:bcrypt-hash` lines.
    Basic {
        /// The file of htpasswd-style lines.
        users: SecretFile,
    },
}

/// A token-bucket rate limit; requests over it get 429 with `Retry-After`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests allowed per period and key.
    pub requests: u32,
    /// The refill period, in milliseconds.
    pub period_ms: u64,
    /// Extra requests allowed in a burst.
    pub burst: u32,
    /// What the limit counts by.
    pub key: RateLimitKeyConfig,
    /// `Local` (per replica) or `Global` (in [`Snapshot::shared_state`]).
    pub scope: RateLimitScope,
}

/// The key a rate limit counts by.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitKeyConfig {
    /// `ClientIP`, `Header`, `Claim` or `ApiKey`.
    #[serde(rename = "type")]
    pub kind: RateLimitKeyType,
    /// Header name (lowercase) or claim name, for `Header` and `Claim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Response caching for GET and HEAD.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheConfig {
    /// Freshness when the backend does not say, in milliseconds.
    pub ttl_ms: u64,
    /// Request headers (lowercase, in the order given) that are part of the cache key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vary: Vec<String>,
    /// How long a stale response may be served when the backend fails, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_if_error_ms: Option<u64>,
    /// `Local` (per replica) or `Shared` (in [`Snapshot::shared_state`]).
    pub backend: CacheBackend,
}

/// Cross-origin resource sharing; the gateway answers preflight requests itself.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins (`https://*.example.com` matches any subdomain depth; `*` any origin).
    pub allow_origins: Vec<String>,
    /// Allowed methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Response headers exposed to the caller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Whether credentials are allowed (then origins, methods and headers are echoed, never `*`).
    pub allow_credentials: bool,
    /// Seconds a browser may cache the preflight answer.
    pub max_age: u32,
}

/// A ServiceBackend: where its endpoints come from and how they are treated.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendConfig {
    /// Where the endpoints come from.
    pub discovery: Discovery,
    /// `HTTP1` or `HTTP2` towards the endpoints.
    pub protocol: UpstreamProtocol,
    /// TLS towards the endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTlsConfig>,
    /// Time allowed to connect to an endpoint, in milliseconds.
    pub connect_timeout_ms: u64,
    /// How requests are spread over endpoints.
    pub load_balancer: LoadBalancerConfig,
    /// Active health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckConfig>,
    /// Passive outlier ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetectionConfig>,
    /// Overload limits; requests beyond them get 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// Keys into [`Snapshot::backends`], in order, that take the traffic when this backend has no
    /// healthy endpoint: the first with a healthy endpoint serves. Already flattened (each
    /// target is followed by its own failover targets, depth first, each backend once, never
    /// this one), so the proxy does not follow the targets' own lists. Only valid backends that
    /// exist are listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<String>,
}

/// Where a backend's endpoints come from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Discovery {
    /// Fixed addresses (IPs or DNS names, resolved by the proxy).
    Static {
        /// The endpoints, in the order the ServiceBackend lists them.
        endpoints: Vec<EndpointConfig>,
    },
    /// The ready endpoints of a Kubernetes Service, from its EndpointSlices.
    Service {
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        name: String,
        /// The Service port (the proxy maps it to the endpoints' target port through the
        /// EndpointSlices).
        port: u16,
    },
}

/// A static endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointConfig {
    /// IP address or DNS name.
    pub address: String,
    /// Port.
    pub port: u16,
}

/// TLS from the gateway to a backend's endpoints.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// Server name to send and verify; the endpoint's address when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// CA bundle (PEM) that signs the endpoints' certificates; system roots when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<SecretFile>,
}

/// Load balancing over a backend's endpoints.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerConfig {
    /// `RoundRobin`, `LeastRequest`, `ConsistentHash` or `Random`.
    pub policy: LoadBalancerPolicy,
    /// What to hash; set exactly when `policy` is `ConsistentHash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<HashOn>,
}

/// The key of consistent hashing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum HashOn {
    /// A request header (name lowercase).
    Header {
        /// The header name.
        name: String,
    },
    /// A cookie.
    Cookie {
        /// The cookie name.
        name: String,
    },
    /// The client IP (same trust rules as rate limiting).
    #[serde(rename = "ClientIP")]
    ClientIp,
}

/// Active health checking.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Path requested with GET; 2xx is healthy.
    pub path: String,
    /// Time between checks, in milliseconds.
    pub interval_ms: u64,
    /// Time a check may take, in milliseconds.
    pub timeout_ms: u64,
    /// Successes in a row that make an endpoint healthy.
    pub healthy_threshold: u32,
    /// Failures in a row that make an endpoint unhealthy.
    pub unhealthy_threshold: u32,
}

/// Passive outlier detection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetectionConfig {
    /// 5xx answers in a row that eject an endpoint.
    pub consecutive_5xx: u32,
    /// Gateway errors in a row (connect failure, reset, 502/503/504) that eject an endpoint.
    pub consecutive_gateway_errors: u32,
    /// Base ejection time, in milliseconds (longer on each repeated ejection).
    pub ejection_time_ms: u64,
    /// At most this share of the endpoints is ejected at once.
    pub max_ejection_percent: u32,
}

/// Overload limits of a backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Open connections to all endpoints together.
    pub max_connections: u32,
    /// Requests waiting for a connection.
    pub max_pending_requests: u32,
    /// Requests in flight.
    pub max_requests: u32,
}

/// Graceful shutdown timing, in milliseconds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrainConfig {
    /// After SIGTERM, keep accepting this long while `/ready` reports 503.
    pub delay_ms: u64,
    /// Then let in-flight requests finish for at most this long.
    pub timeout_ms: u64,
}

/// State shared by all replicas.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SharedStateConfig {
    /// The Redis server for global rate limits and shared caches.
    pub redis: RedisConfig,
}

/// Where the shared Redis is.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisConfig {
    /// `host:port`.
    pub address: String,
    /// The file holding the password, if Redis needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretFile>,
}

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The YAML could not be parsed into a snapshot.
    #[error("invalid config snapshot: {0}")]
    Parse(String),
    /// The snapshot could not be serialized.
    #[error("cannot serialize config snapshot: {0}")]
    Serialize(String),
    /// The snapshot is of a version this build does not understand.
    #[error("config snapshot apiVersion {found:?} is not supported (expected {API_VERSION:?})")]
    UnsupportedVersion {
        /// The `apiVersion` found.
        found: String,
    },
}

impl Snapshot {
    /// The content hash of this snapshot: lowercase hex SHA-256 of its compact JSON with
    /// `revision` emptied. Independent of the current `revision` value.
    pub fn compute_revision(&self) -> String {
        let unsealed = Snapshot {
            revision: String::new(),
            ..self.clone()
        };
        // Serializing plain structs, strings, integers and BTreeMaps to JSON cannot fail.
        let bytes = serde_json::to_vec(&unsealed).unwrap_or_default();
        hex(&Sha256::digest(&bytes))
    }

    /// Sets `revision` to the content hash.
    pub fn seal(&mut self) {
        self.revision = self.compute_revision();
    }

    /// True when `revision` is the content hash, i.e. the snapshot was not edited after sealing.
    pub fn revision_matches(&self) -> bool {
        self.revision == self.compute_revision()
    }

    /// The snapshot as YAML, as stored in the Gateway's ConfigMap.
    pub fn to_yaml(&self) -> Result<String, SnapshotError> {
        serde_saphyr::to_string(self).map_err(|e| SnapshotError::Serialize(e.to_string()))
    }

    /// Reads a snapshot from YAML, refusing unknown fields and unknown `apiVersion`s.
    pub fn from_yaml(text: &str) -> Result<Snapshot, SnapshotError> {
        let snapshot: Snapshot =
            serde_saphyr::from_str(text).map_err(|e| SnapshotError::Parse(e.to_string()))?;
        if snapshot.api_version != API_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                found: snapshot.api_version,
            });
        }
        Ok(snapshot)
    }

    /// The virtual hosts of the port, if the snapshot listens on it.
    pub fn listener(&self, port: u16) -> Option<&ListenerConfig> {
        self.listeners.iter().find(|l| l.port == port)
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let mut backends = BTreeMap::new();
        backends.insert(
            "shop/orders".to_owned(),
            BackendConfig {
                discovery: Discovery::Static {
                    endpoints: vec![EndpointConfig {
                        address: "127.0.0.1".to_owned(),
                        port: 8081,
                    }],
                },
                protocol: UpstreamProtocol::Http1,
                tls: None,
                connect_timeout_ms: 2000,
                load_balancer: LoadBalancerConfig {
                    policy: LoadBalancerPolicy::ConsistentHash,
                    hash_on: Some(HashOn::ClientIp),
                },
                health_check: None,
                outlier_detection: None,
                circuit_breaker: None,
                failover: vec![],
            },
        );
        let mut snapshot = Snapshot {
            api_version: API_VERSION.to_owned(),
            gateway: ObjectKey::new("shop", "edge"),
            revision: String::new(),
            listeners: vec![ListenerConfig {
                port: 443,
                protocol: Protocol::Https,
                tls: Some(TlsConfig {
                    certificates: vec![CertificateConfig {
                        hostname: Some("*.example.com".to_owned()),
                        cert: SecretFile::new("shop", "edge-tls", "tls.crt"),
                        key: SecretFile::new("shop", "edge-tls", "tls.key"),
                    }],
                }),
                virtual_hosts: vec![VirtualHost {
                    hostname: "*.example.com".to_owned(),
                    listener: "https".to_owned(),
                    routes: vec![RouteEntry {
                        rule: 0,
                        match_index: 0,
                        r#match: MatchConfig {
                            path: PathMatchConfig {
                                kind: PathMatchType::PathPrefix,
                                value: "/orders".to_owned(),
                            },
                            method: Some(Method::GET),
                            headers: vec![ValueMatchConfig {
                                name: "x-version".to_owned(),
                                kind: ValueMatchType::Exact,
                                value: "2".to_owned(),
                            }],
                            query_params: vec![],
                        },
                    }],
                }],
            }],
            rules: vec![RuleConfig {
                route: ObjectKey::new("shop", "orders"),
                rule_index: 0,
                name: None,
                filters: vec![FilterConfig::RequestMirror(MirrorConfig {
                    backend: None,
                    percent: 10,
                })],
                action: Action::Backends {
                    backends: vec![
                        WeightedBackend {
                            backend: Some("shop/orders".to_owned()),
                            weight: 9,
                        },
                        WeightedBackend {
                            backend: None,
                            weight: 1,
                        },
                    ],
                },
                policies: ResolvedPolicies {
                    timeouts: TimeoutsConfig {
                        request_ms: Some(0),
                        backend_request_ms: None,
                    },
                    auth: Some(AuthConfig::ApiKey {
                        keys: SecretFile::new("shop", "keys", "keys"),
                        header: "x-api-key".to_owned(),
                    }),
                    ..ResolvedPolicies::default()
                },
            }],
            backends,
            drain: DrainConfig {
                delay_ms: 5000,
                timeout_ms: 30000,
            },
            shared_state: None,
        };
        snapshot.seal();
        snapshot
    }

    #[test]
    fn yaml_round_trip_preserves_the_snapshot() {
        let snapshot = sample();
        let yaml = snapshot.to_yaml().expect("serializes");
        let back = Snapshot::from_yaml(&yaml).expect("parses");
        assert_eq!(back, snapshot);
        assert!(back.revision_matches());
    }

    #[test]
    fn revision_is_a_sha256_that_ignores_its_own_value_and_follows_content() {
        let snapshot = sample();
        assert_eq!(snapshot.revision.len(), 64);
        let mut other = snapshot.clone();
        other.revision = "bogus".to_owned();
        assert_eq!(other.compute_revision(), snapshot.revision);
        assert!(!other.revision_matches());
        other.drain.delay_ms = 1;
        assert_ne!(other.compute_revision(), snapshot.revision);
    }

    #[test]
    fn unknown_api_version_is_refused() {
        let mut snapshot = sample();
        snapshot.api_version = "portcullis.dev/config/v9".to_owned();
        let yaml = snapshot.to_yaml().expect("serializes");
        assert!(matches!(
            Snapshot::from_yaml(&yaml),
            Err(SnapshotError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let yaml = sample().to_yaml().expect("serializes");
        let yaml = yaml.replacen("drain:", "surprise: 1\ndrain:", 1);
        assert!(matches!(
            Snapshot::from_yaml(&yaml),
            Err(SnapshotError::Parse(_))
        ));
    }

    #[test]
    fn secret_files_live_at_namespace_name_key() {
        assert_eq!(
            SecretFile::new("shop", "edge-tls", "tls.crt").path,
            "shop/edge-tls/tls.crt"
        );
    }
}
