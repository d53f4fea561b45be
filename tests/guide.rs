//! `docs/guide.md`, run: a cluster user's whole journey on the real API server, with the real
//! `kubectl` and `helm` running the guide's own command lines — install the chart, apply
//! `deploy/examples/` (the shop's services included), read the status, call every route, roll
//! out a new Route, find why a broken one is not accepted, fail `orders` over to its standby,
//! turn the metrics scraping on, uninstall.
//!
//! What a kwok cluster cannot do, the test does, and says so: the operator runs in-process (the
//! chart's pods run nothing), the shop's services run as real `portcullis demo-service`
//! processes whose addresses the test puts in the EndpointSlices (as Kubernetes' EndpointSlice
//! controller would for the pods), the Gateway's Service gets a load-balancer address from the
//! test (as a cloud's controller would), and the gateway is the real `portcullis proxy`
//! following the Gateway's ConfigMap, where `$GATEWAY` points. The only edit to the examples is
//! the listener's port (a free one, since the test binds loopback without privileges).

#[path = "chart_support/mod.rs"]
mod chart_support;
#[path = "guide_support/mod.rs"]
mod guide_support;
#[path = "operator_support/mod.rs"]
mod operator_support;
#[path = "proxy_support/mod.rs"]
mod proxy_support;
mod support;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
};

use guide_support::Guide;
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Pod, Service},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use operator_support::{Operator, TEST_MANAGER, TIMEOUT, condition, has_condition};
use portcullis_api::{Gateway, Route, ServiceBackend};
use proxy_support::{
    await_config, free_addr, host_ip, mount_example_api_keys, proxy_binary, put_endpoint_slice,
    spawn_replicas,
};
use serde_json::{Value, json};
use support::control_plane::{ControlPlane, TestContext, eventually};

/// The address the test gives the Gateway's LoadBalancer Service (TEST-NET-3).
const LB_ADDRESS: &str = "203.0.113.10";

/// The shop's services: Deployment (and Service) name, and the demo service it runs.
const SERVICES: [(&str, &str); 4] = [
    ("users", "users"),
    ("orders", "orders"),
    ("orders-standby", "orders"),
    ("catalog", "catalog"),
];

/// The demo service processes standing in for the pods of the shop's Deployments.
struct ShopServices {
    running: BTreeMap<&'static str, Child>,
}

impl ShopServices {
    /// Starts the demo service of Deployment `name` as its pod would (HOSTNAME is the pod's
    /// name) and points the Service's EndpointSlice at it.
    async fn start(&mut self, ctx: &TestContext, name: &'static str, pod: &str) {
        let resource = SERVICES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| *r)
            .expect("a shop service");
        let listen = SocketAddr::new(host_ip(), free_addr().port());
        let child = Command::new(proxy_binary())
            .args([
                "demo-service",
                "--name",
                resource,
                "--listen",
                &listen.to_string(),
            ])
            .env("HOSTNAME", pod)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("portcullis demo-service starts");
        self.running.insert(name, child);
        eventually(&format!("demo service {name}"), TIMEOUT, || async {
            tokio::net::TcpStream::connect(listen).await.ok().map(drop)
        })
        .await;
        put_endpoint_slice(ctx, name, name, listen, true).await;
    }

    /// Stops the process of `name` and empties its EndpointSlice, as the pod's deletion would.
    async fn stop(&mut self, ctx: &TestContext, name: &str) {
        if let Some(mut child) = self.running.remove(name) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": { "name": name, "labels": { "kubernetes.io/service-name": name } },
            "addressType": "IPv4",
            "endpoints": [],
            "ports": [{ "name": "http", "port": 8080, "protocol": "TCP" }],
        });
        ctx.api::<k8s_openapi::api::discovery::v1::EndpointSlice>()
            .patch(
                name,
                &PatchParams::apply(TEST_MANAGER).force(),
                &Patch::Apply(&slice),
            )
            .await
            .expect("the EndpointSlice is emptied");
    }
}

impl Drop for ShopServices {
    fn drop(&mut self) {
        for child in self.running.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The name of the one live pod of Deployment `name` (kwok runs it).
async fn pod_of(ctx: &TestContext, name: &str) -> String {
    let pods: Api<Pod> = ctx.api();
    let selector = format!("app.kubernetes.io/name={name}");
    eventually(&format!("the pod of {name}"), TIMEOUT, || async {
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .ok()?;
        let live: Vec<String> = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name)
            .collect();
        (live.len() == 1).then(|| live[0].clone())
    })
    .await
}

/// Copies `deploy/examples` into `dir`, the listener on `port`.
fn copy_examples(dir: &Path, port: u16) {
    std::fs::create_dir_all(dir).expect("the examples' copy");
    let examples = guide_support::repo("deploy/examples");
    for entry in std::fs::read_dir(&examples).expect("deploy/examples reads") {
        let path = entry.expect("an entry").path();
        let text = std::fs::read_to_string(&path).expect("an example reads");
        let text = text.replace("      port: 80\n", &format!("      port: {port}\n"));
        std::fs::write(dir.join(path.file_name().expect("a file name")), text)
            .expect("the copy is written");
    }
}

/// A directory of links to kubectl, helm and portcullis, put first on the commands' PATH.
fn tools(dir: &Path) -> String {
    std::fs::create_dir_all(dir).expect("the tools directory");
    for (name, target) in [
        ("kubectl", support::kubectl::kubectl_binary()),
        ("helm", chart_support::helm()),
        ("portcullis", proxy_binary().into()),
    ] {
        std::os::unix::fs::symlink(target, dir.join(name)).expect("a link");
    }
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The header `name` of a `curl -i` answer.
fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    answer.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The stand-ins for the Prometheus Operator's CRDs: their names and an open schema, enough
/// for the API server to store the chart's ServiceMonitor and PodMonitor.
async fn install_monitoring_crds(ctx: &TestContext) {
    let crds: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    for (kind, plural) in [
        ("ServiceMonitor", "servicemonitors"),
        ("PodMonitor", "podmonitors"),
    ] {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": { "name": format!("{plural}.monitoring.coreos.com") },
            "spec": {
                "group": "monitoring.coreos.com", "scope": "Namespaced",
                "names": { "kind": kind, "plural": plural, "singular": kind.to_lowercase() },
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": { "openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    } },
                }],
            },
        });
        crds.patch(
            &format!("{plural}.monitoring.coreos.com"),
            &PatchParams::apply(TEST_MANAGER),
            &Patch::Apply(&crd),
        )
        .await
        .expect("the monitoring CRD is created");
    }
    eventually("the monitoring CRDs to be served", TIMEOUT, || async {
        let discovery = kube::discovery::Discovery::new(ctx.client.clone())
            .run()
            .await
            .ok()?;
        discovery
            .groups()
            .any(|g| g.name() == "monitoring.coreos.com")
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guide_runs_from_install_to_a_failover_and_an_uninstall() {
    let control_plane = ControlPlane::shared().await;
    control_plane.require_workloads();
    let client = control_plane.client().await;
    let work = tempfile::tempdir().expect("a temporary directory");
    let port = free_addr().port();
    let examples = work.path().join("examples");
    copy_examples(&examples, port);
    let helm_home = work.path().join("helm");
    let env = vec![
        ("PATH".to_owned(), tools(&work.path().join("bin"))),
        (
            "KUBECONFIG".to_owned(),
            control_plane.kubeconfig().display().to_string(),
        ),
        (
            "HELM_CONFIG_HOME".to_owned(),
            helm_home.join("config").display().to_string(),
        ),
        (
            "HELM_CACHE_HOME".to_owned(),
            helm_home.join("cache").display().to_string(),
        ),
        (
            "HELM_DATA_HOME".to_owned(),
            helm_home.join("data").display().to_string(),
        ),
    ];
    let substitutions = vec![
        (
            "deploy/examples/".to_owned(),
            format!("{}/", examples.display()),
        ),
        (
            "charts/portcullis".to_owned(),
            guide_support::repo("charts/portcullis")
                .display()
                .to_string(),
        ),
    ];
    let files = work.path().join("files");
    std::fs::create_dir_all(&files).expect("the guide's files");
    let mut guide = Guide::read(&files, env, substitutions);
    guide.write_yaml_files();

    // 1. Install.
    let installed = guide.run(
        "helm install portcullis charts/portcullis --namespace portcullis-system --create-namespace",
    );
    // Helm's notes say what to apply next and how to see status.
    for next in [
        "kubectl -n portcullis-system rollout status deployment/portcullis-controller",
        "kubectl apply -f deploy/examples/",
        "kubectl get pgw,proute,psb -A",
        "docs/guide.md",
    ] {
        assert!(
            installed.stdout.contains(next),
            "{next} in:\n{}",
            installed.stdout
        );
    }
    guide.run("kubectl -n portcullis-system rollout status deployment/portcullis-controller");

    // 2. The shop. The chart's operator pods run nothing here: the operator runs in-process.
    guide.run("kubectl create namespace shop");
    guide.run("kubectl label namespace shop pod-security.kubernetes.io/enforce=restricted");
    let ctx = TestContext {
        client: client.clone(),
        namespace: "shop".to_owned(),
        control_plane,
    };
    let operator = Operator::start_default(&ctx).await;
    guide.run("kubectl apply -f deploy/examples/");
    eventually("the gateway's Deployment", TIMEOUT, || async {
        ctx.api::<Deployment>().get_opt("edge").await.ok()?
    })
    .await;
    guide.run("kubectl -n shop wait --for=condition=Available deployment --all --timeout=2m");
    let mut shop = ShopServices {
        running: BTreeMap::new(),
    };
    for (name, _) in SERVICES {
        let pod = pod_of(&ctx, name).await;
        shop.start(&ctx, name, &pod).await;
    }
    // A cloud's load-balancer controller gives the Service its address.
    let services: Api<Service> = ctx.api();
    eventually("the gateway's Service", TIMEOUT, || async {
        services.get_opt("edge").await.ok()?
    })
    .await;
    services
        .patch_status(
            "edge",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "status": { "loadBalancer": { "ingress": [{ "ip": LB_ADDRESS }] } } }),
            ),
        )
        .await
        .expect("the Service gets its address");

    // The gateway replicas: the real proxy on the Gateway's ConfigMap, one process per
    // gateway pod (each reports on its Pod the revision it serves), its Secret mounted.
    let config = await_config(&ctx, |s| s.rules.len() == 5).await;
    let replicas = spawn_replicas(&ctx, &config, 3).await;
    mount_example_api_keys(&config, &replicas);
    // `$GATEWAY` leads to the first replica (a load balancer would pick any).
    let proxy = &replicas[0];

    // 3. The status, once it has settled.
    let gateways: Api<Gateway> = ctx.api();
    let backends: Api<ServiceBackend> = ctx.api();
    eventually(
        "the Gateway and its backends to settle",
        TIMEOUT,
        || async {
            let gateway = gateways.get("edge").await.ok()?;
            let status = gateway.status.as_ref()?;
            let settled = status.ready.as_deref() == Some("3/3")
                && status.addresses.first().map(|a| a.value.as_str()) == Some(LB_ADDRESS)
                && status.attached_routes == 4
                && has_condition(&gateway, "Programmed", "True", None);
            for (name, _) in SERVICES {
                let counts = backends.get(name).await.ok()?.status?.endpoints?;
                if (counts.ready, counts.total) != (1, 1) {
                    return None;
                }
            }
            settled.then_some(())
        },
    )
    .await;
    guide.run_shown("kubectl -n shop get pgw,proute,psb");
    let conditions = guide.run_shown(
        r#"kubectl -n shop get pgw edge -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}{"\n"}{end}'"#,
    );
    assert!(
        conditions.stdout.contains("Programmed=True"),
        "{}",
        conditions.stdout
    );

    // 4. Every route, as the guide says.
    guide.run("GATEWAY=$(kubectl -n shop get pgw edge -o jsonpath='{.status.addresses[0].value}')");
    guide.set_env("GATEWAY", &proxy.addr.to_string());
    eventually("/users to ask for a key", TIMEOUT, || async {
        (proxy.send("GET", "/users/1").await.ok()?.status == 401).then_some(())
    })
    .await;
    let refused = guide.run("curl -si http://$GATEWAY/users/1");
    assert!(
        refused.stdout.starts_with("HTTP/1.1 401"),
        "{}",
        refused.stdout
    );
    assert!(header(&refused.stdout, "www-authenticate").is_some());
    let user = guide.run("curl -s http://$GATEWAY/users/1 -H 'X-API-Key: demo-key-storefront'");
    let user: Value = serde_json::from_str(&user.stdout).expect("JSON");
    assert_eq!(user["name"], "Ada Lovelace");
    let catalog = "curl -s -o /dev/null -D - http://$GATEWAY/catalog/2";
    assert_eq!(header(&guide.run(catalog).stdout, "x-cache"), Some("MISS"));
    assert_eq!(header(&guide.run(catalog).stdout, "x-cache"), Some("HIT"));
    let profile = guide.run("curl -s http://$GATEWAY/profile/1");
    let profile: Value = serde_json::from_str(&profile.stdout).expect("JSON");
    assert_eq!(profile["user"]["name"], "Ada Lovelace", "{profile}");
    assert_eq!(
        profile["orders"]["orders"][0]["item"], "Analytical Engine",
        "{profile}"
    );
    let burst =
        guide.run("curl -s -o /dev/null -w '%{http_code} ' \"http://$GATEWAY/orders?[1-40]\"");
    let codes: Vec<&str> = burst.stdout.split_whitespace().collect();
    assert_eq!(codes.len(), 40, "{}", burst.stdout);
    assert!(codes[..30].iter().all(|c| *c == "200"), "{}", burst.stdout);
    assert!(codes.contains(&"429"), "{}", burst.stdout);

    // 6. A new Route goes live without a restart.
    let generation = ctx
        .api::<Deployment>()
        .get("edge")
        .await
        .expect("edge")
        .metadata
        .generation;
    guide.run("kubectl apply -f products.yaml");
    let routes: Api<Route> = ctx.api();
    let route_condition = |name: &'static str, type_: &'static str, status: &'static str| {
        let routes = routes.clone();
        async move {
            let route = routes.get(name).await.ok()?;
            let conditions = route.status?.parents.into_iter().next()?.conditions;
            (condition(&conditions, type_)?.status == status).then_some(())
        }
    };
    eventually("Route products to be accepted", TIMEOUT, || {
        route_condition("products", "ResolvedRefs", "True")
    })
    .await;
    guide.run_shown(
        r#"kubectl -n shop get proute products -o jsonpath='{range .status.parents[*].conditions[*]}{.type}={.status} {.reason}{"\n"}{end}'"#,
    );
    eventually("five Routes attached", TIMEOUT, || async {
        (gateways.get("edge").await.ok()?.status?.attached_routes == 5).then_some(())
    })
    .await;
    guide.run_shown("kubectl -n shop get pgw edge");
    eventually("/products to be served", TIMEOUT, || async {
        (proxy.send("GET", "/products/3").await.ok()?.status == 200).then_some(())
    })
    .await;
    let product = guide.run("curl -s http://$GATEWAY/products/3");
    assert!(product.stdout.contains("Colossus"), "{}", product.stdout);
    let after = ctx
        .api::<Deployment>()
        .get("edge")
        .await
        .expect("edge")
        .metadata
        .generation;
    assert_eq!(
        after, generation,
        "a new Route never touches the gateway pods"
    );

    // 7. A Route whose backend does not exist.
    guide.run("kubectl apply -f reviews.yaml");
    eventually(
        "Route reviews to say its backend is missing",
        TIMEOUT,
        || route_condition("reviews", "ResolvedRefs", "False"),
    )
    .await;
    let why = guide.run_shown(
        r#"kubectl -n shop get proute reviews -o jsonpath='{range .status.parents[*].conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'"#,
    );
    assert!(why.stdout.contains("BackendNotFound"), "{}", why.stdout);
    eventually("/reviews to be compiled in", TIMEOUT, || async {
        (proxy.send("GET", "/reviews").await.ok()?.status == 500).then_some(())
    })
    .await;
    let code = guide.run("curl -s -o /dev/null -w '%{http_code}\\n' http://$GATEWAY/reviews");
    assert_eq!(code.stdout, "500\n");

    // 8. orders fails over to its standby, and comes back.
    let standby_pod = pod_of(&ctx, "orders-standby").await;
    guide.run("kubectl -n shop scale deployment/orders --replicas=0");
    shop.stop(&ctx, "orders").await;
    eventually("orders to have no endpoint", TIMEOUT, || async {
        let counts = backends.get("orders").await.ok()?.status?.endpoints?;
        ((counts.ready, counts.total) == (0, 0)).then_some(())
    })
    .await;
    guide.run_shown("kubectl -n shop get psb orders orders-standby");
    eventually("/orders to be served by the standby", TIMEOUT, || async {
        let answer = proxy.send("GET", "/orders/1").await.ok()?;
        (answer.status == 200 && answer.headers.get("x-demo-instance")? == standby_pod.as_str())
            .then_some(())
    })
    .await;
    let failed_over = guide.run("curl -si http://$GATEWAY/orders/1");
    assert!(
        failed_over.stdout.starts_with("HTTP/1.1 200"),
        "{}",
        failed_over.stdout
    );
    assert_eq!(
        header(&failed_over.stdout, "x-demo-instance"),
        Some(standby_pod.as_str())
    );
    guide.run("kubectl -n shop scale deployment/orders --replicas=1");
    let orders_pod = pod_of(&ctx, "orders").await;
    shop.start(&ctx, "orders", &orders_pod).await;
    eventually("/orders to be served by orders again", TIMEOUT, || async {
        let answer = proxy.send("GET", "/orders/1").await.ok()?;
        (answer.headers.get("x-demo-instance")? == orders_pod.as_str()).then_some(())
    })
    .await;

    // 9. Metrics: the chart's monitors, on the Prometheus Operator's CRDs; no operator restart.
    install_monitoring_crds(&ctx).await;
    let controllers: Api<Deployment> = Api::namespaced(client.clone(), "portcullis-system");
    let before = controllers
        .get("portcullis-controller")
        .await
        .expect("the operator's Deployment")
        .metadata
        .generation;
    guide.run("helm upgrade portcullis charts/portcullis --namespace portcullis-system --reuse-values --set metrics.serviceMonitor.enabled=true --set gatewayMetrics.podMonitor.enabled=true");
    let kubectl = support::kubectl::Kubectl::new(control_plane);
    let monitors = kubectl
        .run(
            &[
                "-n",
                "portcullis-system",
                "get",
                "servicemonitors,podmonitors",
                "-o",
                "name",
            ],
            None,
        )
        .await;
    assert_eq!(
        monitors.stdout,
        "servicemonitor.monitoring.coreos.com/portcullis-controller\n\
         podmonitor.monitoring.coreos.com/portcullis-gateways\n",
        "{}",
        monitors.stderr
    );
    let after = controllers
        .get("portcullis-controller")
        .await
        .expect("the operator's Deployment")
        .metadata
        .generation;
    assert_eq!(
        after, before,
        "turning the monitors on does not restart the operator"
    );

    // 10. Uninstall: the CRDs stay until deleted by hand.
    guide.run("kubectl delete -f deploy/examples/ -f products.yaml -f reviews.yaml");
    operator.stop().await;
    guide.run("helm uninstall portcullis --namespace portcullis-system");
    guide.run_shown(
        "kubectl get crd gateways.portcullis.dev routes.portcullis.dev servicebackends.portcullis.dev",
    );
    guide.run(
        "kubectl delete crd gateways.portcullis.dev routes.portcullis.dev servicebackends.portcullis.dev",
    );
    drop(replicas);
    drop(shop);
    guide.finish();
}

#[test]
fn the_examples_run_the_image_of_this_version() {
    let text = std::fs::read_to_string(guide_support::repo("deploy/examples/40-services.yaml"))
        .expect("the services' manifests");
    let image = format!(
        "image: ghcr.io/portcullis-dev/portcullis:{}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        text.matches("image: ").count(),
        text.matches(&image).count()
    );
    assert_eq!(text.matches(&image).count(), SERVICES.len());
}
