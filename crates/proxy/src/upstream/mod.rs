//! Upstreams: backends, their endpoints, connection pools, health checking and outlier
//! detection.

mod backend;
mod connector;
mod endpoint;
mod exchange;
mod h1;
mod health;

pub use backend::{
    Admission, Backend, BackendSpec, BalancerKind, HashOn, HealthCheckSettings, Limits, Protocol,
    RetryToken, TlsSpec,
};
pub use connector::{UpstreamConnector, UpstreamIo, UpstreamTls};
pub use endpoint::{Endpoint, InFlight, Outcome, OutlierSettings};
pub use exchange::{RequestTemplate, SendFailure};
pub use h1::{CarriesRelayed, H1Body, Relayed, materialize};
