//! The Gateway's ConfigMap: how a snapshot is stored for the replicas, and read back.
//!
//! `<gateway>-config` in the Gateway's namespace holds the snapshot under `config.yaml`, written
//! as indented JSON (YAML that the replicas read with the fast JSON parser; YAML written by hand
//! is read too).
//! A snapshot larger than [`COMPRESS_ABOVE`] is stored gzip-compressed under `config.yaml.gz`
//! in `binaryData` instead, so large route sets stay far below the 1 MiB object limit. Readers
//! ([`snapshot_from_configmap`], [`snapshot_from_bytes`] for the mounted file) accept both.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
};

use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use k8s_openapi::{
    ByteString, api::core::v1::ConfigMap, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use crate::snapshot::{Snapshot, SnapshotError};

/// The `data` key of an uncompressed snapshot.
pub const CONFIG_KEY: &str = "config.yaml";
/// The `binaryData` key of a gzip-compressed snapshot.
pub const COMPRESSED_CONFIG_KEY: &str = "config.yaml.gz";
/// Snapshots whose stored JSON is larger than this many bytes are stored compressed.
pub const COMPRESS_ABOVE: usize = 256 * 1024;
/// Annotation carrying the snapshot's revision, so it is visible without parsing the snapshot.
pub const REVISION_ANNOTATION: &str = "portcullis.dev/revision";
/// Label naming the Gateway an object belongs to.
pub const GATEWAY_LABEL: &str = "portcullis.dev/gateway";
/// The standard label marking objects Portcullis manages, and its value.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "portcullis");

/// The name of a Gateway's ConfigMap: `<gateway>-config`.
pub fn configmap_name(gateway: &str) -> String {
    format!("{gateway}-config")
}

/// The ConfigMap storing `snapshot` in its Gateway's namespace (without owner reference: the
/// operator adds its own).
pub fn render_configmap(snapshot: &Snapshot) -> Result<ConfigMap, SnapshotError> {
    let text = snapshot.to_json()?;
    let (data, binary_data) = if text.len() > COMPRESS_ABOVE {
        let compressed = gzip(text.as_bytes())?;
        (
            None,
            Some(BTreeMap::from([(
                COMPRESSED_CONFIG_KEY.to_owned(),
                ByteString(compressed),
            )])),
        )
    } else {
        (Some(BTreeMap::from([(CONFIG_KEY.to_owned(), text)])), None)
    };
    Ok(ConfigMap {
        metadata: ObjectMeta {
            name: Some(configmap_name(&snapshot.gateway.name)),
            namespace: Some(snapshot.gateway.namespace.clone()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.0.to_owned(), MANAGED_BY_LABEL.1.to_owned()),
                (GATEWAY_LABEL.to_owned(), snapshot.gateway.name.clone()),
            ])),
            annotations: Some(BTreeMap::from([(
                REVISION_ANNOTATION.to_owned(),
                snapshot.revision.clone(),
            )])),
            ..ObjectMeta::default()
        },
        data,
        binary_data,
        ..ConfigMap::default()
    })
}

/// The size in bytes of what `configmap` stores (for `Gateway.status.config.sizeBytes`).
pub fn stored_size(configmap: &ConfigMap) -> usize {
    let data: usize = configmap.data.iter().flatten().map(|(_, v)| v.len()).sum();
    let binary: usize = configmap
        .binary_data
        .iter()
        .flatten()
        .map(|(_, v)| v.0.len())
        .sum();
    data + binary
}

/// Reads the snapshot stored in a ConfigMap written by [`render_configmap`].
pub fn snapshot_from_configmap(configmap: &ConfigMap) -> Result<Snapshot, SnapshotError> {
    if let Some(text) = configmap.data.as_ref().and_then(|d| d.get(CONFIG_KEY)) {
        return Snapshot::from_yaml(text);
    }
    if let Some(bytes) = configmap
        .binary_data
        .as_ref()
        .and_then(|d| d.get(COMPRESSED_CONFIG_KEY))
    {
        return snapshot_from_bytes(&bytes.0);
    }
    Err(SnapshotError::Parse(format!(
        "the ConfigMap has neither data.{CONFIG_KEY} nor binaryData.{COMPRESSED_CONFIG_KEY}"
    )))
}

/// Reads a snapshot file as mounted from either ConfigMap key: JSON as written by
/// [`render_configmap`] (YAML is read too), gzip-compressed or not (recognised by its magic
/// bytes).
pub fn snapshot_from_bytes(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        GzDecoder::new(bytes)
            .read_to_string(&mut text)
            .map_err(|e| SnapshotError::Parse(format!("cannot decompress: {e}")))?;
        text
    } else {
        String::from_utf8(bytes.to_vec())
            .map_err(|e| SnapshotError::Parse(format!("not UTF-8: {e}")))?
    };
    Snapshot::from_yaml(&text)
}

/// Gzip with a fixed header (no name, mtime 0), so the same snapshot always gives the same bytes.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>, SnapshotError> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map_err(|e| SnapshotError::Serialize(format!("cannot compress: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{API_VERSION, DrainConfig, ObjectKey, RuleConfig};

    fn snapshot(rules: usize) -> Snapshot {
        let rule: RuleConfig = serde_json::from_value(serde_json::json!({
            "route": {"namespace": "shop", "name": "orders"},
            "ruleIndex": 0,
            "action": {"type": "Backends", "backends": []},
            "policies": {}
        }))
        .expect("rule");
        let mut s = Snapshot {
            api_version: API_VERSION.to_owned(),
            gateway: ObjectKey::new("shop", "edge"),
            revision: String::new(),
            listeners: Vec::new(),
            rules: (0..rules)
                .map(|i| RuleConfig {
                    rule_index: i,
                    ..rule.clone()
                })
                .collect(),
            backends: BTreeMap::new(),
            drain: DrainConfig {
                delay_ms: 5_000,
                timeout_ms: 30_000,
            },
            shared_state: None,
        };
        s.seal();
        s
    }

    #[test]
    fn small_snapshot_is_stored_as_plain_json_with_labels_and_revision() {
        let s = snapshot(1);
        let cm = render_configmap(&s).expect("renders");
        assert_eq!(cm.metadata.name.as_deref(), Some("edge-config"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("shop"));
        let labels = cm.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "portcullis");
        assert_eq!(labels["portcullis.dev/gateway"], "edge");
        let annotations = cm.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations[REVISION_ANNOTATION], s.revision);
        assert!(cm.binary_data.is_none());
        assert!(cm.data.as_ref().expect("data")[CONFIG_KEY].starts_with("{\n"));
        assert_eq!(snapshot_from_configmap(&cm).expect("reads back"), s);
    }

    #[test]
    fn snapshots_read_the_same_from_json_and_yaml() {
        let s = snapshot(3);
        let from_json = Snapshot::from_yaml(&s.to_json().expect("json")).expect("json parses");
        let from_yaml = Snapshot::from_yaml(&s.to_yaml().expect("yaml")).expect("yaml parses");
        assert_eq!(from_json, s);
        assert_eq!(from_yaml, s);
        let other = s.to_json().expect("json").replace("config/v1", "config/v9");
        assert!(matches!(
            Snapshot::from_yaml(&other),
            Err(SnapshotError::UnsupportedVersion { .. })
        ));
        let unknown = s
            .to_json()
            .expect("json")
            .replacen('{', "{\"extra\": 1,", 1);
        assert!(matches!(
            Snapshot::from_yaml(&unknown),
            Err(SnapshotError::Parse(_))
        ));
    }

    #[test]
    fn large_snapshot_is_stored_gzip_compressed_and_reads_back() {
        let s = snapshot(5_000);
        assert!(s.to_json().expect("json").len() > COMPRESS_ABOVE);
        let cm = render_configmap(&s).expect("renders");
        assert!(cm.data.is_none());
        let stored = &cm.binary_data.as_ref().expect("binaryData")[COMPRESSED_CONFIG_KEY];
        assert!(stored.0.len() < COMPRESS_ABOVE);
        assert_eq!(stored_size(&cm), stored.0.len());
        assert_eq!(snapshot_from_configmap(&cm).expect("reads back"), s);
        assert_eq!(snapshot_from_bytes(&stored.0).expect("mounted file"), s);
        // Deterministic: the same snapshot compresses to the same bytes.
        assert_eq!(render_configmap(&s).expect("renders again"), cm);
    }
}
