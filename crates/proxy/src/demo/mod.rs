//! `portcullis demo`: three demo services (users, orders, catalog — plus a standby copy of
//! orders for failover), each a JSON REST API over its own in-memory store, and the gateway in
//! front of them, all in one process on localhost. `GET /` on the gateway answers an index of
//! the routes, from a fifth small service behind the demo's own `index` Route.
//!
//! [`serve_one`] runs one of those services on its own (`portcullis demo-service`): the
//! Deployments of `deploy/examples` run it in a cluster.

mod index;
mod service;

use std::{net::SocketAddr, sync::Arc};

use portcullis_api::{Gateway, Route, ServiceBackend};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub use service::Store;

use crate::{
    compile::Secrets,
    dataplane::{DataPlane, DataPlaneOptions},
};

/// The embedded manifests (deploy/examples with static localhost endpoints).
const MANIFESTS: &str = include_str!("manifests.yaml");

/// Options of `portcullis demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The gateway's port on 127.0.0.1.
    pub port: u16,
    /// The admin listener.
    pub admin: SocketAddr,
    /// Whether to print one access-log line per request.
    pub access_log: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            port: 8080,
            admin: SocketAddr::from(([127, 0, 0, 1], 9901)),
            access_log: true,
        }
    }
}

/// The running demo.
#[derive(Debug)]
pub struct Demo {
    /// The data plane in front of the services.
    pub plane: DataPlane,
    /// Where the gateway listens.
    pub gateway: SocketAddr,
    /// Where each demo service listens, by name.
    pub services: Vec<(String, SocketAddr)>,
}

/// The demo services a process can serve, each with the resource it serves.
pub const SERVICES: [&str; 3] = ["users", "orders", "catalog"];

/// The items a demo service's store starts with, by resource; `None` for an unknown one.
pub fn seed(resource: &str) -> Option<Vec<Value>> {
    Some(match resource {
        "users" => vec![
            json!({"name": "Ada Lovelace", "email": "ada@example.com"}),
            json!({"name": "Alan Turing", "email": "alan@example.com"}),
        ],
        "orders" => vec![
            json!({"user": 1, "item": "Analytical Engine", "quantity": 1}),
            json!({"user": 2, "item": "Bombe", "quantity": 2}),
        ],
        "catalog" => vec![
            json!({"name": "Analytical Engine", "price": 1843}),
            json!({"name": "Bombe", "price": 1939}),
            json!({"name": "Colossus", "price": 1943}),
        ],
        _ => return None,
    })
}

async fn start_service(resource: &str) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("demo service {resource}: {e}"))?;
    let seed = seed(resource).unwrap_or_default();
    service::serve(Store::new(resource, seed), listener)
}

/// `portcullis demo-service`: serves the demo service `resource` (one of [`SERVICES`]), with a
/// store of its own, on `listen` until SIGTERM or Ctrl-C. Every answer names the replica in
/// `X-Demo-Instance` (`$HOSTNAME`: the pod's name).
pub async fn serve_one(resource: &str, listen: SocketAddr) -> Result<(), String> {
    let seed = seed(resource).ok_or_else(|| {
        format!(
            "--name {resource:?}: not a demo service; one of {}",
            SERVICES.join(", ")
        )
    })?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("demo service {resource}: cannot listen on {listen}: {e}"))?;
    // Which replica answered, so that a failover to a standby shows: the pod's name in a
    // cluster (the kubelet sets HOSTNAME), else the resource's.
    let instance = std::env::var("HOSTNAME").unwrap_or_else(|_| resource.to_owned());
    let instance = http::HeaderValue::from_str(&instance)
        .unwrap_or_else(|_| http::HeaderValue::from_static("demo"));
    let store = Store::new(resource, seed);
    let addr = service::serve_with(listener, move |req| {
        let (store, instance) = (store.clone(), instance.clone());
        async move {
            let mut response = store.handle(req).await;
            response.headers_mut().insert("x-demo-instance", instance);
            response
        }
    })?;
    tracing::info!(%addr, resource, "demo service listening");
    crate::lifecycle::shutdown_signal().await;
    Ok(())
}

/// Starts the services and the gateway; returns once everything is listening.
pub async fn start(options: &DemoOptions) -> Result<Demo, String> {
    let users = start_service("users").await?;
    let orders = start_service("orders").await?;
    let standby = start_service("orders").await?;
    let catalog = start_service("catalog").await?;
    let index_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("demo index: {e}"))?;
    let index_addr = index_listener
        .local_addr()
        .map_err(|e| format!("demo index: {e}"))?;
    let manifests = MANIFESTS
        .replace("{port}", &options.port.to_string())
        .replace("{users}", &users.port().to_string())
        .replace("{orders}", &orders.port().to_string())
        .replace("{standby}", &standby.port().to_string())
        .replace("{catalog}", &catalog.port().to_string())
        .replace("{index}", &index_addr.port().to_string());
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&manifests).map_err(|e| format!("demo manifests: {e}"))?;
    let (snapshot, secrets) = compile_manifests(&documents)?;
    let plane = DataPlane::start(DataPlaneOptions {
        admin: options.admin,
        listen_host: [127, 0, 0, 1].into(),
        access_log: options.access_log,
        ..DataPlaneOptions::default()
    })
    .await?;
    plane.apply(&snapshot, &secrets).await?;
    let demo = Demo {
        plane,
        gateway: SocketAddr::from(([127, 0, 0, 1], options.port)),
        services: vec![
            ("users".to_owned(), users),
            ("orders".to_owned(), orders),
            ("orders-standby".to_owned(), standby),
            ("catalog".to_owned(), catalog),
            ("index".to_owned(), index_addr),
        ],
    };
    let index = Arc::new(index::document(
        &documents,
        &format!("http://{}", demo.gateway),
        &format!("http://{}", demo.plane.admin_addr()),
        &try_lines(&demo),
    ));
    service::serve_with(index_listener, move |req| {
        let index = index.clone();
        async move { index::answer(&index, req).await }
    })?;
    Ok(demo)
}

/// Parses the multi-document manifests and compiles the Gateway with its Routes and backends;
/// their Secrets are written where the gateway reads them, as a pod's mounts would be.
fn compile_manifests(
    documents: &[Value],
) -> Result<(portcullis_config::Snapshot, Secrets), String> {
    let root = std::env::temp_dir().join(format!("portcullis-demo-{}", std::process::id()));
    for secret in documents.iter().filter(|d| d["kind"] == "Secret") {
        write_secret(&root, secret)?;
    }
    let mut gateways: Vec<Gateway> = Vec::new();
    let mut routes: Vec<Route> = Vec::new();
    let mut backends: Vec<ServiceBackend> = Vec::new();
    for document in documents.iter().cloned() {
        let kind = document["kind"].as_str().unwrap_or_default().to_owned();
        let parsed = match kind.as_str() {
            "Gateway" => serde_json::from_value(document).map(|g| gateways.push(g)),
            "Route" => serde_json::from_value(document).map(|r| routes.push(r)),
            "ServiceBackend" => serde_json::from_value(document).map(|b| backends.push(b)),
            _ => Ok(()),
        };
        parsed.map_err(|e| format!("demo manifests: {kind}: {e}"))?;
    }
    let gateway = gateways
        .first()
        .ok_or_else(|| "demo manifests: no Gateway".to_owned())?;
    let compiled = portcullis_config::compile(gateway, &routes, &backends, &[]);
    if compiled.diagnostics.has_errors() {
        let lines: Vec<String> = compiled
            .diagnostics
            .items
            .iter()
            .map(ToString::to_string)
            .collect();
        return Err(format!("demo manifests:\n{}", lines.join("\n")));
    }
    Ok((compiled.snapshot, Secrets::new(root)))
}

/// Writes each `stringData` key of a Secret manifest to `<root>/<namespace>/<name>/<key>`.
fn write_secret(root: &std::path::Path, secret: &Value) -> Result<(), String> {
    let metadata = &secret["metadata"];
    let (Some(namespace), Some(name)) = (metadata["namespace"].as_str(), metadata["name"].as_str())
    else {
        return Err("demo manifests: a Secret without a namespace and name".to_owned());
    };
    let dir = root.join(namespace).join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (key, value) in secret["stringData"].as_object().into_iter().flatten() {
        let file = dir.join(key);
        std::fs::write(&file, value.as_str().unwrap_or_default())
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(())
}

/// The banner: where things are and what to try. The gateway's URL comes first: it answers
/// with the index of the routes.
pub fn banner(demo: &Demo) -> String {
    let gw = demo.gateway;
    let admin = demo.plane.admin_addr();
    let mut out = String::new();
    out.push_str("Portcullis demo\n\n");
    out.push_str(&format!(
        "  gateway         http://{gw}  (GET / lists the routes)\n  admin           http://{admin}  (/ready /metrics /config)\n"
    ));
    for (name, addr) in &demo.services {
        out.push_str(&format!("  {name:<16}http://{addr}\n"));
    }
    out.push_str("\nTry:\n");
    for line in try_lines(demo) {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str("\nCtrl-C to stop.\n");
    out
}

/// The `curl` lines to try, in the order that tells the story.
fn try_lines(demo: &Demo) -> Vec<String> {
    let gw = demo.gateway;
    let admin = demo.plane.admin_addr();
    let key = "-H 'X-API-Key: demo-key-storefront'";
    let catalog = demo
        .services
        .iter()
        .find(|(name, _)| name == "catalog")
        .map_or_else(|| "catalog".to_owned(), |(_, addr)| addr.to_string());
    vec![
        format!("curl -s http://{gw}/   # this index"),
        format!("curl -si http://{gw}/users            # 401: no API key"),
        format!("curl -s http://{gw}/users {key}"),
        format!("curl -s http://{gw}/users/1 {key}"),
        format!(
            "curl -s -X POST http://{gw}/users {key} -H 'content-type: application/json' -d '{{\"name\":\"Grace Hopper\"}}'"
        ),
        format!(
            "for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}} ' http://{gw}/orders; done; echo   # 429 after 5"
        ),
        format!("curl -si http://{gw}/catalog/2 -H 'X-Product-Id: 2'   # X-Cache: MISS, then HIT"),
        format!(
            "curl -s -X POST http://{catalog}/outage   # the catalog service goes down (DELETE to bring it back)"
        ),
        format!(
            "sleep 10; curl -si http://{gw}/catalog/2 -H 'X-Product-Id: 2'   # X-Cache: STALE: the copy stands in"
        ),
        format!("curl -si http://{gw}/catalog/3   # 503: nothing kept to stand in"),
        format!("curl -s http://{gw}/profile/1"),
        format!("curl -si http://{gw}/shop"),
        format!("curl -s http://{admin}/config"),
        format!("curl -s http://{admin}/metrics | grep portcullis_requests"),
    ]
}

/// `portcullis demo`: starts everything, prints the banner, runs until Ctrl-C (then drains).
pub async fn demo(options: DemoOptions) -> Result<(), String> {
    let demo = Arc::new(start(&options).await?);
    println!("{}", banner(&demo));
    demo.plane.run_until_signal().await;
    Ok(())
}
