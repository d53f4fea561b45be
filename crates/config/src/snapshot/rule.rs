//! Rules: what happens to a request once its route entry matched — filters, action, and the
//! policies in force.

use serde::{Deserialize, Serialize};

use super::{
    CacheBackend, JwtAlgorithm, ObjectKey, PartFailurePolicy, PathModifierType,
    RateLimitFailureMode, RateLimitKeyType, RateLimitScope, RetryOn, Scheme, SecretFile,
};

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
    /// The `Upgrade` protocols tunnelled, lower case; `None`: WebSocket only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrades: Option<Vec<String>>,
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
    /// Key into [`Snapshot::backends`](super::Snapshot::backends); `None` when the ServiceBackend does not exist (then
    /// nothing is mirrored; the primary request is unaffected).
    #[serde(default)]
    pub backend: Option<String>,
    /// Percentage of requests mirrored, 0–100.
    pub percent: u32,
    /// Mirrored requests of the rule in flight at once, at most; beyond it a copy is dropped.
    #[serde(
        default = "portcullis_api::route::default_mirror_max_in_flight",
        skip_serializing_if = "is_default_mirror_max_in_flight"
    )]
    pub max_in_flight: u32,
}

fn is_default_mirror_max_in_flight(n: &u32) -> bool {
    *n == portcullis_api::route::default_mirror_max_in_flight()
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
    /// Key into [`Snapshot::backends`](super::Snapshot::backends); `None` when the reference did not resolve, so this share
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
    /// Key into [`Snapshot::backends`](super::Snapshot::backends); `None` when the reference did not resolve (the part then
    /// fails as if the backend answered 500, and `on_failure` applies).
    #[serde(default)]
    pub backend: Option<String>,
    /// The path (and query) requested; `{path}` stands for the original request path.
    pub path: String,
    /// Time limit for this part, in milliseconds (0: none).
    pub timeout_ms: u64,
    /// `Fail`, `Tolerate` or `Omit`.
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
    /// The consumers `auth` admits, sorted (empty: every authenticated caller); any other
    /// authenticated caller gets 403.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_consumers: Vec<String>,
    /// Rate limiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// Response caching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheConfig>,
    /// CORS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfig>,
    /// The largest request body accepted, in bytes; `None`: the built-in default
    /// ([`portcullis_api::policy::DEFAULT_MAX_REQUEST_BODY_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_body_bytes: Option<u64>,
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
    /// The longest an endpoint may stay silent during an attempt (before its head, between
    /// two pieces of its body); exceeded → that attempt fails with 504. `None`: the built-in
    /// 60 s; `Some(0)`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_idle_ms: Option<u64>,
}

impl TimeoutsConfig {
    /// True when no timeout is configured.
    pub fn is_empty(&self) -> bool {
        self.request_ms.is_none()
            && self.backend_request_ms.is_none()
            && self.backend_idle_ms.is_none()
    }
}

/// Retries of failed attempts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first attempt (`2` means up to three tries).
    pub attempts: u32,
    /// The failures retried (sorted, unique).
    pub retry_on: Vec<RetryOn>,
    /// The response statuses retried besides `retry_on`'s classes (400-599, sorted, unique).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<u16>,
    /// Wait before the first retry, in milliseconds (doubled each time, with jitter).
    pub backoff_ms: u64,
    /// Retries may add at most this percentage to the requests in flight to a backend.
    pub budget_percent: u32,
    /// Also retry non-idempotent methods.
    pub non_idempotent: bool,
}

/// How a rule authenticates callers; unauthenticated requests get 401.
///
/// Credentials are removed before the request is forwarded unless the rule keeps them
/// (`keep_credential`, `keep_authorization`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum AuthConfig {
    /// An API key in a header or a query parameter, checked against `consumer:key` lines.
    ApiKey {
        /// The file of `consumer:key` lines.
        keys: SecretFile,
        /// Where the request carries the key.
        location: ApiKeyLocation,
        /// Forward the key header (or query parameter) to the upstream; removed when false.
        #[serde(default)]
        keep_credential: bool,
    },
    /// A JWT bearer token checked against a JWKS.
    #[serde(rename = "JWT")]
    Jwt {
        /// The required `iss`.
        issuer: String,
        /// Accepted `aud` values; empty accepts any.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        audiences: Vec<String>,
        /// Where the key set comes from.
        jwks: JwksConfig,
        /// Accepted algorithms, in the order written, without repeats. HMAC ones only with
        /// [`JwksConfig::Secret`].
        algorithms: Vec<JwtAlgorithm>,
        /// Clock skew allowed on `exp` and `nbf`, in milliseconds (at most 300,000).
        #[serde(default = "default_jwt_leeway_ms")]
        leeway_ms: u64,
        /// Verified claims forwarded to the upstream as request headers (any client-sent copy
        /// of those headers is removed first).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        claims_to_headers: Vec<ClaimHeaderConfig>,
        /// Forward `Authorization` to the upstream; removed when false.
        #[serde(default)]
        keep_authorization: bool,
    },
    /// HTTP Basic credentials checked against `user:hash` lines (bcrypt or argon2id).
    Basic {
        /// The file of htpasswd-style lines.
        users: SecretFile,
        /// Forward `Authorization` to the upstream; removed when false.
        #[serde(default)]
        keep_authorization: bool,
    },
}

/// The leeway of a JWT rule that does not say: 30 seconds, in milliseconds.
pub const DEFAULT_JWT_LEEWAY_MS: u64 = 30_000;

fn default_jwt_leeway_ms() -> u64 {
    DEFAULT_JWT_LEEWAY_MS
}

/// Where a request carries its API key: exactly one place.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum ApiKeyLocation {
    /// A request header (lowercase name).
    Header(String),
    /// A query parameter of that name (case-sensitive, as written); its value is
    /// percent-decoded.
    QueryParameter(String),
}

/// Where a JWT rule's key set comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum JwksConfig {
    /// A JWKS document in a Secret file (re-read when the Secret changes).
    Secret(SecretFile),
    /// An `https` URL each replica fetches and refreshes itself.
    Uri(String),
}

/// One verified claim forwarded as a request header.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimHeaderConfig {
    /// The claim's name in the token.
    pub claim: String,
    /// The request header (lowercase) it is sent in.
    pub header: String,
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
    /// `Local` (per replica) or `Global` (in [`Snapshot::shared_state`](super::Snapshot::shared_state)).
    pub scope: RateLimitScope,
    /// With `Global`: admit (`FailOpen`, the default, left out) or refuse (`FailClosed`) while
    /// the shared Redis does not answer.
    #[serde(default, skip_serializing_if = "RateLimitFailureMode::is_fail_open")]
    pub failure_mode: RateLimitFailureMode,
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
    /// `Local` (per replica) or `Shared` (in [`Snapshot::shared_state`](super::Snapshot::shared_state)).
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
