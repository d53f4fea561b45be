//! Prints the rules of the operator's ClusterRole ([`permissions::cluster_role`]) as a YAML
//! list: the Helm chart's `files/cluster-role-rules.yaml`, which `make chart-rbac` writes and
//! `make check-generated` compares, so the chart grants exactly what the code needs.

use std::{io::Write as _, process::ExitCode};

use portcullis_controller::permissions;

fn main() -> ExitCode {
    let rules = permissions::cluster_role("portcullis")
        .rules
        .unwrap_or_default();
    let yaml = match serde_saphyr::to_string(&rules) {
        Ok(yaml) => yaml,
        Err(error) => {
            eprintln!("cluster_role_rules: cannot serialize the rules: {error}");
            return ExitCode::FAILURE;
        }
    };
    let text = format!(
        "# Generated from crates/controller/src/permissions.rs by `make chart-rbac`; do not edit.\n{yaml}"
    );
    match std::io::stdout().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cluster_role_rules: {error}");
            ExitCode::FAILURE
        }
    }
}
