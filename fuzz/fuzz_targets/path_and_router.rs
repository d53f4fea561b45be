//! The path normalizer (`path.rs`) and the router (`route/`), given any request target, host,
//! method and header fields a client can send.
//!
//! The input is lines: the method, the `Host`, the request target, then `name: value` fields.
//! Normalizing must hold to its documented form (no empty, `.` or `..` segment, no encoded
//! unreserved character, upper-case escapes) and be idempotent, since the path that is matched
//! is the path that is forwarded. Routing over a fixed table must never panic, and the table's
//! index must pick exactly the rule a scan of the virtual host's entries in precedence order
//! picks: an index that skips a rule would let a request past a more specific one.

#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri, header::HOST, request::Parts};
use libfuzzer_sys::fuzz_target;
use portcullis_config::Snapshot;
use portcullis_proxy::{
    compile::{Secrets, compile},
    host::request_host,
    path::{is_normal, normalize},
    route::RouteTable,
};

/// Every kind of condition the router matches on, over exact, wildcard and catch-all hosts.
const SNAPSHOT: &str = r#"
apiVersion: portcullis.dev/config/v1
gateway: { namespace: shop, name: edge }
revision: fuzz
listeners:
- port: 80
  protocol: HTTP
  virtualHosts:
  - hostname: shop.example
    listener: http
    routes:
    - { rule: 0, matchIndex: 0, match: { path: { type: Exact, value: /orders }, method: GET } }
    - { rule: 1, matchIndex: 0, match: { path: { type: PathPrefix, value: /orders/v2 }, headers: [{ name: x-version, type: Exact, value: "2" }] } }
    - { rule: 2, matchIndex: 0, match: { path: { type: PathPrefix, value: /orders }, queryParams: [{ name: debug, type: Exact, value: "1" }] } }
    - { rule: 3, matchIndex: 0, match: { path: { type: RegularExpression, value: "/items/[0-9]+(/.*)?" } } }
    - { rule: 4, matchIndex: 0, match: { path: { type: PathPrefix, value: /a%2Fb } } }
    - { rule: 5, matchIndex: 0, match: { path: { type: PathPrefix, value: / }, headers: [{ name: x-tenant, type: RegularExpression, value: "t-[0-9]{1,4}" }] } }
    - { rule: 6, matchIndex: 0, match: { path: { type: PathPrefix, value: / } } }
  - hostname: "*.shop.example"
    listener: http
    routes:
    - { rule: 7, matchIndex: 0, match: { path: { type: PathPrefix, value: /admin }, method: POST, queryParams: [{ name: token, type: RegularExpression, value: "[a-f0-9]{8}" }] } }
    - { rule: 6, matchIndex: 1, match: { path: { type: Exact, value: / } } }
  - hostname: "*"
    listener: http
    routes:
    - { rule: 8, matchIndex: 0, match: { path: { type: PathPrefix, value: /public } } }
    - { rule: 6, matchIndex: 2, match: { path: { type: RegularExpression, value: ".*\\.(png|css)" } } }
rules:
- { route: { namespace: shop, name: r0 }, ruleIndex: 0, action: { type: Backends, backends: [{ backend: shop/web, weight: 1 }] }, policies: {} }
- { route: { namespace: shop, name: r1 }, ruleIndex: 0, action: { type: Backends, backends: [{ backend: shop/web, weight: 1 }] }, policies: {} }
- { route: { namespace: shop, name: r2 }, ruleIndex: 0, action: { type: Backends, backends: [{ backend: shop/web, weight: 1 }] }, policies: {} }
- { route: { namespace: shop, name: r3 }, ruleIndex: 0, action: { type: Backends, backends: [{ backend: shop/web, weight: 1 }] }, policies: {} }
- { route: { namespace: shop, name: r4 }, ruleIndex: 0, action: { type: Backends, backends: [{ backend: shop/web, weight: 1 }] }, policies: {} }
- { route: { namespace: shop, name: r5 }, ruleIndex: 0, action: { type: Backends, backends: [{ backend: shop/web, weight: 1 }] }, policies: {} }
- { route: { namespace: shop, name: r6 }, ruleIndex: 0, action: { type: Backends, backends: [{ backend: shop/web, weight: 1 }] }, policies: {} }
- { route: { namespace: shop, name: r7 }, ruleIndex: 0, action: { type: Backends, backends: [{ backend: shop/web, weight: 1 }] }, policies: {} }
- { route: { namespace: shop, name: r8 }, ruleIndex: 0, action: { type: Backends, backends: [{ backend: shop/web, weight: 1 }] }, policies: {} }
backends:
  shop/web:
    discovery: { type: Static, endpoints: [{ address: 127.0.0.1, port: 9 }] }
    protocol: HTTP1
    connectTimeoutMs: 1000
    loadBalancer: { policy: RoundRobin }
drain: { delayMs: 0, timeoutMs: 1000 }
"#;

fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let snapshot = Snapshot::from_yaml(SNAPSHOT).expect("the fuzz snapshot reads");
        let secrets = Secrets::new(std::env::temp_dir().join("portcullis-fuzz-no-secrets"));
        let table = compile(&snapshot, &RouteTable::default(), &secrets);
        assert!(table.problems.is_empty(), "{:?}", table.problems);
        table
    })
}

/// Checks what `normalize` promises of `path`.
fn check_normalize(path: &str) {
    let normalized = normalize(path);
    if is_normal(path) {
        assert_eq!(
            normalized.as_deref(),
            Ok(path),
            "a normal path is left as it is"
        );
    }
    let Ok(normalized) = normalized else {
        return;
    };
    assert!(normalized.starts_with('/'), "{normalized:?}");
    for bad in ["//", "/./", "/../"] {
        assert!(!normalized.contains(bad), "{path:?} -> {normalized:?}");
    }
    assert!(
        !normalized.ends_with("/.") && !normalized.ends_with("/.."),
        "{path:?} -> {normalized:?}"
    );
    let bytes = normalized.as_bytes();
    for (at, _) in normalized.match_indices('%') {
        let escape = bytes.get(at + 1..at + 3).expect("an escape has two digits");
        assert!(
            escape
                .iter()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
            "{path:?} -> {normalized:?}: lower-case escape"
        );
        let value = u8::from_str_radix(std::str::from_utf8(escape).expect("ASCII"), 16)
            .expect("hex digits");
        assert!(
            !(value.is_ascii_alphanumeric() || b"-._~".contains(&value)),
            "{path:?} -> {normalized:?}: an unreserved character stays encoded"
        );
    }
    assert_eq!(
        normalize(&normalized).as_deref(),
        Ok(normalized.as_str()),
        "normalizing {path:?} twice changes it again"
    );
}

/// The request head the input describes, as the server would parse it; `None` when the server
/// would refuse it.
fn request(input: &[u8]) -> Option<Parts> {
    let mut lines = input.split(|&b| b == b'\n');
    let method = Method::from_bytes(lines.next()?).ok()?;
    let host = lines.next()?;
    let uri = Uri::from_maybe_shared(Bytes::copy_from_slice(lines.next()?)).ok()?;
    let mut builder = Request::builder().method(method).uri(uri);
    if !host.is_empty() {
        builder = builder.header(HOST, HeaderValue::from_bytes(host).ok()?);
    }
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(&line[..colon]).ok()?;
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).ok()?;
        builder = builder.header(name, value);
    }
    Some(builder.body(()).ok()?.into_parts().0)
}

fuzz_target!(|input: &[u8]| {
    if let Ok(text) = std::str::from_utf8(input) {
        check_normalize(text);
    }
    let Some(head) = request(input) else {
        return;
    };
    // As the gateway does it: the path normalized once, then the host, then the route.
    check_normalize(head.uri.path());
    let path = if is_normal(head.uri.path()) {
        head.uri.path().to_owned()
    } else {
        match normalize(head.uri.path()) {
            Ok(path) => path,
            Err(_) => return,
        }
    };
    let host = request_host(&head).unwrap_or_default();
    let Some(listener) = table().listener(80) else {
        panic!("the table serves port 80");
    };
    let routed = listener.route(&head, &host, &path);
    let scanned = listener.virtual_host(&host).and_then(|vhost| {
        vhost
            .entries()
            .iter()
            .find(|entry| entry.matcher.matches(&head, &path))
    });
    let rule = |e: &portcullis_proxy::route::RouteEntry| (e.rule.route.to_string(), e.rule.index);
    assert!(
        routed.map(std::ptr::from_ref) == scanned.map(std::ptr::from_ref),
        "the index picks {:?}, a scan {:?}, for {host:?} {path:?}",
        routed.map(rule),
        scanned.map(rule)
    );
    if let Some(entry) = routed {
        assert!(entry.matcher.matches(&head, &path));
    }
});
