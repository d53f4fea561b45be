//! `portcullis controller`: the operator.

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use kube::{Config, client::ClientBuilder};
use portcullis_controller::{
    BuildOptions, ControllerConfig, LeaderElection, Metrics, children::default_proxy_image,
};

/// Arguments of `portcullis controller`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to serve /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080", env = "PORTCULLIS_METRICS_ADDR")]
    pub metrics_addr: SocketAddr,
    /// Elect a leader among the operator's replicas through a Lease; only the leader writes.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "PORTCULLIS_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Name of the leader election Lease.
    #[arg(long, default_value = "portcullis-controller")]
    pub lease_name: String,
    /// Namespace of the leader election Lease; the pod's own by default
    /// (`POD_NAMESPACE`), else `portcullis-system`.
    #[arg(long, env = "POD_NAMESPACE", default_value = "portcullis-system")]
    pub lease_namespace: String,
    /// Seconds a Lease holds without renewal: how long a dead leader goes unnoticed at most
    /// (at least 2; the holder renews a third of it, at most 5 s, before it expires).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..))]
    pub lease_duration: u64,
    /// The image of the gateway pods.
    #[arg(long, default_value_t = default_proxy_image(), env = "PORTCULLIS_PROXY_IMAGE")]
    pub proxy_image: String,
    /// Watch only this namespace (a namespace-scoped install); all namespaces by default.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Seconds between checks of a converged Gateway.
    #[arg(long, default_value_t = 300)]
    pub resync: u64,
    /// This instance's name in the Lease and in Events, unique among the operator's replicas
    /// (`POD_NAME` in a cluster; the host name and process id otherwise).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let metrics = Arc::new(Metrics::default());
        let kubeconfig = Config::infer()
            .await
            .context("no Kubernetes API to talk to (in-cluster config or kubeconfig)")?;
        let client = ClientBuilder::try_from(kubeconfig)?
            .with_layer(&metrics.api_writes_layer())
            .build();
        let config = ControllerConfig {
            options: BuildOptions {
                proxy_image: args.proxy_image.clone(),
            },
            leader_election: args.leader_election.then(|| {
                LeaderElection::new(
                    &args.lease_name,
                    &args.lease_namespace,
                    Duration::from_secs(args.lease_duration),
                )
            }),
            metrics_addr: Some(args.metrics_addr),
            resync: Duration::from_secs(args.resync),
            identity: args.identity.clone().unwrap_or_else(default_identity),
            metrics,
            namespace: args.namespace.clone(),
            ..ControllerConfig::default()
        };
        portcullis_controller::run(client, config, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `<host name>-<process id>`: two instances never share it, so two never both believe they
/// hold the Lease.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "portcullis-controller".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Resolves on SIGTERM (what Kubernetes sends) or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight reconciles, releasing the lease");
}
