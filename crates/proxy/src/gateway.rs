//! The gateway's shared state: the routing table behind an `ArcSwap`, settings, metrics and the
//! readiness/drain flags that the server, the admin listener and reloads all look at.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Instant, SystemTime},
};

use arc_swap::ArcSwap;

use crate::{
    forwarded::TrustedProxies,
    metrics::{Metrics, ReloadLabels, RevisionLabels},
    route::{Action, RouteTable},
};

/// Settings that do not come from the snapshot: they belong to the process.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: TrustedProxies,
    /// Whether one JSON line per request is written to stdout.
    pub access_log: bool,
    /// Largest request body buffered so that it can be retried or mirrored; larger bodies are
    /// streamed and sent once.
    pub max_buffered_body: usize,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            trusted_proxies: TrustedProxies::default(),
            access_log: true,
            max_buffered_body: 64 * 1024,
        }
    }
}

/// The outcome of the last reloads, for `/config`.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// The error of the last reload, if it failed; cleared by the next success.
    pub last_error: Option<String>,
    /// When the table being served was installed.
    pub loaded_at: Option<SystemTime>,
    /// How long compiling and swapping the last table took, in microseconds.
    pub last_swap_micros: u128,
    /// How long the last reload took end to end (reading and parsing the files too), in
    /// microseconds; set by reloaders that read files.
    pub last_reload_micros: u128,
}

/// The state every connection, the admin listener and the reloader share.
#[derive(Debug)]
pub struct Gateway {
    table: ArcSwap<RouteTable>,
    /// Process settings.
    pub settings: GatewaySettings,
    /// Metrics.
    pub metrics: Metrics,
    loaded: AtomicBool,
    /// Set while a replica in a cluster has not yet listed the endpoints of every Service
    /// backend of its first config; cleared once, never set again (see
    /// [`Gateway::await_discovery`]).
    discovering: AtomicBool,
    draining: AtomicBool,
    status: Mutex<ReloadStatus>,
}

impl Gateway {
    /// A gateway with an empty table (every request 404) that is not ready until a table is
    /// installed.
    pub fn new(settings: GatewaySettings) -> Arc<Self> {
        Arc::new(Self {
            table: ArcSwap::from_pointee(RouteTable::default()),
            settings,
            metrics: Metrics::new(),
            loaded: AtomicBool::new(false),
            discovering: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            status: Mutex::new(ReloadStatus::default()),
        })
    }

    /// The table being served. Requests hold on to the one they started with.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// Swaps in a new table atomically and starts its backends' health checks. `started` is when
    /// the reload began (for the swap-time figure in `/config`).
    pub fn install(&self, table: RouteTable, started: Instant) {
        for backend in table.backends.values() {
            backend.start_health_checks();
        }
        self.metrics.revision.clear();
        self.metrics
            .revision
            .get_or_create(&RevisionLabels {
                revision: table.revision.clone(),
            })
            .set(1);
        self.metrics
            .route_entries
            .set(i64::try_from(table.entry_count()).unwrap_or(i64::MAX));
        self.metrics.unserved_rules.clear();
        for rule in &table.unserved {
            if let Action::Unserved(unserved) = &rule.action {
                self.metrics
                    .unserved_rules
                    .get_or_create(&unserved.labels)
                    .set(1);
            }
        }
        self.table.store(Arc::new(table));
        self.loaded.store(true, Ordering::SeqCst);
        self.metrics
            .reloads
            .get_or_create(&ReloadLabels { result: "success" })
            .inc();
        if let Ok(mut status) = self.status.lock() {
            status.last_error = None;
            status.loaded_at = Some(SystemTime::now());
            status.last_swap_micros = started.elapsed().as_micros();
        }
    }

    /// Records a config that could not be read: the previous table keeps serving, or, before
    /// any was loaded, the process stays up and not ready, saying why at `/config` and `/ready`.
    pub fn reload_failed(&self, error: String) {
        if self.loaded.load(Ordering::SeqCst) {
            tracing::error!(%error, "config refused; the previous config keeps serving");
        } else {
            tracing::error!(%error, "config refused; not ready until a config can be loaded");
        }
        self.metrics
            .reloads
            .get_or_create(&ReloadLabels { result: "failure" })
            .inc();
        if let Ok(mut status) = self.status.lock() {
            status.last_error = Some(error);
        }
    }

    /// Records ports of the table being served that could not be opened (in use, or privileged):
    /// the other ports serve, and the next reload tries again.
    pub fn listen_failed(&self, error: String) {
        tracing::error!(%error, "cannot open every port; the others serve");
        if let Ok(mut status) = self.status.lock() {
            status.last_error = Some(error);
        }
    }

    /// Records how long a whole reload took (files read, parsed, compiled and swapped).
    pub fn record_reload_time(&self, micros: u128) {
        if let Ok(mut status) = self.status.lock() {
            status.last_reload_micros = micros;
        }
    }

    /// The outcome of the last reloads.
    pub fn reload_status(&self) -> ReloadStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The revision being served, once a config has loaded.
    pub fn serving(&self) -> Option<String> {
        self.loaded
            .load(Ordering::SeqCst)
            .then(|| self.table().revision.clone())
    }

    /// Whether a config is loaded, the endpoints of its Service backends are known, and the
    /// gateway is not draining: what `/ready` reports.
    pub fn is_ready(&self) -> bool {
        self.loaded.load(Ordering::SeqCst) && !self.is_discovering() && !self.is_draining()
    }

    /// Holds readiness back until [`Gateway::discovered`]: a replica that discovers endpoints
    /// (in a cluster) must not take traffic before it knows them, or its first requests would
    /// answer 503, or go to a backend's failover target while the primary is healthy.
    /// Only the first config waits: a backend added later is discovered while the replica
    /// serves, so a config change never takes every replica out of the load balancer at once.
    pub fn await_discovery(&self) {
        self.discovering.store(true, Ordering::SeqCst);
    }

    /// Whether readiness still waits for the first listing of some Service's endpoints.
    pub fn is_discovering(&self) -> bool {
        self.discovering.load(Ordering::SeqCst)
    }

    /// The endpoints of every Service backend of the first config have been listed once.
    pub fn discovered(&self) {
        if self.discovering.swap(false, Ordering::SeqCst) {
            tracing::info!("endpoints of every Service backend known; ready");
        }
    }

    /// Whether a drain has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Starts draining: `/ready` answers 503 from now on, and HTTP/1 responses ask clients to
    /// close their connections.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}
