//! The Portcullis operator: reconciles each `Gateway` into a redundant, self-healing gateway
//! deployment and reports honest status.
//!
//! # Reconcile
//!
//! One controller for Gateways ([`reconcile`]), in stages, each its own module and error
//! variant: fetch what the Gateway references (I/O, mostly from watch stores) → compile the
//! snapshot (pure, `portcullis-config`) → build the children (pure, [`children`]) → apply them
//! (I/O: server-side apply with the one field manager [`meta::FIELD_MANAGER`], skipping every
//! child already converged, so a converged reconcile writes nothing) → status (I/O, written
//! only when it changed). Children no longer wanted are deleted by label and owner UID.
//!
//! Route, ServiceBackend, Secret and Namespace changes requeue exactly the Gateways they affect
//! ([`relations`]). A second, small controller keeps ServiceBackend status (validity, endpoint
//! counts) ([`backends`]).
//!
//! # Running it
//!
//! [`run`] runs everything until a shutdown future resolves: start-up checks with actionable
//! messages (CRDs missing, RBAC missing), Lease-based leader election ([`leader`]), and
//! `/healthz`, `/readyz`, `/metrics` ([`health`], [`metrics`]). The CLI's
//! `portcullis controller` and the integration tests both call it; the ClusterRole it needs is
//! [`permissions::cluster_role`].
//!
//! ```no_run
//! # async fn example(client: kube::Client) -> Result<(), portcullis_controller::RunError> {
//! use portcullis_controller::{ControllerConfig, run, shutdown_trigger};
//!
//! let (stop, shutdown) = shutdown_trigger();
//! let operator = tokio::spawn(run(client, ControllerConfig::default(), shutdown));
//! // ... later:
//! let _ = stop.send(true);
//! # Ok(()) }
//! ```
//!
//! # Rendering
//!
//! [`build_children`] is the pure function behind both the operator and `portcullis render`:
//! a Gateway and its compiled snapshot in, every Kubernetes object of that gateway out
//! ([`Children::to_values`] gives them as documents, in apply order).

#![forbid(unsafe_code)]

pub mod backends;
mod backoff;
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
