//! The demo's front door: a tiny service that answers `GET /` with an index of the demo's
//! routes, read from the demo's own Route manifests, and the lines to try.
//!
//! The gateway reaches it like any other service, through the `index` Route of the demo's
//! manifests: the proxy knows nothing of it.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use super::service::reply;

/// The index document: every rule of every Route in `documents` (except the index's own), what
/// it matches and which policies guard it, then the `try` lines.
pub fn document(documents: &[Value], gateway: &str, admin: &str, try_lines: &[String]) -> Value {
    let routes: Vec<Value> = documents
        .iter()
        .filter(|d| d["kind"] == "Route" && d["metadata"]["name"] != "index")
        .flat_map(|route| {
            let name = route["metadata"]["name"].as_str().unwrap_or_default();
            let rules = route["spec"]["rules"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            rules.into_iter().map(move |rule| entry(name, &rule))
        })
        .collect();
    json!({
        "portcullis": "demo",
        "gateway": gateway,
        "admin": format!("{admin} (/ready /metrics /config)"),
        "routes": routes,
        "try": try_lines,
    })
}

/// One rule: its path (and method), where it goes, and its policies in a word or two each.
fn entry(route: &str, rule: &Value) -> Value {
    let mut out = Map::new();
    out.insert("route".to_owned(), json!(route));
    if let Some(name) = rule["name"].as_str() {
        out.insert("rule".to_owned(), json!(name));
    }
    let first = &rule["matches"][0];
    let path = &first["path"];
    out.insert(
        "path".to_owned(),
        json!(format!(
            "{} {}",
            path["type"].as_str().unwrap_or("PathPrefix"),
            path["value"].as_str().unwrap_or("/")
        )),
    );
    if let Some(method) = first["method"].as_str() {
        out.insert("method".to_owned(), json!(method));
    }
    let backends: Vec<&str> = rule["backendRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["name"].as_str())
        .collect();
    if !backends.is_empty() {
        out.insert("backends".to_owned(), json!(backends));
    }
    let policies = policies(rule);
    if !policies.is_empty() {
        out.insert("policies".to_owned(), json!(policies));
    }
    Value::Object(out)
}

fn policies(rule: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let auth = &rule["auth"];
    if let Some(kind) = auth["type"].as_str() {
        match auth["apiKey"]["header"].as_str() {
            Some(header) => out.push(format!("auth {kind} (header {header})")),
            None => out.push(format!("auth {kind}")),
        }
    }
    let limit = &rule["rateLimit"];
    if let (Some(requests), Some(period)) = (limit["requests"].as_u64(), limit["period"].as_str()) {
        out.push(format!("rateLimit {requests} per {period}"));
    }
    if let Some(ttl) = rule["cache"]["ttl"].as_str() {
        out.push(format!("cache {ttl}"));
    }
    let parts: Vec<&str> = rule["aggregate"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    if !parts.is_empty() {
        out.push(format!("aggregate {}", parts.join(" + ")));
    }
    for filter in rule["filters"].as_array().into_iter().flatten() {
        if let Some(kind) = filter["type"].as_str() {
            out.push(kind.to_owned());
        }
    }
    out
}

/// Answers `GET /` (and `HEAD /`) with `index`, `/healthz` with ok, anything else with 404.
pub async fn answer(index: &Value, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET | &Method::HEAD, "/") => reply(StatusCode::OK, index.clone()),
        (_, "/healthz") => reply(StatusCode::OK, json!({"status": "ok"})),
        _ => reply(StatusCode::NOT_FOUND, json!({"error": "not found"})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_lists_each_rule_with_its_match_and_policies() {
        let documents: Vec<Value> = serde_saphyr::from_multiple(
            "kind: Route\nmetadata: {name: users}\nspec:\n  rules:\n    - name: users\n      \
             matches: [{path: {type: PathPrefix, value: /users}, method: GET}]\n      \
             backendRefs: [{name: users}]\n      \
             auth: {type: ApiKey, apiKey: {header: X-API-Key}}\n---\n\
             kind: Route\nmetadata: {name: index}\nspec: {rules: [{}]}\n",
        )
        .expect("YAML");
        let index = document(
            &documents,
            "http://gw",
            "http://admin",
            &["curl".to_owned()],
        );
        assert_eq!(
            index["routes"],
            json!([{
                "route": "users", "rule": "users", "path": "PathPrefix /users", "method": "GET",
                "backends": ["users"], "policies": ["auth ApiKey (header X-API-Key)"],
            }])
        );
        assert_eq!(index["try"], json!(["curl"]));
    }
}
