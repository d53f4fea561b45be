//! Two operator instances, one Lease: one leads and writes, the other stands by and takes over
//! when the leader dies or steps down.

#[path = "operator_support/mod.rs"]
mod operator_support;
mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use operator_support::*;
use portcullis_controller::{ControllerConfig, LeaderElection};
use serde_json::json;
use support::control_plane::{TestContext, eventually};

/// The operator settings of both instances: a short Lease so that a dead leader is replaced
/// within seconds.
fn config(ctx: &TestContext, identity: &str) -> ControllerConfig {
    ControllerConfig {
        identity: identity.to_owned(),
        resync: Duration::from_secs(2),
        leader_election: Some(LeaderElection {
            lease_name: "portcullis-controller".to_owned(),
            lease_namespace: ctx.namespace.clone(),
            lease_duration: Duration::from_secs(4),
            renew_before: Duration::from_secs(1),
        }),
        ..ControllerConfig::default()
    }
}

/// Scales the Deployment by hand and waits for the leader to put the count back.
async fn assert_leader_repairs_drift(ctx: &TestContext) {
    let deployments: Api<Deployment> = ctx.api();
    deployments
        .patch_scale(
            "edge",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 9 } })),
        )
        .await
        .expect("scaled by hand");
    eventually("the leader to put 3 replicas back", TIMEOUT, || async {
        let d = deployments.get("edge").await.ok()?;
        (d.spec?.replicas == Some(3)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_standby_takes_over_when_the_leader_dies() {
    let ctx = TestContext::new("leader-dies").await;
    let first = Mortal::start(&ctx, config(&ctx, "first"));
    eventually("the first instance to lead", TIMEOUT, || async {
        first.metrics.is_leader().then_some(())
    })
    .await;
    let second = Operator::start(&ctx, config(&ctx, "second")).await;
    apply_all(&ctx.client, &examples(&ctx.namespace)).await;
    await_programmed(&ctx, "edge").await;
    deployment(&ctx, "edge").await;
    assert!(first.metrics.reconciles("gateway") > 0);
    assert!(!second.metrics.is_leader());
    assert_eq!(
        (
            second.metrics.reconciles("gateway"),
            second.metrics.api_writes()
        ),
        (0, 0),
        "a standby neither reconciles nor writes"
    );

    first.kill();
    eventually("the standby to take the Lease", TIMEOUT, || async {
        second.metrics.is_leader().then_some(())
    })
    .await;
    assert_leader_repairs_drift(&ctx).await;
    assert!(second.metrics.reconciles("gateway") > 0);
    second.stop().await;
}

#[tokio::test]
async fn a_leader_that_stops_hands_over_at_once() {
    let ctx = TestContext::new("leader-stops").await;
    let first = Operator::start(&ctx, config(&ctx, "first")).await;
    eventually("the first instance to lead", TIMEOUT, || async {
        first.metrics.is_leader().then_some(())
    })
    .await;
    let second = Operator::start(&ctx, config(&ctx, "second")).await;
    apply_all(&ctx.client, &examples(&ctx.namespace)).await;
    await_programmed(&ctx, "edge").await;
    deployment(&ctx, "edge").await;

    // A graceful stop (SIGTERM in a cluster) releases the Lease rather than letting it expire.
    first.stop().await;
    eventually(
        "the standby to take the released Lease",
        TIMEOUT,
        || async { second.metrics.is_leader().then_some(()) },
    )
    .await;
    assert_leader_repairs_drift(&ctx).await;
    second.stop().await;
}
