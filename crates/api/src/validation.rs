//! Validation of a manifest against a CRD, the way the API server does it at `kubectl apply`:
//! the structural schema first (unknown fields, types, required fields, enums, patterns, ranges,
//! lengths), then the schema defaults, then the CEL rules.
//!
//! `portcullis check` runs this offline, so a user learns about a bad manifest before it reaches
//! a cluster, with the same field paths and much the same wording as the API server.

mod structural;

use std::fmt;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::{CompiledSchema, Validator, apply_defaults, compile_schema};
use serde_json::Value;

use self::structural::Patterns;

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

/// A CRD made ready to validate many manifests: its schema turned into JSON, its CEL rules
/// compiled and its patterns compiled, once. `portcullis check`, `render` and `run` validate every
/// document of a bundle against one of these per kind, so a bundle of thousands of Routes costs
/// the same per Route as a bundle of ten.
pub struct CrdValidator {
    /// The kind the CRD serves.
    kind: String,
    /// What the CRD's schema became, or why it cannot validate anything (reported for every
    /// manifest of the kind, as the API server would refuse them all).
    prepared: Result<Prepared, FieldError>,
}

/// The parts of a CRD that validation reads, each made once.
struct Prepared {
    schema: Value,
    rules: CompiledSchema,
    patterns: Patterns,
    cel: Validator,
}

impl CrdValidator {
    /// Prepares the first version of `crd` for validation.
    pub fn new(crd: &CustomResourceDefinition) -> Self {
        Self {
            kind: crd.spec.names.kind.clone(),
            prepared: Prepared::new(crd),
        }
    }

    /// The kind of the manifests this validates.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Validates `object` (a whole manifest: apiVersion, kind, metadata, spec). Returns the
    /// object with schema defaults applied, or every problem found.
    pub fn validate(&self, object: &Value) -> Result<Value, Vec<FieldError>> {
        let prepared = self.prepared.as_ref().map_err(|error| vec![error.clone()])?;
        let errors = structural::check(&prepared.schema, &prepared.patterns, object);
        if !errors.is_empty() {
            return Err(errors);
        }
        if prepared
            .cel
            .validate_compiled(&prepared.rules, object, None)
            .is_err()
        {
            // The compiled rules visit the fields of an object in no fixed order. A manifest
            // that breaks a rule is rare, so its rules are run again in the schema's order: the
            // problems come out in the order `portcullis check` has always printed them.
            if let Err(failures) = prepared.cel.validate(&prepared.schema, object, None) {
                return Err(failures
                    .iter()
                    .map(|failure| FieldError {
                        field: failure.field_path.clone(),
                        message: failure.message.clone(),
                    })
                    .collect());
            }
        }
        Ok(apply_defaults(&prepared.schema, object))
    }
}

impl Prepared {
    fn new(crd: &CustomResourceDefinition) -> Result<Self, FieldError> {
        let Some(schema) = crd
            .spec
            .versions
            .first()
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref())
        else {
            return Err(FieldError {
                field: String::new(),
                message: format!("CRD {} has no schema", crd.spec.names.kind),
            });
        };
        let schema = serde_json::to_value(schema).map_err(|error| FieldError {
            field: String::new(),
            message: format!("CRD schema does not serialize: {error}"),
        })?;
        Ok(Self {
            rules: compile_schema(&schema),
            patterns: Patterns::of(&schema),
            cel: Validator::new(),
            schema,
        })
    }
}

/// Validates `object` (a whole manifest: apiVersion, kind, metadata, spec) against the first
/// version of `crd`. Returns the object with schema defaults applied, or every problem found.
///
/// Prepares the CRD on every call: to validate many manifests, make one [`CrdValidator`].
pub fn validate(crd: &CustomResourceDefinition, object: &Value) -> Result<Value, Vec<FieldError>> {
    CrdValidator::new(crd).validate(object)
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

