//! The structural half of validation: what the API server checks from the schema alone before
//! any CEL rule runs (unknown fields, types, required fields, enums, patterns, ranges, lengths).

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

use super::{FieldError, join};

/// Every `pattern` of a schema, compiled once: compiling a pattern costs far more than matching
/// a field against it, and a bundle matches the same few patterns thousands of times.
#[derive(Default)]
pub(super) struct Patterns(HashMap<String, Result<Regex, String>>);

impl Patterns {
    /// The patterns found anywhere in `schema`.
    pub(super) fn of(schema: &Value) -> Self {
        let mut patterns = Self::default();
        patterns.collect(schema);
        patterns
    }

    fn collect(&mut self, schema: &Value) {
        match schema {
            Value::Object(fields) => {
                if let Some(pattern) = fields.get("pattern").and_then(Value::as_str) {
                    self.0
                        .entry(pattern.to_owned())
                        .or_insert_with(|| compile(pattern));
                }
                fields.values().for_each(|child| self.collect(child));
            }
            Value::Array(items) => items.iter().for_each(|child| self.collect(child)),
            _ => {}
        }
    }

    /// Whether `text` matches `pattern`, or why the pattern cannot say.
    fn is_match(&self, pattern: &str, text: &str) -> Result<bool, String> {
        match self.0.get(pattern) {
            Some(Ok(re)) => Ok(re.is_match(text)),
            Some(Err(error)) => Err(error.clone()),
            None => compile(pattern).map(|re| re.is_match(text)),
        }
    }
}

fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|error| error.to_string())
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
pub(super) fn check(schema: &Value, patterns: &Patterns, value: &Value) -> Vec<FieldError> {
    let mut walk = Walk {
        patterns,
        errors: Vec::new(),
    };
    walk.value(schema, value, "");
    walk.errors
}

/// One walk over a manifest: the schema's compiled patterns and the violations found so far.
struct Walk<'a> {
    patterns: &'a Patterns,
    errors: Vec<FieldError>,
}

impl Walk<'_> {
    fn value(&mut self, schema: &Value, value: &Value, path: &str) {
        let mut fail = |message: String| {
            self.errors.push(FieldError {
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
            Value::Object(fields) => self.object(schema, fields, path),
            Value::Array(items) => self.array(schema, items, path),
            Value::String(text) => self.string(schema, text, path),
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

    fn object(&mut self, schema: &Value, fields: &Map<String, Value>, path: &str) {
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
                self.value(child_schema, child, &child_path);
            } else if let Some(extra) = additional.filter(|a| a.is_object()) {
                self.value(extra, child, &child_path);
            } else if !(preserve || additional.and_then(Value::as_bool) == Some(true)) {
                self.errors.push(FieldError {
                    field: child_path,
                    message: format!("unknown field {key:?}"),
                });
            }
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    self.errors.push(FieldError {
                        field: join(path, name),
                        message: "Required value".to_owned(),
                    });
                }
            }
        }
    }

    fn array(&mut self, schema: &Value, items: &[Value], path: &str) {
        let count = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && count < min
        {
            self.errors.push(FieldError {
                field: path.to_owned(),
                message: format!("Invalid value: {count} items: must have at least {min} items"),
            });
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && count > max
        {
            self.errors.push(FieldError {
                field: path.to_owned(),
                message: format!("Too many: {count}: must have at most {max} items"),
            });
        }
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                self.value(item_schema, item, &format!("{path}[{index}]"));
            }
        }
    }

    fn string(&mut self, schema: &Value, text: &str, path: &str) {
        let length = text.chars().count() as u64;
        let mut fail = |message: String| {
            self.errors.push(FieldError {
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
            match self.patterns.is_match(pattern, text) {
                Ok(false) => fail(format!("Invalid value: {text:?}: should match '{pattern}'")),
                Ok(true) => {}
                Err(error) => fail(format!(
                    "schema pattern {pattern:?} does not compile: {error}"
                )),
            }
        }
    }
}
