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

mod backend;
mod rule;

pub use self::{backend::*, rule::*};
pub use portcullis_api::{
    backend::{LoadBalancerPolicy, UpstreamProtocol},
    policy::{
        AuthType, CacheBackend, JwtAlgorithm, RateLimitFailureMode, RateLimitKeyType,
        RateLimitScope, RetryOn,
    },
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
    /// The stored snapshot (JSON or YAML, maybe gzip-compressed) could not be read.
    #[error("invalid config snapshot: {0}")]
    Parse(String),
    /// The snapshot could not be serialized.
    #[error("cannot serialize config snapshot: {0}")]
    Serialize(String),
    /// The snapshot refers to something it does not contain.
    #[error("inconsistent config snapshot: {0}")]
    Inconsistent(String),
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

    /// The snapshot as YAML, for people to read (golden files, fixtures written by hand).
    pub fn to_yaml(&self) -> Result<String, SnapshotError> {
        serde_saphyr::to_string(self).map_err(|e| SnapshotError::Serialize(e.to_string()))
    }

    /// The snapshot as stored in the Gateway's ConfigMap: indented JSON, which is YAML too and
    /// reads about ten times faster (5,000 routes: under 20 ms instead of about 160 ms).
    pub fn to_json(&self) -> Result<String, SnapshotError> {
        serde_json::to_string_pretty(self).map_err(|e| SnapshotError::Serialize(e.to_string()))
    }

    /// Reads a snapshot from YAML (JSON included: a document starting with `{` is tried as JSON
    /// first), refusing unknown fields and unknown `apiVersion`s.
    pub fn from_yaml(text: &str) -> Result<Snapshot, SnapshotError> {
        // JSON (what the operator stores) goes to the JSON parser, many times faster on large
        // snapshots; anything else, a YAML flow mapping that is not JSON included, to YAML.
        let json = text
            .trim_start()
            .starts_with('{')
            .then(|| serde_json::from_str::<Snapshot>(text));
        let snapshot = match json {
            Some(Ok(snapshot)) => snapshot,
            // Both errors, when neither reads it: which one helps depends on what was meant.
            Some(Err(json)) => serde_saphyr::from_str(text).map_err(|yaml| {
                SnapshotError::Parse(format!("as JSON: {json}; as YAML: {yaml}"))
            })?,
            None => {
                serde_saphyr::from_str(text).map_err(|e| SnapshotError::Parse(e.to_string()))?
            }
        };
        if snapshot.api_version != API_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                found: snapshot.api_version,
            });
        }
        Ok(snapshot)
    }

    /// Checks that the snapshot is internally consistent: every entry's `rule` indexes
    /// [`Snapshot::rules`], every backend key (weighted, mirror, aggregate part, failover) is in
    /// [`Snapshot::backends`], ports are unique, and every HTTPS port has a certificate. The
    /// compiler only writes consistent snapshots; this is for the data plane's load-time check of
    /// a snapshot that may have been edited by hand.
    pub fn check_references(&self) -> Result<(), SnapshotError> {
        let bad = |message: String| Err(SnapshotError::Inconsistent(message));
        let backend = |key: &Option<String>, what: &str| match key {
            Some(k) if !self.backends.contains_key(k) => Err(SnapshotError::Inconsistent(format!(
                "{what} names unknown backend {k:?}"
            ))),
            _ => Ok(()),
        };
        for (i, listener) in self.listeners.iter().enumerate() {
            if self.listeners[..i].iter().any(|l| l.port == listener.port) {
                return bad(format!("port {} is listed twice", listener.port));
            }
            if listener.protocol == Protocol::Https
                && listener
                    .tls
                    .as_ref()
                    .is_none_or(|t| t.certificates.is_empty())
            {
                return bad(format!("HTTPS port {} has no certificate", listener.port));
            }
            for vhost in &listener.virtual_hosts {
                if let Some(entry) = vhost.routes.iter().find(|e| e.rule >= self.rules.len()) {
                    return bad(format!(
                        "port {} host {}: rule {} does not exist",
                        listener.port, vhost.hostname, entry.rule
                    ));
                }
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let what = format!("rule {i} ({}#{})", rule.route, rule.rule_index);
            match &rule.action {
                Action::Backends { backends } => {
                    for b in backends {
                        backend(&b.backend, &what)?;
                    }
                }
                Action::Aggregate { parts } => {
                    for p in parts {
                        backend(&p.backend, &what)?;
                    }
                }
                Action::Redirect(_) => {}
            }
            for filter in &rule.filters {
                if let FilterConfig::RequestMirror(m) = filter {
                    backend(&m.backend, &what)?;
                }
            }
        }
        for (key, config) in &self.backends {
            for target in &config.failover {
                backend(&Some(target.clone()), &format!("backend {key:?} failover"))?;
            }
        }
        Ok(())
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
                    max_in_flight: 16,
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
                        backend_idle_ms: None,
                    },
                    auth: Some(AuthConfig::ApiKey {
                        keys: SecretFile::new("shop", "keys", "keys"),
                        location: ApiKeyLocation::Header("x-api-key".to_owned()),
                        keep_credential: false,
                    }),
                    ..ResolvedPolicies::default()
                },
                upgrades: None,
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
    fn json_and_flow_style_yaml_both_read() {
        let snapshot = sample();
        let json = snapshot.to_json().expect("serializes");
        assert_eq!(Snapshot::from_yaml(&json).expect("JSON parses"), snapshot);
        // Starts like JSON, but only YAML reads it (a comment after the mapping).
        let yaml = format!("{json}\n# kept by hand\n");
        assert_eq!(Snapshot::from_yaml(&yaml).expect("YAML parses"), snapshot);
        // A JSON typo is reported as JSON, not only as YAML.
        let typo = json.replacen("\"apiVersion\"", "\"apiVersion", 1);
        match Snapshot::from_yaml(&typo) {
            Err(SnapshotError::Parse(message)) => {
                assert!(message.contains("as JSON: "), "{message}")
            }
            other => panic!("{other:?}"),
        }
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
    fn consistent_snapshot_passes_the_reference_check() {
        assert!(sample().check_references().is_ok());
    }

    #[test]
    fn dangling_rule_index_and_backend_key_fail_the_reference_check() {
        let mut s = sample();
        s.listeners[0].virtual_hosts[0].routes[0].rule = 7;
        assert!(matches!(
            s.check_references(),
            Err(SnapshotError::Inconsistent(m)) if m.contains("rule 7")
        ));
        let mut s = sample();
        s.backends.clear();
        assert!(matches!(
            s.check_references(),
            Err(SnapshotError::Inconsistent(m)) if m.contains("shop/orders")
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
