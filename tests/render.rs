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
