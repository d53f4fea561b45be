//! The Portcullis data plane: an HTTP gateway serving a compiled config snapshot.
//!
//! The shape follows linkerd2-proxy: a pure router ([`route`], [`filters`], [`path`],
//! [`host`]) compiled from the snapshot ([`compile`]) and swapped atomically ([`Gateway`]),
//! small forwarding steps ([`forward`]), upstream pools with health state ([`upstream`],
//! [`balance`]), and a drain-aware, thread-per-core server ([`server`], [`tls`],
//! [`lifecycle`]) next to an admin listener ([`admin`], [`metrics`]).
//!
//! Entry points for the CLI: [`run`] (`portcullis run`), [`proxy`] and [`cluster::serve`]
//! (`portcullis proxy`), [`demo()`] (`portcullis demo`); [`DataPlane`] for anything else.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod balance;
pub mod body;
mod clock;
pub mod cluster;
pub mod compile;
pub mod dataplane;
pub mod demo;
pub mod fast_hash;
pub mod filters;
pub mod forward;
pub mod forwarded;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod guard;
pub mod host;
pub mod lifecycle;
pub mod metrics;
pub mod path;
pub mod purge;
pub mod route;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod validate;
pub mod watch;
mod wire;

pub use dataplane::{DataPlane, DataPlaneOptions, Loader, proxy, run};
pub use demo::{DemoOptions, demo};
pub use gateway::{Gateway, GatewaySettings};
