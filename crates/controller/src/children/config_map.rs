//! `<gateway>-config`: the compiled snapshot, as the replicas read it.

use k8s_openapi::api::core::v1::ConfigMap;
use portcullis_config::{
    configmap::{render_configmap, snapshot_from_configmap, stored_size},
    snapshot::Snapshot,
};

use super::{BuildError, Owner};
use crate::meta;

/// The largest snapshot stored: Kubernetes refuses ConfigMaps whose data exceeds 1 MiB, and
/// the metadata needs some room too.
pub const MAX_CONFIG_BYTES: usize = 1_000_000;

/// The ConfigMap holding `snapshot` (gzip-compressed when it is large, as the config crate
/// stores it), owned by the Gateway and labelled like every other child.
///
/// The replicas read the stored snapshot back (from either key); the same is done here, so a
/// ConfigMap they would refuse, or read as a different snapshot, is never published.
pub(super) fn build(owner: &Owner<'_>, snapshot: &Snapshot) -> Result<ConfigMap, BuildError> {
    let mut config_map = render_configmap(snapshot).map_err(|e| BuildError::Serialize {
        kind: "config snapshot".to_owned(),
        message: e.to_string(),
    })?;
    let size = stored_size(&config_map);
    if size > MAX_CONFIG_BYTES {
        return Err(BuildError::ConfigTooLarge {
            gateway: format!("{}/{}", owner.namespace, owner.name),
            size,
        });
    }
    match snapshot_from_configmap(&config_map) {
        Ok(back) if &back == snapshot => {}
        Ok(_) => {
            return Err(BuildError::Unloadable(
                "it does not read back as written".to_owned(),
            ));
        }
        Err(error) => return Err(BuildError::Unloadable(error.to_string())),
    }
    let annotations = config_map.metadata.annotations.take();
    config_map.metadata = owner.metadata(meta::config_map_name(owner.name));
    config_map.metadata.annotations = annotations;
    Ok(config_map)
}
