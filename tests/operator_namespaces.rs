//! A Gateway serving Routes of another namespace: the operator copies the Routes' Secrets into
//! the Gateway's namespace (the pods never read across namespaces), grants the pods the
//! EndpointSlices of the backends' namespace, and removes that grant when the Gateway goes.
//!
//! The operator watches every namespace here, so this binary holds this one test.

#[path = "operator_support/mod.rs"]
mod operator_support;
mod support;

use std::time::Duration;

use k8s_openapi::api::{
    core::v1::Secret,
    rbac::v1::{Role, RoleBinding},
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams},
};
use operator_support::*;
use portcullis_api::{Gateway, Route};
use portcullis_controller::ControllerConfig;
use serde_json::json;
use support::control_plane::{TestContext, create_namespace, eventually};

#[tokio::test]
async fn routes_of_another_namespace_get_copied_secrets_and_endpoint_access() {
    let ctx = TestContext::new("gateway-ns").await;
    let team = create_namespace(&ctx.client, "team").await;
    let metrics = std::sync::Arc::new(portcullis_controller::Metrics::default());
    let client = counted_client(&ctx, &metrics).await;
    let (stop, shutdown) = portcullis_controller::shutdown_trigger();
    let operator = tokio::spawn(portcullis_controller::run(
        client,
        ControllerConfig {
            resync: Duration::from_secs(2),
            metrics: metrics.clone(),
            ..ControllerConfig::default()
        },
        shutdown,
    ));

    let gateway_ns = ctx.namespace.clone();
    let documents = [
        json!({
            "apiVersion": "portcullis.dev/v1alpha1", "kind": "Gateway",
            "metadata": { "name": "edge", "namespace": gateway_ns },
            "spec": { "listeners": [{
                "name": "http", "port": 8080, "protocol": "HTTP",
                "allowedRoutes": { "namespaces": { "from": "All" } },
            }]},
        }),
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "keys", "namespace": team },
            "stringData": { "keys": "mobile:k1\n", "unrelated": "never copied" },
        }),
        json!({
            "apiVersion": "portcullis.dev/v1alpha1", "kind": "ServiceBackend",
            "metadata": { "name": "orders", "namespace": team },
            "spec": { "service": { "name": "orders", "port": 8080 } },
        }),
        json!({
            "apiVersion": "portcullis.dev/v1alpha1", "kind": "Route",
            "metadata": { "name": "orders", "namespace": team },
            "spec": {
                "parentRefs": [{ "name": "edge", "namespace": gateway_ns }],
                "rules": [{
                    "backendRefs": [{ "name": "orders" }],
                    "auth": { "type": "ApiKey", "apiKey": { "secretRef": { "name": "keys", "key": "keys" } } },
                }],
            },
        }),
    ];
    apply_all(&ctx.client, &documents).await;
    await_gateway(&ctx, "edge", "the team's Route attached", |g| {
        is_applied(g) && g.status.as_ref().is_some_and(|s| s.attached_routes == 1)
    })
    .await;

    // The Route's Secret, copied into the Gateway's namespace with only the key it reads.
    let secrets: Api<Secret> = ctx.api();
    let copied = |want: &'static [u8]| {
        let secrets = secrets.clone();
        let team = team.clone();
        move || {
            let secrets = secrets.clone();
            let source = format!("{team}/keys");
            async move {
                let list = secrets
                    .list(&ListParams::default().labels("app.kubernetes.io/managed-by=portcullis"))
                    .await
                    .ok()?;
                let copy = list
                    .items
                    .into_iter()
                    .find(|s| s.annotations().get("portcullis.dev/copied-from") == Some(&source))?;
                let data = copy.data.clone()?;
                (data.len() == 1 && data.get("keys")?.0 == want).then_some(copy)
            }
        }
    };
    let copy = eventually("the copied Secret", TIMEOUT, copied(b"mobile:k1\n")).await;
    let deployment = serde_json::to_value(deployment(&ctx, "edge").await).expect("json");
    let pod = &deployment["spec"]["template"]["spec"];
    let mount = format!("/etc/portcullis/secrets/{team}/keys");
    assert!(
        pod["containers"][0]["volumeMounts"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["mountPath"] == mount.as_str())),
        "the copy is mounted where the snapshot looks: {pod:#}"
    );
    assert!(
        pod["volumes"].as_array().is_some_and(|v| v
            .iter()
            .any(|v| v["secret"]["secretName"] == copy.name_any().as_str())),
        "the pod mounts the copy, never the team's Secret"
    );

    // The source changes: the copy follows (through the Secret watch).
    apply(
        &ctx.client,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "keys", "namespace": team },
            "stringData": { "keys": "mobile:k2\n", "unrelated": "never copied" },
        }),
    )
    .await;
    eventually(
        "the copy to follow its source",
        TIMEOUT,
        copied(b"mobile:k2\n"),
    )
    .await;

    // EndpointSlice access in the team's namespace, which the Gateway cannot own: a finalizer
    // keeps the Gateway until the operator has removed it.
    let roles: Api<Role> = Api::namespaced(ctx.client.clone(), &team);
    let bindings: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &team);
    let selector = format!("portcullis.dev/gateway-namespace={gateway_ns}");
    let role = eventually("the Role in the team's namespace", TIMEOUT, || async {
        roles
            .list(&ListParams::default().labels(&selector))
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    let rule = &role.rules.as_ref().expect("rules")[0];
    assert_eq!(
        rule.resources.as_deref(),
        Some(&["endpointslices".to_owned()][..])
    );
    assert!(role.owner_references().is_empty());
    let gateways: Api<Gateway> = ctx.api();
    let gateway = gateways.get("edge").await.expect("the Gateway");
    assert!(
        gateway
            .finalizers()
            .iter()
            .any(|f| f == "portcullis.dev/foreign-rbac")
    );
    let route: Route = Api::namespaced(ctx.client.clone(), &team)
        .get("orders")
        .await
        .expect("Route");
    assert!(route.status.is_some_and(|s| !s.parents.is_empty()));

    gateways
        .delete("edge", &DeleteParams::default())
        .await
        .expect("the Gateway is deleted");
    eventually(
        "the Gateway and its grants in other namespaces gone",
        TIMEOUT,
        || async {
            let gone = gateways.get_opt("edge").await.ok()?.is_none()
                && roles
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .ok()?
                    .items
                    .is_empty()
                && bindings
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .ok()?
                    .items
                    .is_empty();
            gone.then_some(())
        },
    )
    .await;

    let _ = stop.send(true);
    tokio::time::timeout(TIMEOUT, operator)
        .await
        .expect("the operator stops")
        .expect("no panic")
        .expect("a clean stop");
}
