//! Every YAML file the repository ships and every field and enum value of the CRDs reads the
//! same to kubectl (YAML 1.1) as to YAML 1.2 readers: no key `on`, `off`, `yes`, `no`, `y`, `n`,
//! no value kubectl would turn into something else.

use std::path::Path;

use serde_json::Value;

use super::{nodes, readings, yaml11};

/// The YAML files users and the cluster read (the chart's templates are Go templates, not YAML).
const SHIPPED: &[&str] = &[
    "crds/portcullis.yaml",
    "charts/portcullis/Chart.yaml",
    "charts/portcullis/values.yaml",
    "charts/portcullis/crds/portcullis.yaml",
    "charts/portcullis/files/cluster-role-rules.yaml",
    "deploy/install.yaml",
    "deploy/examples/00-gateway.yaml",
    "deploy/examples/10-backends.yaml",
    "deploy/examples/20-routes.yaml",
    "deploy/examples/30-secrets.yaml",
    "deploy/examples/40-services.yaml",
    "crates/config/tests/fixtures/shop.yaml",
    "crates/config/tests/fixtures/shop.snapshot.yaml",
    "crates/proxy/src/demo/manifests.yaml",
];

#[test]
fn no_shipped_yaml_file_reads_differently_to_kubectl() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for file in SHIPPED {
        let text = std::fs::read_to_string(root.join(file)).expect("a shipped file reads");
        assert!(!nodes::documents(&text).is_empty(), "{file} is not YAML");
        found.extend(
            readings::differences(&text)
                .into_iter()
                .map(|line| format!("{file}: {line}")),
        );
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn no_crd_field_or_enum_value_is_a_word_kubectl_reads_differently() {
    let mut found = Vec::new();
    for crd in portcullis_api::crds() {
        let schema = crd.spec.versions[0]
            .schema
            .clone()
            .and_then(|s| s.open_api_v3_schema);
        let schema = serde_json::to_value(schema).expect("a schema");
        words(&schema, &crd.spec.names.kind, &mut found);
    }
    assert!(found.is_empty(), "{found:#?}");
}

/// Collects the property names and string enum values of `schema` that kubectl does not read
/// as their text.
fn words(schema: &Value, path: &str, found: &mut Vec<String>) {
    let differs = |word: &str| yaml11::kubectl(word) != yaml11::Reading::Text;
    for value in schema
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(word) = value.as_str().filter(|w| differs(w)) {
            found.push(format!("{path}: enum value {word}"));
        }
    }
    for (name, child) in schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if differs(name) {
            found.push(format!("{path}.{name}"));
        }
        words(child, &format!("{path}.{name}"), found);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = schema.get(key).filter(|c| c.is_object()) {
            words(child, &format!("{path}[]"), found);
        }
    }
}
