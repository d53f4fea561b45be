//! `portcullis crds`: print the CustomResourceDefinitions.

use std::{io::Write, process::ExitCode};

use anyhow::Context;

/// Renders the CRDs as the multi-document YAML that `crds/` in the repository holds.
pub fn render() -> anyhow::Result<String> {
    let mut out = String::new();
    for crd in portcullis_api::crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd).context("serializing a CRD to YAML")?);
    }
    Ok(out)
}

/// Prints the CRDs to standard output.
pub fn run() -> anyhow::Result<ExitCode> {
    std::io::stdout()
        .write_all(render()?.as_bytes())
        .context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}
