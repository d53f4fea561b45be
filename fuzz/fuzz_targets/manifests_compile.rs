//! Manifests to snapshot: the loader `portcullis check`, `render` and `run` share
//! (`src/manifests.rs`, YAML and the CRD schemas with their CEL rules) and the pure compiler
//! (`src/compiled.rs`, `portcullis_config::compile`), given any YAML a user might write.
//!
//! Nothing may panic. The same text must give the same problems and the same snapshot bytes
//! every time (the revision a ConfigMap carries is a hash of them), and a snapshot must read
//! back as itself, since what the operator writes is what every gateway replica loads.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use portcullis_config::{Snapshot, render_configmap, snapshot_from_configmap};

/// The binary's own loader and compiler, compiled into this target as `src/main.rs` has them.
#[path = "../../src"]
#[allow(dead_code, clippy::all)]
mod cli {
    pub mod compiled;
    pub mod manifests;
}

use cli::{compiled, manifests};

/// What one pass over the text produced, as text: problems, warnings and each snapshot.
fn pass(text: &str) -> Vec<String> {
    let mut loaded = manifests::Loaded::default();
    manifests::load_text(Path::new("fuzz.yaml"), text, &mut loaded);
    let mut out: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    out.extend(loaded.warnings.iter().map(ToString::to_string));
    let gateways = compiled::compile_gateways(&loaded.manifests);
    let (problems, warnings) = compiled::findings(&loaded.manifests, &gateways);
    out.extend(problems.iter().map(ToString::to_string));
    out.extend(warnings);
    for gateway in &gateways {
        let snapshot = &gateway.compiled.snapshot;
        let yaml = snapshot.to_yaml().expect("a compiled snapshot serializes");
        // The operator's ConfigMap, read as a gateway replica reads it.
        let configmap = render_configmap(snapshot).expect("a compiled snapshot is stored");
        let read = snapshot_from_configmap(&configmap)
            .unwrap_or_else(|error| panic!("the stored snapshot does not load: {error}\n{yaml}"));
        assert!(
            read == *snapshot,
            "the stored snapshot loads as another:\n{yaml}"
        );
        assert!(
            read.revision_matches(),
            "the revision is not the content's hash"
        );
        if let Err(error) = read.check_references() {
            panic!("the compiler wrote an inconsistent snapshot: {error}\n{yaml}");
        }
        let again = Snapshot::from_yaml(&yaml).unwrap_or_else(|error| {
            panic!("the snapshot's YAML does not read back: {error}\n{yaml}")
        });
        assert!(
            again == *snapshot,
            "the snapshot's YAML reads back as another:\n{yaml}"
        );
        out.push(yaml);
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let first = pass(text);
    assert_eq!(
        pass(text),
        first,
        "the same manifests compiled twice differ"
    );
});
