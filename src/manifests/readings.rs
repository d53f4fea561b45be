//! Where kubectl would read a manifest differently from `portcullis check`.
//!
//! kubectl reads YAML 1.1, the loader YAML 1.2 (see [`super::yaml11`] for every difference;
//! values are compared with the core schema of the YAML 1.2 specification).
//! A manifest that means one thing offline and another to the API server is flagged where it
//! matters:
//! - a plain mapping key that kubectl reads as anything but its text (`on:` becomes the field
//!   `"true"`, which the API server refuses as unknown), and every YAML 1.1 boolean word as a key;
//! - a plain value that the two read differently, in a string field or where the schema takes
//!   one of the readings (else `check` already reports the field's type). In a string field that is
//!   `yes`, `off`, `0755`, `1_000`...; in an integer field an octal `010`; in a boolean
//!   field `yes`, which only kubectl takes.
//!
//! The schema is the CRD's for Portcullis kinds, with `metadata` (labels and annotations are
//! strings) and the string maps of a Secret added; where no schema says, any difference counts.

use std::{path::Path, sync::OnceLock};

use serde_json::{Value, json};

use super::{
    Problem,
    nodes::{self, Node, Scalar},
    yaml11::{self, Reading},
};

/// Every place in `text` (the file `file`) that kubectl would read differently from the
/// loader, in documents of the kinds the loader reads.
pub fn warnings(file: &Path, text: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    for document in nodes::documents(text) {
        let field = |path: &[&str]| document.text_at(path).unwrap_or("").to_owned();
        let (api_version, kind) = (field(&["apiVersion"]), field(&["kind"]));
        let Some(schema) = schema(&api_version, &kind) else {
            continue;
        };
        let object = super::object_id(
            &kind,
            &field(&["metadata", "namespace"]),
            &field(&["metadata", "name"]),
        );
        let mut findings = Vec::new();
        walk(&document, Some(schema), "", &mut findings);
        problems.extend(findings.into_iter().map(|finding| Problem {
            file: file.to_owned(),
            object: Some(object.clone()),
            field: Some(finding.field),
            message: finding.message,
        }));
    }
    problems
}

/// Every place in `text` that kubectl would read differently, in any document and without a
/// schema, as `field: message` lines: for files that are not manifests (chart values, CRDs).
#[cfg(test)]
pub fn differences(text: &str) -> Vec<String> {
    let mut findings = Vec::new();
    for document in nodes::documents(text) {
        walk(&document, None, "", &mut findings);
    }
    findings
        .into_iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect()
}

struct Finding {
    field: String,
    message: String,
}

fn walk(node: &Node, schema: Option<&Value>, path: &str, findings: &mut Vec<Finding>) {
    match node {
        Node::Mapping(entries) => {
            for (key, value) in entries {
                // Complex keys are refused by both readers; merge keys (`<<`) are no field.
                let Node::Scalar(key) = key else { continue };
                if key.plain && key.text == "<<" {
                    continue;
                }
                let field = portcullis_api::validation::join(path, &key.text);
                if let Some(message) = key.plain.then(|| key_message(key)).flatten() {
                    findings.push(Finding {
                        field: field.clone(),
                        message,
                    });
                }
                walk(value, child(schema, &key.text), &field, findings);
            }
        }
        Node::Sequence(items) => {
            let items_schema = schema.and_then(|s| s.get("items"));
            for (index, item) in items.iter().enumerate() {
                walk(item, items_schema, &format!("{path}[{index}]"), findings);
            }
        }
        Node::Scalar(scalar) if scalar.plain => {
            if let Some(message) = value_message(scalar, schema) {
                findings.push(Finding {
                    field: path.to_owned(),
                    message,
                });
            }
        }
        Node::Scalar(_) | Node::Alias => {}
    }
}

/// What is wrong with a plain key: kubectl reads it as something other than its text, or it
/// is a YAML 1.1 boolean word (`true` too: it is a boolean to every YAML reader).
fn key_message(key: &Scalar) -> Option<String> {
    let reading = yaml11::kubectl(&key.text);
    let sent = match reading {
        Reading::Text => return None,
        Reading::Null => "no field at all (a null key is refused)".to_owned(),
        Reading::Bool(value) => format!("the field \"{value}\""),
        Reading::Int(value) => format!("the field \"{value}\""),
        // Go formats the number as a float32; near enough to tell whether the name changes.
        Reading::Float(value) if format!("{}", value as f32) == key.text => return None,
        Reading::Float(_) => "a field named after the number".to_owned(),
    };
    if matches!(reading, Reading::Int(n) if n.to_string() == key.text) {
        return None;
    }
    Some(format!(
        "{}: kubectl reads the key {} as {} (YAML 1.1) and sends {sent}; quote the key ({:?}) \
         to mean the text",
        position(key),
        key.text,
        reading.describe(&key.text),
        key.text,
    ))
}

/// What is wrong with a plain value: kubectl (or another YAML 1.1 reader) reads it as
/// something other than the loader does, and the difference can reach the API server.
fn value_message(value: &Scalar, schema: Option<&Value>) -> Option<String> {
    if !yaml11::may_not_be_text(&value.text) {
        return None;
    }
    let ours = yaml11::yaml12(&value.text);
    let kubectl = yaml11::kubectl(&value.text);
    let (reader, theirs) = if kubectl.same_as(ours) {
        (
            "YAML 1.1 readers such as PyYAML (not kubectl) read",
            yaml11::base60(&value.text)?,
        )
    } else {
        ("kubectl reads", kubectl)
    };
    let expected = schema.and_then(|s| s.get("type")).and_then(Value::as_str);
    // A string field is flagged even when both readings are numbers (`0755`): the schema error
    // alone would not say that quoting is the fix.
    let matters = expected == Some("string") || accepts(schema, ours) || accepts(schema, theirs);
    if theirs.same_as(ours) || !matters {
        return None;
    }
    let fix = match expected {
        Some("boolean") => "write true or false".to_owned(),
        Some("integer" | "number") => "write the number in plain decimal".to_owned(),
        _ => format!("quote it: {:?}", value.text),
    };
    Some(format!(
        "{}: {reader} {} as {} (YAML 1.1), not {} (YAML 1.2); {fix}",
        position(value),
        value.text,
        theirs.describe(&value.text),
        ours.describe(&value.text),
    ))
}

/// Whether the schema takes a scalar read this way; a missing schema takes anything.
fn accepts(schema: Option<&Value>, reading: Reading) -> bool {
    let Some(schema) = schema else { return true };
    let flag = |name: &str| schema.get(name).and_then(Value::as_bool) == Some(true);
    if flag("x-kubernetes-int-or-string") {
        return matches!(reading, Reading::Int(_) | Reading::Text);
    }
    if reading == Reading::Null {
        return flag("nullable");
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => reading == Reading::Text,
        Some("boolean") => matches!(reading, Reading::Bool(_)),
        Some("integer") => match reading {
            Reading::Int(_) => true,
            Reading::Float(f) => f.fract() == 0.0,
            _ => false,
        },
        Some("number") => matches!(reading, Reading::Int(_) | Reading::Float(_)),
        Some(_) => false,
        None => true,
    }
}

/// The schema of a field of an object with `schema`, if it has one.
fn child<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let schema = schema?;
    schema
        .get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
}

fn position(scalar: &Scalar) -> String {
    format!("line {} column {}", scalar.line, scalar.column)
}

/// The schema of a document of a kind the loader reads.
fn schema(api_version: &str, kind: &str) -> Option<&'static Value> {
    static SCHEMAS: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    if !super::is_loaded_kind(api_version, kind) {
        return None;
    }
    let schemas = SCHEMAS.get_or_init(|| {
        let strings = json!({"type": "object", "additionalProperties": {"type": "string"}});
        let metadata = json!({"properties": {
            "name": {"type": "string"},
            "namespace": {"type": "string"},
            "labels": strings,
            "annotations": strings,
        }});
        let mut schemas: Vec<(String, Value)> = portcullis_api::crds()
            .into_iter()
            .filter_map(|crd| {
                let version = crd.spec.versions.into_iter().next()?;
                let schema = serde_json::to_value(version.schema?.open_api_v3_schema?).ok()?;
                Some((crd.spec.names.kind, schema))
            })
            .collect();
        schemas.push((
            "Secret".to_owned(),
            json!({"properties": {
                "data": strings,
                "stringData": strings,
                "type": {"type": "string"},
            }}),
        ));
        schemas.push(("Namespace".to_owned(), json!({"properties": {}})));
        for (_, schema) in &mut schemas {
            if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                properties.insert("metadata".to_owned(), metadata.clone());
            }
        }
        schemas
    });
    schemas.iter().find(|(k, _)| k == kind).map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "\
apiVersion: portcullis.dev/v1alpha1
kind: Route
metadata:
  name: orders
  namespace: shop
spec:
  parentRefs:
    - name: edge
  rules:
    - name: orders
      backendRefs:
        - name: orders
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set:
";

    /// The warnings for a Route whose one header value is written `value`.
    fn header_value(value: &str) -> Vec<String> {
        let text = format!("{ROUTE}              - name: X-Flag\n                value: {value}\n");
        lines(&text)
    }

    fn lines(text: &str) -> Vec<String> {
        warnings(Path::new("m.yaml"), text)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn an_unquoted_yes_in_a_string_field_is_named_with_what_kubectl_reads() {
        assert_eq!(
            header_value("yes"),
            [
                "m.yaml: Route/shop/orders: spec.rules[0].filters[0].requestHeaderModifier.set[0].value: \
                 line 18 column 24: kubectl reads yes as the boolean true (YAML 1.1), not the string \
                 \"yes\" (YAML 1.2); quote it: \"yes\""
            ]
        );
    }

    #[test]
    fn every_yaml_1_1_only_form_in_a_string_field_is_flagged() {
        for (value, kubectl) in [
            ("y", "the boolean true"),
            ("N", "the boolean false"),
            ("on", "the boolean true"),
            ("Off", "the boolean false"),
            ("NO", "the boolean false"),
            ("0755", "the integer 493"),
            ("1_000", "the integer 1000"),
            ("0b101", "the integer 5"),
            ("-0x1F", "the integer -31"),
            ("1_000.5", "the number 1000.5"),
        ] {
            let lines = header_value(value);
            assert_eq!(lines.len(), 1, "{value}: {lines:?}");
            assert!(
                lines[0].contains(&format!("kubectl reads {value} as {kubectl} (YAML 1.1)")),
                "{value}: {lines:?}"
            );
        }
    }

    #[test]
    fn base_60_is_flagged_for_yaml_1_1_readers_other_than_kubectl() {
        let lines = header_value("1:30");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains(
                "YAML 1.1 readers such as PyYAML (not kubectl) read 1:30 as the integer 90 \
                 (YAML 1.1), not the string \"1:30\" (YAML 1.2); quote it: \"1:30\""
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn quoted_and_unambiguous_values_pass() {
        for value in [
            "\"yes\"",
            "'on'",
            "!!str off",
            "\"0755\"",
            "|\n                  yes",
            "yes please",
            "yEs",
            "enabled",
            "10s",
            "2001-12-14",
            "/users",
        ] {
            assert_eq!(header_value(value), Vec::<String>::new(), "{value}");
        }
    }

    #[test]
    fn values_both_readers_read_alike_pass() {
        // The check already reports a boolean or a number in a string field.
        for value in [
            "true", "FALSE", "~", "12", "0x1F", ".5", "1e3", ".nan", "-.inf",
        ] {
            assert_eq!(header_value(value), Vec::<String>::new(), "{value}");
        }
    }

    #[test]
    fn an_octal_number_in_an_integer_field_is_flagged() {
        let text = "\
apiVersion: portcullis.dev/v1alpha1
kind: Gateway
metadata: {name: edge}
spec:
  listeners:
    - {name: http, port: 010, protocol: HTTP}
";
        assert_eq!(
            lines(text),
            [
                "m.yaml: Gateway/default/edge: spec.listeners[0].port: line 6 column 26: kubectl \
                 reads 010 as the integer 8 (YAML 1.1), not the integer 10 (YAML 1.2); write the \
                 number in plain decimal"
            ]
        );
    }

    #[test]
    fn yes_in_a_boolean_field_is_flagged_because_only_kubectl_takes_it() {
        let text = "\
apiVersion: portcullis.dev/v1alpha1
kind: Gateway
metadata: {name: edge}
spec:
  defaults:
    retry: {nonIdempotent: yes}
";
        let lines = lines(text);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].ends_with("write true or false"), "{lines:?}");
    }

    #[test]
    fn boolean_words_as_keys_are_flagged_and_quoted_keys_pass() {
        let words = [
            "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE",
            "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ];
        let mut text = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  labels:\n".to_owned();
        for word in words {
            text.push_str(&format!("    {word}: a\n    \"{word}\": b\n"));
        }
        let lines = lines(&text);
        assert_eq!(lines.len(), words.len(), "{lines:#?}");
        assert!(
            lines[0].starts_with(
                "m.yaml: Secret/default/s: metadata.labels.y: line 6 column 5: kubectl reads the \
                 key y as the boolean true (YAML 1.1) and sends the field \"true\"; quote the key"
            ),
            "{lines:#?}"
        );
    }

    #[test]
    fn the_retry_key_on_is_flagged_where_it_is() {
        let text = "\
apiVersion: portcullis.dev/v1alpha1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  defaults:
    retry:
      on: [ConnectFailure]
";
        let lines = lines(text);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with(
                "m.yaml: Gateway/shop/edge: spec.defaults.retry.on: line 7 column 7: kubectl reads \
                 the key on as the boolean true"
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn numeric_keys_are_flagged_only_when_kubectl_renames_them() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  0755: a\n  10: b\n  1_0: c\n";
        let lines = lines(text);
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].contains(
            "stringData.0755: line 5 column 3: kubectl reads the key 0755 as the integer 493"
        ));
        assert!(lines[1].contains("stringData.1_0:"));
    }

    #[test]
    fn secrets_namespaces_and_every_document_are_read_and_other_kinds_skipped() {
        let text = "\
apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {keys: no}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {paused: yes, on: 1}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: n}}
";
        let lines = lines(text);
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].contains("Secret/default/keys: stringData.keys: line 4"));
        assert!(lines[1].contains("Namespace/default/shop: metadata.labels.team: line 13"));
    }
}
