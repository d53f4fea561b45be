//! Options shared by the commands that serve traffic (`run`, `proxy`, `demo`), and the runtime they
//! serve on.

use std::{
    net::{IpAddr, SocketAddr},
    process::ExitCode,
};

use portcullis_proxy::DataPlaneOptions;

/// Data-plane flags common to `run` and `proxy`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// The address the listener ports are bound on.
    #[arg(long, default_value = "0.0.0.0")]
    pub listen: IpAddr,
    /// Peers (IP or CIDR) whose `X-Forwarded-For/-Proto/-Host` headers are believed; repeat the
    /// flag for several. From any other peer those headers are replaced.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<String>,
    /// Do not write one JSON access-log line per request to standard output.
    #[arg(long)]
    pub no_access_log: bool,
    /// Most client connections open at once (0: no cap). At the cap new connections wait in
    /// the kernel's accept queue until one closes; keep it below the open-files limit.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_connections: usize,
    /// A file holding a token (16+ characters) that enables `POST /cache/purge?prefix=` on the
    /// admin listener for callers presenting `Authorization: Bearer <token>`. Without it the
    /// admin listener has no endpoint that changes anything.
    #[arg(long, value_name = "FILE")]
    pub purge_token_file: Option<std::path::PathBuf>,
}

impl ServeArgs {
    /// The data-plane options these flags describe, with the admin listener on `admin`.
    pub fn options(&self, admin: SocketAddr) -> DataPlaneOptions {
        DataPlaneOptions {
            admin,
            listen_host: self.listen,
            access_log: !self.no_access_log,
            trusted_proxies: self.trusted_proxies.clone(),
            limits: portcullis_proxy::server::ServerLimits {
                max_connections: self.max_connections,
                ..Default::default()
            },
            purge_token_file: self.purge_token_file.clone(),
        }
    }
}

/// Runs `future` on a multi-threaded runtime and turns its outcome into an exit code.
pub fn block_on<F>(future: F) -> anyhow::Result<ExitCode>
where
    F: std::future::Future<Output = Result<(), String>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(future) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            eprintln!("portcullis: {error}");
            Ok(ExitCode::from(1))
        }
    }
}
