//! Fixtures for the compiler tests: manifests from YAML, and a reference router that answers
//! "which rule serves this request" from a snapshot, following the routing model documented in
//! `portcullis_config::snapshot`, so tests assert behaviour rather than layout.

use std::collections::BTreeMap;

use portcullis_api::{Gateway, Route, ServiceBackend};
use portcullis_config::{
    Compiled, NamespaceInfo, Snapshot, compile,
    diagnostics::{Diagnostic, RouteParentResult},
    snapshot::{Action, MatchConfig, PathMatchType, RuleConfig, ValueMatchType},
};
use regex::Regex;

/// The objects of a multi-document manifest.
#[derive(Default)]
pub struct Inputs {
    pub gateway: Option<Gateway>,
    pub routes: Vec<Route>,
    pub backends: Vec<ServiceBackend>,
    pub namespaces: Vec<NamespaceInfo>,
}

/// Reads Gateway, Route, ServiceBackend and Namespace documents.
pub fn load(yaml: &str) -> Inputs {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).expect("fixture is valid YAML");
    let mut inputs = Inputs::default();
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "Gateway" => {
                inputs.gateway = Some(serde_json::from_value(doc).expect("Gateway parses"));
            }
            "Route" => inputs
                .routes
                .push(serde_json::from_value(doc).expect("Route parses")),
            "ServiceBackend" => inputs
                .backends
                .push(serde_json::from_value(doc).expect("ServiceBackend parses")),
            "Namespace" => {
                let labels: BTreeMap<String, String> =
                    serde_json::from_value(doc["metadata"]["labels"].clone()).unwrap_or_default();
                inputs.namespaces.push(NamespaceInfo {
                    name: doc["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    labels,
                });
            }
            other => panic!("unexpected kind {other:?} in fixture"),
        }
    }
    inputs
}

/// Compiles a manifest holding one Gateway.
pub fn compile_yaml(yaml: &str) -> Compiled {
    let inputs = load(yaml);
    compile(
        inputs.gateway.as_ref().expect("fixture has a Gateway"),
        &inputs.routes,
        &inputs.backends,
        &inputs.namespaces,
    )
}

/// A fixture file under `tests/fixtures`.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A Gateway `edge` in `shop` with one HTTP listener `http` on port 80 admitting every namespace,
/// followed by `rest` (more documents).
pub fn with_edge(rest: &str) -> String {
    format!(
        "apiVersion: portcullis.dev/v1alpha1
kind: Gateway
metadata: {{name: edge, namespace: shop}}
spec:
  listeners:
  - {{name: http, port: 80, protocol: HTTP, allowedRoutes: {{namespaces: {{from: All}}}}}}
---
{rest}"
    )
}

/// A Route `r` in `shop` attached to the Gateway `edge`, with `rules` (the YAML items of
/// `spec.rules`, indented by two spaces).
pub fn shop_route(rules: &str) -> String {
    format!(
        "apiVersion: portcullis.dev/v1alpha1
kind: Route
metadata: {{name: r, namespace: shop}}
spec:
  parentRefs: [{{name: edge}}]
  rules:
{rules}"
    )
}

/// A test request.
#[derive(Clone, Debug)]
pub struct Request {
    pub port: u16,
    pub host: String,
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
}

/// `GET http://host[:port]/path?query`.
pub fn get(url: &str) -> Request {
    request("GET", url)
}

/// `METHOD http://host[:port]/path?query`.
pub fn request(method: &str, url: &str) -> Request {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, p.parse().expect("port")),
        None => (authority, 80),
    };
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    Request {
        port,
        host: host.to_owned(),
        method: method.to_owned(),
        path: if path.is_empty() { "/" } else { path }.to_owned(),
        query: query
            .split('&')
            .filter(|q| !q.is_empty())
            .map(|q| {
                let (k, v) = q.split_once('=').unwrap_or((q, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        headers: Vec::new(),
    }
}

impl Request {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// The rule that serves `req`, or `None` for a 404.
pub fn route<'s>(snapshot: &'s Snapshot, req: &Request) -> Option<&'s RuleConfig> {
    let listener = snapshot.listener(req.port)?;
    let host = req.host.to_ascii_lowercase();
    let vhost = listener
        .virtual_hosts
        .iter()
        .find(|v| host_matches(&v.hostname, &host))?;
    let entry = vhost.routes.iter().find(|e| matches(&e.r#match, req))?;
    Some(&snapshot.rules[entry.rule])
}

/// `namespace/name#rule` of the rule serving `req`, or `"404"`.
pub fn served_by(snapshot: &Snapshot, req: &Request) -> String {
    route(snapshot, req).map_or("404".to_owned(), |r| {
        format!("{}#{}", r.route, r.rule_index)
    })
}

/// The backend keys of a rule's weighted action (`None` for shares answering 500).
pub fn backends(rule: &RuleConfig) -> Vec<(Option<String>, u32)> {
    match &rule.action {
        Action::Backends { backends } => backends
            .iter()
            .map(|b| (b.backend.clone(), b.weight))
            .collect(),
        other => panic!("expected backends, got {other:?}"),
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        None => pattern == host,
        Some("") => true,
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
    }
}

fn full(pattern: &str, value: &str) -> bool {
    Regex::new(&format!("^(?:{pattern})$"))
        .expect("compiled regex")
        .is_match(value)
}

fn matches(m: &MatchConfig, req: &Request) -> bool {
    let path_ok = match m.path.kind {
        PathMatchType::Exact => req.path == m.path.value,
        PathMatchType::PathPrefix => {
            let prefix = m.path.value.trim_end_matches('/');
            req.path.starts_with(prefix)
                && (req.path.len() == prefix.len() || req.path[prefix.len()..].starts_with('/'))
        }
        PathMatchType::RegularExpression => full(&m.path.value, &req.path),
    };
    let method_ok = m.method.is_none_or(|x| x.as_str() == req.method);
    let headers_ok = m.headers.iter().all(|h| {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&h.name))
            .is_some_and(|(_, v)| value_matches(h.kind, &h.value, v))
    });
    let query_ok = m.query_params.iter().all(|q| {
        req.query
            .iter()
            .find(|(n, _)| *n == q.name)
            .is_some_and(|(_, v)| value_matches(q.kind, &q.value, v))
    });
    path_ok && method_ok && headers_ok && query_ok
}

fn value_matches(kind: ValueMatchType, expected: &str, actual: &str) -> bool {
    match kind {
        ValueMatchType::Exact => expected == actual,
        ValueMatchType::RegularExpression => full(expected, actual),
    }
}

/// The parent results of Route `namespace/name`.
pub fn parents<'c>(compiled: &'c Compiled, route: &str) -> Vec<&'c RouteParentResult> {
    compiled
        .diagnostics
        .parents
        .iter()
        .filter(|p| p.route.to_string() == route)
        .collect()
}

/// The findings whose `Kind/namespace/name` is `object`.
pub fn findings<'c>(compiled: &'c Compiled, object: &str) -> Vec<&'c Diagnostic> {
    compiled
        .diagnostics
        .items
        .iter()
        .filter(|d| d.object.to_string() == object)
        .collect()
}
