//! Following the Gateway's ConfigMap: every new revision is compiled and swapped in, and the
//! EndpointSlice watches follow the snapshot's `service` backends.

use std::{collections::BTreeMap, sync::Arc};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use portcullis_config::{
    Snapshot,
    configmap::{REVISION_ANNOTATION, snapshot_from_configmap},
    replica::Report,
    snapshot::Discovery,
};
use tokio::task::JoinHandle;

use super::{ClusterSource, backoff::WatchBackoff, endpoints, report::Reporter};
use crate::{DataPlane, compile::Secrets};

/// Watches the ConfigMap named by `source` until the task is aborted, and reports each outcome
/// on the replica's Pod through `reporter`.
pub async fn follow(
    client: Client,
    plane: Arc<DataPlane>,
    source: ClusterSource,
    secrets: Secrets,
    reporter: Reporter,
) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &source.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", source.name));
    let mut watches = Watches::default();
    let mut stream = std::pin::pin!(
        watcher(api, config)
            .backoff(WatchBackoff::default())
            .applied_objects()
    );
    while let Some(event) = stream.next().await {
        let config_map = match event {
            Ok(config_map) => config_map,
            Err(error) => {
                tracing::warn!(%error, configmap = %source.name, "watching the ConfigMap");
                continue;
            }
        };
        let snapshot = match snapshot_from_configmap(&config_map) {
            Ok(snapshot) => snapshot,
            Err(error) => {
                // Logged and shown at /config; the previous config keeps serving (or, before
                // the first one, the process stays up and not ready).
                let message = format!("ConfigMap {}/{}: {error}", source.namespace, source.name);
                plane.gateway().reload_failed(message.clone());
                reporter.report(Report::Refused {
                    serving: plane.gateway().serving(),
                    refused: config_map
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(REVISION_ANNOTATION))
                        .cloned()
                        .unwrap_or_default(),
                    error: message,
                });
                continue;
            }
        };
        // Before the revision check: the first event usually carries the revision the mounted
        // start-up copy already serves, and its `service` backends still need their watches.
        watches.sync(&client, &plane, &snapshot);
        if plane.gateway().serving().as_ref() != Some(&snapshot.revision) {
            // What it cannot serve is logged and shown in /config by apply; the rest serves.
            let _ = plane.apply(&snapshot, &secrets).await;
        }
        if let Some(revision) = plane.gateway().serving() {
            reporter.report(Report::Served { revision });
        }
    }
}

/// One EndpointSlice watch per `service` backend of the current snapshot.
#[derive(Default)]
struct Watches {
    running: BTreeMap<String, (Discovery, JoinHandle<()>)>,
}

impl Watches {
    /// Starts watches for new `service` backends and stops those no longer in the snapshot.
    fn sync(&mut self, client: &Client, plane: &Arc<DataPlane>, snapshot: &Snapshot) {
        let wanted: BTreeMap<&String, &Discovery> = snapshot
            .backends
            .iter()
            .filter(|(_, b)| matches!(b.discovery, Discovery::Service { .. }))
            .map(|(key, b)| (key, &b.discovery))
            .collect();
        self.running.retain(|key, (discovery, task)| {
            let keep = wanted.get(key).is_some_and(|d| *d == discovery);
            if !keep {
                task.abort();
            }
            keep
        });
        for (key, discovery) in wanted {
            if self.running.contains_key(key) {
                continue;
            }
            if let Discovery::Service {
                namespace,
                name,
                port,
            } = discovery
            {
                let task = tokio::spawn(endpoints::follow(
                    client.clone(),
                    plane.clone(),
                    key.clone(),
                    endpoints::ServicePort {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        port: *port,
                    },
                ));
                self.running.insert(key.clone(), (discovery.clone(), task));
            }
        }
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for (_, task) in self.running.values() {
            task.abort();
        }
    }
}
