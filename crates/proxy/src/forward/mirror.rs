//! `RequestMirror`: fire-and-forget copies of a request. The client never waits for them and
//! their answers are ignored. Each rule has at most `maxInFlight` copies in flight; a copy
//! beyond that is dropped and counted, never queued, so a slow mirror holds no more memory
//! or connections than that.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;

use crate::upstream::RequestTemplate;
use crate::{
    body,
    filters::Mirror,
    metrics::{BackendLabels, Metrics},
    route::RouteTable,
};

/// How long a mirrored request may take before it is abandoned.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(30);

/// A place among a rule's mirrored copies in flight, given back when dropped.
struct Slot(Arc<AtomicU32>);

impl Slot {
    fn take(mirror: &Mirror) -> Option<Self> {
        mirror
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < mirror.max_in_flight).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(mirror.in_flight.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Sends a copy of the request to each sampled mirror backend.
pub fn spawn(
    table: &RouteTable,
    metrics: &Metrics,
    mirrors: &[Mirror],
    template: &RequestTemplate,
    body: &Bytes,
) {
    for mirror in mirrors {
        if mirror.percent < 100 && fastrand::u32(0..100) >= mirror.percent {
            continue;
        }
        let Some(backend) = table.backends.get(&mirror.backend).cloned() else {
            continue;
        };
        let Some(slot) = Slot::take(mirror) else {
            metrics
                .mirrors_dropped
                .get_or_create(&BackendLabels {
                    backend: backend.name().to_owned(),
                })
                .inc();
            continue;
        };
        let Some(endpoint) = backend.pick(None, None) else {
            continue;
        };
        // Over the same client as the traffic; the answer is read to the end so the
        // connection goes back to the pool.
        let mut copy = RequestTemplate {
            method: template.method.clone(),
            path_and_query: template.path_and_query.clone(),
            headers: template.headers.clone(),
            forwarded: template.forwarded.clone(),
            upgrade: false,
            relay: false,
        };
        let body = body::full(body.clone());
        let backend = Arc::clone(&backend);
        tokio::spawn(async move {
            let _slot = slot;
            let _in_flight = endpoint.start_request();
            let exchange = async {
                let response = backend.send(&endpoint, &mut copy, body, true).await.ok()?;
                http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .ok()
            };
            let _ = tokio::time::timeout(MIRROR_TIMEOUT, exchange).await;
        });
    }
}
