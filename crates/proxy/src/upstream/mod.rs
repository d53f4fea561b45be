//! Upstreams: backends, their endpoints, connection pools, health checking and outlier
//! detection.

mod backend;
mod endpoint;
mod health;

pub use backend::{
    Admission, Backend, BackendSpec, BalancerKind, HashOn, HealthCheckSettings, Limits, Protocol,
    RetryToken,
};
pub use endpoint::{Endpoint, InFlight, Outcome, OutlierSettings};
