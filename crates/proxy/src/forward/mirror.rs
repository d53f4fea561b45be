//! `RequestMirror`: fire-and-forget copies of a request. The client never waits for them and
//! their answers are ignored.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Uri, Version};

use crate::upstream::RequestTemplate;
use crate::{body, filters::Mirror, route::RouteTable, upstream::Protocol};

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
        let uri = Uri::builder()
            .scheme("http")
            .authority(endpoint.authority.clone())
            .path_and_query(template.path_and_query.clone())
            .build();
        let Ok(uri) = uri else {
            continue;
        };
        let mut request = Request::new(body::full(body.clone()));
        *request.method_mut() = template.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = template.headers.clone();
        template.forwarded.apply(request.headers_mut());
        *request.version_mut() = match backend.spec.protocol {
            Protocol::Http1 => Version::HTTP_11,
            Protocol::Http2 => Version::HTTP_2,
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
