//! The Portcullis config snapshot and the pure compiler that produces it.
//!
//! The operator, `portcullis run`, `portcullis render` and the tests all turn custom resources
//! into what a gateway replica serves through this crate: a Gateway, the Routes attached to it and
//! their ServiceBackends go in, a [`Snapshot`] comes out. No I/O happens here, and the same input
//! always yields byte-identical output.

#![forbid(unsafe_code)]

pub mod capability;
mod compile;
pub mod configmap;
pub mod diagnostics;
pub mod replica;
pub mod snapshot;
pub mod watch_backoff;

pub use compile::{Compiled, NamespaceInfo, compile, is_tchar};
pub use configmap::{render_configmap, snapshot_from_bytes, snapshot_from_configmap};
pub use diagnostics::{Diagnostic, Diagnostics, Severity};
pub use snapshot::{API_VERSION, Snapshot, SnapshotError};
