//! The defaults a user gets without asking: redundancy, hardening, and pods that config
//! changes never restart.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::util::intstr::IntOrString,
};
use portcullis_api::Gateway;
use portcullis_config::snapshot::{
    API_VERSION, Action, ApiKeyLocation, AuthConfig, BackendConfig, Discovery, DrainConfig,
    LoadBalancerConfig, LoadBalancerPolicy, ObjectKey, ResolvedPolicies, RuleConfig, SecretFile,
    Snapshot, UpstreamProtocol,
};
use serde_json::json;

use super::*;

fn gateway(spec: serde_json::Value) -> Gateway {
    let mut spec_with_listeners = json!({
        "listeners": [
            { "name": "http", "port": 80, "protocol": "HTTP" },
            { "name": "api", "port": 80, "protocol": "HTTP", "hostname": "api.example.com" },
            { "name": "alt", "port": 8080, "protocol": "HTTP" },
        ]
    });
    if let (Some(target), Some(extra)) = (spec_with_listeners.as_object_mut(), spec.as_object()) {
        target.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "portcullis.dev/v1alpha1",
        "kind": "Gateway",
        "metadata": { "name": "edge", "namespace": "shop", "uid": "0b5e4c1a-1111-2222-3333-444455556666" },
        "spec": spec_with_listeners,
    }))
    .expect("a valid Gateway")
}

fn backend(discovery: Discovery) -> BackendConfig {
    BackendConfig {
        discovery,
        protocol: UpstreamProtocol::Http1,
        tls: None,
        connect_timeout_ms: 2000,
        load_balancer: LoadBalancerConfig {
            policy: LoadBalancerPolicy::RoundRobin,
            hash_on: None,
        },
        health_check: None,
        outlier_detection: None,
        circuit_breaker: None,
        failover: vec![],
    }
}

fn rule_with_api_keys(namespace: &str) -> RuleConfig {
    RuleConfig {
        route: ObjectKey::new(namespace, "users"),
        rule_index: 0,
        name: None,
        filters: vec![],
        action: Action::Backends { backends: vec![] },
        policies: ResolvedPolicies {
            auth: Some(AuthConfig::ApiKey {
                keys: SecretFile::new(namespace, "api-keys", "keys"),
                location: ApiKeyLocation::Header("x-api-key".to_owned()),
                keep_credential: false,
            }),
            ..ResolvedPolicies::default()
        },
        upgrades: None,
    }
}

/// A snapshot with backends in the Gateway's namespace and in `team-a`, and API keys from both.
fn snapshot(revision: &str) -> Snapshot {
    Snapshot {
        api_version: API_VERSION.to_owned(),
        gateway: ObjectKey::new("shop", "edge"),
        revision: revision.to_owned(),
        listeners: vec![],
        rules: vec![rule_with_api_keys("shop"), rule_with_api_keys("team-a")],
        backends: BTreeMap::from([
            (
                "shop/users".to_owned(),
                backend(Discovery::Service {
                    namespace: "shop".to_owned(),
                    name: "users".to_owned(),
                    port: 8080,
                }),
            ),
            (
                "team-a/orders".to_owned(),
                backend(Discovery::Service {
                    namespace: "team-a".to_owned(),
                    name: "orders".to_owned(),
                    port: 8080,
                }),
            ),
        ]),
        drain: DrainConfig {
            delay_ms: 5000,
            timeout_ms: 30000,
        },
        shared_state: None,
    }
}

fn team_a_keys() -> BTreeMap<ObjectKey, Secret> {
    BTreeMap::from([(
        ObjectKey::new("team-a", "api-keys"),
        Secret {
            data: Some(BTreeMap::from([
                ("keys".to_owned(), ByteString(b"mobile:k1".to_vec())),
                ("unrelated".to_owned(), ByteString(b"not copied".to_vec())),
            ])),
            ..Secret::default()
        },
    )])
}

fn build(gateway: &Gateway, snapshot: &Snapshot) -> Children {
    build_children(gateway, snapshot, &team_a_keys(), &BuildOptions::default())
        .expect("children build")
}

fn json_of<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("serializes")
}

#[test]
fn a_minimal_gateway_gets_two_hardened_replicas_that_roll_without_losing_capacity() {
    let children = build(&gateway(json!({})), &snapshot("r1"));
    let deployment = json_of(&children.deployment);
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"], 1);

    let pod = &spec["template"]["spec"];
    let keys: Vec<&str> = pod["topologySpreadConstraints"]
        .as_array()
        .expect("spread constraints")
        .iter()
        .map(|c| {
            assert_eq!(c["whenUnsatisfiable"], "ScheduleAnyway");
            assert_eq!(c["maxSkew"], 1);
            c["topologyKey"].as_str().expect("a key")
        })
        .collect();
    assert_eq!(
        keys,
        ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    // Drain delay 5s + timeout 30s, plus slack.
    assert!(pod["terminationGracePeriodSeconds"].as_i64().expect("set") > 35);

    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(
        container["resources"]["requests"],
        json!({ "cpu": "100m", "memory": "64Mi" })
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(container["startupProbe"]["httpGet"].is_object());
    assert_eq!(container["ports"][0]["containerPort"], ADMIN_PORT);
    assert_eq!(
        container["args"],
        json!([
            "proxy",
            "--config",
            "/etc/portcullis/config/config.yaml",
            "--configmap",
            "shop/edge-config",
            "--secrets",
            "/etc/portcullis/secrets"
        ])
    );
    assert_eq!(container["image"], default_proxy_image());
}

#[test]
fn every_child_is_labelled_and_owned_by_the_gateway() {
    let children = build(&gateway(json!({})), &snapshot("r1"));
    let values = children.to_values().expect("serializes");
    for value in &values {
        let metadata = &value["metadata"];
        let what = format!("{} {}", value["kind"], metadata["name"]);
        assert_eq!(
            metadata["labels"]["app.kubernetes.io/managed-by"], "portcullis",
            "{what}"
        );
        assert_eq!(
            metadata["labels"]["portcullis.dev/gateway"], "edge",
            "{what}"
        );
        if metadata["namespace"] == "shop" {
            assert_eq!(metadata["ownerReferences"][0]["kind"], "Gateway", "{what}");
            assert_eq!(metadata["ownerReferences"][0]["controller"], true, "{what}");
        } else {
            // Owner references cannot cross namespaces.
            assert!(metadata["ownerReferences"].is_null(), "{what}");
            assert_eq!(
                metadata["labels"]["portcullis.dev/gateway-namespace"], "shop",
                "{what}"
            );
        }
        assert!(
            value["apiVersion"].is_string() && value["kind"].is_string(),
            "{what}"
        );
    }
    let kinds: Vec<&str> = values.iter().filter_map(|v| v["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Secret",
            "ConfigMap",
            "Deployment",
            "Service",
            "PodDisruptionBudget"
        ]
    );
}

#[test]
fn a_config_change_changes_the_config_map_but_never_the_pod_template() {
    let gateway = gateway(json!({}));
    let before = build(&gateway, &snapshot("r1"));
    let mut changed = snapshot("r2");
    changed.rules[0].rule_index = 7;
    let after = build(&gateway, &changed);
    assert_ne!(before.config_map, after.config_map);
    assert_eq!(
        after
            .config_map
            .metadata
            .annotations
            .as_ref()
            .expect("annotated")["portcullis.dev/revision"],
        "r2"
    );
    assert_eq!(before.deployment, after.deployment);
}

#[test]
fn with_autoscaling_the_deployment_leaves_replicas_to_the_hpa() {
    let children = build(
        &gateway(json!({ "autoscaling": { "minReplicas": 3, "maxReplicas": 9 } })),
        &snapshot("r1"),
    );
    let deployment = json_of(&children.deployment);
    assert!(
        deployment["spec"].get("replicas").is_none(),
        "{deployment:#}"
    );
    let hpa = json_of(&children.horizontal_pod_autoscaler.expect("an HPA"));
    assert_eq!(hpa["spec"]["minReplicas"], 3);
    assert_eq!(hpa["spec"]["maxReplicas"], 9);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "edge");
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );

    let without = build(&gateway(json!({})), &snapshot("r1"));
    assert!(without.horizontal_pod_autoscaler.is_none());
}

#[test]
fn the_disruption_budget_and_service_follow_the_gateway() {
    let children = build(
        &gateway(json!({
            "disruptionBudget": { "maxUnavailable": 2 },
            "service": { "type": "ClusterIP", "externalTrafficPolicy": "Local" },
        })),
        &snapshot("r1"),
    );
    let pdb = children.pod_disruption_budget.spec.expect("a spec");
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(2)));
    let service = json_of(&children.service);
    assert_eq!(service["spec"]["type"], "ClusterIP");
    // One port per distinct listener port.
    assert_eq!(
        service["spec"]["ports"],
        json!([
            { "name": "http", "port": 80, "targetPort": 80, "protocol": "TCP" },
            { "name": "alt", "port": 8080, "targetPort": 8080, "protocol": "TCP" },
        ])
    );
    assert!(service["spec"].get("externalTrafficPolicy").is_none());
    let defaults = build(&gateway(json!({})), &snapshot("r1"));
    assert_eq!(json_of(&defaults.service)["spec"]["type"], "LoadBalancer");
    assert_eq!(
        json_of(&defaults.pod_disruption_budget)["spec"]["maxUnavailable"],
        1
    );
}

#[test]
fn secrets_from_other_namespaces_are_copied_with_only_the_keys_read() {
    let children = build(&gateway(json!({})), &snapshot("r1"));
    assert_eq!(children.secrets.len(), 1);
    let copy = &children.secrets[0];
    assert_eq!(copy.metadata.namespace.as_deref(), Some("shop"));
    let data = copy.data.as_ref().expect("data");
    assert_eq!(data.keys().collect::<Vec<_>>(), ["keys"]);

    let deployment = json_of(&children.deployment);
    let pod = &deployment["spec"]["template"]["spec"];
    let mounts = pod["containers"][0]["volumeMounts"]
        .as_array()
        .expect("mounts");
    let paths: Vec<&str> = mounts
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    assert!(
        paths.contains(&"/etc/portcullis/secrets/shop/api-keys"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"/etc/portcullis/secrets/team-a/api-keys"),
        "{paths:?}"
    );
    let secret_names: Vec<&str> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(|v| v["secret"]["secretName"].as_str())
        .collect();
    // The pod never names a Secret of another namespace: the copy stands in for it.
    assert_eq!(
        secret_names,
        ["api-keys", copy.metadata.name.as_deref().expect("named")]
    );
}

#[test]
fn the_proxy_may_read_its_config_map_and_endpoint_slices_and_report_on_its_pod_only() {
    let children = build(&gateway(json!({})), &snapshot("r1"));
    let roles = json_of(&children.roles);
    assert_eq!(roles[0]["metadata"]["namespace"], "shop");
    assert_eq!(roles[0]["rules"][0]["resources"], json!(["configmaps"]));
    assert_eq!(
        roles[0]["rules"][0]["resourceNames"],
        json!(["edge-config"])
    );
    assert_eq!(roles[0]["rules"][1]["resources"], json!(["pods/status"]));
    assert_eq!(roles[0]["rules"][2]["resources"], json!(["endpointslices"]));
    assert_eq!(roles[0]["rules"][3]["resources"], json!(["services"]));
    assert_eq!(roles[1]["metadata"]["namespace"], "team-a");
    assert_eq!(roles[1]["rules"][0]["resources"], json!(["endpointslices"]));
    assert_eq!(roles[1]["rules"][1]["resources"], json!(["services"]));
    for rule in roles
        .as_array()
        .expect("roles")
        .iter()
        .flat_map(|r| r["rules"].as_array().expect("rules"))
    {
        // Read only; Services only by name, to map a port number to the slices' port name;
        // the only write is the replica's report, on the status of the namespace's Pods.
        let verbs = if rule["resources"] == json!(["services"]) {
            json!(["get"])
        } else if rule["resources"] == json!(["pods/status"]) {
            json!(["patch"])
        } else {
            json!(["get", "list", "watch"])
        };
        assert_eq!(rule["verbs"], verbs, "{rule}");
    }
    let bindings = json_of(&children.role_bindings);
    assert_eq!(bindings[1]["metadata"]["namespace"], "team-a");
    assert_eq!(
        bindings[1]["subjects"][0],
        json!({ "kind": "ServiceAccount", "name": "edge", "namespace": "shop" })
    );
}

#[test]
fn a_gateway_read_from_a_file_renders_without_owner_references() {
    let mut gateway = gateway(json!({}));
    gateway.metadata.uid = None;
    let children = build(&gateway, &snapshot("r1"));
    assert!(children.deployment.metadata.owner_references.is_none());
}

#[test]
fn a_snapshot_too_large_for_a_config_map_is_refused_with_the_gateway_named() {
    // Large ConfigMaps are gzip-compressed, so the content must not compress well: every rule
    // gets a long pseudo-random name.
    let mut big = snapshot("r1");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    big.rules = (0..20_000)
        .map(|_| {
            let mut rule = rule_with_api_keys("shop");
            let name: String = (0..16)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    format!("{:016x}", state)
                })
                .collect();
            rule.name = Some(name);
            rule
        })
        .collect();
    let error = build_children(
        &gateway(json!({})),
        &big,
        &BTreeMap::new(),
        &BuildOptions::default(),
    )
    .expect_err("too large");
    assert!(
        matches!(error, BuildError::ConfigTooLarge { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("shop/edge"), "{error}");
}

#[test]
fn a_large_snapshot_is_stored_compressed_and_reads_back() {
    let mut big = snapshot("r1");
    big.rules = (0..5_000)
        .map(|i| RuleConfig {
            rule_index: i,
            ..rule_with_api_keys("shop")
        })
        .collect();
    let children = build(&gateway(json!({})), &big);
    let config_map = &children.config_map;
    assert!(config_map.data.is_none());
    assert!(
        config_map
            .binary_data
            .as_ref()
            .is_some_and(|d| d.contains_key(portcullis_config::configmap::COMPRESSED_CONFIG_KEY))
    );
    assert_eq!(
        portcullis_config::configmap::snapshot_from_configmap(config_map).expect("reads back"),
        big
    );
}

#[test]
fn a_snapshot_the_replicas_would_not_read_back_is_refused() {
    let mut unreadable = snapshot("r1");
    unreadable.api_version = "portcullis.dev/config/v0".to_owned();
    let error = build_children(
        &gateway(json!({})),
        &unreadable,
        &BTreeMap::new(),
        &BuildOptions::default(),
    )
    .expect_err("unloadable");
    assert!(matches!(error, BuildError::Unloadable(_)), "{error}");
    assert!(
        error.to_string().contains("would not load in the proxy"),
        "{error}"
    );
}

#[test]
fn a_certificate_of_another_namespace_named_by_the_gateway_is_refused_not_copied() {
    use portcullis_config::snapshot::{CertificateConfig, ListenerConfig, Protocol, TlsConfig};

    let mut snapshot = snapshot("r1");
    snapshot.listeners = vec![ListenerConfig {
        port: 443,
        protocol: Protocol::Https,
        tls: Some(TlsConfig {
            certificates: vec![CertificateConfig {
                hostname: None,
                cert: SecretFile::new("other", "wildcard", "tls.crt"),
                key: SecretFile::new("other", "wildcard", "tls.key"),
            }],
        }),
        virtual_hosts: vec![],
    }];
    let refs = secrets::secret_refs(&snapshot, "shop");
    assert!(refs.refused.contains(&ObjectKey::new("other", "wildcard")));
    assert!(
        !refs
            .mounted
            .contains_key(&ObjectKey::new("other", "wildcard"))
    );
    // A Route's own Secret in its own namespace is copied.
    assert!(
        refs.mounted
            .contains_key(&ObjectKey::new("team-a", "api-keys"))
    );

    let mut sources = team_a_keys();
    sources.insert(ObjectKey::new("other", "wildcard"), Secret::default());
    let children = build_children(
        &gateway(json!({})),
        &snapshot,
        &sources,
        &BuildOptions::default(),
    )
    .expect("children build");
    assert!(children.secrets.iter().all(
        |s| s.metadata.annotations.as_ref().expect("annotated")["portcullis.dev/copied-from"]
            != "other/wildcard"
    ));
}

#[test]
fn a_jwt_key_set_is_mounted_from_its_secret_and_a_jwks_url_mounts_nothing() {
    use portcullis_config::snapshot::{JwksConfig, JwtAlgorithm};

    let jwt = |jwks: JwksConfig| AuthConfig::Jwt {
        issuer: "https://id.example.com".to_owned(),
        audiences: vec![],
        jwks,
        algorithms: vec![JwtAlgorithm::RS256],
        leeway_ms: 30_000,
        claims_to_headers: vec![],
        keep_authorization: false,
    };
    let mut snapshot = snapshot("r1");
    snapshot.rules[0].policies.auth = Some(jwt(JwksConfig::Secret(SecretFile::new(
        "shop",
        "jwks",
        "keys.json",
    ))));
    snapshot.rules[1].policies.auth = Some(jwt(JwksConfig::Uri(
        "https://id.example.com/jwks".to_owned(),
    )));
    let refs = secrets::secret_refs(&snapshot, "shop");
    assert_eq!(
        refs.mounted,
        BTreeMap::from([(
            ObjectKey::new("shop", "jwks"),
            BTreeSet::from(["keys.json".to_owned()])
        )])
    );
    assert!(refs.refused.is_empty());
}
