//! Policies a route rule can ask for, and that a Gateway's `defaults` can set for every rule:
//! timeouts, retries, authentication, rate limits, response caching and CORS.
//!
//! Each policy is one self-contained object so that inheritance is simple and predictable: a
//! rule's policy replaces the Gateway default of the same kind as a whole, it is never merged
//! field by field.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Time limits for a request (Gateway API `HTTPRouteTimeouts`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.request) && has(self.backendRequest)) || self.request == '0s' || duration(self.backendRequest) <= duration(self.request)")
        .message("backendRequest must not be longer than request (unless request is 0s, which disables it)")
)]
pub struct Timeouts {
    /// The whole transaction from the client's point of view, retries included. When it runs out
    /// the client gets 504. `0s` disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    pub request: Option<String>,
    /// One attempt against one backend endpoint, from sending the request to the end of the
    /// response. When it runs out the attempt fails with 504 (and may be retried). `0s` disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    pub backend_request: Option<String>,
    /// The longest a backend endpoint may stay silent during an attempt: before its response
    /// head, and between two pieces of its body. When it runs out the attempt fails with 504.
    /// `60s` when unset (so a backend that accepts a request and never answers cannot hold a
    /// client for ever); `0s` disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    pub backend_idle: Option<String>,
}

/// What makes a failed attempt worth retrying.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum RetryOn {
    /// The connection to the endpoint could not be made (refused, reset before a response, timeout).
    ConnectFailure,
    /// The endpoint answered 502, 503 or 504, or the attempt timed out.
    GatewayError,
    /// The endpoint answered any 5xx status.
    #[serde(rename = "5xx")]
    ServerError,
}

/// Retries of failed attempts, bounded by a budget so that retries never multiply an outage.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// How many retries after the first attempt (Gateway API semantics: `attempts: 2` means up to
    /// three tries in all).
    #[serde(default = "default_retry_attempts")]
    #[schemars(range(min = 0, max = 10))]
    pub attempts: u32,
    /// The classes of failure that are retried. Retries never happen once the response has
    /// started. Unset: `[ConnectFailure, GatewayError]`, or `[ConnectFailure]` alone when `codes`
    /// is set (HTTPRoute's retry: the listed codes and connection errors).
    /// (Not named `on`: YAML 1.1 parsers, kubectl's among them, read that key as `true`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 3))]
    pub retry_on: Option<Vec<RetryOn>>,
    /// HTTP status codes (400-599) that are retried, as in HTTPRoute's retry, in addition to
    /// the classes of `retryOn`: e.g. `[429, 503]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new("self.all(c, c >= 400 && c <= 599)")
            .message("retry codes must be HTTP status codes from 400 to 599")
    )]
    pub codes: Vec<u16>,
    /// Wait before each retry (doubled each time, with jitter).
    #[serde(default = "default_retry_backoff")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    pub backoff: String,
    /// Retries may add at most this percentage to the requests in flight to a backend; beyond it
    /// failures are returned as they are.
    #[serde(default = "default_retry_budget")]
    #[schemars(range(min = 0, max = 100))]
    pub budget_percent: u32,
    /// Also retry methods that are not idempotent (POST, PATCH). Off by default: a retried POST
    /// can do its work twice.
    #[serde(default)]
    pub non_idempotent: bool,
}

fn default_retry_attempts() -> u32 {
    2
}
/// The classes retried when `retryOn` is unset: without `codes`, connection failures and
/// gateway errors; with `codes`, connection failures only (the codes say the rest).
pub fn default_retry_on(codes: &[u16]) -> Vec<RetryOn> {
    if codes.is_empty() {
        vec![RetryOn::ConnectFailure, RetryOn::GatewayError]
    } else {
        vec![RetryOn::ConnectFailure]
    }
}
fn default_retry_backoff() -> String {
    "25ms".to_owned()
}
fn default_retry_budget() -> u32 {
    20
}

/// How a rule authenticates its callers.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthType {
    /// A key from a Secret, sent in a header (default `X-API-Key`) or a query parameter.
    ApiKey,
    /// A JSON Web Token in the `Authorization: Bearer` header, checked against a JWKS.
    #[serde(rename = "JWT")]
    Jwt,
    /// HTTP Basic credentials checked against a htpasswd-style Secret.
    Basic,
    /// No authentication: lets a rule opt out of a Gateway-wide default.
    None,
}

/// A key in a Secret in the Route's (or Gateway's) namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// The request header an API key is read from when neither `header` nor `queryParameter` is set.
pub const DEFAULT_API_KEY_HEADER: &str = "X-API-Key";

/// API-key authentication: each line of the Secret key is `consumer:key`, so rate limits and
/// access logs can name the consumer without ever showing the key.
///
/// The key is read from one place: the `header` (default `X-API-Key`), or the `queryParameter`
/// instead when that is set. A caller that sends the key elsewhere gets 401, so a key never
/// travels in a place the rule does not strip.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.header) && has(self.queryParameter))")
        .message("set header or queryParameter, not both: the key is read from one place")
)]
pub struct ApiKeyAuth {
    /// The Secret key holding the `consumer:key` lines.
    pub secret_ref: SecretKeyRef,
    /// The request header carrying the key (case-insensitive). `X-API-Key` when neither this
    /// nor `queryParameter` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
    )]
    pub header: Option<String>,
    /// The query parameter carrying the key, for clients that cannot set headers (browser
    /// links, webhooks), instead of a header. Its value is percent-decoded. Keys in URLs end up
    /// in browser histories and server logs: prefer a header where the client allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9._~-]+$"))]
    pub query_parameter: Option<String>,
    /// Forward the key to the backend. By default the key header (or query parameter) is
    /// removed before the request is forwarded, so backends and their logs never see it.
    #[serde(default)]
    pub keep_credential: bool,
}

/// Request headers a JWT claim may never be forwarded in: they frame or route the request, or
/// carry a credential (any header starting with `keep-alive` is refused too). The same list the
/// data plane refuses; the CEL rule on [`ClaimToHeader::header`] spells it out.
pub const RESERVED_CLAIM_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "content-length",
    "cookie",
    "host",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether a verified claim may be forwarded in the request header `name`: not one of
/// [`RESERVED_CLAIM_HEADERS`] and not a `keep-alive` header (case-insensitive).
pub fn is_reserved_claim_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    RESERVED_CLAIM_HEADERS.contains(&name.as_str()) || name.starts_with("keep-alive")
}

/// A verified claim forwarded to the backend as a request header.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimToHeader {
    /// The claim's name in the token, like `sub` or `email`. Strings, numbers and booleans are
    /// sent as their text, other values as JSON; a claim the token lacks leaves the header out.
    #[schemars(length(min = 1, max = 256))]
    pub claim: String,
    /// The request header it is sent in (case-insensitive). Any copy the client sent is removed
    /// first, so the backend can trust it. Headers that frame the request or carry credentials
    /// (`Authorization`, `Host`, `Content-Length`, `Connection`, ...) are refused.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
    )]
    #[x_kube(
        validation = Rule::new("!self.matches('(?i)^(authorization|connection|content-length|cookie|host|proxy-authorization|te|trailer|transfer-encoding|upgrade|keep-alive.*)$')")
            .message("a claim cannot be forwarded in a header that frames the request or carries credentials (Authorization, Cookie, Host, Content-Length, Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Authorization); choose another name, like X-Jwt-Sub")
    )]
    pub header: String,
}

/// JWT authentication with an allow-list of algorithms and keys chosen by `kid` from a JWKS,
/// held in a Secret (`jwksSecretRef`) or fetched from the issuer (`jwksUri`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.jwksSecretRef) != has(self.jwksUri)")
        .message("set exactly one of jwksSecretRef and jwksUri"),
    validation = Rule::new("has(self.jwksSecretRef) || !has(self.algorithms) || !self.algorithms.exists(a, a.startsWith('HS'))")
        .message("HS256, HS384 and HS512 need their shared secret in jwksSecretRef: a JWKS fetched from jwksUri holds only public keys")
)]
pub struct JwtAuth {
    /// The required `iss` claim.
    #[schemars(length(min = 1, max = 512))]
    pub issuer: String,
    /// Accepted `aud` values; empty accepts any audience.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub audiences: Vec<String>,
    /// The Secret key holding the issuer's JWKS document (the only place for the shared secret
    /// of HS256/384/512). Changes are picked up without a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_secret_ref: Option<SecretKeyRef>,
    /// The issuer's JWKS URL (`https` only), fetched by every gateway replica, cached and
    /// refreshed as its `Cache-Control` says; a token with an unknown `kid` triggers an early
    /// refresh, and the last good key set keeps serving while the issuer is unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 9, max = 2048),
        regex(pattern = r"^https://[^\s/?#@]+(/[^\s#]*)?$")
    )]
    pub jwks_uri: Option<String>,
    /// Algorithms accepted from this issuer. `none` is never accepted, nor an HMAC signature
    /// made with a public key.
    #[serde(default = "default_jwt_algorithms")]
    #[schemars(length(min = 1, max = 12))]
    pub algorithms: Vec<JwtAlgorithm>,
    /// Clock skew allowed when checking `exp` and `nbf`, at most `5m`.
    #[serde(default = "default_jwt_leeway")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    #[x_kube(
        validation = Rule::new("duration(self) <= duration('5m')")
            .message("leeway must be at most 5m")
    )]
    pub leeway: String,
    /// Verified claims forwarded to the backend as request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["header"]))]
    #[x_kube(
        validation = Rule::new("self.all(c, self.exists_one(o, o.header == c.header))")
            .message("each header may carry only one claim")
    )]
    pub claims_to_headers: Vec<ClaimToHeader>,
    /// Forward the `Authorization` header (the token) to the backend. By default it is removed.
    #[serde(default)]
    pub keep_authorization: bool,
}

/// A JWT signing algorithm Portcullis verifies (RFC 7518 names).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl JwtAlgorithm {
    /// Whether the algorithm is an HMAC (HS256/384/512): its key is a shared secret, so it can
    /// only come from a Secret.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }
}

fn default_jwt_algorithms() -> Vec<JwtAlgorithm> {
    vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256]
}

fn default_jwt_leeway() -> String {
    "30s".to_owned()
}

/// Basic authentication against `user:hash` lines (bcrypt or argon2id) in a Secret key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The Secret key holding the htpasswd-style lines.
    pub secret_ref: SecretKeyRef,
    /// Forward the `Authorization` header (the password) to the backend. By default it is
    /// removed.
    #[serde(default)]
    pub keep_authorization: bool,
}

/// Authentication of a rule's callers. Unauthenticated requests get 401.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == 'ApiKey' ? has(self.apiKey) : !has(self.apiKey)")
        .message("apiKey must be set when type is ApiKey, and only then"),
    validation = Rule::new("self.type == 'JWT' ? has(self.jwt) : !has(self.jwt)")
        .message("jwt must be set when type is JWT, and only then"),
    validation = Rule::new("self.type == 'Basic' ? has(self.basic) : !has(self.basic)")
        .message("basic must be set when type is Basic, and only then"),
    validation = Rule::new("self.type != 'None' || !has(self.allowedConsumers)")
        .message("allowedConsumers needs an authentication type"),
    validation = Rule::new("!has(self.allowedConsumers) || self.allowedConsumers.all(c, size(c) > 0 && size(c) <= 256)")
        .message("each of allowedConsumers must be 1 to 256 characters")
)]
pub struct AuthPolicy {
    /// The kind of authentication.
    #[serde(rename = "type")]
    pub kind: AuthType,
    /// Settings for `type: ApiKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyAuth>,
    /// Settings for `type: JWT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtAuth>,
    /// Settings for `type: Basic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    /// The consumers the rule admits: API-key consumers, basic-auth users, or a JWT's `sub`.
    /// An authenticated caller not listed gets 403. Empty: every authenticated caller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub allowed_consumers: Vec<String>,
}

/// What identifies one caller for rate limiting.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimitKeyType {
    /// The client's IP: from the socket, or from `X-Forwarded-For` only when the peer is a
    /// trusted proxy (so the key cannot be spoofed).
    #[serde(rename = "ClientIP")]
    ClientIp,
    /// The value of a request header (named in `name`).
    Header,
    /// A claim of the verified JWT (named in `name`).
    Claim,
    /// The consumer named by the verified API key.
    ApiKey,
}

/// The key a rate limit counts by.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(self.type == 'Header' || self.type == 'Claim') == has(self.name)")
        .message("name is required for Header and Claim keys, and not allowed otherwise")
)]
pub struct RateLimitKey {
    /// What identifies a caller.
    #[serde(rename = "type")]
    pub kind: RateLimitKeyType,
    /// Header or claim name, for `Header` and `Claim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub name: Option<String>,
}

impl Default for RateLimitKey {
    fn default() -> Self {
        Self {
            kind: RateLimitKeyType::ClientIp,
            name: None,
        }
    }
}

/// Where a rate limit's counters live.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RateLimitScope {
    /// Each gateway replica counts on its own: with N replicas a caller gets up to N times the
    /// limit. Fast and needs nothing else.
    #[default]
    Local,
    /// All replicas share counters in the Gateway's `sharedState.redis`: the limit holds exactly.
    Global,
}

/// A token-bucket rate limit. Requests over the limit get 429 with `Retry-After`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitPolicy {
    /// Requests allowed per `period` and key.
    #[schemars(range(min = 1, max = 1_000_000_000))]
    #[x_kube(validation = Rule::new("self > 0").message("requests must be greater than 0"))]
    pub requests: u32,
    /// The period the `requests` refill over.
    #[serde(default = "default_rate_period")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    pub period: String,
    /// Extra requests a caller may burst above the steady rate.
    #[serde(default)]
    #[schemars(range(max = 1_000_000_000))]
    pub burst: u32,
    /// What the limit counts by (default: client IP).
    #[serde(default)]
    pub key: RateLimitKey,
    /// Per replica (`Local`) or shared by all replicas (`Global`).
    #[serde(default)]
    pub scope: RateLimitScope,
    /// With `scope: Global`, what a replica does when the shared Redis does not answer in time
    /// (within 100 ms, then at once for half a second before it tries again): `FailOpen` admits
    /// the request uncounted, `FailClosed` answers 503 with `Retry-After: 1`. Tokens a replica
    /// already holds are spent either way. Ignored with `scope: Local`, which needs no Redis.
    #[serde(default)]
    pub failure_mode: RateLimitFailureMode,
}

/// What a `Global` rate limit does while the shared Redis does not answer.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RateLimitFailureMode {
    /// Admit the request without counting it: the backend stays reachable and the limit is
    /// lifted while Redis is down.
    #[default]
    FailOpen,
    /// Refuse the request with 503 and `Retry-After: 1`: the limit is never exceeded, and the
    /// rule is unavailable while Redis is down.
    FailClosed,
}

impl RateLimitFailureMode {
    /// Whether this is the default, `FailOpen` (left out of a stored snapshot).
    pub fn is_fail_open(&self) -> bool {
        *self == RateLimitFailureMode::FailOpen
    }
}

fn default_rate_period() -> String {
    "1s".to_owned()
}

/// Where cached responses are stored.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheBackend {
    /// In the memory of each gateway replica.
    #[default]
    Local,
    /// In the Gateway's `sharedState.redis`, shared by every replica.
    Shared,
}

/// Response caching for GET and HEAD. The key includes the host, path, query and every `vary`
/// header; responses with `Set-Cookie`, `Cache-Control: private/no-store` or to requests with
/// `Authorization` are not stored unless the rule authenticates and is keyed by consumer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CachePolicy {
    /// How long a response stays fresh when the backend does not say (`Cache-Control: max-age`
    /// from the backend wins when it is shorter).
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    pub ttl: String,
    /// Request headers that are part of the cache key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub vary: Vec<String>,
    /// How long a stale response may still be served when the backend fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    pub stale_if_error: Option<String>,
    /// Per replica (`Local`) or shared (`Shared`, in Redis).
    #[serde(default)]
    pub backend: CacheBackend,
}

/// Cross-origin resource sharing: preflight requests are answered by the gateway.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Origins allowed to call, like `https://app.example.com`; `https://*.example.com` matches
    /// any subdomain; `*` any origin.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub allow_origins: Vec<String>,
    /// Methods allowed in cross-origin requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub allow_methods: Vec<String>,
    /// Request headers allowed in cross-origin requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub allow_headers: Vec<String>,
    /// Response headers the browser may expose to the caller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub expose_headers: Vec<String>,
    /// Whether the browser may send credentials. Then wildcards are answered with what the
    /// request asked for, never `*` (Fetch: browsers refuse `*` with credentials): the request's
    /// own `Origin` (with `Vary: Origin`), its `Access-Control-Request-Method` and
    /// `-Headers`.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Seconds a browser may cache the preflight answer.
    #[serde(default = "default_cors_max_age")]
    #[schemars(range(min = 0, max = 86_400))]
    pub max_age: u32,
}

fn default_cors_max_age() -> u32 {
    5
}

/// Limits on the request body a rule accepts. A larger body gets 413 before it reaches the
/// backend (at once when its `Content-Length` says so, as it streams when it is chunked).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestBodyPolicy {
    /// The largest request body accepted, in bytes.
    #[schemars(range(min = 1, max = 1_099_511_627_776u64))]
    pub max_bytes: u64,
}

/// The largest request body a rule accepts when neither it nor the Gateway's `defaults` set
/// `requestBody`: 10 MiB.
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 10 * 1024 * 1024;

/// Policies that apply to a rule: set on a Route rule, or on the Gateway as `defaults` that every
/// rule inherits unless it sets its own.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Policies {
    /// Request and per-attempt time limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// Retries of failed attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Authentication of callers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthPolicy>,
    /// Rate limiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitPolicy>,
    /// Response caching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachePolicy>,
    /// CORS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsPolicy>,
    /// Request body limits (10 MiB when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<RequestBodyPolicy>,
}
