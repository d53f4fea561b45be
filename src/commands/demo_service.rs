//! `portcullis demo-service`: one of the demo's services on its own, as the Deployments of
//! `deploy/examples` run it in a cluster.

use std::{net::SocketAddr, process::ExitCode};

use super::serve::block_on;

/// Arguments of `portcullis demo-service`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Which service: `users`, `orders` or `catalog` (a standby of orders is `orders` again,
    /// with a store of its own).
    #[arg(long)]
    pub name: String,
    /// Where it listens; `GET /healthz` is its probe.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
}

/// Serves the service until SIGTERM or Ctrl-C.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    block_on(portcullis_proxy::demo::serve_one(&args.name, args.listen))
}
