//! The operator against a real API server: what `kubectl apply -f deploy/examples` turns into,
//! how Route and Secret changes reach the config, and what is left when the Gateway goes.

#[path = "operator_support/mod.rs"]
mod operator_support;
mod support;

use k8s_openapi::api::{
    apps::v1::Deployment,
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{ConfigMap, Event, Service, ServiceAccount},
    policy::v1::PodDisruptionBudget,
    rbac::v1::{Role, RoleBinding},
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use operator_support::*;
use portcullis_api::{Gateway, Route, ServiceBackend};
use serde_json::json;
use support::control_plane::{TestContext, eventually};

fn json_of<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("serializes")
}

/// Waits until the ConfigMap's revision differs from `before` and returns the new one.
async fn await_new_revision(ctx: &TestContext, before: &str) -> (String, ConfigMap) {
    let config_maps: Api<ConfigMap> = ctx.api();
    eventually("a new config revision", TIMEOUT, || async {
        let config_map = config_maps.get_opt("edge-config").await.ok()??;
        let revision = config_map
            .annotations()
            .get("portcullis.dev/revision")?
            .clone();
        (revision != before).then_some((revision, config_map))
    })
    .await
}

/// The names of the Routes a stored snapshot serves.
fn served_routes(config: &str) -> Vec<String> {
    let snapshot = portcullis_config::Snapshot::from_yaml(config).expect("the snapshot reads");
    snapshot
        .rules
        .into_iter()
        .map(|rule| rule.route.name)
        .collect()
}

fn revision_of(gateway: &Gateway) -> String {
    gateway
        .status
        .as_ref()
        .and_then(|s| s.config.as_ref())
        .map(|c| c.revision.clone())
        .expect("a programmed Gateway reports its config revision")
}

#[tokio::test]
async fn the_examples_become_every_child_with_the_redundancy_defaults() {
    let base = TestContext::new("examples").await;
    ensure_namespace(&base.client, "shop").await;
    let ctx = TestContext {
        namespace: "shop".to_owned(),
        ..base
    };
    let operator = Operator::start_default(&ctx).await;
    apply_all(&ctx.client, &examples("shop")).await;

    await_gateway(&ctx, "edge", "every example Route attached", |g| {
        is_applied(g) && g.status.as_ref().is_some_and(|s| s.attached_routes == 4)
    })
    .await;
    // kube-scheduler places the pods on the fake nodes and kwok makes them Ready.
    let gateway = await_gateway(&ctx, "edge", "3/3 replicas ready", |g| {
        has_condition(g, "Ready", "True", Some("ReplicasReady"))
            && g.status
                .as_ref()
                .is_some_and(|s| s.ready.as_deref() == Some("3/3"))
    })
    .await;
    let status = gateway.status.clone().expect("a status");
    assert!(has_condition(
        &gateway,
        "Accepted",
        "True",
        Some("Accepted")
    ));
    assert!(
        has_condition(&gateway, "Degraded", "False", None),
        "{status:#?}"
    );
    assert_eq!(status.observed_generation, gateway.metadata.generation);
    assert_eq!(status.listeners[0].name, "http");
    assert_eq!(status.listeners[0].attached_routes, 4);
    // The examples ask for a LoadBalancer Service, and this cluster has no load balancer: no
    // address a client outside could use, and a condition that says it is pending.
    assert!(status.addresses.is_empty(), "{status:#?}");
    assert!(
        has_condition(
            &gateway,
            "AddressAssigned",
            "False",
            Some("AddressNotAssigned")
        ),
        "{status:#?}"
    );
    // The cloud's load balancer controller assigns one: the Gateway shows it.
    let services: Api<Service> = ctx.api();
    services
        .patch_status(
            "edge",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "status": { "loadBalancer": { "ingress": [{ "ip": "203.0.113.10" }] } }
            })),
        )
        .await
        .expect("the Service status is patched");
    let gateway = await_gateway(&ctx, "edge", "the external address", |g| {
        g.status.as_ref().is_some_and(|s| {
            s.addresses
                .first()
                .is_some_and(|a| a.value == "203.0.113.10")
        })
    })
    .await;
    assert!(has_condition(
        &gateway,
        "AddressAssigned",
        "True",
        Some("AddressAssigned")
    ));

    let config_map: ConfigMap = ctx.api().get("edge-config").await.expect("the ConfigMap");
    let config = &config_map.data.as_ref().expect("data")["config.yaml"];
    let served = served_routes(config);
    for route in ["users", "orders", "catalog", "profile"] {
        assert!(served.contains(&route.to_owned()), "{route} in {served:?}");
    }
    assert_eq!(
        config_map.annotations()["portcullis.dev/revision"],
        revision_of(&gateway)
    );

    let deployment = json_of(&deployment(&ctx, "edge").await);
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 3, "the Gateway asks for 3");
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"], 1);
    let pod = &spec["template"]["spec"];
    assert_eq!(
        pod["topologySpreadConstraints"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        pod["topologySpreadConstraints"][0]["whenUnsatisfiable"],
        "ScheduleAnyway"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(pod["terminationGracePeriodSeconds"].as_i64() > Some(35));
    assert_eq!(pod["serviceAccountName"], "edge");
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(container["startupProbe"].is_object());
    assert_eq!(container["resources"]["requests"]["cpu"], "100m");
    let mounts = container["volumeMounts"].as_array().expect("mounts");
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"] == "/etc/portcullis/secrets/shop/api-keys"),
        "the API keys of /users are mounted: {mounts:#?}"
    );

    let nodes: std::collections::BTreeSet<String> = await_pods(&ctx, "edge", 3)
        .await
        .into_iter()
        .filter_map(|p| p.spec?.node_name)
        .collect();
    assert_eq!(
        nodes.len(),
        2,
        "3 replicas spread over both nodes: {nodes:?}"
    );

    let service: Service = services.get("edge").await.expect("the Service");
    assert_eq!(
        json_of(&service)["spec"]["type"],
        "LoadBalancer",
        "the example asks for a LoadBalancer"
    );
    let pdb: PodDisruptionBudget = ctx.api().get("edge").await.expect("the PDB");
    assert_eq!(json_of(&pdb)["spec"]["maxUnavailable"], 1);
    ctx.api::<ServiceAccount>()
        .get("edge")
        .await
        .expect("the ServiceAccount");
    let role: Role = ctx.api().get("edge-proxy").await.expect("the Role");
    assert_eq!(
        json_of(&role)["rules"][0]["resourceNames"],
        json!(["edge-config"])
    );
    ctx.api::<RoleBinding>()
        .get("edge-proxy")
        .await
        .expect("the RoleBinding");
    assert!(
        ctx.api::<HorizontalPodAutoscaler>()
            .get_opt("edge")
            .await
            .expect("a read")
            .is_none(),
        "no autoscaling, no HPA"
    );
    for child in [json_of(&config_map), json_of(&pdb), json_of(&role)] {
        assert_eq!(
            child["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "portcullis"
        );
        assert_eq!(
            child["metadata"]["labels"]["portcullis.dev/gateway"],
            "edge"
        );
        assert_eq!(
            child["metadata"]["ownerReferences"][0]["uid"],
            json!(gateway.uid())
        );
    }

    let routes: Api<Route> = ctx.api();
    let parent = eventually("the users Route's status", TIMEOUT, || async {
        routes
            .get("users")
            .await
            .ok()?
            .status?
            .parents
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(
        condition(&parent.conditions, "Accepted").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(
        condition(&parent.conditions, "ResolvedRefs").map(|c| c.status.as_str()),
        Some("True")
    );

    // The Services behind the backends do not exist here.
    let backends: Api<ServiceBackend> = ctx.api();
    let users = eventually("the users ServiceBackend's status", TIMEOUT, || async {
        let backend = backends.get("users").await.ok()?;
        backend.status.as_ref()?.endpoints.as_ref()?;
        Some(backend)
    })
    .await;
    let status = users.status.expect("a status");
    assert_eq!(status.endpoints.map(|e| (e.ready, e.total)), Some((0, 0)));
    assert_eq!(
        condition(&status.conditions, "ResolvedRefs").map(|c| c.reason.as_str()),
        Some("ServiceNotFound")
    );
    operator.stop().await;
}

#[tokio::test]
async fn editing_a_route_changes_the_config_but_never_restarts_pods() {
    let ctx = TestContext::new("route-edit").await;
    let operator = Operator::start_default(&ctx).await;
    let mut documents = examples(&ctx.namespace);
    apply_all(&ctx.client, &documents).await;
    let gateway = await_gateway(&ctx, "edge", "all Routes attached", |g| {
        is_applied(g) && g.status.as_ref().is_some_and(|s| s.attached_routes == 4)
    })
    .await;
    let before = deployment(&ctx, "edge").await;

    let orders = find(&mut documents, "Route", "orders");
    orders["spec"]["rules"][0]["matches"][0]["path"]["value"] = json!("/v2/orders");
    apply(&ctx.client, orders).await;
    let (revision, config_map) = await_new_revision(&ctx, &revision_of(&gateway)).await;
    assert!(config_map.data.expect("data")["config.yaml"].contains("/v2/orders"));
    await_gateway(&ctx, "edge", "the status to report the new revision", |g| {
        g.status
            .as_ref()
            .and_then(|s| s.config.as_ref())
            .is_some_and(|c| c.revision == revision)
    })
    .await;

    let after = deployment(&ctx, "edge").await;
    assert_eq!(
        json_of(&before.spec.as_ref().map(|s| &s.template)),
        json_of(&after.spec.as_ref().map(|s| &s.template)),
        "a Route edit must not touch the pod template"
    );
    assert_eq!(before.metadata.generation, after.metadata.generation);
    operator.stop().await;
}

#[tokio::test]
async fn a_broken_reference_is_reported_while_the_other_routes_stay_served() {
    let ctx = TestContext::new("broken-ref").await;
    let operator = Operator::start_default(&ctx).await;
    let mut documents = examples(&ctx.namespace);
    apply_all(&ctx.client, &documents).await;
    let gateway = await_programmed(&ctx, "edge").await;

    let catalog = find(&mut documents, "Route", "catalog");
    catalog["spec"]["rules"][0]["backendRefs"][0]["name"] = json!("no-such-backend");
    apply(&ctx.client, catalog).await;

    let routes: Api<Route> = ctx.api();
    let parent = eventually("catalog's ResolvedRefs=False", TIMEOUT, || async {
        let route = routes.get("catalog").await.ok()?;
        let parent = route.status?.parents.into_iter().next()?;
        let resolved = condition(&parent.conditions, "ResolvedRefs")?;
        (resolved.status == "False").then_some(parent)
    })
    .await;
    let resolved = condition(&parent.conditions, "ResolvedRefs").expect("the condition");
    assert_eq!(resolved.reason, "BackendNotFound");
    assert!(
        resolved.message.contains("no-such-backend"),
        "{}",
        resolved.message
    );

    let events: Api<Event> = ctx.api();
    eventually("a BackendNotFound Event on the Route", TIMEOUT, || async {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=catalog"))
            .await
            .ok()?;
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("BackendNotFound"))
            .then_some(())
    })
    .await;

    let (_, config_map) = await_new_revision(&ctx, &revision_of(&gateway)).await;
    let served = served_routes(&config_map.data.expect("data")["config.yaml"]);
    for route in ["users", "orders", "profile"] {
        assert!(served.contains(&route.to_owned()), "{route} still served");
    }
    operator.stop().await;
}

#[tokio::test]
async fn a_missing_secret_is_reported_on_its_route_until_it_appears() {
    let ctx = TestContext::new("missing-secret").await;
    let operator = Operator::start_default(&ctx).await;
    let documents = examples(&ctx.namespace);
    let (secrets, others): (Vec<_>, Vec<_>) =
        documents.into_iter().partition(|d| d["kind"] == "Secret");
    apply_all(&ctx.client, &others).await;

    let routes: Api<Route> = ctx.api();
    let resolved_refs = |want: &'static str| {
        let routes = routes.clone();
        move || {
            let routes = routes.clone();
            async move {
                let route = routes.get("users").await.ok()?;
                let parent = route.status?.parents.into_iter().next()?;
                let condition = condition(&parent.conditions, "ResolvedRefs")?.clone();
                (condition.status == want).then_some(condition)
            }
        }
    };
    let missing = eventually("users' ResolvedRefs=False", TIMEOUT, resolved_refs("False")).await;
    assert_eq!(missing.reason, "SecretNotFound");
    assert!(missing.message.contains("api-keys"), "{}", missing.message);

    // Creating the Secret requeues the Gateway through the Secret watch.
    apply_all(&ctx.client, &secrets).await;
    eventually("users' ResolvedRefs=True", TIMEOUT, resolved_refs("True")).await;
    operator.stop().await;
}

#[tokio::test]
async fn deleting_the_gateway_garbage_collects_its_children() {
    let ctx = TestContext::new("gc").await;
    let operator = Operator::start_default(&ctx).await;
    apply_all(&ctx.client, &examples(&ctx.namespace)).await;
    await_programmed(&ctx, "edge").await;
    deployment(&ctx, "edge").await;

    ctx.api::<Gateway>()
        .delete("edge", &DeleteParams::default())
        .await
        .expect("the Gateway is deleted");
    eventually("the children to be collected", TIMEOUT, || async {
        let gone = ctx
            .api::<Deployment>()
            .get_opt("edge")
            .await
            .ok()?
            .is_none()
            && ctx
                .api::<ConfigMap>()
                .get_opt("edge-config")
                .await
                .ok()?
                .is_none()
            && ctx.api::<Service>().get_opt("edge").await.ok()?.is_none()
            && ctx
                .api::<PodDisruptionBudget>()
                .get_opt("edge")
                .await
                .ok()?
                .is_none()
            && ctx
                .api::<Role>()
                .get_opt("edge-proxy")
                .await
                .ok()?
                .is_none();
        gone.then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn a_service_backend_counts_the_ready_endpoints_of_its_service() {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::api::PostParams;

    let ctx = TestContext::new("endpoints").await;
    let operator = Operator::start_default(&ctx).await;
    apply_all(&ctx.client, &examples(&ctx.namespace)).await;
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "users" },
        "spec": { "ports": [{ "name": "http", "port": 8080 }] },
    }))
    .expect("a Service");
    ctx.api::<Service>()
        .create(&PostParams::default(), &service)
        .await
        .expect("the Service is created");
    let slice: EndpointSlice = serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": { "name": "users-1", "labels": { "kubernetes.io/service-name": "users" } },
        "addressType": "IPv4",
        "endpoints": [
            { "addresses": ["10.1.0.1"], "conditions": { "ready": true } },
            { "addresses": ["10.1.0.2"], "conditions": { "ready": false } },
            { "addresses": ["10.1.0.3"] },
        ],
        "ports": [{ "name": "http", "port": 8080, "protocol": "TCP" }],
    }))
    .expect("an EndpointSlice");
    ctx.api::<EndpointSlice>()
        .create(&PostParams::default(), &slice)
        .await
        .expect("the EndpointSlice is created");

    let backends: Api<ServiceBackend> = ctx.api();
    let status = eventually(
        "users: resolved, 2 of 3 endpoints ready",
        TIMEOUT,
        || async {
            let status = backends.get("users").await.ok()?.status?;
            let endpoints = status.endpoints.clone()?;
            let resolved = condition(&status.conditions, "ResolvedRefs")?.status == "True";
            (resolved && (endpoints.ready, endpoints.total) == (2, 3)).then_some(status)
        },
    )
    .await;
    assert_eq!(
        condition(&status.conditions, "Accepted").map(|c| c.status.as_str()),
        Some("True")
    );
    // orders fails over to orders-standby, which exists; its own Service does not. Its status is
    // written by its own reconcile, which may come after users'.
    let resolved = eventually("orders: ResolvedRefs reported", TIMEOUT, || async {
        let status = backends.get("orders").await.ok()?.status?;
        condition(&status.conditions, "ResolvedRefs").cloned()
    })
    .await;
    assert_eq!(resolved.reason, "ServiceNotFound");
    operator.stop().await;
}
