//! Compiles a config snapshot into a [`RouteTable`].
//!
//! This is where the proxy fails closed, per rule: a rule this build cannot serve as written
//! (a policy it does not implement, a Secret it needs that is missing or malformed — see
//! [`portcullis_config::capability`], the check the operator shares — or a value that does not
//! compile) answers 503 with the reason, and every other rule serves. A listener whose
//! certificate cannot be loaded keeps the previous one, or is not opened; the other listeners
//! serve. Backends whose definition did not change are carried over from the previous table,
//! with their connection pools and endpoint health.

mod backend;
mod policy;
mod rule;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use portcullis_config::{
    capability::{Gap, SecretState, reason},
    snapshot::{ListenerConfig, Protocol as ListenerProtocol, SecretFile, Snapshot, TlsConfig},
};

use crate::{
    guard::Engines,
    host::HostPattern,
    route::{
        Action, DrainTiming, ListenerRoutes, RequestMatch, RouteEntry, RouteTable, Rule,
        VirtualHost,
    },
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

    /// What the secrets root holds for `file`, for the capability check: its content, or why
    /// there is none (the message names the file, never its content).
    pub fn state(&self, file: &SecretFile) -> SecretState {
        let path = self.root.join(&file.path);
        match std::fs::read(&path) {
            Ok(content) => SecretState::Present(Some(content)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SecretState::Missing,
            Err(e) => SecretState::Unreadable(format!("{}: {e}", path.display())),
        }
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
/// backends are reused from it, and so is the certificate of a port whose new one cannot be
/// loaded. Never fails: what cannot be served is left out or answers 503, and says so in the
/// table's [`RouteTable::unserved`] and [`RouteTable::problems`].
pub fn compile(snapshot: &Snapshot, previous: &RouteTable, secrets: &Secrets) -> RouteTable {
    let mut problems = Vec::new();
    let backends = backend::compile_all(snapshot, previous, secrets, &mut problems);
    // Matches first: a match that does not compile makes its whole rule answer 503 (its other
    // matches must not fall through to a less specific rule).
    let entries = || {
        snapshot
            .listeners
            .iter()
            .flat_map(|l| &l.virtual_hosts)
            .flat_map(|v| &v.routes)
    };
    let matchers: Vec<Result<RequestMatch, String>> = entries()
        .map(|entry| rule::compile_match(&entry.r#match))
        .collect();
    let mut match_gaps: BTreeMap<usize, Vec<Gap>> = BTreeMap::new();
    for (entry, matcher) in entries().zip(&matchers) {
        if let (Err(error), Some(config)) = (matcher, snapshot.rules.get(entry.rule)) {
            match_gaps.entry(entry.rule).or_default().push(Gap::new(
                config.rule_index,
                &format!("matches[{}]", entry.match_index),
                reason::INVALID,
                error.clone(),
            ));
        }
    }
    let mut engines = Engines {
        shared: snapshot
            .shared_state
            .as_ref()
            .map(|shared| policy::shared_link(&shared.redis, secrets, &previous.engines)),
        ..Engines::default()
    };
    let rules: Vec<Arc<Rule>> = snapshot
        .rules
        .iter()
        .enumerate()
        .map(|(i, config)| {
            // A match shared by several hosts or ports is reported once.
            let mut gaps = match_gaps.remove(&i).unwrap_or_default();
            gaps.sort();
            gaps.dedup();
            let engines = (&previous.engines, &mut engines);
            Arc::new(rule::compile(config, snapshot, secrets, engines, gaps))
        })
        .collect();
    let mut matchers = matchers.into_iter();
    let mut listeners = crate::fast_hash::FastMap::default();
    for listener in &snapshot.listeners {
        let mut routes = compile_routes(listener, &rules, &mut matchers, &mut problems);
        if listener.protocol == ListenerProtocol::Https {
            let tls = listener
                .tls
                .as_ref()
                .ok_or_else(|| "HTTPS without certificates".to_owned())
                .and_then(|tls| compile_tls(tls, secrets));
            match tls {
                Ok(tls) => routes.tls = Some(tls),
                Err(error) => {
                    // The last certificate that loaded keeps serving (a bad renewal must not
                    // close the port); without one, the port is not opened.
                    let kept = previous.listener(listener.port).and_then(|l| l.tls.clone());
                    let outcome = if kept.is_some() {
                        "it keeps its previous certificate"
                    } else {
                        "it is not served"
                    };
                    problems.push(format!("HTTPS port {}: {error}; {outcome}", listener.port));
                    match kept {
                        Some(tls) => routes.tls = Some(tls),
                        None => continue,
                    }
                }
            }
        }
        listeners.insert(listener.port, routes);
    }
    RouteTable {
        revision: snapshot.revision.clone(),
        listeners,
        backends,
        drain: DrainTiming {
            delay: Duration::from_millis(snapshot.drain.delay_ms),
            timeout: Duration::from_millis(snapshot.drain.timeout_ms),
        },
        unserved: rules
            .iter()
            .filter(|r| matches!(r.action, Action::Unserved(_)))
            .cloned()
            .collect(),
        problems,
        engines,
    }
}

/// The virtual hosts of one listener. `matchers` yields the compiled match of each entry, in
/// snapshot order.
fn compile_routes(
    listener: &ListenerConfig,
    rules: &[Arc<Rule>],
    matchers: &mut impl Iterator<Item = Result<RequestMatch, String>>,
    problems: &mut Vec<String>,
) -> ListenerRoutes {
    let port = listener.port;
    let mut virtual_hosts = Vec::with_capacity(listener.virtual_hosts.len());
    for vhost in &listener.virtual_hosts {
        let mut entries = Vec::with_capacity(vhost.routes.len());
        for entry in &vhost.routes {
            let matcher = matchers.next();
            let Some(rule) = rules.get(entry.rule) else {
                problems.push(format!(
                    "port {port} host {}: an entry names rule {} of {}; it is left out",
                    vhost.hostname,
                    entry.rule,
                    rules.len()
                ));
                continue;
            };
            // A match that did not compile made its rule answer 503; it matches nothing itself.
            if let Some(Ok(matcher)) = matcher {
                entries.push(RouteEntry {
                    matcher,
                    rule: rule.clone(),
                });
            }
        }
        virtual_hosts.push(VirtualHost::new(
            HostPattern::parse(&vhost.hostname),
            vhost.listener.clone(),
            entries,
        ));
    }
    ListenerRoutes::new(port, virtual_hosts)
}

fn compile_tls(tls: &TlsConfig, secrets: &Secrets) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut certificates = Vec::with_capacity(tls.certificates.len());
    for cert in &tls.certificates {
        let chain = secrets.read(&cert.cert)?;
        let key = secrets.read(&cert.key)?;
        let key = certified_key(&chain, &key)
            .map_err(|e| format!("Secret {}/{}: {e}", cert.cert.namespace, cert.cert.name))?;
        certificates.push(SniCertificate {
            hostname: cert.hostname.as_deref().map(HostPattern::parse),
            key,
        });
    }
    if certificates.is_empty() {
        return Err("HTTPS without certificates".to_owned());
    }
    server_config(SniResolver::new(certificates))
}

#[cfg(test)]
mod tests;
