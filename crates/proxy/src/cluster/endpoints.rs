//! Endpoints of a `service` backend from the Service's EndpointSlices: ready endpoints only,
//! updated in place so connections to endpoints that stay are kept.

use std::{collections::BTreeMap, sync::Arc};

use futures::StreamExt;
use k8s_openapi::api::{core::v1::Service, discovery::v1::EndpointSlice};
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        WatchStreamExt,
        watcher::{self, Event},
    },
};

use super::backoff::WatchBackoff;
use crate::DataPlane;

/// A Service port a backend sends to.
#[derive(Debug, Clone)]
pub struct ServicePort {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// The Service port number (the snapshot's); mapped to the slices' port by name.
    pub port: u16,
}

/// Follows the EndpointSlices of `service` and gives the backend `key` their ready addresses.
/// The Service is read for its port name until that is known (it may not exist yet), not on
/// every slice event.
pub async fn follow(client: Client, plane: Arc<DataPlane>, key: String, service: ServicePort) {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &service.namespace);
    let services: Api<Service> = Api::namespaced(client, &service.namespace);
    let config =
        watcher::Config::default().labels(&format!("kubernetes.io/service-name={}", service.name));
    let mut known: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut listing: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut port_name: Option<String> = None;
    let mut stream =
        std::pin::pin!(watcher::watcher(slices, config).backoff(WatchBackoff::default()));
    while let Some(event) = stream.next().await {
        match event {
            // A (re)list begins: nothing is known anew until it is done, and the endpoints in
            // force stay (readiness waits for the first listing's end, not its start).
            Ok(Event::Init) => {
                listing.clear();
                continue;
            }
            Ok(Event::InitApply(slice)) => {
                listing.insert(slice.name_any(), slice);
                continue;
            }
            Ok(Event::InitDone) => known = std::mem::take(&mut listing),
            Ok(Event::Apply(slice)) => {
                known.insert(slice.name_any(), slice);
            }
            Ok(Event::Delete(slice)) => {
                known.remove(&slice.name_any());
            }
            Err(error) => {
                tracing::warn!(%error, backend = %key, "watching EndpointSlices");
                continue;
            }
        }
        if port_name.is_none() {
            port_name = service_port_name(&services, &service).await;
        }
        let slices: Vec<&EndpointSlice> = known.values().collect();
        let addresses = ready_addresses(&slices, port_name.as_deref());
        if let Err(error) = plane.set_endpoints(&key, addresses) {
            tracing::warn!(%error, backend = %key, "discovered endpoints refused");
        }
    }
}

/// The name of the Service port numbered `service.port`; EndpointSlices name their ports after
/// it. `None` when the Service cannot be read (then a slice with a single port is used as is).
async fn service_port_name(services: &Api<Service>, service: &ServicePort) -> Option<String> {
    let found = services.get_opt(&service.name).await.ok().flatten()?;
    found
        .spec?
        .ports?
        .into_iter()
        .find(|p| p.port == i32::from(service.port))
        .map(|p| p.name.unwrap_or_default())
}

/// The `ip:port` of every ready endpoint in `slices`, sorted and without duplicates. The port
/// is the slice port named `port_name` (the unnamed port for `Some("")`); with `None`, slices
/// with exactly one port use it. Endpoints not ready (`conditions.ready == false`) get no
/// traffic; a missing condition counts as ready, as Kubernetes defines it.
pub fn ready_addresses(slices: &[&EndpointSlice], port_name: Option<&str>) -> Vec<String> {
    let mut addresses = Vec::new();
    for slice in slices {
        let ports = slice.ports.as_deref().unwrap_or_default();
        let port = match port_name {
            Some(name) => ports
                .iter()
                .find(|p| p.name.as_deref().unwrap_or("") == name)
                .and_then(|p| p.port),
            None if ports.len() == 1 => ports[0].port,
            None => None,
        };
        let Some(port) = port else { continue };
        for endpoint in &slice.endpoints {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            for address in &endpoint.addresses {
                let host = if address.contains(':') {
                    format!("[{address}]")
                } else {
                    address.clone()
                };
                addresses.push(format!("{host}:{port}"));
            }
        }
    }
    addresses.sort();
    addresses.dedup();
    addresses
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};

    use super::*;

    fn slice(ports: &[(&str, i32)], endpoints: &[(&str, Option<bool>)]) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv4".to_owned(),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port)| EndpointPort {
                        name: Some((*name).to_owned()),
                        port: Some(*port),
                        ..EndpointPort::default()
                    })
                    .collect(),
            ),
            endpoints: endpoints
                .iter()
                .map(|(ip, ready)| Endpoint {
                    addresses: vec![(*ip).to_owned()],
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        ..EndpointConditions::default()
                    }),
                    ..Endpoint::default()
                })
                .collect(),
            ..EndpointSlice::default()
        }
    }

    #[test]
    fn only_ready_endpoints_get_traffic() {
        let s = slice(
            &[("http", 8080)],
            &[
                ("10.0.0.1", Some(true)),
                ("10.0.0.2", Some(false)),
                ("10.0.0.3", None),
            ],
        );
        assert_eq!(
            ready_addresses(&[&s], Some("http")),
            ["10.0.0.1:8080", "10.0.0.3:8080"]
        );
    }

    #[test]
    fn the_service_port_is_found_by_name_across_slices() {
        let a = slice(
            &[("http", 8080), ("metrics", 9090)],
            &[("10.0.0.1", Some(true))],
        );
        let b = slice(
            &[("metrics", 9090), ("http", 8081)],
            &[("10.0.0.2", Some(true))],
        );
        assert_eq!(
            ready_addresses(&[&a, &b], Some("http")),
            ["10.0.0.1:8080", "10.0.0.2:8081"]
        );
    }

    #[test]
    fn without_a_port_name_only_single_port_slices_are_used() {
        let one = slice(&[("", 80)], &[("10.0.0.1", Some(true))]);
        let two = slice(&[("a", 80), ("b", 81)], &[("10.0.0.2", Some(true))]);
        assert_eq!(ready_addresses(&[&one, &two], None), ["10.0.0.1:80"]);
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let s = slice(&[("", 80)], &[("fd00::1", Some(true))]);
        assert_eq!(ready_addresses(&[&s], Some("")), ["[fd00::1]:80"]);
    }
}
