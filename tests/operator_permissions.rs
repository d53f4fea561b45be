//! The operator runs with exactly the ClusterRole it generates, and says what is missing when
//! it has less.

#[path = "operator_support/mod.rs"]
mod operator_support;
mod support;

use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use operator_support::*;
use portcullis_controller::{ControllerConfig, LeaderElection, RunError, permissions};
use serde_json::json;
use support::control_plane::{TestContext, eventually};

/// The user a ServiceAccount authenticates as.
fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

#[tokio::test]
async fn without_permissions_the_operator_stops_with_a_message_saying_so() {
    let ctx = TestContext::new("no-rbac").await;
    let user = service_account_user(&ctx.namespace, "nobody");
    let operator = Operator::start_as(&ctx, Some(&user), ControllerConfig::default()).await;
    let error = operator
        .outcome()
        .await
        .expect_err("the operator refuses to start");
    assert!(matches!(error, RunError::Forbidden { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("gateways"), "{message}");
    assert!(message.contains("ClusterRole"), "{message}");
}

#[tokio::test]
async fn the_generated_cluster_role_is_all_the_operator_needs() {
    let ctx = TestContext::new("rbac").await;
    let name = format!("portcullis-controller-{}", ctx.namespace);
    let role = permissions::cluster_role(&name);
    Api::<ClusterRole>::all(ctx.client.clone())
        .patch(
            &name,
            &PatchParams::apply(TEST_MANAGER),
            &Patch::Apply(&role),
        )
        .await
        .expect("the ClusterRole is created");
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": { "name": name },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name },
        "subjects": [{ "kind": "ServiceAccount", "name": "portcullis", "namespace": ctx.namespace }],
    });
    Api::<ClusterRoleBinding>::all(ctx.client.clone())
        .patch(
            &name,
            &PatchParams::apply(TEST_MANAGER),
            &Patch::Apply(&binding),
        )
        .await
        .expect("the ClusterRoleBinding is created");

    let user = service_account_user(&ctx.namespace, "portcullis");
    let operator = Operator::start_as(
        &ctx,
        Some(&user),
        ControllerConfig {
            resync: Duration::from_secs(2),
            leader_election: Some(LeaderElection {
                lease_namespace: ctx.namespace.clone(),
                ..LeaderElection::default()
            }),
            ..ControllerConfig::default()
        },
    )
    .await;
    apply_all(&ctx.client, &examples(&ctx.namespace)).await;
    // Everything a Gateway needs, including a Role that grants EndpointSlice reads (which only
    // a subject holding them may create), Route and ServiceBackend status, and the Lease.
    await_gateway(
        &ctx,
        "edge",
        "the Gateway programmed and its Routes attached",
        |g| is_applied(g) && g.status.as_ref().is_some_and(|s| s.attached_routes == 4),
    )
    .await;
    let role: Role = ctx.api().get("edge-proxy").await.expect("the Role");
    // Its own ConfigMap, the status of its namespace's Pods (its report), and the
    // EndpointSlices and Services of its backends' namespace.
    assert_eq!(role.rules.map(|r| r.len()), Some(4));
    eventually("a clean run: no reconcile error", TIMEOUT, || async {
        let errors = operator.metrics.encode();
        (!errors.contains("portcullis_controller_reconcile_errors_total{")).then_some(())
    })
    .await;
    operator.stop().await;
}
