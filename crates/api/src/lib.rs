//! The Portcullis API: the custom resources users write — `Gateway`, `Route` and
//! `ServiceBackend` in group `portcullis.dev`, version `v1alpha1` — with their defaults, their
//! schemas and the CEL rules the API server enforces.
//!
//! This crate does no I/O. The same types serve the operator, the offline `portcullis check`,
//! and the CRDs in `crds/`, so a manifest means the same thing everywhere.

#![forbid(unsafe_code)]

pub mod backend;
pub mod duration;
pub mod gateway;
pub mod policy;
pub mod route;
pub mod validation;

pub use backend::{ServiceBackend, ServiceBackendSpec, ServiceBackendStatus};
pub use gateway::{Gateway, GatewaySpec, GatewayStatus};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
pub use route::{Route, RouteSpec, RouteStatus};

/// The API group of every Portcullis resource.
pub const GROUP: &str = "portcullis.dev";
/// The API version served and stored.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "portcullis.dev/v1alpha1";

/// The CustomResourceDefinitions of Portcullis, in a stable order (Gateway, Route, ServiceBackend).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Gateway::crd(), Route::crd(), ServiceBackend::crd()]
}
