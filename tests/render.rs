//! `portcullis render` prints what the operator would create, identically every time.

use std::process::Command;

fn render(path: &str) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["render", "-f", path])
        .output()
        .expect("portcullis render runs");
    (
        output.status.code(),
        String::from_utf8(output.stdout).expect("YAML is UTF-8"),
    )
}

#[test]
fn two_renders_of_the_examples_are_byte_identical() {
    let (code, first) = render("deploy/examples");
    assert_eq!(code, Some(0));
    let (_, second) = render("deploy/examples");
    assert_eq!(first, second);
}

#[test]
fn the_examples_render_every_child_of_the_gateway() {
    let (_, yaml) = render("deploy/examples");
    let kinds: Vec<&str> = yaml
        .lines()
        .filter_map(|line| line.strip_prefix("kind: "))
        .collect();
    for kind in [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    assert!(
        yaml.contains("name: edge-config"),
        "the ConfigMap is <gateway>-config"
    );
}

#[test]
fn the_snapshot_lists_routes_in_precedence_order() {
    let (_, yaml) = render("deploy/examples");
    let snapshot = yaml
        .split("config.yaml: |")
        .nth(1)
        .expect("the ConfigMap holds config.yaml");
    // Stored as indented JSON: one `"value": "/path"` line per path match.
    let order: Vec<&str> = snapshot
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("\"value\": \"/"))
        .map(|rest| rest.trim_end_matches([',', '"']))
        .collect();
    // Longest prefix first; /catalog's GET-only rule before its catch-all rule (method match);
    // /catalog before /profile (same length: the older Route, then by name).
    assert_eq!(
        order[..5],
        ["catalog", "catalog", "profile", "orders", "users"],
        "{order:?}"
    );
}

#[test]
fn a_precedence_tie_goes_to_the_oldest_route_then_to_the_first_name() {
    let (code, yaml) = render("tests/fixtures/semantic/precedence-tie.yaml");
    assert_eq!(code, Some(0));
    let snapshot = yaml
        .split("\n---\n")
        .filter_map(|doc| serde_saphyr::from_str::<serde_json::Value>(doc).ok())
        .find(|doc| doc["kind"] == "ConfigMap")
        .and_then(|map| map["data"]["config.yaml"].as_str().map(str::to_owned))
        .expect("the ConfigMap holds config.yaml");
    let snapshot: serde_json::Value =
        serde_json::from_str(&snapshot).expect("the snapshot is JSON");
    let order: Vec<&str> = snapshot["listeners"][0]["virtualHosts"][0]["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .filter_map(|entry| entry["rule"].as_u64())
        .filter_map(|rule| usize::try_from(rule).ok())
        .filter_map(|rule| snapshot["rules"][rule]["route"]["name"].as_str())
        .collect();
    // b-older and c-same-age are a month older than a-newer; between them, the name decides.
    assert_eq!(order, ["b-older", "c-same-age", "a-newer"]);
}

#[test]
fn invalid_manifests_render_nothing() {
    let (code, yaml) = render("tests/fixtures/invalid");
    assert_eq!(code, Some(1));
    assert!(yaml.is_empty());
}

#[test]
fn render_warns_where_kubectl_reads_the_manifests_differently_as_check_does() {
    let fixture = "tests/fixtures/yaml11/on-key-and-yes-header.yaml";
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["render", "-f", fixture])
        .output()
        .expect("portcullis render runs");
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("kind: Deployment"));
    let warnings: Vec<String> = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| line.starts_with("warning: "))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings[0].starts_with(&format!(
            "warning: {fixture}: Route/shop/flags: metadata.annotations.on: line 31 column 5: \
             kubectl reads the key on"
        )),
        "{warnings:#?}"
    );
}
