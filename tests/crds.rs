//! `crds/` must hold exactly what `portcullis crds` prints: users apply that folder, so it may
//! never drift from the types the operator and `portcullis check` use.

use std::process::Command;

#[test]
fn crds_folder_matches_portcullis_crds_output() {
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("crds")
        .output()
        .expect("portcullis crds runs");
    assert!(
        output.status.success(),
        "portcullis crds failed: {output:?}"
    );
    let printed = String::from_utf8(output.stdout).expect("CRDs are UTF-8");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/portcullis.yaml"))
            .expect("crds/portcullis.yaml exists");
    assert!(
        printed == committed,
        "crds/portcullis.yaml differs from `portcullis crds`: run `make crds` and commit"
    );
}

#[test]
fn every_crd_fits_in_a_last_applied_annotation() {
    // `kubectl apply` stores the whole object in an annotation limited to 256 KiB.
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/portcullis.yaml"))
            .expect("crds/portcullis.yaml exists");
    for document in text.split("\n---\n") {
        assert!(
            document.len() < 200 * 1024,
            "a CRD is {} bytes, too close to the 256 KiB annotation limit",
            document.len()
        );
    }
}
