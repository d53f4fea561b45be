//! `portcullis render`: print the objects the operator would create.

use std::{collections::BTreeMap, io::Write, path::PathBuf, process::ExitCode};

use anyhow::Context;
use kube::ResourceExt;
use portcullis_config::snapshot::ObjectKey;
use portcullis_controller::children::{BuildOptions, build_children, default_proxy_image};

use crate::{compiled, manifests};

/// Arguments of `portcullis render`.
#[derive(clap::Args, Debug)]
#[command(after_help = manifests::LIMITS_HELP)]
pub struct Args {
    /// Manifest files or folders (multi-document YAML; folders are read recursively).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// The image of the gateway pods.
    #[arg(long, default_value_t = default_proxy_image())]
    pub proxy_image: String,
}

/// Prints, for every Gateway, its ServiceAccount, RBAC, copied Secrets, ConfigMap, Deployment,
/// Service, PodDisruptionBudget and HorizontalPodAutoscaler as multi-document YAML. Invalid
/// manifests are reported as `check` does, and nothing is printed.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let loaded = manifests::load(&args.paths);
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    if !loaded.problems.is_empty() {
        for problem in &loaded.problems {
            eprintln!("{problem}");
        }
        return Ok(ExitCode::from(1));
    }
    let manifests = &loaded.manifests;
    if manifests.gateways.is_empty() {
        eprintln!("no Gateway in the manifests: nothing to render");
        return Ok(ExitCode::from(1));
    }
    let secrets: BTreeMap<ObjectKey, _> = manifests
        .secrets
        .iter()
        .map(|s| {
            let key = ObjectKey::new(
                s.object.namespace().unwrap_or_else(|| "default".to_owned()),
                s.object.name_any(),
            );
            (key, s.object.clone())
        })
        .collect();
    let options = BuildOptions {
        proxy_image: args.proxy_image.clone(),
    };
    let gateways = compiled::compile_gateways(manifests);
    let (_, warnings) = compiled::findings(manifests, &gateways);
    for line in &warnings {
        eprintln!("warning: {line}");
    }
    let mut out = String::new();
    for gateway in &gateways {
        for diagnostic in &gateway.compiled.diagnostics.items {
            if diagnostic.severity == portcullis_config::Severity::Error {
                eprintln!("note: {diagnostic} (served as the status of the object says)");
            }
        }
        let children = build_children(
            &gateway.gateway.object,
            &gateway.compiled.snapshot,
            &secrets,
            &options,
        )?;
        for value in children.to_values()? {
            out.push_str("---\n");
            out.push_str(&serde_saphyr::to_string(&value).context("serializing to YAML")?);
        }
    }
    std::io::stdout()
        .write_all(out.as_bytes())
        .context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}
