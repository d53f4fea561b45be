//! Upstreams: backends, their endpoints, connection pools, health checking and outlier
//! detection.

mod backend;
mod connector;
mod endpoint;
mod exchange;
mod h1;
mod health;

#[cfg(feature = "fuzzing")]
pub(crate) use h1::fuzzing as h1_fuzzing;

pub use backend::{
    Admission, Backend, BackendSpec, BalancerKind, HashOn, HealthCheckSettings, Limits, Protocol,
    RetryToken, TlsSpec,
};
pub use connector::{UpstreamConnector, UpstreamIo, UpstreamTls};
pub use endpoint::{Endpoint, InFlight, Outcome, OutlierSettings};
pub use exchange::{RequestTemplate, SendFailure};
pub use h1::{CarriesRelayed, H1Body, Relayed, materialize};
