//! Active health checks: a task per backend that requests each endpoint's health path every
//! interval. It holds only a weak reference, so it ends when a reload drops the backend.

use std::sync::Arc;

use http::{Request, Uri, header};
use tokio::task::JoinSet;

use super::{Backend, Endpoint, HealthCheckSettings};
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

async fn check(backend: &Backend, endpoint: &Endpoint, settings: &HealthCheckSettings) -> bool {
    let uri = Uri::builder()
        .scheme("http")
        .authority(endpoint.authority.clone())
        .path_and_query(settings.path.as_str())
        .build();
    let Ok(uri) = uri else {
        return false;
    };
    let request = Request::get(uri)
        .header(header::HOST, endpoint.address.as_str())
        .header(header::USER_AGENT, "portcullis-health-check")
        .body(body::empty());
    let Ok(request) = request else {
        return false;
    };
    match tokio::time::timeout(settings.timeout, backend.client().request(request)).await {
        Ok(Ok(response)) => response.status().is_success(),
        _ => false,
    }
}
