//! Stage 2, compile (pure): the Gateway and its inputs become a snapshot and diagnostics
//! through the config compiler, and the snapshot's Secret references are sorted into mounted
//! and refused.

use kube::ResourceExt;
use portcullis_api::Gateway;
use portcullis_config::{Compiled, Snapshot, compile as compile_config};

use super::fetch::Inputs;
use crate::children::secrets::{SecretRefs, secret_refs};

/// Why the compile stage failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The snapshot would not load in the proxy: it is not applied, the replicas keep serving
    /// the previous one. A bug in the compiler or the snapshot format; the message says which.
    #[error("the compiled snapshot would not load in the proxy: {0}")]
    Unloadable(String),
}

/// The compiler's output and what the operator derives from it.
#[derive(Clone, Debug)]
pub struct Compilation {
    /// Snapshot and diagnostics.
    pub compiled: Compiled,
    /// The Secrets the snapshot reads.
    pub secret_refs: SecretRefs,
}

/// Compiles `gateway` from `inputs`, refusing a snapshot the proxy could not load.
pub fn compile(gateway: &Gateway, inputs: &Inputs) -> Result<Compilation, CompileError> {
    let compiled = compile_config(
        gateway,
        &inputs.routes,
        &inputs.backends,
        &inputs.namespaces,
    );
    check_loadable(&compiled.snapshot)?;
    let secret_refs = secret_refs(&compiled.snapshot, &gateway.namespace().unwrap_or_default());
    Ok(Compilation {
        compiled,
        secret_refs,
    })
}

/// The proxy reads the stored snapshot back and checks its revision: do the same here, so a
/// snapshot it would refuse is never published.
fn check_loadable(snapshot: &Snapshot) -> Result<(), CompileError> {
    if !snapshot.revision_matches() {
        return Err(CompileError::Unloadable(
            "its revision is not its content hash".to_owned(),
        ));
    }
    let text = snapshot
        .to_json()
        .map_err(|e| CompileError::Unloadable(e.to_string()))?;
    let back = Snapshot::from_yaml(&text).map_err(|e| CompileError::Unloadable(e.to_string()))?;
    if &back != snapshot {
        return Err(CompileError::Unloadable(
            "it does not read back as written".to_owned(),
        ));
    }
    Ok(())
}
