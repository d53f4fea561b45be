//! Stage 1, fetch: what a Gateway references — its Routes, their ServiceBackends, the
//! namespaces' labels (from the stores), and the Secrets its snapshot reads (from the API, for
//! the ones copied across namespaces).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};
use portcullis_api::{Gateway, Route, ServiceBackend, gateway::FromNamespaces};
use portcullis_config::{NamespaceInfo, snapshot::ObjectKey};

use crate::{children::secrets::SecretRefs, stores::Stores};

/// Why the fetch stage failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The watches have not given a complete view yet (or the operator is shutting down).
    #[error(transparent)]
    NotReady(#[from] crate::stores::StoresNotReady),
    /// A Secret could not be read.
    #[error(
        "cannot read Secret {secret}: {source} (the operator needs get on secrets in the \
         namespaces of Routes that reference them)"
    )]
    Secret {
        /// `namespace/name`.
        secret: ObjectKey,
        /// The API error.
        source: Box<kube::Error>,
    },
}

/// The custom resources a Gateway is compiled from.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Routes whose parentRefs name the Gateway, sorted by namespace and name.
    pub routes: Vec<Route>,
    /// ServiceBackends of the namespaces those Routes live in.
    pub backends: Vec<ServiceBackend>,
    /// Namespace labels, when a listener selects Route namespaces by label.
    pub namespaces: Vec<NamespaceInfo>,
}

/// Reads the Gateway's inputs from the stores.
pub fn inputs(stores: &Stores, gateway: &Gateway) -> Inputs {
    let gateway_namespace = gateway.namespace().unwrap_or_default();
    let gateway_name = gateway.name_any();
    let mut routes: Vec<Route> = stores
        .routes
        .state()
        .into_iter()
        .filter(|route| names_gateway(route, &gateway_namespace, &gateway_name))
        .map(|route| (*route).clone())
        .collect();
    routes.sort_by_key(|route| (route.namespace(), route.name_any()));
    let route_namespaces: BTreeSet<String> = routes.iter().filter_map(|r| r.namespace()).collect();
    let backends = stores
        .backends
        .state()
        .into_iter()
        .filter(|b| {
            b.namespace()
                .is_some_and(|ns| route_namespaces.contains(&ns))
        })
        .map(|b| (*b).clone())
        .collect();
    let selects_namespaces = gateway
        .spec
        .listeners
        .iter()
        .any(|l| l.allowed_routes.namespaces.from == FromNamespaces::Selector);
    let namespaces = if selects_namespaces {
        stores
            .namespaces
            .state()
            .iter()
            .map(|ns| NamespaceInfo {
                name: ns.name_any(),
                labels: ns.labels().clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    Inputs {
        routes,
        backends,
        namespaces,
    }
}

/// Whether a parentRef of `route` names Gateway `namespace/name`.
pub fn names_gateway(route: &Route, namespace: &str, name: &str) -> bool {
    let route_namespace = route.namespace().unwrap_or_default();
    route.spec.parent_refs.iter().any(|parent| {
        parent.name == name && parent.namespace.as_deref().unwrap_or(&route_namespace) == namespace
    })
}

/// The referenced Secrets: the sources of the copies to make, and those that do not exist.
#[derive(Clone, Debug, Default)]
pub struct SecretLookup {
    /// Secrets of other namespaces to copy, by `namespace/name`.
    pub sources: BTreeMap<ObjectKey, Secret>,
    /// Referenced Secrets that do not exist.
    pub missing: BTreeSet<ObjectKey>,
}

/// Looks up the mounted Secrets: existence from the metadata store, and the data of those in
/// other namespaces (to copy) from the API.
pub async fn secrets(
    client: &Client,
    store: &Store<kube::core::PartialObjectMeta<Secret>>,
    gateway_namespace: &str,
    refs: &SecretRefs,
) -> Result<SecretLookup, FetchError> {
    let mut lookup = SecretLookup::default();
    for key in refs.mounted.keys() {
        let known = store
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
            .is_some();
        if !known {
            lookup.missing.insert(key.clone());
            continue;
        }
        if key.namespace == gateway_namespace {
            continue;
        }
        let api: Api<Secret> = Api::namespaced(client.clone(), &key.namespace);
        match api.get_opt(&key.name).await {
            Ok(Some(secret)) => {
                lookup.sources.insert(key.clone(), secret);
            }
            Ok(None) => {
                lookup.missing.insert(key.clone());
            }
            Err(source) => {
                return Err(FetchError::Secret {
                    secret: key.clone(),
                    source: Box::new(source),
                });
            }
        }
    }
    Ok(lookup)
}
