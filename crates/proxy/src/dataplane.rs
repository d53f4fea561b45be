//! The data plane as a whole, and the entry points the CLI calls: `portcullis run`,
//! `portcullis proxy` (file-based part) and the building block both share, [`DataPlane`].

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use portcullis_config::{Snapshot, configmap::snapshot_from_bytes};
use tokio::net::TcpListener;

use crate::{
    admin,
    compile::{Secrets, compile},
    forwarded::TrustedProxies,
    gateway::{Gateway, GatewaySettings},
    lifecycle,
    purge::PurgeToken,
    route::Action,
    server::{Server, ServerLimits},
    watch,
};

/// Process-level options of a data plane.
#[derive(Debug, Clone)]
pub struct DataPlaneOptions {
    /// Where the admin listener binds (`/healthz`, `/ready`, `/metrics`, `/config`).
    pub admin: SocketAddr,
    /// The address the snapshot's listener ports are bound on (`0.0.0.0` by default).
    pub listen_host: IpAddr,
    /// Whether one JSON access-log line per request goes to stdout.
    pub access_log: bool,
    /// Peers (IPs or CIDRs) whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<String>,
    /// Client connection limits and timeouts.
    pub limits: ServerLimits,
    /// The file holding the token of `POST /cache/purge` on the admin listener; without one
    /// the endpoint does not exist.
    pub purge_token_file: Option<PathBuf>,
}

impl Default for DataPlaneOptions {
    fn default() -> Self {
        Self {
            admin: SocketAddr::from(([127, 0, 0, 1], 9901)),
            listen_host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            access_log: true,
            trusted_proxies: Vec::new(),
            limits: ServerLimits::default(),
            purge_token_file: None,
        }
    }
}

/// A running data plane: gateway state, client server and admin listener.
#[derive(Debug)]
pub struct DataPlane {
    gateway: Arc<Gateway>,
    server: Arc<Server>,
    listen_host: IpAddr,
    admin_addr: SocketAddr,
    discovered: Mutex<HashMap<String, Vec<String>>>,
    /// The snapshot last applied successfully. Held while a snapshot is applied, so that two
    /// applies (a new ConfigMap revision, a rotated Secret) never interleave.
    applied: tokio::sync::Mutex<Option<Snapshot>>,
    _admin: tokio::task::JoinHandle<()>,
}

impl DataPlane {
    /// Starts the admin listener; no client port is open until a snapshot is applied.
    pub async fn start(options: DataPlaneOptions) -> Result<Self, String> {
        let trusted_proxies = TrustedProxies::parse(&options.trusted_proxies)?;
        let gateway = Gateway::new(GatewaySettings {
            trusted_proxies,
            access_log: options.access_log,
            ..GatewaySettings::default()
        });
        let server = Server::new(gateway.clone(), options.limits.clone());
        let admin_listener = TcpListener::bind(options.admin)
            .await
            .map_err(|e| format!("cannot listen on {} (admin): {e}", options.admin))?;
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|e| format!("admin listener: {e}"))?;
        tracing::info!(%admin_addr, "admin listening");
        let purge_token = options
            .purge_token_file
            .as_deref()
            .map(PurgeToken::from_file)
            .transpose()?;
        let admin = admin::serve(gateway.clone(), admin_listener, purge_token);
        tokio::spawn(prune_idle(Arc::downgrade(&gateway)));
        Ok(Self {
            gateway,
            server,
            listen_host: options.listen_host,
            admin_addr,
            discovered: Mutex::new(HashMap::new()),
            applied: tokio::sync::Mutex::new(None),
            _admin: admin,
        })
    }

    /// The shared gateway state.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// The client server.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Where the admin listener is bound.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Compiles `snapshot` and swaps it in, then opens the ports it adds and closes those it
    /// drops. What it cannot serve (rules answering 503, a listener without a usable
    /// certificate) is logged and shown at `/config`; a port that cannot be opened too, and is
    /// the error returned. The process keeps running whatever the snapshot holds.
    pub async fn apply(&self, snapshot: &Snapshot, secrets: &Secrets) -> Result<(), String> {
        let mut applied = self.applied.lock().await;
        let result = self.compile_and_swap(snapshot, secrets).await;
        *applied = Some(snapshot.clone());
        result
    }

    /// Compiles the snapshot applied last again, reading its Secret files anew (a rotated
    /// certificate or key). Nothing happens before a first snapshot is applied.
    pub async fn reapply(&self, secrets: &Secrets) -> Result<(), String> {
        let applied = self.applied.lock().await;
        match applied.as_ref() {
            Some(snapshot) => self.compile_and_swap(snapshot, secrets).await,
            None => Ok(()),
        }
    }

    /// Calls [`Self::reapply`] whenever a file under `secrets`' root changes (checked every
    /// second; the kubelet updates mounted Secrets about once a minute), until the returned task
    /// is aborted.
    pub fn watch_secrets(self: &Arc<Self>, secrets: Secrets) -> tokio::task::JoinHandle<()> {
        let plane = self.clone();
        let root = secrets.root().to_path_buf();
        tokio::spawn(on_change(vec![root], Duration::from_secs(1), move || {
            let plane = plane.clone();
            let secrets = secrets.clone();
            async move {
                tracing::info!(root = %secrets.root().display(), "Secret files changed; reloading");
                // A refused reload is logged and shown in /config; the old config keeps serving.
                let _ = plane.reapply(&secrets).await;
            }
        }))
    }

    async fn compile_and_swap(&self, snapshot: &Snapshot, secrets: &Secrets) -> Result<(), String> {
        let started = Instant::now();
        let previous = self.gateway.table();
        let compiled = compile(snapshot, &previous, secrets);
        let revision = compiled.revision.clone();
        let entries = compiled.entry_count();
        for rule in &compiled.unserved {
            if let Action::Unserved(unserved) = &rule.action {
                tracing::warn!(
                    route = %rule.route,
                    rule = rule.index,
                    reasons = %unserved.reasons.join("; "),
                    "rule not served: it answers 503"
                );
            }
        }
        for problem in &compiled.problems {
            tracing::warn!(%problem, "not served as written");
        }
        {
            // Held until the new table is installed, so endpoints discovered meanwhile reach
            // it (set_endpoints waits) instead of only the table being replaced.
            let discovered = self
                .discovered
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (name, addresses) in discovered.iter() {
                if let Some(backend) = compiled.backends.get(name)
                    && backend.spec.static_endpoints.is_none()
                    && let Err(e) = backend.set_endpoints(addresses)
                {
                    tracing::warn!(backend = %name, error = %e, "discovered endpoints refused");
                }
            }
            self.gateway.install(compiled, started);
            self.settle_discovery(&discovered);
        }
        tracing::info!(
            %revision,
            entries,
            swap_ms = started.elapsed().as_secs_f64() * 1000.0,
            "config loaded"
        );
        self.server
            .sync_ports(self.listen_host)
            .await
            .inspect_err(|error| self.gateway.listen_failed(error.clone()))
    }

    /// Sets the endpoints of a backend discovered from a Kubernetes Service (EndpointSlices);
    /// they are kept across reloads.
    pub fn set_endpoints(&self, backend: &str, addresses: Vec<String>) -> Result<(), String> {
        let mut discovered = self
            .discovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let result = match self.gateway.table().backends.get(backend) {
            Some(running) => running.set_endpoints(&addresses),
            None => Ok(()),
        };
        // Listed, even if refused: readiness waits for the API's answer, not for good news.
        discovered.insert(backend.to_owned(), addresses);
        self.settle_discovery(&discovered);
        result
    }

    /// Ends [`Gateway::await_discovery`] once every Service backend of the table being served
    /// has been listed.
    fn settle_discovery(&self, discovered: &HashMap<String, Vec<String>>) {
        if !self.gateway.is_discovering() {
            return;
        }
        let table = self.gateway.table();
        let listed = table
            .backends
            .iter()
            .filter(|(_, backend)| backend.spec.static_endpoints.is_none())
            .all(|(name, _)| discovered.contains_key(name));
        if listed {
            self.gateway.discovered();
        }
    }

    /// Drains with the timing of the loaded snapshot. Returns the connections still open when
    /// the drain timeout ran out.
    pub async fn drain(&self) -> usize {
        let timing = self.gateway.table().drain;
        lifecycle::drain(&self.gateway, &self.server, timing).await
    }

    /// Waits for SIGTERM or Ctrl-C, then drains.
    pub async fn run_until_signal(&self) {
        lifecycle::shutdown_signal().await;
        self.drain().await;
    }
}

/// Every few seconds, closes the idle upstream connections that expired or that their backend
/// closed, and drops the rate-limit keys of callers gone idle, until the gateway is gone.
async fn prune_idle(gateway: std::sync::Weak<Gateway>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticker.tick().await;
        let Some(gateway) = gateway.upgrade() else {
            return;
        };
        let table = gateway.table();
        for backend in table.backends.values() {
            backend.prune_idle_connections();
        }
        table.engines.retain_recent();
    }
}

/// Loads the config for `portcullis run`: the snapshot compiled from the manifests, and the
/// directory the `Secret` manifests were written to.
pub type Loader = Arc<dyn Fn() -> Result<(Snapshot, PathBuf), String> + Send + Sync>;

/// `portcullis run`: serves what `loader` returns, reloads whenever a file under `watch`
/// changes (a bad change is logged and shown in `/config`; the previous config keeps serving),
/// and drains on SIGTERM. Fails only when the admin listener cannot start: a config that cannot
/// be loaded at start-up leaves the process up and not ready, saying why at `/config`, until a
/// change to the files can be loaded.
pub async fn run(
    options: DataPlaneOptions,
    watch_paths: Vec<PathBuf>,
    loader: Loader,
) -> Result<(), String> {
    let plane = Arc::new(DataPlane::start(options).await?);
    let reload = {
        let plane = plane.clone();
        move || {
            let plane = plane.clone();
            let loader = loader.clone();
            async move {
                let started = Instant::now();
                match load(&loader).await {
                    Ok((snapshot, root)) => {
                        // Whatever cannot be served is logged and shown in /config by apply.
                        if plane.apply(&snapshot, &Secrets::new(root)).await.is_ok() {
                            plane
                                .gateway()
                                .record_reload_time(started.elapsed().as_micros());
                        }
                    }
                    Err(error) => plane.gateway().reload_failed(error),
                }
            }
        }
    };
    reload().await;
    let watcher = tokio::spawn(on_change(watch_paths, Duration::from_millis(500), reload));
    plane.run_until_signal().await;
    watcher.abort();
    Ok(())
}

/// Runs `reload` after every change to the files under `paths` (checked every `interval`),
/// one reload at a time: changes seen during a reload make one more reload after it.
async fn on_change<F, Fut>(paths: Vec<PathBuf>, interval: Duration, mut reload: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let poll = watch::poll(paths, interval, move || {
        let _ = tx.try_send(());
    });
    let reloads = async move {
        while rx.recv().await.is_some() {
            reload().await;
        }
    };
    // One task: aborting it stops the polling too.
    tokio::select! {
        () = poll => {}
        () = reloads => {}
    }
}

async fn load(loader: &Loader) -> Result<(Snapshot, PathBuf), String> {
    let loader = loader.clone();
    tokio::task::spawn_blocking(move || loader())
        .await
        .map_err(|e| format!("config loader panicked: {e}"))?
}

/// `portcullis proxy --config FILE`: serves the snapshot in `config` (as the operator stores it
/// in the ConfigMap: JSON or YAML, gzip-compressed or not), reloads when it or a Secret file
/// under `secrets_root` changes, drains on SIGTERM. [`crate::cluster::serve`] follows the
/// ConfigMap through the API instead.
pub async fn proxy(
    options: DataPlaneOptions,
    config: PathBuf,
    secrets_root: PathBuf,
) -> Result<(), String> {
    let file = config.clone();
    let root = secrets_root.clone();
    let loader: Loader = Arc::new(move || {
        let bytes =
            std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let snapshot =
            snapshot_from_bytes(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
        Ok((snapshot, root.clone()))
    });
    // The Secret files too: a rotated certificate is served without a restart.
    run(options, vec![config, secrets_root], loader).await
}
