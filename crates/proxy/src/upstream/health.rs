//! Active health checks: a task per backend that requests each endpoint's health path every
//! interval. It holds only a weak reference, so it ends when a reload drops the backend.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, header, uri::PathAndQuery};
use http_body_util::BodyExt;
use tokio::task::JoinSet;

use super::{Backend, Endpoint, HealthCheckSettings, RequestTemplate};
use crate::body;

impl Backend {
    /// Starts the health-check task if the backend has checks and none is running yet.
    /// Must be called inside a Tokio runtime.
    pub fn start_health_checks(self: &Arc<Self>) {
        if !self.claim_health_checks() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(backend) = weak.upgrade() else {
                    return;
                };
                let Some(settings) = backend.spec.health_check.clone() else {
                    return;
                };
                let mut checks = JoinSet::new();
                for endpoint in backend.endpoints().endpoints.clone() {
                    let backend = backend.clone();
                    let settings = settings.clone();
                    checks.spawn(async move {
                        let started_ms = crate::clock::now_ms();
                        let ok = check(&backend, &endpoint, &settings).await;
                        endpoint.record_check(ok, started_ms, &settings);
                    });
                }
                drop(backend);
                while checks.join_next().await.is_some() {}
                tokio::time::sleep(settings.interval).await;
            }
        });
    }
}

/// One check: GET the health path over the same client, connection pool and protocol as the
/// traffic (so a check passes only over a path the traffic takes too), the body read to the
/// end so the connection goes back to the pool.
async fn check(
    backend: &Backend,
    endpoint: &Arc<Endpoint>,
    settings: &HealthCheckSettings,
) -> bool {
    let Ok(path_and_query) = PathAndQuery::try_from(settings.path.as_str()) else {
        return false;
    };
    let mut headers = HeaderMap::with_capacity(2);
    if let Ok(host) = HeaderValue::from_str(&endpoint.address) {
        headers.insert(header::HOST, host);
    }
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static("portcullis-health-check"),
    );
    let mut template = RequestTemplate {
        method: Method::GET,
        path_and_query,
        headers,
        forwarded: Default::default(),
        upgrade: false,
        relay: false,
    };
    let exchange = async {
        let response = backend
            .send(endpoint, &mut template, body::empty(), true)
            .await
            .ok()?;
        let healthy = response.status().is_success();
        response.into_body().collect().await.ok()?;
        Some(healthy)
    };
    matches!(
        tokio::time::timeout(settings.timeout, exchange).await,
        Ok(Some(true))
    )
}
