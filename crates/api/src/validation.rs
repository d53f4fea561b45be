//! Validation of a manifest against a CRD, the way the API server does it at `kubectl apply`:
//! the structural schema first (unknown fields, types, required fields, enums, patterns, ranges,
//! lengths), then the schema defaults, then the CEL rules.
//!
//! `portcullis check` runs this offline, so a user learns about a bad manifest before it reaches
//! a cluster, with the same field paths and much the same wording as the API server.

mod structural;

use std::fmt;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::cel::{CompiledSchema, SchemaFormat, Validator, apply_defaults, compile_schema};
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
        let prepared = self
            .prepared
            .as_ref()
            .map_err(|error| vec![error.clone()])?;
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
        let mut rules = compile_schema(&schema);
        prune(&mut rules);
        Ok(Self {
            rules,
            patterns: Patterns::of(&schema),
            cel: Validator::new(),
            schema,
        })
    }
}

/// Takes out of `node` the parts of the schema the CEL rules have no use for, and says whether
/// `node` itself is one: no rule, no default, no format, not a map nor an embedded object, here
/// or below. The rules walk every part of the schema and turn each part's value into a CEL value
/// again, which is most of what validating a Route costs; a part taken out is not walked, and
/// its value is turned into exactly the same CEL value without it. A declared field of an
/// object that also takes other fields (`additionalProperties`) stays, or it would be read as
/// one of those.
fn prune(node: &mut CompiledSchema) -> bool {
    let mut inert = node.validations.is_empty()
        && node.default.is_none()
        && matches!(node.format, SchemaFormat::None)
        && !node.is_map
        && !node.embedded_resource
        && node.all_of.is_empty()
        && node.one_of.is_empty()
        && node.any_of.is_empty();
    let removable = node.additional_properties.is_none();
    node.properties.retain(|_, child| {
        let child_inert = prune(child);
        inert &= child_inert;
        !(child_inert && removable)
    });
    for part in [&mut node.items, &mut node.additional_properties] {
        match part.as_deref_mut().map(prune) {
            Some(true) => *part = None,
            Some(false) => inert = false,
            None => {}
        }
    }
    inert
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

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::json;

    use super::*;
    use crate::{Gateway, Route, ServiceBackend};

    /// The CEL failures of `object` against `crd`'s rules, as (field, message), sorted.
    fn failures(rules: &CompiledSchema, object: &Value) -> Vec<(String, String)> {
        let mut failures: Vec<_> = match Validator::new().validate_compiled(rules, object, None) {
            Ok(()) => Vec::new(),
            Err(errors) => errors
                .iter()
                .map(|e| (e.field_path.clone(), e.message.clone()))
                .collect(),
        };
        failures.sort();
        failures
    }

    fn schema(crd: &CustomResourceDefinition) -> Value {
        let version = &crd.spec.versions[0];
        let schema = version.schema.as_ref().expect("schema");
        serde_json::to_value(schema.open_api_v3_schema.as_ref()).expect("JSON")
    }

    #[test]
    fn pruned_rules_find_exactly_what_all_rules_find() {
        let route = |spec: Value| json!({"apiVersion": "portcullis.dev/v1alpha1", "kind": "Route", "metadata": {"name": "r"}, "spec": spec});
        let cases = [
            (
                Route::crd(),
                route(json!({"parentRefs": [{"name": "edge"}], "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": "/a"}, "headers": [{"name": "X", "value": "y"}]}],
                    "backendRefs": [{"name": "app"}]}]})),
            ),
            (
                Route::crd(),
                route(json!({"parentRefs": [{"name": "edge"}], "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": "a//b"}}],
                    "filters": [{"type": "RequestRedirect"}, {"type": "URLRewrite"}],
                    "timeouts": {"request": "1s", "backendRequest": "2s"},
                    "auth": {"type": "JWT"},
                    "cors": {"allowCredentials": true, "allowOrigins": ["*"]},
                    "rateLimit": {"requests": 0, "period": "1s", "key": {"type": "Header"}}}]})),
            ),
            (
                Gateway::crd(),
                json!({"spec": {"autoscaling": {"minReplicas": 5, "maxReplicas": 3},
                    "listeners": [{"name": "a", "port": 80, "protocol": "HTTP"},
                                  {"name": "a", "port": 80, "protocol": "HTTPS"}]}}),
            ),
            (
                ServiceBackend::crd(),
                json!({"spec": {"service": {"name": "s", "port": 1}, "endpoints": [{"address": "a", "port": 1}],
                    "loadBalancer": {"policy": "ConsistentHash"}, "healthCheck": {"path": "x"}}}),
            ),
        ];
        for (crd, object) in cases {
            let schema = schema(&crd);
            let all = compile_schema(&schema);
            let mut pruned = compile_schema(&schema);
            prune(&mut pruned);
            assert_eq!(
                failures(&pruned, &object),
                failures(&all, &object),
                "{object}"
            );
        }
    }

    #[test]
    fn a_route_breaking_several_rules_gets_them_in_the_schema_order() {
        let validator = CrdValidator::new(&Route::crd());
        let object = json!({"apiVersion": "portcullis.dev/v1alpha1", "kind": "Route", "metadata": {"name": "r"},
            "spec": {"parentRefs": [{"name": "edge"}], "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "a"}}],
                "auth": {"type": "JWT"},
                "timeouts": {"request": "1s", "backendRequest": "2s"}}]}});
        let fields: Vec<String> = validator
            .validate(&object)
            .expect_err("refused")
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.rules[0].auth",
                "spec.rules[0].matches[0].path",
                "spec.rules[0].timeouts"
            ]
        );
    }
}
