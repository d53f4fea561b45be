//! The Secrets a gateway pod reads, and the owned copies of those from other namespaces.
//!
//! The snapshot names every credential it needs as a [`SecretFile`]
//! (`<namespace>/<name>/<key>` under the secrets root). Secrets in the Gateway's namespace are
//! mounted as they are. A Secret from another namespace (a Route's API keys, say) is never
//! read across namespaces by the pod: the operator copies the keys the snapshot names into an
//! owned Secret in the Gateway's namespace and mounts the copy at the original path, so the
//! snapshot reads the same either way.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    ByteString,
    api::core::v1::{Secret, SecretVolumeSource, Volume, VolumeMount},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use portcullis_config::{
    capability,
    snapshot::{ObjectKey, SecretFile, Snapshot},
};

use super::Owner;
use crate::meta;

/// Where the gateway container finds Secrets: `<root>/<namespace>/<name>/<key>`, as the
/// snapshot's [`SecretFile::path`] says. The proxy's secrets root in a cluster.
pub const SECRETS_ROOT: &str = "/etc/portcullis/secrets";

/// The Secrets a snapshot reads, sorted into those the gateway pods get and those refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretRefs {
    /// Secrets mounted into the pods (copied first when in another namespace), each with the
    /// keys read from it.
    pub mounted: BTreeMap<ObjectKey, BTreeSet<String>>,
    /// Secrets of another namespace that the Gateway itself names (a listener certificate).
    /// Nothing grants a Gateway another namespace's Secrets, so they are neither copied nor
    /// mounted, and the Gateway's status says `RefNotPermitted`.
    pub refused: BTreeSet<ObjectKey>,
}

impl SecretRefs {
    /// Every Secret named, mounted or refused.
    pub fn all(&self) -> impl Iterator<Item = &ObjectKey> {
        self.mounted.keys().chain(&self.refused)
    }
}

/// Sorts the Secret files of `snapshot` for a Gateway in `gateway_namespace`.
///
/// A Secret of another namespace is copied only when it is named by an object of that same
/// namespace: a Route's auth policy or a ServiceBackend's CA. Whoever can write that Route or
/// ServiceBackend can read the Secret anyway, and the Gateway admitted the Route, so the copy
/// widens nobody's access.
pub fn secret_refs(snapshot: &Snapshot, gateway_namespace: &str) -> SecretRefs {
    let mut refs = SecretRefs::default();
    let mut add = |file: &SecretFile, named_from: &str| {
        let key = ObjectKey::new(&file.namespace, &file.name);
        if file.namespace == gateway_namespace || file.namespace == named_from {
            refs.mounted
                .entry(key)
                .or_default()
                .insert(file.key.clone());
        } else {
            refs.refused.insert(key);
        }
    };
    for listener in &snapshot.listeners {
        for certificate in listener.tls.iter().flat_map(|tls| &tls.certificates) {
            add(&certificate.cert, gateway_namespace);
            add(&certificate.key, gateway_namespace);
        }
    }
    for rule in &snapshot.rules {
        for needed in capability::secret_files(rule) {
            add(needed.file, &rule.route.namespace);
        }
    }
    for (key, backend) in &snapshot.backends {
        if let Some(ca) = backend.tls.as_ref().and_then(|tls| tls.ca.as_ref()) {
            let namespace = key.split_once('/').map_or("", |(namespace, _)| namespace);
            add(ca, namespace);
        }
    }
    if let Some(password) = snapshot
        .shared_state
        .as_ref()
        .and_then(|state| state.redis.password.as_ref())
    {
        add(password, gateway_namespace);
    }
    refs.refused.retain(|key| !refs.mounted.contains_key(key));
    refs
}

/// How one referenced Secret reaches the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMount {
    /// The Secret the snapshot names.
    pub source: ObjectKey,
    /// The Secret the pod mounts: the source itself in the Gateway's namespace, else the owned
    /// copy.
    pub mounted: String,
    /// The directory it is mounted at: `<SECRETS_ROOT>/<namespace>/<name>`.
    pub path: String,
}

/// The mounts of every Secret in `referenced`, in order.
pub fn mounts(
    gateway_namespace: &str,
    gateway: &str,
    referenced: &BTreeMap<ObjectKey, BTreeSet<String>>,
) -> Vec<SecretMount> {
    referenced
        .keys()
        .map(|source| SecretMount {
            mounted: if source.namespace == gateway_namespace {
                source.name.clone()
            } else {
                meta::copied_secret_name(gateway, &source.namespace, &source.name)
            },
            path: format!("{SECRETS_ROOT}/{}/{}", source.namespace, source.name),
            source: source.clone(),
        })
        .collect()
}

/// The volume and mount of a Secret mount. The volume is optional so that a missing Secret
/// (reported by the operator) does not keep every replica from starting; the proxy refuses a
/// snapshot whose files are missing and keeps serving the previous one.
pub(super) fn volume(index: usize, mount: &SecretMount) -> (Volume, VolumeMount) {
    let name = format!("secret-{index}");
    let volume = Volume {
        name: name.clone(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(mount.mounted.clone()),
            optional: Some(true),
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    };
    let volume_mount = VolumeMount {
        name,
        mount_path: mount.path.clone(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    (volume, volume_mount)
}

/// The owned copies of the referenced Secrets outside the Gateway's namespace, holding only the
/// keys the snapshot reads. A source missing from `sources` (not found, or not readable) gets
/// no copy; keys missing from a source are left out.
pub(super) fn copies(
    owner: &Owner<'_>,
    referenced: &BTreeMap<ObjectKey, BTreeSet<String>>,
    sources: &BTreeMap<ObjectKey, Secret>,
) -> Vec<Secret> {
    referenced
        .iter()
        .filter(|(source, _)| source.namespace != owner.namespace)
        .filter_map(|(source, keys)| {
            let secret = sources.get(source)?;
            let data: BTreeMap<String, ByteString> = keys
                .iter()
                .filter_map(|key| {
                    let value = secret
                        .data
                        .as_ref()
                        .and_then(|data| data.get(key))
                        .cloned()
                        .or_else(|| {
                            secret
                                .string_data
                                .as_ref()
                                .and_then(|data| data.get(key))
                                .map(|value| ByteString(value.clone().into_bytes()))
                        })?;
                    Some((key.clone(), value))
                })
                .collect();
            Some(Secret {
                metadata: ObjectMeta {
                    annotations: Some(BTreeMap::from([(
                        meta::SOURCE_ANNOTATION.to_owned(),
                        source.to_string(),
                    )])),
                    ..owner.metadata(meta::copied_secret_name(
                        owner.name,
                        &source.namespace,
                        &source.name,
                    ))
                },
                type_: Some("Opaque".to_owned()),
                data: Some(data),
                immutable: None,
                string_data: None,
            })
        })
        .collect()
}
