//! The operator against a real API server: how it keeps the replicas it runs — drift put
//! back, autoscalers left alone, readiness reported as it is — and that once converged it
//! stops writing.

#[path = "operator_support/mod.rs"]
mod operator_support;
mod support;

use k8s_openapi::api::{
    apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler, core::v1::Event,
};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use operator_support::*;
use serde_json::json;
use support::control_plane::{TestContext, eventually};

#[tokio::test]
async fn scaling_the_deployment_by_hand_is_put_back() {
    let ctx = TestContext::new("drift").await;
    let operator = Operator::start_default(&ctx).await;
    apply_all(&ctx.client, &examples(&ctx.namespace)).await;
    await_programmed(&ctx, "edge").await;
    deployment(&ctx, "edge").await;

    let deployments: Api<Deployment> = ctx.api();
    deployments
        .patch_scale(
            "edge",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 7 } })),
        )
        .await
        .expect("scaled by hand");
    eventually("the operator to put 3 replicas back", TIMEOUT, || async {
        let d = deployments.get("edge").await.ok()?;
        (d.spec?.replicas == Some(3)).then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn with_autoscaling_the_replica_count_belongs_to_the_hpa() {
    let ctx = TestContext::new("autoscaling").await;
    let operator = Operator::start_default(&ctx).await;
    let mut documents = examples(&ctx.namespace);
    apply_all(&ctx.client, &documents).await;
    await_programmed(&ctx, "edge").await;
    let deployments: Api<Deployment> = ctx.api();
    eventually("3 replicas", TIMEOUT, || async {
        (deployments.get("edge").await.ok()?.spec?.replicas == Some(3)).then_some(())
    })
    .await;

    // Autoscaling on: the HPA appears and the operator stops setting replicas, without the
    // count dropping on the way.
    let gateway = find(&mut documents, "Gateway", "edge");
    gateway["spec"]["autoscaling"] = json!({ "minReplicas": 2, "maxReplicas": 6 });
    apply(&ctx.client, gateway).await;
    let hpas: Api<HorizontalPodAutoscaler> = ctx.api();
    eventually("the HPA", TIMEOUT, || async {
        hpas.get_opt("edge").await.ok()?
    })
    .await;
    eventually("the operator to hand replicas over", TIMEOUT, || async {
        let d = deployments.get("edge").await.ok()?;
        let ours = d.managed_fields().iter().any(|f| {
            f.manager.as_deref() == Some("portcullis")
                && f.fields_v1
                    .as_ref()
                    .is_some_and(|v| v.0["f:spec"]["f:replicas"].is_object())
        });
        (!ours).then_some(d)
    })
    .await;
    assert_eq!(
        deployments
            .get("edge")
            .await
            .expect("read")
            .spec
            .and_then(|s| s.replicas),
        Some(3)
    );

    // What the HPA does (no HPA controller runs here): scale through the scale subresource.
    deployments
        .patch_scale(
            "edge",
            &PatchParams {
                field_manager: Some("kube-controller-manager".to_owned()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({ "spec": { "replicas": 5 } })),
        )
        .await
        .expect("scaled like the HPA does");
    await_reconciles(&operator.metrics, 3).await;
    let replicas = deployments
        .get("edge")
        .await
        .expect("read")
        .spec
        .and_then(|s| s.replicas);
    assert_eq!(
        replicas,
        Some(5),
        "the operator must leave the HPA's count alone"
    );

    // Autoscaling off again: the HPA goes, the operator owns the count again.
    let gateway = find(&mut documents, "Gateway", "edge");
    gateway["spec"]
        .as_object_mut()
        .expect("a spec")
        .remove("autoscaling");
    apply(&ctx.client, gateway).await;
    eventually("the HPA to be deleted", TIMEOUT, || async {
        hpas.get_opt("edge").await.ok()?.is_none().then_some(())
    })
    .await;
    eventually("3 replicas again", TIMEOUT, || async {
        (deployments.get("edge").await.ok()?.spec?.replicas == Some(3)).then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn a_gateway_created_with_autoscaling_starts_at_the_minimum_and_leaves_the_rest_to_the_hpa() {
    let ctx = TestContext::new("autoscaling-new").await;
    let operator = Operator::start_default(&ctx).await;
    let mut documents = examples(&ctx.namespace);
    find(&mut documents, "Gateway", "edge")["spec"]["autoscaling"] =
        json!({ "minReplicas": 4, "maxReplicas": 8 });
    // Every version of the Deployment, from its creation on: the count must never move.
    let deployments: Api<Deployment> = ctx.api();
    let counts = Arc::new(Mutex::new(Vec::new()));
    let watch = tokio::spawn({
        let (deployments, counts) = (deployments.clone(), counts.clone());
        async move {
            let config = watcher::Config::default().fields("metadata.name=edge");
            let mut versions = std::pin::pin!(watcher(deployments, config).applied_objects());
            while let Some(Ok(deployment)) = versions.next().await {
                if let Ok(mut counts) = counts.lock() {
                    counts.push(deployment.spec.and_then(|s| s.replicas));
                }
            }
        }
    });
    apply_all(&ctx.client, &documents).await;
    await_programmed(&ctx, "edge").await;
    let deployment = eventually("4 replicas, not set by the operator", TIMEOUT, || async {
        let d = deployments.get("edge").await.ok()?;
        let ours = d.managed_fields().iter().any(|f| {
            f.manager.as_deref() == Some("portcullis")
                && f.fields_v1
                    .as_ref()
                    .is_some_and(|v| v.0["f:spec"]["f:replicas"].is_object())
        });
        (!ours && d.spec.as_ref()?.replicas == Some(4)).then_some(d)
    })
    .await;
    watch.abort();
    // The pod template may change while the operator first sees the Routes (their Secrets
    // are mounted); the count never does.
    let counts = counts.lock().map(|c| c.clone()).unwrap_or_default();
    assert!(
        !counts.is_empty() && counts.iter().all(|c| *c == Some(4)),
        "no back and forth on the count: {counts:?} (generation {:?})",
        deployment.metadata.generation
    );
    operator.stop().await;
}

#[tokio::test]
async fn readiness_and_degradation_follow_the_ready_replicas() {
    let ctx = TestContext::new("readiness").await;
    let operator = Operator::start_default(&ctx).await;
    let mut documents = examples(&ctx.namespace);
    find(&mut documents, "Gateway", "edge")["spec"]["replicas"] = json!(2);
    apply_all(&ctx.client, &documents).await;
    // kwok runs the pods on the fake nodes and marks them Ready.
    let ready = await_gateway(&ctx, "edge", "2/2 ready, all Routes attached", |g| {
        has_condition(g, "Degraded", "False", Some("AllReplicasReady"))
            && g.status
                .as_ref()
                .is_some_and(|s| s.ready.as_deref() == Some("2/2") && s.attached_routes == 4)
    })
    .await;
    assert!(has_condition(
        &ready,
        "Ready",
        "True",
        Some("ReplicasReady")
    ));
    let ready_since = condition(&ready.status.as_ref().expect("status").conditions, "Ready")
        .map(|c| c.last_transition_time.clone());
    // The pods to mark are those of the settled Deployment: while the Routes are still being
    // attached a new revision may roll them, and a replaced pod cannot be marked.
    let deployments: Api<Deployment> = ctx.api();
    eventually("the edge Deployment rolled out", TIMEOUT, || async {
        let d = deployments.get("edge").await.ok()?;
        let status = d.status?;
        (status.observed_generation == d.metadata.generation
            && status.updated_replicas == Some(2)
            && status.replicas == Some(2))
        .then_some(())
    })
    .await;
    let pods = await_pods(&ctx, "edge", 2).await;

    // One replica stops being ready, as its kubelet would report.
    set_pod_ready(&ctx, &pods[0], false).await;
    let degraded = await_gateway(&ctx, "edge", "Degraded with 1 of 2 ready", |g| {
        has_condition(g, "Degraded", "True", Some("ReplicasUnavailable"))
    })
    .await;
    assert!(has_condition(&degraded, "Ready", "True", None));
    let status = degraded.status.as_ref().expect("a status");
    assert_eq!(
        (status.ready_replicas, status.ready.as_deref()),
        (1, Some("1/2"))
    );
    assert_eq!(
        condition(&status.conditions, "Ready").map(|c| c.last_transition_time.clone()),
        ready_since,
        "Ready stayed True from 2/2 to 1/2: its transition time must not move"
    );

    set_pod_ready(&ctx, &pods[0], true).await;
    await_gateway(&ctx, "edge", "recovered with 2 of 2", |g| {
        has_condition(g, "Degraded", "False", Some("AllReplicasReady"))
            && has_condition(g, "Ready", "True", Some("ReplicasReady"))
    })
    .await;

    for pod in &pods {
        set_pod_ready(&ctx, pod, false).await;
    }
    let down = await_gateway(&ctx, "edge", "Ready=False with 0 of 2", |g| {
        has_condition(g, "Ready", "False", Some("NoReadyReplicas"))
    })
    .await;
    assert_eq!(down.status.and_then(|s| s.ready), Some("0/2".to_owned()));

    let events: Api<Event> = ctx.api();
    eventually(
        "Degraded, Recovered and NoReadyReplicas Events",
        TIMEOUT,
        || async {
            let reasons: Vec<String> = events
                .list(
                    &ListParams::default()
                        .fields("involvedObject.name=edge,involvedObject.kind=Gateway"),
                )
                .await
                .ok()?
                .items
                .into_iter()
                .filter_map(|e| e.reason)
                .collect();
            ["Degraded", "Recovered", "NoReadyReplicas"]
                .iter()
                .all(|expected| reasons.iter().any(|r| r == expected))
                .then_some(())
        },
    )
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn a_converged_resync_makes_no_api_write() {
    let ctx = TestContext::new("zero-writes").await;
    let operator = Operator::start_default(&ctx).await;
    apply_all(&ctx.client, &examples(&ctx.namespace)).await;
    await_gateway(&ctx, "edge", "all Routes attached", |g| {
        is_applied(g) && g.status.as_ref().is_some_and(|s| s.attached_routes == 4)
    })
    .await;

    // Settled: a window of resyncs without a write (the first windows may still see the last
    // status updates land).
    let metrics = &operator.metrics;
    eventually("a quiet window of resyncs", TIMEOUT, || async {
        let before = metrics.api_writes();
        await_reconciles(metrics, 3).await;
        (metrics.api_writes() == before).then_some(())
    })
    .await;
    let before = metrics.api_writes();
    await_reconciles(metrics, 5).await;
    assert_eq!(
        metrics.api_writes(),
        before,
        "a converged resync must not write to the API"
    );
    operator.stop().await;
}
