//! `portcullis render`: print the objects the operator would create.

use std::{path::PathBuf, process::ExitCode};

/// Arguments of `portcullis render`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Manifest files or folders (multi-document YAML; folders are read recursively).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
}

/// Renders the objects of every Gateway in the manifests.
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("render is not wired yet")
}
