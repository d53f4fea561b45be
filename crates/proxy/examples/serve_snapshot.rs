//! Serves a config snapshot file with the data plane, as `portcullis proxy --config FILE` does,
//! and generates the snapshots `hack/bench-proxy.sh` loads.
//!
//! ```text
//! serve_snapshot serve FILE [ADMIN_ADDR] [--access-log]
//! serve_snapshot generate ROUTES LISTEN_PORT UPSTREAM_ADDR   # prints a snapshot, as stored
//! serve_snapshot parse FILE                                   # times reading it (JSON vs YAML)
//! ```

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use portcullis_config::snapshot::*;
use portcullis_proxy::{DataPlaneOptions, proxy};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => {
            let file = PathBuf::from(args.get(1).ok_or("serve FILE")?);
            let admin: SocketAddr = args
                .get(2)
                .filter(|a| !a.starts_with("--"))
                .map_or("127.0.0.1:9901", String::as_str)
                .parse()
                .map_err(|e| format!("admin address: {e}"))?;
            let options = DataPlaneOptions {
                admin,
                listen_host: [127, 0, 0, 1].into(),
                access_log: args.iter().any(|a| a == "--access-log"),
                ..DataPlaneOptions::default()
            };
            let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            // The benchmark's snapshots name no Secret: a folder that does not exist.
            let secrets = file.with_extension("secrets");
            runtime.block_on(proxy(options, file, secrets))
        }
        Some("generate") => {
            let routes: usize = args.get(1).and_then(|a| a.parse().ok()).ok_or("ROUTES")?;
            let port: u16 = args
                .get(2)
                .and_then(|a| a.parse().ok())
                .ok_or("LISTEN_PORT")?;
            let upstream: SocketAddr =
                args.get(3).and_then(|a| a.parse().ok()).ok_or("UPSTREAM")?;
            // As the operator stores it in the Gateway's ConfigMap.
            let text = generate(routes, port, upstream)
                .to_json()
                .map_err(|e| e.to_string())?;
            println!("{text}");
            Ok(())
        }
        Some("parse") => {
            // How long reading a snapshot takes as stored (JSON), and written as YAML instead.
            let file = args.get(1).ok_or("parse FILE")?;
            let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
            let started = std::time::Instant::now();
            let snapshot = Snapshot::from_yaml(&text).map_err(|e| e.to_string())?;
            let stored = started.elapsed();
            let yaml = snapshot.to_yaml().map_err(|e| e.to_string())?;
            let started = std::time::Instant::now();
            Snapshot::from_yaml(&yaml).map_err(|e| e.to_string())?;
            println!(
                "as stored (JSON) {} bytes {:.1} ms; as YAML {} bytes {:.1} ms",
                text.len(),
                stored.as_secs_f64() * 1000.0,
                yaml.len(),
                started.elapsed().as_secs_f64() * 1000.0
            );
            Ok(())
        }
        _ => Err(
            "usage: serve FILE [ADMIN] [--access-log] | generate ROUTES PORT UPSTREAM | parse FILE"
                .into(),
        ),
    }
}

/// A snapshot with `routes` prefix routes (`/r<i>`) plus a catch-all, all to one upstream.
fn generate(routes: usize, port: u16, upstream: SocketAddr) -> Snapshot {
    let mut backends = BTreeMap::new();
    backends.insert(
        "bench/upstream".to_owned(),
        BackendConfig {
            discovery: Discovery::Static {
                endpoints: vec![EndpointConfig {
                    address: upstream.ip().to_string(),
                    port: upstream.port(),
                }],
            },
            protocol: UpstreamProtocol::Http1,
            tls: None,
            connect_timeout_ms: 1000,
            load_balancer: LoadBalancerConfig {
                policy: LoadBalancerPolicy::RoundRobin,
                hash_on: None,
            },
            health_check: None,
            outlier_detection: None,
            circuit_breaker: None,
            failover: Vec::new(),
        },
    );
    let mut rules = Vec::new();
    let mut entries = Vec::new();
    for i in 0..=routes {
        let path = if i == routes {
            "/".to_owned()
        } else {
            format!("/r{i}")
        };
        rules.push(RuleConfig {
            route: ObjectKey::new("bench", format!("route-{i}")),
            rule_index: 0,
            name: None,
            filters: Vec::new(),
            action: Action::Backends {
                backends: vec![WeightedBackend {
                    backend: Some("bench/upstream".to_owned()),
                    weight: 1,
                }],
            },
            policies: ResolvedPolicies::default(),
            upgrades: None,
        });
        entries.push(RouteEntry {
            rule: i,
            match_index: 0,
            r#match: MatchConfig {
                path: PathMatchConfig {
                    kind: PathMatchType::PathPrefix,
                    value: path,
                },
                method: None,
                headers: Vec::new(),
                query_params: Vec::new(),
            },
        });
    }
    let mut snapshot = Snapshot {
        api_version: API_VERSION.to_owned(),
        gateway: ObjectKey::new("bench", "gw"),
        revision: String::new(),
        listeners: vec![ListenerConfig {
            port,
            protocol: Protocol::Http,
            tls: None,
            virtual_hosts: vec![VirtualHost {
                hostname: "*".to_owned(),
                listener: "http".to_owned(),
                routes: entries,
            }],
        }],
        rules,
        backends,
        drain: DrainConfig {
            delay_ms: 0,
            timeout_ms: 5000,
        },
        shared_state: None,
    };
    snapshot.seal();
    snapshot
}
