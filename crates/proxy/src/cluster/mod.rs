//! The data plane inside a cluster: follows its Gateway's ConfigMap through the API (a change is
//! served within milliseconds, not the kubelet's minute-long volume sync) and discovers the
//! endpoints of `service` backends from EndpointSlices.
//!
//! The mounted ConfigMap file is only the start-up copy: the pod serves it at once, before the
//! API answers, and the API takes over from there. The mounted Secrets are watched: a rotated
//! certificate or key is served without a restart.

mod backoff;
mod configmap;
mod endpoints;
mod report;

use std::{path::PathBuf, sync::Arc};

use portcullis_config::configmap::snapshot_from_bytes;

use crate::{DataPlane, DataPlaneOptions, compile::Secrets, lifecycle};

pub use endpoints::ready_addresses;
pub use report::{POD_NAME_ENV, POD_NAMESPACE_ENV};

/// Where the in-cluster proxy gets its config.
#[derive(Debug, Clone)]
pub struct ClusterSource {
    /// The mounted snapshot (`config.yaml` or `config.yaml.gz` of the ConfigMap): the start-up copy.
    pub config_file: PathBuf,
    /// Where the Secrets the snapshot names are mounted.
    pub secrets_root: PathBuf,
    /// Namespace of the Gateway's ConfigMap.
    pub namespace: String,
    /// Name of the Gateway's ConfigMap (`<gateway>-config`).
    pub name: String,
}

/// The mounted snapshot: `config.yaml`, or `config.yaml.gz` beside it when the operator stored
/// a large snapshot compressed.
fn read_start_up_copy(file: &std::path::Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(file).or_else(|error| {
        let mut compressed = file.as_os_str().to_owned();
        compressed.push(".gz");
        std::fs::read(compressed).map_err(|_| error)
    })
}

/// `portcullis proxy --configmap NS/NAME`: serves the mounted snapshot, then follows the
/// ConfigMap and the EndpointSlices of its backends through the API until SIGTERM, then drains.
pub async fn serve(options: DataPlaneOptions, source: ClusterSource) -> Result<(), String> {
    let plane = Arc::new(DataPlane::start(options).await?);
    // Ports open with the start-up copy, but the load balancer sends nothing until the
    // endpoints of its Service backends are known.
    plane.gateway().await_discovery();
    let secrets = Secrets::new(source.secrets_root.clone());
    // Nothing in the snapshot stops the process: what cannot be served answers 503 or is left
    // out (apply logs it and shows it at /config), and a start-up copy that cannot be read
    // leaves the process up and not ready until the ConfigMap brings one that can.
    let start_up = read_start_up_copy(&source.config_file)
        .map_err(|e| format!("no mounted config at {}: {e}", source.config_file.display()))
        .and_then(|bytes| {
            snapshot_from_bytes(&bytes)
                .map_err(|e| format!("{}: {e}", source.config_file.display()))
        });
    match start_up {
        Ok(snapshot) => {
            let _ = plane.apply(&snapshot, &secrets).await;
        }
        Err(error) => plane
            .gateway()
            .reload_failed(format!("{error}; waiting for the ConfigMap")),
    }
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API: {e}"))?;
    // The start-up copy is usually a revision behind; the ConfigMap's first event says what
    // this replica serves, and the report follows.
    let reporter = report::Reporter::from_env(client.clone());
    // Mounted Secrets change in place (the kubelet swaps them): rotated certificates and keys
    // are served without a restart.
    let secrets_watch = plane.watch_secrets(secrets.clone());
    let follower = tokio::spawn(configmap::follow(
        client,
        plane.clone(),
        source,
        secrets,
        reporter,
    ));
    lifecycle::shutdown_signal().await;
    follower.abort();
    secrets_watch.abort();
    plane.drain().await;
    Ok(())
}
