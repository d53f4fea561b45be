//! `portcullis check`: validate manifests offline.

use std::{path::PathBuf, process::ExitCode};

use crate::{compiled, manifests};

/// Arguments of `portcullis check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Manifest files or folders (multi-document YAML; folders are read recursively).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
}

/// Prints one line per problem to standard output and returns exit code 1 if there is any.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let loaded = manifests::load(&args.paths);
    for note in &loaded.notes {
        eprintln!("note: {note}");
    }
    let mut problems = loaded.problems;
    let gateways = compiled::compile_gateways(&loaded.manifests);
    let (semantic, warnings) = compiled::findings(&loaded.manifests, &gateways);
    problems.extend(semantic);
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    for problem in &problems {
        println!("{problem}");
    }
    if problems.is_empty() {
        let m = &loaded.manifests;
        eprintln!(
            "valid: {} Gateway(s), {} Route(s), {} ServiceBackend(s)",
            m.gateways.len(),
            m.routes.len(),
            m.backends.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}
