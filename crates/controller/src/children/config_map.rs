//! `<gateway>-config`: the compiled snapshot, as the replicas read it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use portcullis_config::snapshot::Snapshot;

use super::{BuildError, Owner};
use crate::meta;

/// The largest snapshot stored: Kubernetes refuses ConfigMaps whose data exceeds 1 MiB, and
/// the metadata needs some room too.
pub const MAX_CONFIG_BYTES: usize = 1_000_000;

/// The ConfigMap holding `snapshot` under [`meta::CONFIG_KEY`], its revision as an annotation.
pub(super) fn build(owner: &Owner<'_>, snapshot: &Snapshot) -> Result<ConfigMap, BuildError> {
    let yaml = snapshot.to_yaml().map_err(|e| BuildError::Serialize {
        kind: "config snapshot".to_owned(),
        message: e.to_string(),
    })?;
    if yaml.len() > MAX_CONFIG_BYTES {
        return Err(BuildError::ConfigTooLarge {
            gateway: format!("{}/{}", owner.namespace, owner.name),
            size: yaml.len(),
        });
    }
    let mut metadata = owner.metadata(meta::config_map_name(owner.name));
    metadata.annotations = Some(BTreeMap::from([(
        meta::REVISION_ANNOTATION.to_owned(),
        snapshot.revision.clone(),
    )]));
    Ok(ConfigMap {
        metadata,
        data: Some(BTreeMap::from([(meta::CONFIG_KEY.to_owned(), yaml)])),
        ..ConfigMap::default()
    })
}
