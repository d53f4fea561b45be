//! Status from observation: real `portcullis proxy --configmap` processes stand in for the
//! Gateway's two pods (each reports on the Pod it stands in for, as the gateway's
//! ServiceAccount), and the Gateway's and the Route's status follow what they really serve —
//! through an edit, a replica that stops answering, its return on an old start-up copy, and a
//! revision a replica cannot read.

#[path = "operator_support/mod.rs"]
mod operator_support;
#[path = "proxy_support/mod.rs"]
mod proxy_support;
mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use operator_support::*;
use portcullis_api::{Gateway, Route};
use proxy_support::*;
use serde_json::json;
use support::{
    control_plane::{TestContext, eventually},
    kubectl::Kubectl,
};

/// `status.config` of the Gateway: `(revision, live)`.
fn config_of(gateway: &Gateway) -> Option<(String, String)> {
    let config = gateway.status.as_ref()?.config.as_ref()?;
    Some((config.revision.clone(), config.live.clone()?))
}

/// Waits until Programmed has `reason` and status.config says `live` for `revision`.
async fn await_programmed_as(
    ctx: &TestContext,
    reason: &str,
    revision: &str,
    live: &str,
) -> Gateway {
    let what = format!("Programmed {reason} with revision {revision} live on {live}");
    await_gateway(ctx, GATEWAY, &what, |g| {
        let status = if reason == "Programmed" {
            "True"
        } else {
            "False"
        };
        has_condition(g, "Programmed", status, Some(reason))
            && config_of(g) == Some((revision.to_owned(), live.to_owned()))
    })
    .await
}

/// The Route's `Programmed` condition for the Gateway: `(status, reason)`.
async fn route_programmed(ctx: &TestContext) -> Option<(String, String)> {
    let route = ctx.api::<Route>().get("web").await.ok()?;
    let parent = route.status?.parents.into_iter().next()?;
    let condition = parent
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Programmed")?;
    (condition.observed_generation == route.metadata.generation)
        .then_some((condition.status, condition.reason))
}

async fn await_route_programmed(ctx: &TestContext, status: &str, reason: &str) {
    let wanted = Some((status.to_owned(), reason.to_owned()));
    eventually(
        &format!("the Route to say Programmed {status} {reason}"),
        TIMEOUT,
        || async { (route_programmed(ctx).await == wanted).then_some(()) },
    )
    .await;
}

/// The report a pod carries: `(status, reason, message)` of its ConfigServed condition.
async fn report_on(ctx: &TestContext, pod: &str) -> Option<(String, String, String)> {
    let pod = ctx.api::<Pod>().get(pod).await.ok()?;
    let condition = pod
        .status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "portcullis.dev/ConfigServed")?;
    Some((condition.status, condition.reason?, condition.message?))
}

async fn await_answer(proxy: &Proxy, path: &str, status: u16) {
    eventually(&format!("{path} to answer {status}"), TIMEOUT, || async {
        (proxy.get(path).await.ok()?.status == status).then_some(())
    })
    .await;
}

#[tokio::test]
async fn programmed_and_live_follow_what_the_replicas_report() {
    let ctx = TestContext::new("replica-status").await;
    ctx.control_plane.require_workloads();
    let operator = Operator::start_default(&ctx).await;
    let upstream = Upstream::start("web", free_addr()).await;
    let port = free_addr().port();
    let mut gateway = proxy_support::gateway(&ctx.namespace, port);
    gateway["spec"]["replicas"] = json!(2);
    apply_all(
        &ctx.client,
        &[
            gateway,
            static_backend(&ctx.namespace, "web", upstream.addr),
            web_route(&ctx.namespace, vec![path_match("PathPrefix", "/v1")]),
        ],
    )
    .await;
    let pods = await_pods(&ctx, GATEWAY, 2).await;
    let (pod_a, pod_b) = (pods[0].name_any(), pods[1].name_any());
    // Nothing reports yet: the kwok pods are Ready but run nothing.
    let first = await_config(&ctx, |s| !s.rules.is_empty() && !s.backends.is_empty()).await;
    await_programmed_as(&ctx, "Pending", &first.revision, "0/2").await;

    let identity_a = Identity::pod(&pod_a, [127, 0, 0, 1]);
    let identity_b = Identity::pod(&pod_b, [127, 0, 0, 2]);
    let a = Proxy::spawn_as(&ctx, &first, &proxy_binary(), &identity_a).await;
    let b = Proxy::spawn_as(&ctx, &first, &proxy_binary(), &identity_b).await;
    await_programmed_as(&ctx, "Programmed", &first.revision, "2/2").await;
    await_route_programmed(&ctx, "True", "Programmed").await;
    let (status, reason, message) = report_on(&ctx, &pod_a).await.expect("pod a reports");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Served"));
    assert_eq!(message, format!("serving revision {}", first.revision));

    // `kubectl get pgw` shows it.
    let listed = Kubectl::new(ctx.control_plane)
        .run(&["get", "pgw", "-n", &ctx.namespace], None)
        .await;
    assert!(listed.success, "{}", listed.stderr);
    let header: Vec<&str> = listed
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let row: Vec<&str> = listed
        .stdout
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let live = header
        .iter()
        .position(|c| *c == "LIVE")
        .expect("a LIVE column");
    assert_eq!(row.get(live), Some(&"2/2"), "{}", listed.stdout);

    // Replica b stops answering (its pod stays Ready: nothing tells the API server). An edit
    // is live on a alone: the Gateway names b, and the Route says it is not served everywhere.
    drop(b);
    apply(
        &ctx.client,
        &web_route(&ctx.namespace, vec![path_match("PathPrefix", "/v2")]),
    )
    .await;
    let second = await_config(&ctx, |s| s.revision != first.revision).await;
    let gateway = await_programmed_as(&ctx, "Pending", &second.revision, "1/2").await;
    let programmed = gateway
        .status
        .as_ref()
        .and_then(|s| condition(&s.conditions, "Programmed"))
        .expect("Programmed");
    assert!(
        programmed.message.contains(&pod_b),
        "{}",
        programmed.message
    );
    await_route_programmed(&ctx, "False", "Pending").await;
    await_answer(&a, "/v2/x", 200).await;

    // b comes back on its old start-up copy (the kubelet's mounted file lags): it joins with
    // the current revision from the ConfigMap, and everything is live again.
    let b = Proxy::spawn_as(&ctx, &first, &proxy_binary(), &identity_b).await;
    await_programmed_as(&ctx, "Programmed", &second.revision, "2/2").await;
    await_route_programmed(&ctx, "True", "Programmed").await;
    await_answer(&b, "/v2/x", 200).await;

    // A revision the replicas cannot read (written behind the stopped operator's back, as a
    // newer snapshot format would be): each reports the refusal on its pod and keeps serving.
    operator.stop().await;
    let unreadable = json!({
        "metadata": { "annotations": { "portcullis.dev/revision": "unreadable" } },
        "data": { "config.yaml": "apiVersion: portcullis.dev/config/v99\n" },
    });
    ctx.api::<ConfigMap>()
        .patch(
            &format!("{GATEWAY}-config"),
            &PatchParams::default(),
            &Patch::Merge(&unreadable),
        )
        .await
        .expect("the ConfigMap is patched");
    for (proxy, pod) in [(&a, &pod_a), (&b, &pod_b)] {
        let (status, _, message) = eventually("the refusal to be reported", TIMEOUT, || async {
            report_on(&ctx, pod)
                .await
                .filter(|(_, reason, _)| reason == "Refused")
        })
        .await;
        assert_eq!(status, "False");
        assert!(
            message.starts_with(&format!(
                "serving revision {}; refused revision unreadable: ",
                second.revision
            )),
            "{message}"
        );
        await_answer(proxy, "/v2/y", 200).await;
    }

    // A replica that refused a revision but serves the current one is live: the Gateway says
    // so while the operator is away. The operator back: it puts its ConfigMap back, and the
    // replicas report serving it with nothing refused.
    let operator = Operator::start_default(&ctx).await;
    await_programmed_as(&ctx, "Programmed", &second.revision, "2/2").await;
    for pod in [&pod_a, &pod_b] {
        let served = format!("serving revision {}", second.revision);
        eventually(
            "the replicas to report serving it again",
            TIMEOUT,
            || async {
                let (status, _, message) = report_on(&ctx, pod).await?;
                (status == "True" && message == served).then_some(())
            },
        )
        .await;
    }
    operator.stop().await;
}

#[tokio::test]
async fn a_route_of_a_deleted_gateway_loses_its_status_entry() {
    let ctx = TestContext::new("orphaned-route-status").await;
    let operator = Operator::start_default(&ctx).await;
    let port = free_addr().port();
    apply_all(
        &ctx.client,
        &[
            proxy_support::gateway(&ctx.namespace, port),
            static_backend(&ctx.namespace, "web", free_addr()),
            web_route(&ctx.namespace, vec![path_match("PathPrefix", "/")]),
        ],
    )
    .await;
    let routes: Api<Route> = ctx.api();
    eventually("the Route to be accepted", TIMEOUT, || async {
        let route = routes.get("web").await.ok()?;
        (!route.status?.parents.is_empty()).then_some(())
    })
    .await;
    ctx.api::<Gateway>()
        .delete(GATEWAY, &Default::default())
        .await
        .expect("the Gateway is deleted");
    eventually(
        "the Route's entry for the deleted Gateway to go",
        TIMEOUT,
        || async {
            let route = routes.get("web").await.ok()?;
            route
                .status
                .is_none_or(|s| s.parents.is_empty())
                .then_some(())
        },
    )
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn an_object_with_a_childs_name_that_portcullis_did_not_create_is_left_alone() {
    let ctx = TestContext::new("not-taken-over").await;
    let config_maps: Api<ConfigMap> = ctx.api();
    let theirs: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": format!("{GATEWAY}-config") },
        "data": { "owner": "another team" },
    }))
    .expect("a ConfigMap");
    config_maps
        .create(&Default::default(), &theirs)
        .await
        .expect("their ConfigMap is created");
    let operator = Operator::start_default(&ctx).await;
    let port = free_addr().port();
    apply(&ctx.client, &proxy_support::gateway(&ctx.namespace, port)).await;
    let gateway = await_gateway(&ctx, GATEWAY, "Programmed ApplyFailed", |g| {
        has_condition(g, "Programmed", "False", Some("ApplyFailed"))
    })
    .await;
    let message = &condition(
        &gateway.status.as_ref().expect("a status").conditions,
        "Programmed",
    )
    .expect("Programmed")
    .message;
    assert!(
        message.contains("was not created by Portcullis"),
        "{message}"
    );
    let events = Kubectl::new(ctx.control_plane)
        .run(
            &[
                "get",
                "events",
                "-n",
                &ctx.namespace,
                "-o",
                "jsonpath={.items[*].reason}",
            ],
            None,
        )
        .await;
    assert!(events.stdout.contains("ApplyFailed"), "{}", events.stdout);
    let kept = config_maps
        .get(&format!("{GATEWAY}-config"))
        .await
        .expect("their ConfigMap is there");
    assert_eq!(
        kept.data.and_then(|d| d.get("owner").cloned()).as_deref(),
        Some("another team"),
        "their data is untouched"
    );
    assert!(
        kept.metadata.owner_references.is_none(),
        "not made the Gateway's"
    );
    operator.stop().await;
}
