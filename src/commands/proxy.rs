//! `portcullis proxy`: the in-cluster data plane, started by the Deployment the operator
//! renders.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use super::serve::{ServeArgs, block_on};

/// Arguments of `portcullis proxy`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The compiled config snapshot (the Gateway ConfigMap's `config.yaml`, mounted). Without
    /// `--configmap` it is reloaded whenever the file changes.
    #[arg(long)]
    pub config: PathBuf,
    /// Follow this ConfigMap (`namespace/name`, the Gateway's `<gateway>-config`) through the
    /// Kubernetes API: a new revision is served within milliseconds, and `service` backends get
    /// their endpoints from EndpointSlices. `--config` is then only the start-up copy.
    #[arg(long, value_name = "NS/NAME")]
    pub configmap: Option<String>,
    /// Where the Secrets named by the snapshot are mounted, as `<dir>/<namespace>/<name>/<key>`.
    #[arg(long, default_value = "/var/run/portcullis/secrets")]
    pub secrets: PathBuf,
    /// The admin listener (`/healthz`, `/ready`, `/metrics`, `/config`): the kubelet's probes
    /// reach it on the pod IP.
    #[arg(long, default_value = "0.0.0.0:9901")]
    pub admin: SocketAddr,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Serves until SIGTERM, then drains.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let options = args.serve.options(args.admin);
    let Some(configmap) = &args.configmap else {
        return block_on(portcullis_proxy::proxy(
            options,
            args.config.clone(),
            args.secrets.clone(),
        ));
    };
    let Some((namespace, name)) = configmap.split_once('/') else {
        anyhow::bail!("--configmap takes namespace/name, not {configmap:?}");
    };
    block_on(portcullis_proxy::cluster::serve(
        options,
        portcullis_proxy::cluster::ClusterSource {
            config_file: args.config.clone(),
            secrets_root: args.secrets.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        },
    ))
}
