//! Route filters (Gateway API `HTTPRouteFilter`): header edits, redirects, URL rewrites, mirrors
//! and CORS. Pure functions over `http` types; the forwarding path decides when each runs.

mod cors;
mod headers;
mod redirect;
mod rewrite;

pub use cors::Cors;
pub use headers::HeaderModifier;
pub use redirect::{Redirect, RedirectRequest, Scheme};
pub use rewrite::{PathRewrite, UrlRewrite};

/// A copy of each (sampled) request goes to another backend; its response is ignored.
#[derive(Debug, Clone)]
pub struct Mirror {
    /// The backend receiving the copies (`namespace/name`).
    pub backend: String,
    /// Share of requests mirrored, 0–100.
    pub percent: u32,
    /// Copies in flight at once, at most.
    pub max_in_flight: u32,
    /// Copies in flight now (of this compiled rule).
    pub in_flight: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

/// Every filter of one route rule (shared by all of the rule's entries), already validated by the
/// compiler (at most one of each kind, mirrors excepted).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Edits to the request sent upstream.
    pub request_headers: Option<HeaderModifier>,
    /// Edits to the response sent to the client.
    pub response_headers: Option<HeaderModifier>,
    /// Host and path rewrite of the request sent upstream.
    pub url_rewrite: Option<UrlRewrite>,
    /// Mirrors, each fire-and-forget.
    pub mirrors: Vec<Mirror>,
    /// CORS: preflights answered by the gateway, cross-origin answers decorated.
    pub cors: Option<Cors>,
}
