//! `RequestMirror`: fire-and-forget copies of a request. The client never waits for them and
//! their answers are ignored.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;

use crate::upstream::RequestTemplate;
use crate::{body, filters::Mirror, route::RouteTable};

/// How long a mirrored request may take before it is abandoned.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends a copy of the request to each sampled mirror backend.
pub fn spawn(table: &RouteTable, mirrors: &[Mirror], template: &RequestTemplate, body: &Bytes) {
    for mirror in mirrors {
        if mirror.percent < 100 && fastrand::u32(0..100) >= mirror.percent {
            continue;
        }
        let Some(backend) = table.backends.get(&mirror.backend).cloned() else {
            continue;
        };
        let Some(endpoint) = backend.pick(None, None) else {
            continue;
        };
        let headers = template.headers.clone();
        let Ok(request) = template.request(
            &endpoint,
            backend.spec.protocol,
            body::full(body.clone()),
            headers,
        ) else {
            continue;
        };
        let backend = Arc::clone(&backend);
        tokio::spawn(async move {
            let _in_flight = endpoint.start_request();
            let sent = tokio::time::timeout(MIRROR_TIMEOUT, backend.client().request(request));
            if let Ok(Ok(response)) = sent.await {
                // Read the answer to the end so the pooled connection can be reused.
                let _ = http_body_util::BodyExt::collect(response.into_body()).await;
            }
        });
    }
}
