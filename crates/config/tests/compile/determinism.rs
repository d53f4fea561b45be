//! The same input gives byte-identical output, whatever its order; content changes the revision.

use portcullis_config::{Snapshot, compile};

use crate::fixture::{fixture, load};

fn yaml_of(
    gateway: &portcullis_api::Gateway,
    routes: &[portcullis_api::Route],
    backends: &[portcullis_api::ServiceBackend],
) -> String {
    compile(gateway, routes, backends, &[])
        .snapshot
        .to_yaml()
        .expect("serializes")
}

#[test]
fn compiling_twice_gives_identical_bytes() {
    let inputs = load(&fixture("shop.yaml"));
    let gateway = inputs.gateway.expect("gateway");
    let first = yaml_of(&gateway, &inputs.routes, &inputs.backends);
    let second = yaml_of(&gateway, &inputs.routes, &inputs.backends);
    assert_eq!(first, second);
}

#[test]
fn input_order_does_not_change_the_output() {
    let inputs = load(&fixture("shop.yaml"));
    let gateway = inputs.gateway.expect("gateway");
    let reference = yaml_of(&gateway, &inputs.routes, &inputs.backends);
    let mut routes = inputs.routes.clone();
    let mut backends = inputs.backends.clone();
    for shift in 1..routes.len().max(backends.len()) {
        routes.rotate_left(1);
        backends.reverse();
        let n = backends.len();
        backends.rotate_left(shift % n);
        assert_eq!(
            yaml_of(&gateway, &routes, &backends),
            reference,
            "shift {shift}"
        );
    }
}

#[test]
fn revision_changes_when_a_route_changes_and_only_then() {
    let inputs = load(&fixture("shop.yaml"));
    let gateway = inputs.gateway.expect("gateway");
    let before = compile(&gateway, &inputs.routes, &inputs.backends, &[]).snapshot;
    let again = compile(&gateway, &inputs.routes, &inputs.backends, &[]).snapshot;
    assert_eq!(before.revision, again.revision);

    let mut routes = inputs.routes.clone();
    routes[0].spec.rules[0].backend_refs[0].weight = 2;
    let after = compile(&gateway, &routes, &inputs.backends, &[]).snapshot;
    assert_ne!(before.revision, after.revision);
    assert!(after.revision_matches());
}

#[test]
fn snapshot_round_trips_through_yaml() {
    let inputs = load(&fixture("shop.yaml"));
    let gateway = inputs.gateway.expect("gateway");
    let snapshot = compile(&gateway, &inputs.routes, &inputs.backends, &[]).snapshot;
    let yaml = snapshot.to_yaml().expect("serializes");
    assert_eq!(Snapshot::from_yaml(&yaml).expect("parses"), snapshot);
    snapshot
        .check_references()
        .expect("compiled snapshots are consistent");
}

/// The compiled snapshot of `shop.yaml`, checked in so reviewers see what a change does to the
/// output. Regenerate with `UPDATE_FIXTURES=1 cargo test -p portcullis-config`.
#[test]
fn shop_fixture_compiles_to_the_checked_in_snapshot() {
    let inputs = load(&fixture("shop.yaml"));
    let gateway = inputs.gateway.expect("gateway");
    let compiled = compile(&gateway, &inputs.routes, &inputs.backends, &[]);
    let mut actual = compiled.snapshot.to_yaml().expect("serializes");
    actual += "# diagnostics:\n";
    for d in &compiled.diagnostics.items {
        actual += &format!("# {} {d}\n", d.severity);
    }
    let path = format!(
        "{}/tests/fixtures/shop.snapshot.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, &actual).expect("write fixture");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{path} is out of date; rerun with UPDATE_FIXTURES=1 and review the diff.\n{actual}"
    );
}
