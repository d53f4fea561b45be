//! The test control plane is a real one: the API server applies the CRDs' schema defaults and
//! CEL rules, kube-controller-manager garbage-collects and rolls out, and kwok makes pods Ready.

mod support;

use std::time::Duration;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, ReplicaSet},
        core::v1::{ConfigMap, Pod},
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{
    Api, Resource as _, ResourceExt as _,
    api::{ApiResource, DeleteParams, DynamicObject, ListParams, PostParams},
};
use portcullis_api::{API_VERSION, Gateway, GatewaySpec};
use serde_json::json;
use support::control_plane::{TestContext, eventually};

/// How long kube-controller-manager gets to act on a change.
const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(60);

/// An `Api` for Gateways that sends and receives raw JSON, so no serde default of the Rust
/// types can fill in what the API server is supposed to.
fn raw_gateways(ctx: &TestContext) -> Api<DynamicObject> {
    Api::namespaced_with(
        ctx.client.clone(),
        &ctx.namespace,
        &ApiResource::erase::<Gateway>(&()),
    )
}

fn gateway_manifest(name: &str, listeners: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": API_VERSION,
        "kind": "Gateway",
        "metadata": { "name": name },
        "spec": { "listeners": listeners },
    }))
    .expect("a Gateway manifest is a valid DynamicObject")
}

fn assert_crds_installed(ctx: &TestContext) {
    assert!(
        ctx.control_plane
            .crds()
            .iter()
            .any(|name| name == "gateways.portcullis.dev"),
        "the Gateway CRD must be in crds/ (regenerate it with `make crds`); installed: {:?}",
        ctx.control_plane.crds()
    );
}

#[tokio::test]
async fn gateway_round_trips_with_defaults_from_the_api_server() {
    let ctx = TestContext::new("gateway-defaults").await;
    assert_crds_installed(&ctx);
    let listeners = json!([{ "name": "web", "port": 8080, "protocol": "HTTP" }]);

    let created = raw_gateways(&ctx)
        .create(
            &PostParams::default(),
            &gateway_manifest("edge", listeners.clone()),
        )
        .await
        .expect("the API server accepts a minimal Gateway");
    let spec = &created.data["spec"];
    assert_eq!(spec["replicas"], 2, "defaulted spec: {spec:#}");
    assert_eq!(spec["drain"]["delay"], "5s", "defaulted spec: {spec:#}");
    assert_eq!(
        spec["disruptionBudget"]["maxUnavailable"], 1,
        "defaulted spec: {spec:#}"
    );
    assert_eq!(
        spec["listeners"][0]["allowedRoutes"]["namespaces"]["from"], "Same",
        "defaulted spec: {spec:#}"
    );

    // The API server's defaults are exactly the Rust types' serde defaults ...
    let gateways: Api<Gateway> = ctx.api();
    let fetched = gateways.get("edge").await.expect("the Gateway reads back");
    let expected: GatewaySpec = serde_json::from_value(json!({ "listeners": listeners }))
        .expect("a minimal spec deserialises");
    assert_eq!(fetched.spec, expected);

    // ... and writing the typed object back changes nothing, so the generation stays put.
    let replaced = gateways
        .replace("edge", &PostParams::default(), &fetched)
        .await
        .expect("the typed Gateway is accepted back");
    assert_eq!(replaced.spec, fetched.spec);
    assert_eq!(replaced.metadata.generation, Some(1));
}

#[tokio::test]
async fn an_https_listener_without_tls_is_refused_by_the_cel_rule() {
    let ctx = TestContext::new("gateway-cel").await;
    assert_crds_installed(&ctx);

    let refused = raw_gateways(&ctx)
        .create(
            &PostParams::default(),
            &gateway_manifest(
                "edge",
                json!([{ "name": "websecure", "port": 8443, "protocol": "HTTPS" }]),
            ),
        )
        .await
        .expect_err("the API server refuses an HTTPS listener without tls");
    let kube::Error::Api(status) = refused else {
        panic!("expected a refusal from the API server, got {refused:?}");
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status
            .message
            .contains("an HTTPS listener needs tls.certificateRefs"),
        "the refusal should carry the CEL rule's message: {}",
        status.message
    );
}

/// Creates a Route `name` whose one rule has `auth`, as raw JSON; the API server's refusal message,
/// or `None` when it stored the Route.
async fn create_route_with_auth(
    ctx: &TestContext,
    name: &str,
    auth: serde_json::Value,
) -> Option<String> {
    let routes: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &ctx.namespace,
        &ApiResource::erase::<portcullis_api::Route>(&()),
    );
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": API_VERSION,
        "kind": "Route",
        "metadata": { "name": name },
        "spec": {
            "parentRefs": [{ "name": "edge" }],
            "rules": [{ "backendRefs": [{ "name": "users" }], "auth": auth }],
        },
    }))
    .expect("a Route manifest is a valid DynamicObject");
    match routes.create(&PostParams::default(), &route).await {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            Some(status.message)
        }
        Err(other) => panic!("expected a refusal from the API server, got {other:?}"),
    }
}

#[tokio::test]
async fn the_api_server_enforces_the_auth_rules_users_rely_on() {
    let ctx = TestContext::new("auth-cel").await;
    let jwt = |extra: serde_json::Value| {
        let mut jwt = json!({ "issuer": "https://id.example.com" });
        if let (Some(jwt), Some(extra)) = (jwt.as_object_mut(), extra.as_object()) {
            jwt.extend(extra.clone());
        }
        json!({ "type": "JWT", "jwt": jwt })
    };
    let refusals = [
        (
            jwt(json!({ "jwksUri": "https://id.example.com/jwks", "algorithms": ["HS256"] })),
            "HS256, HS384 and HS512 need their shared secret in jwksSecretRef",
        ),
        (
            jwt(json!({})),
            "set exactly one of jwksSecretRef and jwksUri",
        ),
        (
            jwt(json!({ "jwksUri": "https://id.example.com/jwks", "leeway": "10m" })),
            "leeway must be at most 5m",
        ),
        (
            jwt(json!({
                "jwksUri": "https://id.example.com/jwks",
                "claimsToHeaders": [{ "claim": "sub", "header": "Authorization" }],
            })),
            "a claim cannot be forwarded in a header that frames the request",
        ),
        (
            jwt(json!({ "jwksUri": "http://id.example.com/jwks" })),
            "jwksUri",
        ),
        (
            json!({
                "type": "ApiKey",
                "apiKey": {
                    "secretRef": { "name": "keys", "key": "k" },
                    "header": "X-Key",
                    "queryParameter": "key",
                },
            }),
            "set header or queryParameter, not both",
        ),
    ];
    for (i, (auth, says)) in refusals.into_iter().enumerate() {
        let message = create_route_with_auth(&ctx, &format!("refused-{i}"), auth.clone())
            .await
            .unwrap_or_else(|| panic!("the API server stored {auth}"));
        assert!(message.contains(says), "{says:?} not in: {message}");
    }
    let stored = create_route_with_auth(
        &ctx,
        "stored",
        jwt(json!({
            "jwksSecretRef": { "name": "jwks", "key": "keys.json" },
            "algorithms": ["HS512", "PS256"],
            "claimsToHeaders": [{ "claim": "sub", "header": "X-User" }],
        })),
    )
    .await;
    assert_eq!(stored, None);
}

/// A ConfigMap named `name`, owned by `owner`.
fn config_map_owned_by(name: &str, owner: OwnerReference) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    }
}

/// Waits until the garbage collector has deleted ConfigMap `name`.
async fn await_collected(config_maps: &Api<ConfigMap>, name: &str) {
    eventually(
        &format!("the garbage collector to delete ConfigMap {name}"),
        CONTROLLER_TIMEOUT,
        || async {
            match config_maps.get_opt(name).await {
                Ok(None) => Some(()),
                _ => None,
            }
        },
    )
    .await;
}

#[tokio::test]
async fn the_dependent_of_a_deleted_config_map_is_garbage_collected() {
    let ctx = TestContext::new("gc-config-map").await;
    ctx.control_plane.require_controller_manager();
    let config_maps: Api<ConfigMap> = ctx.api();

    let owner = ConfigMap {
        metadata: ObjectMeta {
            name: Some("owner".to_owned()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    let owner = config_maps
        .create(&PostParams::default(), &owner)
        .await
        .expect("the owner is created");
    let owner_ref = owner
        .controller_owner_ref(&())
        .expect("a created ConfigMap has a name and a uid");
    config_maps
        .create(
            &PostParams::default(),
            &config_map_owned_by("dependent", owner_ref),
        )
        .await
        .expect("the dependent is created");

    config_maps
        .delete("owner", &DeleteParams::default())
        .await
        .expect("the owner is deleted");
    await_collected(&config_maps, "dependent").await;
}

#[tokio::test]
async fn the_children_of_a_deleted_gateway_are_garbage_collected() {
    let ctx = TestContext::new("gc-gateway").await;
    assert_crds_installed(&ctx);
    ctx.control_plane.require_controller_manager();

    let gateway: Gateway = serde_json::from_value(json!({
        "apiVersion": API_VERSION,
        "kind": "Gateway",
        "metadata": { "name": "edge" },
        "spec": { "listeners": [{ "name": "web", "port": 8080, "protocol": "HTTP" }] },
    }))
    .expect("a minimal Gateway deserialises");
    let gateways: Api<Gateway> = ctx.api();
    let gateway = gateways
        .create(&PostParams::default(), &gateway)
        .await
        .expect("the Gateway is created");
    let config_maps: Api<ConfigMap> = ctx.api();
    config_maps
        .create(
            &PostParams::default(),
            &config_map_owned_by(
                "edge-config",
                gateway
                    .controller_owner_ref(&())
                    .expect("a created Gateway has a name and a uid"),
            ),
        )
        .await
        .expect("the Gateway's ConfigMap is created");

    gateways
        .delete(&gateway.name_any(), &DeleteParams::default())
        .await
        .expect("the Gateway is deleted");
    await_collected(&config_maps, "edge-config").await;
}

#[tokio::test]
async fn a_deployment_rolls_out_to_ready_pods_on_the_fake_nodes() {
    let ctx = TestContext::new("rollout").await;
    ctx.control_plane.require_workloads();

    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "example.invalid/web:1" }] },
            },
        },
    }))
    .expect("a Deployment manifest deserialises");
    let deployments: Api<Deployment> = ctx.api();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("the Deployment is created");

    // Deployment -> ReplicaSet -> pods (kube-controller-manager), pods -> nodes (kube-scheduler),
    // pods Running and Ready (kwok), then the Deployment counts them available.
    eventually(
        "the Deployment to have 2 available replicas",
        CONTROLLER_TIMEOUT,
        || async {
            let status = deployments.get_status("web").await.ok()?.status?;
            (status.available_replicas == Some(2)).then_some(())
        },
    )
    .await;
    let pods = ctx
        .api::<Pod>()
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("the pods list");
    assert_eq!(pods.items.len(), 2);
    for pod in &pods.items {
        let spec = pod.spec.as_ref().expect("a pod has a spec");
        let status = pod.status.as_ref().expect("a ready pod has a status");
        assert!(
            spec.node_name
                .as_deref()
                .is_some_and(|n| n.starts_with("kwok-node-")),
            "{pod:?}"
        );
        assert_eq!(status.phase.as_deref(), Some("Running"), "{pod:?}");
    }
    let replica_sets = ctx
        .api::<ReplicaSet>()
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("the ReplicaSets list");
    assert!(
        replica_sets.items.iter().any(|set| {
            set.owner_references()
                .iter()
                .any(|owner| owner.kind == "Deployment" && owner.name == "web")
        }),
        "the Deployment owns a ReplicaSet: {replica_sets:?}"
    );
}
