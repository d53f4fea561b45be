//! `portcullis check`: validate manifests offline.

use std::{path::PathBuf, process::ExitCode};

use crate::{compiled, manifests};

/// Arguments of `portcullis check`.
#[derive(clap::Args, Debug)]
#[command(after_help = manifests::LIMITS_HELP)]
pub struct Args {
    /// Manifest files or folders (multi-document YAML; folders are read recursively).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Refuse (exit 1), rather than warn about, anything kubectl would read differently: it
    /// reads YAML 1.1, where an unquoted `on`, `yes` or `n` is a boolean and `0755` is octal.
    #[arg(long)]
    pub strict: bool,
}

/// Prints one line per problem to standard output and returns exit code 1 if there is any.
/// Notes and warnings go to standard error; with `--strict` the YAML 1.1 warnings are problems.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let loaded = manifests::load(&args.paths);
    for note in &loaded.notes {
        eprintln!("note: {note}");
    }
    let mut problems = loaded.problems;
    if args.strict {
        problems.extend(loaded.warnings);
    } else {
        for warning in &loaded.warnings {
            eprintln!("warning: {warning}");
        }
    }
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
