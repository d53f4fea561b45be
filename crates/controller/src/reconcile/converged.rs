//! Whether a live child already is what the operator would apply, so that a converged reconcile
//! writes nothing.
//!
//! Two checks, both needed:
//! - every field the operator sets is in the live object with the same value (someone editing
//!   the Deployment, or scaling it by hand, fails this: the child drifted);
//! - the live object carries the hash of the configuration last applied, equal to that of the
//!   configuration now wanted (a field the operator *stopped* setting — `replicas` once
//!   autoscaling is on, a removed Secret mount — fails this, although the subset check passes).
//!
//! Fields the API server or other managers add (defaults, status, an injected sidecar) are not
//! the operator's and never count as drift.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The annotation holding the hash of the configuration last applied.
pub const APPLIED_ANNOTATION: &str = "portcullis.dev/applied";

/// The hash of an apply body (which must not hold the annotation yet).
pub fn applied_hash(desired: &Value) -> String {
    let bytes = serde_json::to_vec(desired).unwrap_or_default();
    Sha256::digest(&bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Adds the applied-configuration hash to an apply body and returns it.
pub fn stamp(desired: &mut Value) -> String {
    let hash = applied_hash(desired);
    if let Some(metadata) = desired.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(APPLIED_ANNOTATION.to_owned(), Value::String(hash.clone()));
        }
    }
    hash
}

/// Whether `live` is converged to the stamped apply body `desired`.
pub fn is_converged(live: &Value, desired: &Value) -> bool {
    let stamp_of = |v: &Value| v["metadata"]["annotations"][APPLIED_ANNOTATION].clone();
    stamp_of(live) == stamp_of(desired) && contains(live, desired, false)
}

/// Whether every field of `desired` is in `live` with an equal value. Lists of objects match
/// element by element in order, or failing that each wanted element anywhere in the live list
/// (other managers may add elements to associative lists); lists of scalars must be equal.
/// Under `resources`, quantities compare by value (`0.1` is `100m`).
fn contains(live: &Value, desired: &Value, quantities: bool) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => want.iter().all(|(key, value)| {
            let quantities = quantities || key == "resources";
            match have.get(key) {
                Some(live) => contains(live, value, quantities),
                None => is_empty(value),
            }
        }),
        (Value::Object(_) | Value::Array(_), Value::Null) => is_empty(desired),
        (Value::Array(want), Value::Array(have)) => {
            if want.iter().all(|w| !w.is_object()) {
                return want.len() == have.len()
                    && want
                        .iter()
                        .zip(have)
                        .all(|(w, h)| contains(h, w, quantities));
            }
            (want.len() == have.len()
                && want
                    .iter()
                    .zip(have)
                    .all(|(w, h)| contains(h, w, quantities)))
                || want
                    .iter()
                    .all(|w| have.iter().any(|h| contains(h, w, quantities)))
        }
        (Value::String(want), Value::String(have)) if quantities && want != have => {
            match (quantity(want), quantity(have)) {
                (Some(a), Some(b)) => (a - b).abs() <= f64::EPSILON * a.abs().max(b.abs()) * 4.0,
                _ => false,
            }
        }
        (want, have) => want == have,
    }
}

/// `null`, `{}` and `[]`: what the API server may drop without changing meaning.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// A Kubernetes quantity (`100m`, `64Mi`, `1.5`, `2e3`) as a number.
fn quantity(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        exponent => {
            let power: i32 = exponent.strip_prefix(['e', 'E'])?.parse().ok()?;
            10.0_f64.powi(power)
        }
    };
    Some(number * factor)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stamped(mut value: Value) -> Value {
        stamp(&mut value);
        value
    }

    #[test]
    fn server_defaults_and_other_managers_fields_are_not_drift() {
        let desired = stamped(json!({
            "metadata": { "name": "edge", "labels": { "a": "b" } },
            "spec": {
                "replicas": 2,
                "template": { "spec": {
                    "containers": [{ "name": "proxy", "args": ["proxy"], "env": [] }],
                    "resources": { "requests": { "cpu": "0.1" } },
                }},
            },
        }));
        let mut live = desired.clone();
        live["metadata"]["resourceVersion"] = json!("42");
        live["metadata"]["labels"]["added-by-someone"] = json!("x");
        live["spec"]["progressDeadlineSeconds"] = json!(600);
        live["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .expect("an object")
            .remove("env");
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("a list")
            .insert(0, json!({ "name": "sidecar" }));
        live["spec"]["template"]["spec"]["resources"]["requests"]["cpu"] = json!("100m");
        live["status"] = json!({ "readyReplicas": 2 });
        assert!(is_converged(&live, &desired));
    }

    #[test]
    fn a_changed_field_is_drift() {
        let desired = stamped(
            json!({ "metadata": { "name": "edge" }, "spec": { "replicas": 2, "args": ["a", "b"] } }),
        );
        let mut scaled = desired.clone();
        scaled["spec"]["replicas"] = json!(5);
        assert!(!is_converged(&scaled, &desired));
        let mut reordered = desired.clone();
        reordered["spec"]["args"] = json!(["b", "a"]);
        assert!(!is_converged(&reordered, &desired));
        let mut unstamped = desired.clone();
        unstamped["metadata"]["annotations"] = json!({});
        assert!(!is_converged(&unstamped, &desired));
    }

    #[test]
    fn a_field_no_longer_wanted_shows_in_the_stamp() {
        let before = stamped(json!({ "metadata": { "name": "edge" }, "spec": { "replicas": 2 } }));
        let after = stamped(json!({ "metadata": { "name": "edge" }, "spec": {} }));
        // `before` holds every field of `after`, but was applied from another configuration.
        assert!(!is_converged(&before, &after));
    }

    #[test]
    fn quantities_compare_by_value() {
        assert_eq!(quantity("100m"), Some(0.1));
        assert_eq!(quantity("64Mi"), Some(64.0 * 1024.0 * 1024.0));
        assert_eq!(quantity("2e3"), Some(2000.0));
        assert_eq!(quantity("abc"), None);
        assert!(contains(
            &json!({ "resources": { "cpu": "1000m" } }),
            &json!({ "resources": { "cpu": "1" } }),
            false
        ));
        assert!(!contains(
            &json!({ "other": "1000m" }),
            &json!({ "other": "1" }),
            false
        ));
    }
}
