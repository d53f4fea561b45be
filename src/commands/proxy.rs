//! `portcullis proxy`: the in-cluster data plane started by the Deployment the operator renders.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
};

use portcullis_proxy::DataPlaneOptions;

/// Arguments of `portcullis proxy`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The compiled config snapshot (the ConfigMap's `config.yaml`, mounted).
    #[arg(long)]
    pub config: PathBuf,
    /// Follow this ConfigMap (`namespace/name`) through the API for immediate updates.
    #[arg(long)]
    pub configmap: Option<String>,
    /// Where the referenced Secrets are mounted (`<dir>/<namespace>/<name>/<key>`).
    #[arg(long, default_value = "/var/run/portcullis/secrets")]
    pub secrets: PathBuf,
    /// The admin listener (probes and metrics).
    #[arg(long, default_value = "0.0.0.0:9901")]
    pub admin: SocketAddr,
    /// The address the listener ports are bound on.
    #[arg(long, default_value = "0.0.0.0")]
    pub listen: IpAddr,
    /// Peers (IP or CIDR) whose X-Forwarded-* headers are trusted; repeat for several.
    #[arg(long = "trusted-proxy")]
    pub trusted_proxies: Vec<String>,
    /// Do not write one JSON access-log line per request.
    #[arg(long)]
    pub no_access_log: bool,
}

/// Serves the mounted snapshot (reloading when the kubelet updates it) until SIGTERM, then
/// drains. Following the ConfigMap through the API and EndpointSlice discovery are still to be
/// wired here with `DataPlane::apply` and `DataPlane::set_endpoints`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if let Some(configmap) = &args.configmap {
        eprintln!(
            "note: following ConfigMap {configmap} through the API is not wired yet; \
             reloading from {} when it changes",
            args.config.display()
        );
    }
    let options = DataPlaneOptions {
        admin: args.admin,
        listen_host: args.listen,
        access_log: !args.no_access_log,
        trusted_proxies: args.trusted_proxies.clone(),
        ..DataPlaneOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime
        .block_on(portcullis_proxy::proxy(
            options,
            args.config.clone(),
            args.secrets.clone(),
        ))
        .map_err(anyhow::Error::msg)?;
    Ok(ExitCode::SUCCESS)
}
