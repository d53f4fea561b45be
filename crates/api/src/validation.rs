//! Validation of a manifest against a CRD, the way the API server does it at `kubectl apply`:
//! the structural schema first (unknown fields, types, required fields, enums, patterns, ranges,
//! lengths), then the schema defaults, then the CEL rules.
//!
//! `portcullis check` runs this offline, so a user learns about a bad manifest before it reaches
//! a cluster, with the same field paths and much the same wording as the API server.

use std::fmt;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::{Validator, apply_defaults};
use serde_json::{Map, Value};

/// One problem with one field of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, like `spec.listeners[0].port`; empty for the object itself.
    pub field: String,
    /// What is wrong, in the API server's words where it has them.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Validates `object` (a whole manifest: apiVersion, kind, metadata, spec) against the first
/// version of `crd`. Returns the object with schema defaults applied, or every problem found.
pub fn validate(crd: &CustomResourceDefinition, object: &Value) -> Result<Value, Vec<FieldError>> {
    let Some(schema) = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
    else {
        return Err(vec![FieldError {
            field: String::new(),
            message: format!("CRD {} has no schema", crd.spec.names.kind),
        }]);
    };
    let schema = match serde_json::to_value(schema) {
        Ok(schema) => schema,
        Err(error) => {
            return Err(vec![FieldError {
                field: String::new(),
                message: format!("CRD schema does not serialize: {error}"),
            }]);
        }
    };
    let mut errors = Vec::new();
    check_schema(&schema, object, "", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Err(failures) = Validator::new().validate(&schema, object, None) {
        return Err(failures
            .iter()
            .map(|failure| FieldError {
                field: failure.field_path.clone(),
                message: failure.message.clone(),
            })
            .collect());
    }
    Ok(apply_defaults(&schema, object))
}

/// The path of the field `key` of the object at `path` (`spec` and `retry` make
/// `spec.retry`), as messages name fields; the path of a top-level field is its name.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Walks a structural schema and the value side by side, collecting every violation.
fn check_schema(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let mut fail = |message: String| {
        errors.push(FieldError {
            field: path.to_owned(),
            message,
        })
    };
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) {
            fail("Invalid value: null: must not be null".to_owned());
        }
        return;
    }
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            fail(format!(
                "Invalid value: {}: must be an integer or a string",
                type_name(value)
            ));
        }
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(value);
        let fits = actual == expected || (expected == "number" && actual == "integer");
        if !fits {
            fail(format!(
                "Invalid value: {}: must be of type {expected}",
                describe(value)
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(describe).collect();
        fail(format!(
            "Unsupported value: {}: supported values: {}",
            describe(value),
            list.join(", ")
        ));
        return;
    }
    match value {
        Value::Object(fields) => check_object(schema, fields, path, errors),
        Value::Array(items) => check_array(schema, items, path, errors),
        Value::String(text) => check_string(schema, text, path, errors),
        Value::Number(number) => {
            let Some(n) = number.as_f64() else { return };
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                fail(format!(
                    "Invalid value: {number}: should be greater than or equal to {min}"
                ));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                fail(format!(
                    "Invalid value: {number}: should be less than or equal to {max}"
                ));
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

fn check_object(
    schema: &Value,
    fields: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    // `apiVersion`, `kind` and `metadata` of the object itself are the API server's, not the
    // CRD schema's, to validate.
    let is_root = path.is_empty();
    for (key, child) in fields {
        let child_path = join(path, key);
        if is_root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
            check_schema(child_schema, child, &child_path, errors);
        } else if let Some(extra) = additional.filter(|a| a.is_object()) {
            check_schema(extra, child, &child_path, errors);
        } else if !(preserve || additional.and_then(Value::as_bool) == Some(true)) {
            errors.push(FieldError {
                field: child_path,
                message: format!("unknown field {key:?}"),
            });
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                errors.push(FieldError {
                    field: join(path, name),
                    message: "Required value".to_owned(),
                });
            }
        }
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    let count = items.len() as u64;
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && count < min
    {
        errors.push(FieldError {
            field: path.to_owned(),
            message: format!("Invalid value: {count} items: must have at least {min} items"),
        });
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && count > max
    {
        errors.push(FieldError {
            field: path.to_owned(),
            message: format!("Too many: {count}: must have at most {max} items"),
        });
    }
    if let Some(item_schema) = schema.get("items") {
        for (index, item) in items.iter().enumerate() {
            check_schema(item_schema, item, &format!("{path}[{index}]"), errors);
        }
    }
}

fn check_string(schema: &Value, text: &str, path: &str, errors: &mut Vec<FieldError>) {
    let length = text.chars().count() as u64;
    let mut fail = |message: String| {
        errors.push(FieldError {
            field: path.to_owned(),
            message,
        })
    };
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && length < min
    {
        fail(format!(
            "Invalid value: {text:?}: should be at least {min} chars long"
        ));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && length > max
    {
        fail(format!("Too long: may not be more than {max} bytes"));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(text) => {
                fail(format!("Invalid value: {text:?}: should match '{pattern}'"))
            }
            Ok(_) => {}
            Err(error) => fail(format!(
                "schema pattern {pattern:?} does not compile: {error}"
            )),
        }
    }
}
