//! Names, labels and annotations of the objects the operator creates for a Gateway.
//!
//! Every child is named after its Gateway, so `kubectl get deploy,svc,cm` in the Gateway's
//! namespace shows them side by side. Kubernetes caps names and label values (63 characters
//! for Services and label values); a name that would not fit is shortened and given a hash
//! suffix, so two long Gateway names never collide.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// The field manager of every server-side apply the operator makes: one manager, so the
/// operator never fights itself over a field.
pub const FIELD_MANAGER: &str = "portcullis";

/// `app.kubernetes.io/managed-by` on every child; the children's watches select on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "portcullis";
/// The Gateway a child belongs to (its name, shortened to a label value if needed).
pub const GATEWAY_LABEL: &str = "portcullis.dev/gateway";
/// The namespace of the Gateway, on children that live in another namespace (the RBAC that
/// lets a gateway read EndpointSlices where its backends are).
pub const GATEWAY_NAMESPACE_LABEL: &str = "portcullis.dev/gateway-namespace";
/// `app.kubernetes.io/name` of the gateway pods.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/component` of the gateway pods.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// The snapshot revision a ConfigMap holds (on the ConfigMap only, never on the pod template:
/// a config change must not restart pods).
pub const REVISION_ANNOTATION: &str = "portcullis.dev/revision";
/// `namespace/name` of the Gateway a child outside its namespace belongs to (the child cannot
/// carry an owner reference across namespaces, and label values are too short for both).
pub const OWNER_ANNOTATION: &str = "portcullis.dev/owner";
/// The Secret a copied Secret was copied from, as `namespace/name`.
pub const SOURCE_ANNOTATION: &str = "portcullis.dev/copied-from";

/// The key of the snapshot in the Gateway's ConfigMap.
pub const CONFIG_KEY: &str = "config.yaml";

/// Longest Service name and label value Kubernetes accepts.
const DNS_LABEL_MAX: usize = 63;
/// Longest name of most other objects.
const DNS_SUBDOMAIN_MAX: usize = 253;

/// `base` if it is at most `max` characters, else a prefix of it and a hash of the whole, so
/// that distinct inputs stay distinct. The result never ends in `-` or `.`.
pub fn fit(base: &str, max: usize) -> String {
    if base.len() <= max {
        return base.to_owned();
    }
    let digest = Sha256::digest(base.as_bytes());
    let hash: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    let keep = max.saturating_sub(hash.len() + 1);
    let prefix = base[..keep].trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}")
}

/// A label value naming `name` (Kubernetes caps label values at 63 characters).
pub fn label_value(name: &str) -> String {
    fit(name, DNS_LABEL_MAX)
}

/// The name of the Deployment, Service, PodDisruptionBudget, HPA and ServiceAccount of a
/// Gateway: the Gateway's own name (shortened to a DNS label when needed, as Services require).
pub fn workload_name(gateway: &str) -> String {
    fit(gateway, DNS_LABEL_MAX)
}

/// The name of the Gateway's ConfigMap: `<gateway>-config`.
pub fn config_map_name(gateway: &str) -> String {
    fit(&format!("{gateway}-config"), DNS_SUBDOMAIN_MAX)
}

/// The name of the Role and RoleBinding in the Gateway's namespace: `<gateway>-proxy`.
pub fn local_role_name(gateway: &str) -> String {
    fit(&format!("{gateway}-proxy"), DNS_SUBDOMAIN_MAX)
}

/// The name of the Role and RoleBinding in a backend namespace other than the Gateway's:
/// `portcullis-<gateway namespace>-<gateway>-<hash>`, unique across Gateways of all
/// namespaces (the hash tells `a-b`/`c` from `a`/`b-c`).
pub fn foreign_role_name(gateway_namespace: &str, gateway: &str) -> String {
    unique(
        &format!("portcullis-{gateway_namespace}-{gateway}"),
        &[gateway_namespace, gateway],
    )
}

/// The name of the owned copy, in the Gateway's namespace, of Secret `namespace/name`:
/// `<gateway>-<namespace>-<name>-<hash>`.
pub fn copied_secret_name(gateway: &str, namespace: &str, name: &str) -> String {
    unique(
        &format!("{gateway}-{namespace}-{name}"),
        &[gateway, namespace, name],
    )
}

/// `readable` plus a short hash of `parts`, fitted to a DNS subdomain.
fn unique(readable: &str, parts: &[&str]) -> String {
    let digest = Sha256::digest(parts.join("/").as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let readable = fit(readable, DNS_SUBDOMAIN_MAX - hash.len() - 1);
    format!("{readable}-{hash}")
}

/// The labels every child of `gateway` carries.
pub fn child_labels(gateway: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        (GATEWAY_LABEL.to_owned(), label_value(gateway)),
    ])
}

/// The labels that select the gateway pods of `gateway` (Deployment, Service, PDB selectors).
/// Never change these: a Deployment's selector is immutable.
pub fn selector_labels(gateway: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_owned(), "portcullis".to_owned()),
        (COMPONENT_LABEL.to_owned(), "gateway".to_owned()),
        (GATEWAY_LABEL.to_owned(), label_value(gateway)),
    ])
}

/// A label selector string matching every child the operator manages.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_and_long_ones_shortened_without_collisions() {
        assert_eq!(workload_name("edge"), "edge");
        let a = workload_name(&"a".repeat(100));
        let b = workload_name(&format!("{}b", "a".repeat(99)));
        assert_eq!(a.len(), 63);
        assert_eq!(b.len(), 63);
        assert_ne!(a, b);
        assert!(label_value(&"x-".repeat(50)).len() <= 63);
        assert!(!fit(&"x-".repeat(50), 20).contains("--"));
    }

    #[test]
    fn children_names_follow_the_gateway() {
        assert_eq!(config_map_name("edge"), "edge-config");
        assert_eq!(local_role_name("edge"), "edge-proxy");
        assert!(foreign_role_name("shop", "edge").starts_with("portcullis-shop-edge-"));
        assert_ne!(foreign_role_name("a-b", "c"), foreign_role_name("a", "b-c"));
        assert!(copied_secret_name("edge", "team-a", "keys").starts_with("edge-team-a-keys-"));
        assert_ne!(
            copied_secret_name("edge", "a-b", "c"),
            copied_secret_name("edge", "a", "b-c")
        );
    }
}
