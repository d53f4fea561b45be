//! What the operator may do in the cluster: the ClusterRole its ServiceAccount needs, generated
//! from the code that uses it (for the Helm chart and `deploy/install.yaml`).
//!
//! Kubernetes lets a subject create a Role only with permissions it holds itself, so the
//! operator holds what the gateway pods' Roles grant (read ConfigMaps and EndpointSlices, report
//! on their Pods).

use k8s_openapi::{
    api::rbac::v1::{ClusterRole, PolicyRule},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

const READ: &[&str] = &["get", "list", "watch"];
const MANAGE: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// The ClusterRole named `name` that `portcullis controller` needs.
pub fn cluster_role(name: &str) -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![
            // Gateways: finalizers (RBAC in backend namespaces) and status.
            rule(
                "portcullis.dev",
                &["gateways", "routes", "servicebackends"],
                &["get", "list", "watch", "update", "patch"],
            ),
            rule(
                "portcullis.dev",
                &["gateways/status", "routes/status", "servicebackends/status"],
                &["get", "update", "patch"],
            ),
            // The children.
            rule(
                "",
                &["configmaps", "secrets", "serviceaccounts", "services"],
                MANAGE,
            ),
            rule("apps", &["deployments"], MANAGE),
            rule("policy", &["poddisruptionbudgets"], MANAGE),
            rule("autoscaling", &["horizontalpodautoscalers"], MANAGE),
            rule(
                "rbac.authorization.k8s.io",
                &["roles", "rolebindings"],
                MANAGE,
            ),
            // Route namespaces selected by label; ServiceBackend endpoint counts (and what the
            // gateway pods' Roles grant).
            rule("", &["namespaces"], READ),
            rule("discovery.k8s.io", &["endpointslices"], READ),
            // The gateway pods: which replicas are ready and which config revision each one
            // reports serving (and what their Roles grant: reporting it).
            rule("", &["pods"], READ),
            rule("", &["pods/status"], &["patch"]),
            rule("events.k8s.io", &["events"], &["create", "patch"]),
            rule(
                "coordination.k8s.io",
                &["leases"],
                &["get", "create", "update", "patch"],
            ),
        ]),
        aggregation_rule: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_holds_what_it_grants_the_gateway_pods() {
        let role = cluster_role("portcullis-controller");
        let rules = role.rules.expect("rules");
        let holds = |group: &str, resource: &str, verb: &str| {
            rules.iter().any(|r| {
                r.api_groups.iter().flatten().any(|g| g == group)
                    && r.resources.iter().flatten().any(|x| x == resource)
                    && r.verbs.iter().any(|v| v == verb)
            })
        };
        for verb in ["get", "list", "watch"] {
            assert!(holds("", "configmaps", verb));
            assert!(holds("discovery.k8s.io", "endpointslices", verb));
        }
        assert!(holds("", "pods/status", "patch"));
        assert!(holds("apps", "deployments", "patch"));
        assert!(holds("portcullis.dev", "gateways/status", "patch"));
    }
}
