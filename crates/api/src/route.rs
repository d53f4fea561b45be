//! `Route`: how requests reach backends. Matching and filters follow Gateway API's HTTPRoute.

// Several `printcolumn(...)` entries each carry `type_`; clippy reads them as one repeated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::{
    AuthPolicy, CachePolicy, CorsPolicy, RateLimitPolicy, RequestBodyPolicy, RetryPolicy, Timeouts,
};

/// Rules that send matching requests on a Gateway to ServiceBackends.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "portcullis.dev",
    version = "v1alpha1",
    kind = "Route",
    namespaced,
    status = "RouteStatus",
    derive = "PartialEq",
    shortname = "proute",
    category = "portcullis",
    doc = "A Portcullis route: which requests on a Gateway go to which ServiceBackends, and with what policies.",
    printcolumn(name = "Hostnames", type_ = "string", json_path = ".spec.hostnames"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    /// The Gateways (and optionally their listeners) this Route attaches to.
    #[schemars(length(min = 1, max = 32))]
    pub parent_refs: Vec<ParentRef>,
    /// Hosts this Route serves; `*.example.com` matches any subdomain. Empty: every host the
    /// listener accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub hostnames: Vec<Hostname>,
    /// The rules, each matching some requests and saying where they go.
    #[schemars(length(min = 1, max = 64))]
    pub rules: Vec<RouteRule>,
}

/// A hostname, exact or with a leading `*.` wildcard label.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(transparent)]
pub struct Hostname(
    #[schemars(
        length(min = 1, max = 253),
        regex(
            pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
        )
    )]
    pub String,
);

/// A reference to a Gateway, optionally narrowed to one listener.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// Name of the Gateway.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Gateway; the Route's own when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// Name of the listener to attach to; every listener that accepts the Route when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub section_name: Option<String>,
    /// Port of the listeners to attach to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

/// One rule: matches, filters, where the request goes, and the policies that apply.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.backendRefs) && size(self.backendRefs) > 0 && has(self.aggregate))")
        .message("a rule sends requests either to backendRefs or to an aggregate, not both"),
    validation = Rule::new("!(has(self.filters) && self.filters.exists(f, f.type == 'RequestRedirect') && ((has(self.backendRefs) && size(self.backendRefs) > 0) || has(self.aggregate)))")
        .message("a RequestRedirect rule answers by itself: remove its backendRefs and aggregate"),
    validation = Rule::new("!(has(self.filters) && self.filters.exists(f, f.type == 'RequestRedirect') && self.filters.exists(f, f.type == 'URLRewrite'))")
        .message("RequestRedirect and URLRewrite cannot be combined in one rule")
)]
pub struct RouteRule {
    /// An optional name, shown in metrics and access logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: Option<String>,
    /// Conditions a request must meet; any one of them is enough. Default: every request
    /// (path prefix `/`).
    #[serde(default = "default_matches")]
    #[schemars(length(max = 16))]
    pub matches: Vec<RouteMatch>,
    /// Changes to the request or response, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(
        validation = Rule::new("self.filter(f, f.type == 'RequestHeaderModifier').size() <= 1 && self.filter(f, f.type == 'ResponseHeaderModifier').size() <= 1 && self.filter(f, f.type == 'RequestRedirect').size() <= 1 && self.filter(f, f.type == 'URLRewrite').size() <= 1")
            .message("each filter type except RequestMirror may appear at most once per rule")
    )]
    pub filters: Vec<RouteFilter>,
    /// ServiceBackends to send requests to, split by weight. A rule with none (and no
    /// aggregate or redirect) is valid and answers 500, as HTTPRoute's does; so does the share
    /// of a backend that does not resolve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub backend_refs: Vec<BackendRef>,
    /// Instead of `backendRefs`: call several backends in parallel and merge their JSON bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Aggregate>,
    /// Time limits (overrides the Gateway default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// Retries (overrides the Gateway default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Authentication (overrides the Gateway default; `type: None` opts out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthPolicy>,
    /// Rate limit (overrides the Gateway default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitPolicy>,
    /// Response caching (overrides the Gateway default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachePolicy>,
    /// CORS (overrides the Gateway default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsPolicy>,
    /// Request body limits (override the Gateway default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<RequestBodyPolicy>,
    /// The protocols a client may switch this rule's requests to with `Upgrade` (RFC 9110
    /// §7.8), tunnelled to the backend only once routing and the rule's policies accepted the
    /// request; any other `Upgrade` is ignored and the request served as HTTP/1.1.
    /// `[websocket]` when unset; `[]` tunnels nothing. `h2c` is never allowed: it would give
    /// the client an HTTP/2 session with the backend past every rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub upgrades: Option<Vec<String>>,
}

impl Default for RouteRule {
    fn default() -> Self {
        Self {
            name: None,
            matches: default_matches(),
            filters: Vec::new(),
            backend_refs: Vec::new(),
            aggregate: None,
            timeouts: None,
            retry: None,
            auth: None,
            rate_limit: None,
            cache: None,
            cors: None,
            request_body: None,
            upgrades: None,
        }
    }
}

fn default_matches() -> Vec<RouteMatch> {
    vec![RouteMatch::default()]
}

/// Conditions that must all hold for a request to match.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RouteMatch {
    /// The request path (default: prefix `/`).
    #[serde(default = "default_path")]
    pub path: PathMatch,
    /// The request method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// Request headers; names are case-insensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<HeaderMatch>,
    /// Query parameters; names and values are case-sensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub query_params: Vec<QueryParamMatch>,
}

impl Default for RouteMatch {
    fn default() -> Self {
        Self {
            path: default_path(),
            method: None,
            headers: Vec::new(),
            query_params: Vec::new(),
        }
    }
}

fn default_path() -> PathMatch {
    PathMatch {
        kind: PathMatchType::PathPrefix,
        value: "/".to_owned(),
    }
}

/// How a path is compared.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PathMatchType {
    /// The whole path, case-sensitive.
    Exact,
    /// A prefix of whole path segments: `/abc` matches `/abc` and `/abc/def`, not `/abcd`.
    #[default]
    PathPrefix,
    /// A regular expression (Rust `regex` syntax) that must match the whole path.
    RegularExpression,
}

/// A path condition.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == 'RegularExpression' || self.value.startsWith('/')")
        .message("path value must start with '/'"),
    validation = Rule::new("self.type == 'RegularExpression' || !(self.value.contains('//') || self.value.contains('/./') || self.value.contains('/../') || self.value.contains('%2f') || self.value.contains('%2F') || self.value.contains('#') || self.value.endsWith('/..') || self.value.endsWith('/.'))")
        .message("path value must be normalized: no '//', '/./', '/../', '%2f' or '#'")
)]
pub struct PathMatch {
    /// `PathPrefix` (default), `Exact` or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub kind: PathMatchType,
    /// The path, prefix or expression.
    #[serde(default = "default_path_value")]
    #[schemars(length(min = 1, max = 1024))]
    pub value: String,
}

fn default_path_value() -> String {
    "/".to_owned()
}

/// An HTTP method.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs, clippy::upper_case_acronyms)]
pub enum Method {
    GET,
    HEAD,
    POST,
    PUT,
    DELETE,
    CONNECT,
    OPTIONS,
    TRACE,
    PATCH,
}

impl Method {
    /// The method as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::GET => "GET",
            Method::HEAD => "HEAD",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::CONNECT => "CONNECT",
            Method::OPTIONS => "OPTIONS",
            Method::TRACE => "TRACE",
            Method::PATCH => "PATCH",
        }
    }
}

/// How a header or query value is compared.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ValueMatchType {
    /// Equal, case-sensitive.
    #[default]
    Exact,
    /// A regular expression that must match the whole value.
    RegularExpression,
}

/// A header condition.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub kind: ValueMatchType,
    /// Header name, case-insensitive.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
    )]
    pub name: String,
    /// The value.
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// A query parameter condition.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct QueryParamMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub kind: ValueMatchType,
    /// Parameter name, case-sensitive.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// The value.
    #[schemars(length(max = 1024))]
    pub value: String,
}

/// A ServiceBackend that receives a share of a rule's requests.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// Name of a ServiceBackend in the Route's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Relative share of requests (0 sends none).
    #[serde(default = "default_weight")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// The kinds of filter.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilterType {
    /// Edit request headers.
    RequestHeaderModifier,
    /// Edit response headers.
    ResponseHeaderModifier,
    /// Answer with a redirect instead of calling a backend.
    RequestRedirect,
    /// Rewrite the host or path sent upstream.
    #[serde(rename = "URLRewrite")]
    UrlRewrite,
    /// Send a copy of the request elsewhere and ignore its response.
    RequestMirror,
}

/// A change to the request or the response.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(self.type == 'RequestHeaderModifier') == has(self.requestHeaderModifier)")
        .message("requestHeaderModifier must be set for type RequestHeaderModifier, and only then"),
    validation = Rule::new("(self.type == 'ResponseHeaderModifier') == has(self.responseHeaderModifier)")
        .message("responseHeaderModifier must be set for type ResponseHeaderModifier, and only then"),
    validation = Rule::new("(self.type == 'RequestRedirect') == has(self.requestRedirect)")
        .message("requestRedirect must be set for type RequestRedirect, and only then"),
    validation = Rule::new("(self.type == 'URLRewrite') == has(self.urlRewrite)")
        .message("urlRewrite must be set for type URLRewrite, and only then"),
    validation = Rule::new("(self.type == 'RequestMirror') == has(self.requestMirror)")
        .message("requestMirror must be set for type RequestMirror, and only then")
)]
pub struct RouteFilter {
    /// Which filter this is; the field of the same name holds its settings.
    #[serde(rename = "type")]
    pub kind: FilterType,
    /// Settings for `RequestHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,
    /// Settings for `ResponseHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,
    /// Settings for `RequestRedirect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RequestRedirect>,
    /// Settings for `URLRewrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewrite>,
    /// Settings for `RequestMirror`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
}

/// A header name and value.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HeaderValue {
    /// Header name, case-insensitive.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
    )]
    pub name: String,
    /// Header value.
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// Header edits: `set` replaces, `add` appends, `remove` deletes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HeaderModifier {
    /// Headers to set, replacing any existing values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub set: Vec<HeaderValue>,
    /// Headers to add, after any existing values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub add: Vec<HeaderValue>,
    /// Header names to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub remove: Vec<String>,
}

/// How a path is rewritten.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathModifierType {
    /// Replace the whole path.
    ReplaceFullPath,
    /// Replace the part matched by the rule's `PathPrefix` match.
    ReplacePrefixMatch,
}

/// A path rewrite.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(self.type == 'ReplaceFullPath') == has(self.replaceFullPath)")
        .message("replaceFullPath must be set for type ReplaceFullPath, and only then"),
    validation = Rule::new("(self.type == 'ReplacePrefixMatch') == has(self.replacePrefixMatch)")
        .message("replacePrefixMatch must be set for type ReplacePrefixMatch, and only then")
)]
pub struct PathModifier {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    pub kind: PathModifierType,
    /// The new path, for `ReplaceFullPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub replace_full_path: Option<String>,
    /// What replaces the matched prefix, for `ReplacePrefixMatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub replace_prefix_match: Option<String>,
}

/// A URL scheme.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Scheme {
    #[serde(rename = "http")]
    Http,
    #[serde(rename = "https")]
    Https,
}

/// Answer with a redirect.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirect {
    /// Scheme of the new location; the request's when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Scheme>,
    /// Host of the new location; the request's when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub hostname: Option<String>,
    /// Path of the new location; the request's when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
    /// Port of the new location. When empty: the scheme's well-known port if `scheme` is set,
    /// else the listener's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// 301, 302 (default), 303, 307 or 308.
    #[serde(default = "default_redirect_status")]
    #[x_kube(
        validation = Rule::new("self in [301, 302, 303, 307, 308]")
            .message("statusCode must be one of 301, 302, 303, 307, 308")
    )]
    pub status_code: u16,
}

fn default_redirect_status() -> u16 {
    302
}

/// Rewrite the request sent upstream.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UrlRewrite {
    /// The Host sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub hostname: Option<String>,
    /// The path sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
}

/// Mirror requests to another ServiceBackend (fire and forget).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirror {
    /// The ServiceBackend receiving the copies.
    pub backend_ref: BackendName,
    /// Share of requests mirrored, in percent.
    #[serde(default = "default_mirror_percent")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: u32,
    /// At most this many mirrored requests of the rule in flight at once (per replica); a copy
    /// beyond it is dropped and counted, never queued, so a slow mirror cannot hold memory or
    /// connections that the real traffic needs.
    #[serde(default = "default_mirror_max_in_flight")]
    #[schemars(range(min = 1, max = 1024))]
    pub max_in_flight: u32,
}

fn default_mirror_percent() -> u32 {
    100
}

/// The default of [`RequestMirror::max_in_flight`].
pub fn default_mirror_max_in_flight() -> u32 {
    16
}

/// A ServiceBackend by name, in the Route's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackendName {
    /// Name of the ServiceBackend.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Fan a request out to several backends in parallel and answer with one JSON object whose keys
/// are the part names and whose values are the parts' JSON bodies.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Aggregate {
    /// The parts, called concurrently.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(
        validation = Rule::new("self.all(p, self.exists_one(o, o.name == p.name))")
            .message("aggregate part names must be unique")
    )]
    pub parts: Vec<AggregatePart>,
}

/// What happens to the whole response when one part fails (error status, bad JSON or timeout).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PartFailurePolicy {
    /// The whole request fails with 502 (504 on timeout).
    #[default]
    Fail,
    /// The part's key is `null` and the failure is listed under `_errors`; the rest of the
    /// response is served.
    Tolerate,
    /// The part's key is left out and the failure is listed under `_errors`.
    Omit,
}

/// One backend call of an aggregate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AggregatePart {
    /// The key of this part in the merged object.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[A-Za-z][A-Za-z0-9_]*$"))]
    pub name: String,
    /// The ServiceBackend to call.
    pub backend_ref: BackendName,
    /// The path (and query) to request; `{path}` stands for the original request path.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("part path must start with '/'"))]
    pub path: String,
    /// Time limit for this part.
    #[serde(default = "default_part_timeout")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"), length(max = 32))]
    pub timeout: String,
    /// `Fail` (default), `Tolerate` or `Omit`.
    #[serde(default)]
    pub on_failure: PartFailurePolicy,
}

fn default_part_timeout() -> String {
    "5s".to_owned()
}

/// What the operator observed of a Route, per Gateway it names.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    /// One entry per parent Gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<RouteParentStatus>,
}

/// The status of a Route on one parent.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The parent this entry is about.
    pub parent_ref: ParentRef,
    /// `Accepted` and `ResolvedRefs`, with Gateway API reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
