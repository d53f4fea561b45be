//! Compiles a config snapshot into a [`RouteTable`].
//!
//! This is where the proxy fails closed: a snapshot whose rules ask for something this build
//! cannot provide (authentication, rate limits, caching, aggregation) is
//! refused with an error naming the rule, and the previous table keeps serving. Backends whose
//! definition did not change are carried over from the previous table, with their connection
//! pools and endpoint health.

mod backend;
mod rule;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use portcullis_config::snapshot::{
    ListenerConfig, Protocol as ListenerProtocol, SecretFile, Snapshot, TlsConfig,
};

use crate::{
    host::HostPattern,
    route::{DrainTiming, ListenerRoutes, RouteEntry, RouteTable, Rule, VirtualHost},
    tls::{SniCertificate, SniResolver, certified_key, server_config},
};

/// Where secret files named by the snapshot are read from.
#[derive(Debug, Clone)]
pub struct Secrets {
    root: PathBuf,
}

impl Secrets {
    /// Secrets under `root` (`<root>/<namespace>/<name>/<key>`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn read(&self, file: &SecretFile) -> Result<Vec<u8>, String> {
        let path = self.root.join(&file.path);
        std::fs::read(&path).map_err(|e| {
            format!(
                "Secret {}/{} key {:?}: cannot read {}: {e}",
                file.namespace,
                file.name,
                file.key,
                path.display()
            )
        })
    }
}

/// Builds the routing table for `snapshot`. `previous` is the table being served: unchanged
/// backends are reused from it. Every problem is reported, one per line.
pub fn compile(
    snapshot: &Snapshot,
    previous: &RouteTable,
    secrets: &Secrets,
) -> Result<RouteTable, String> {
    let mut errors = Vec::new();
    let backends = backend::compile_all(snapshot, previous, secrets, &mut errors);
    let rules: Vec<Option<Arc<Rule>>> = snapshot
        .rules
        .iter()
        .map(|config| rule::compile(config, snapshot, &mut errors).map(Arc::new))
        .collect();
    let mut listeners = crate::fast_hash::FastMap::default();
    for listener in &snapshot.listeners {
        match compile_listener(listener, &rules, secrets) {
            Ok(routes) => {
                listeners.insert(listener.port, routes);
            }
            Err(error) => errors.push(error),
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    Ok(RouteTable {
        revision: snapshot.revision.clone(),
        listeners,
        backends,
        drain: DrainTiming {
            delay: Duration::from_millis(snapshot.drain.delay_ms),
            timeout: Duration::from_millis(snapshot.drain.timeout_ms),
        },
    })
}

fn compile_listener(
    listener: &ListenerConfig,
    rules: &[Option<Arc<Rule>>],
    secrets: &Secrets,
) -> Result<ListenerRoutes, String> {
    let port = listener.port;
    let mut virtual_hosts = Vec::with_capacity(listener.virtual_hosts.len());
    for vhost in &listener.virtual_hosts {
        let mut entries = Vec::with_capacity(vhost.routes.len());
        for entry in &vhost.routes {
            // A rule that failed to compile has already been reported.
            let Some(Some(rule)) = rules.get(entry.rule) else {
                if entry.rule >= rules.len() {
                    return Err(format!(
                        "port {port} host {}: entry names rule {} of {}",
                        vhost.hostname,
                        entry.rule,
                        rules.len()
                    ));
                }
                continue;
            };
            let matcher = rule::compile_match(&entry.r#match).map_err(|e| {
                format!(
                    "Route {} rule {} match {}: {e}",
                    rule.route, rule.index, entry.match_index
                )
            })?;
            entries.push(RouteEntry {
                matcher,
                rule: rule.clone(),
            });
        }
        virtual_hosts.push(VirtualHost::new(
            HostPattern::parse(&vhost.hostname),
            vhost.listener.clone(),
            entries,
        ));
    }
    let mut routes = ListenerRoutes::new(port, virtual_hosts);
    if listener.protocol == ListenerProtocol::Https {
        let tls = listener
            .tls
            .as_ref()
            .ok_or_else(|| format!("port {port}: HTTPS without certificates"))?;
        routes.tls = Some(compile_tls(port, tls, secrets)?);
    }
    Ok(routes)
}

fn compile_tls(
    port: u16,
    tls: &TlsConfig,
    secrets: &Secrets,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut certificates = Vec::with_capacity(tls.certificates.len());
    for cert in &tls.certificates {
        let chain = secrets.read(&cert.cert)?;
        let key = secrets.read(&cert.key)?;
        let key = certified_key(&chain, &key).map_err(|e| {
            format!(
                "port {port}: Secret {}/{}: {e}",
                cert.cert.namespace, cert.cert.name
            )
        })?;
        certificates.push(SniCertificate {
            hostname: cert.hostname.as_deref().map(HostPattern::parse),
            key,
        });
    }
    if certificates.is_empty() {
        return Err(format!("port {port}: HTTPS without certificates"));
    }
    server_config(SniResolver::new(certificates)).map_err(|e| format!("port {port}: {e}"))
}
