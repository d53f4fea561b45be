//! The Portcullis operator: reconciles each `Gateway` into a redundant, self-healing gateway
//! deployment and reports honest status.
//!
//! The reconcile runs in stages, each in its own module with its own error variant: fetch what
//! the Gateway references (I/O) → compile the snapshot (pure, `portcullis-config`) → build the
//! children (pure, [`children`]) → apply them (I/O) → write status (I/O).

#![forbid(unsafe_code)]

pub mod backends;
pub mod children;
pub mod conditions;
pub mod health;
pub mod leader;
pub mod meta;
pub mod metrics;
pub mod permissions;
pub mod reconcile;
pub mod relations;
pub mod runtime;
pub mod stores;

pub use children::{BuildError, BuildOptions, Children, build_children};
pub use leader::LeaderElection;
pub use metrics::Metrics;
pub use runtime::{ControllerConfig, RunError, run, shutdown_trigger};
