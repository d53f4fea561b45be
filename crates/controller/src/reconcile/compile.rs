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
    /// The snapshot's revision is not its content hash: it is not applied, the replicas keep
    /// serving the previous one. A bug in the compiler. Whether the stored snapshot reads back
    /// as written is checked when its ConfigMap is built
    /// ([`crate::children::BuildError::Unloadable`]).
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

/// Compiles `gateway` from `inputs`, refusing a snapshot whose revision is not its content hash.
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

/// The revision names the snapshot everywhere (the ConfigMap's annotation, the Gateway's
/// status, the replicas' metrics): a snapshot whose revision is not its content hash is never
/// published.
fn check_loadable(snapshot: &Snapshot) -> Result<(), CompileError> {
    if snapshot.revision_matches() {
        Ok(())
    } else {
        Err(CompileError::Unloadable(
            "its revision is not its content hash".to_owned(),
        ))
    }
}
