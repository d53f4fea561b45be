//! Shutdown: wait for SIGTERM (or Ctrl-C), then drain exactly as the design says — `/ready`
//! turns 503 at once, the listeners keep accepting for `drain.delay` so load balancers notice,
//! then stop accepting, in-flight requests get up to `drain.timeout` to finish, and the process
//! exits 0.

use std::sync::Arc;

use crate::{gateway::Gateway, route::DrainTiming, server::Server};

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Drains the gateway. Returns the number of connections still open when the timeout ran out
/// (0 when every request finished).
pub async fn drain(gateway: &Gateway, server: &Arc<Server>, timing: DrainTiming) -> usize {
    gateway.start_draining();
    tracing::info!(
        delay_ms = timing.delay.as_millis() as u64,
        timeout_ms = timing.timeout.as_millis() as u64,
        "draining: /ready reports 503"
    );
    tokio::time::sleep(timing.delay).await;
    server.stop_accepting();
    tracing::info!("draining: stopped accepting; waiting for requests in flight");
    let left = server.shutdown_connections(timing.timeout).await;
    if left > 0 {
        tracing::warn!(
            connections = left,
            "drain timeout: closing remaining connections"
        );
    } else {
        tracing::info!("drained");
    }
    left
}
