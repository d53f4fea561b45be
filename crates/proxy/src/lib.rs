//! The Portcullis data plane: an HTTP gateway serving a compiled config snapshot.
//!
//! The shape follows linkerd2-proxy: a pure router ([`route`]) compiled from the snapshot
//! ([`compile`]) and swapped atomically ([`Gateway`]), small forwarding steps ([`forward`]),
//! upstream pools with health state ([`upstream`], [`balance`]), and a drain-aware server
//! ([`server`], [`lifecycle`]) next to an admin listener ([`admin`]).

#![forbid(unsafe_code)]

pub mod access_log;
pub mod balance;
pub mod body;
mod clock;
pub mod filters;
pub mod forward;
pub mod forwarded;
pub mod gateway;
pub mod host;
pub mod metrics;
pub mod path;
pub mod route;
pub mod upstream;

pub use gateway::{Gateway, GatewaySettings};
pub mod admin;
pub mod cluster;
pub mod compile;
pub mod dataplane;
pub mod lifecycle;
pub mod server;
pub mod tls;
pub mod watch;

pub use dataplane::{DataPlane, DataPlaneOptions, Loader, proxy, run};
pub mod demo;

pub use demo::{DemoOptions, demo};
