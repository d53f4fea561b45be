//! `portcullis demo`: the whole picture on localhost, no cluster needed.

use std::{net::SocketAddr, process::ExitCode};

use portcullis_proxy::DemoOptions;

use super::serve::block_on;

/// Arguments of `portcullis demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The gateway's port on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The admin listener.
    #[arg(long, default_value = "127.0.0.1:9901")]
    pub admin: SocketAddr,
    /// Do not print one JSON access-log line per request.
    #[arg(long)]
    pub no_access_log: bool,
}

/// Starts the demo services and the gateway, prints the URLs and `curl` lines, runs until
/// Ctrl-C.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let options = DemoOptions {
        port: args.port,
        admin: args.admin,
        access_log: !args.no_access_log,
    };
    block_on(portcullis_proxy::demo(options))
}
