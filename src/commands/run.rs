//! `portcullis run`: the standalone data plane, serving manifests from files and reloading when
//! they change.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use kube::ResourceExt;
use portcullis_config::{Severity, Snapshot};
use portcullis_proxy::Loader;

use super::serve::{ServeArgs, block_on};
use crate::{compiled, manifests};

/// Arguments of `portcullis run`.
#[derive(clap::Args, Debug)]
#[command(after_help = manifests::LIMITS_HELP)]
pub struct Args {
    /// Manifest files or folders: Gateway, Route, ServiceBackend (static `endpoints`) and the
    /// Secrets they reference. Watched: changes are reloaded, a bad change is refused.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// The admin listener (`/healthz`, `/ready`, `/metrics`, `/config`).
    #[arg(long, default_value = "127.0.0.1:9901")]
    pub admin: SocketAddr,
    /// Which Gateway to serve (`namespace/name`) when the manifests hold several.
    #[arg(long)]
    pub gateway: Option<String>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Serves until SIGTERM or Ctrl-C, then drains; exit 0 after a clean drain.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let secrets_root = std::env::temp_dir().join(format!("portcullis-run-{}", std::process::id()));
    let paths = args.paths.clone();
    let wanted = args.gateway.clone();
    let root = secrets_root.clone();
    let loader: Loader = Arc::new(move || load(&paths, wanted.as_deref(), &root));
    let options = args.serve.options(args.admin);
    let result = block_on(portcullis_proxy::run(options, args.paths.clone(), loader));
    // Secret material written for this process goes with it.
    let _ = std::fs::remove_dir_all(&secrets_root);
    result
}

/// Loads, validates and compiles the manifests; writes the Secrets under `root`.
fn load(
    paths: &[PathBuf],
    wanted: Option<&str>,
    root: &Path,
) -> Result<(Snapshot, PathBuf), String> {
    let loaded = manifests::load(paths);
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    if !loaded.problems.is_empty() {
        let lines: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
        return Err(lines.join("\n"));
    }
    let manifests = &loaded.manifests;
    let gateways = compiled::compile_gateways(manifests);
    let chosen: Vec<_> = gateways
        .iter()
        .filter(|g| {
            wanted.is_none_or(|w| {
                let object = &g.gateway.object;
                format!(
                    "{}/{}",
                    object.namespace().unwrap_or_else(|| "default".into()),
                    object.name_any()
                ) == w
            })
        })
        .collect();
    let gateway = match chosen.as_slice() {
        [one] => one,
        [] => return Err("no Gateway in the manifests (or none named by --gateway)".to_owned()),
        _ => {
            return Err(
                "several Gateways in the manifests: pick one with --gateway NAMESPACE/NAME"
                    .to_owned(),
            );
        }
    };
    let errors: Vec<String> = gateway
        .compiled
        .diagnostics
        .items
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    for error in &errors {
        eprintln!("warning: {error}");
    }
    write_secrets(manifests, root)?;
    Ok((gateway.compiled.snapshot.clone(), root.to_path_buf()))
}

/// Writes every Secret key to `<root>/<namespace>/<name>/<key>`, readable by this user only.
fn write_secrets(manifests: &manifests::Manifests, root: &Path) -> Result<(), String> {
    for secret in &manifests.secrets {
        let object = &secret.object;
        let dir = root
            .join(object.namespace().unwrap_or_else(|| "default".into()))
            .join(object.name_any());
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        for (key, value) in object.data.iter().flatten() {
            keys.push((key.clone(), value.0.clone()));
        }
        for (key, value) in object.string_data.iter().flatten() {
            keys.push((key.clone(), value.as_bytes().to_vec()));
        }
        for (key, value) in keys {
            let file = dir.join(&key);
            std::fs::write(&file, value).map_err(|e| format!("{}: {e}", file.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
    Ok(())
}
