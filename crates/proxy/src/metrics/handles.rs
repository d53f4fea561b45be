//! Per-worker caches of the request counters and latency histograms already looked up, so that
//! counting a request costs a pointer-keyed lookup instead of hashing its label strings and
//! taking the metric family's lock (twice per request).
//!
//! A cache entry holds the label `Arc`s whose addresses key it, so those addresses cannot be
//! reused by other labels while it is cached; the cache is emptied when it grows past [`MAX_ENTRIES`]
//! (reloads make new labels).

use std::{
    cell::RefCell,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use prometheus_client::metrics::{counter::Counter, histogram::Histogram};

use crate::fast_hash::FastMap;

use super::{Label, Metrics, RequestLabels, RouteLabels, StatusClass};

/// Entries a worker keeps before starting afresh.
const MAX_ENTRIES: usize = 4096;

/// Identifies a [`Metrics`] instance (several gateways can share a thread in tests).
pub(super) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Where a label's text is: labels are compared by pointer.
fn address(label: &Option<Arc<str>>) -> usize {
    label
        .as_ref()
        .map_or(0, |s| Arc::as_ptr(s).cast::<u8>() as usize)
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct RequestKey {
    metrics: u64,
    route: usize,
    backend: usize,
    class: StatusClass,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct RouteKey {
    metrics: u64,
    route: usize,
}

/// A cached handle, with the labels its key points at (kept alive while it is cached).
struct Cached<M> {
    metric: M,
    _labels: [Option<Arc<str>>; 2],
}

#[derive(Default)]
struct Cache {
    requests: FastMap<RequestKey, Cached<Counter>>,
    latency: FastMap<RouteKey, Cached<Histogram>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

impl Metrics {
    /// Counts a served request and observes its duration.
    pub fn observe_request(
        &self,
        route: &Option<Arc<str>>,
        backend: &Option<Arc<str>>,
        class: StatusClass,
        seconds: f64,
    ) {
        let request_key = RequestKey {
            metrics: self.id,
            route: address(route),
            backend: address(backend),
            class,
        };
        let route_key = RouteKey {
            metrics: self.id,
            route: address(route),
        };
        let cached = CACHE.try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                return false;
            };
            if cache.requests.len() + cache.latency.len() > MAX_ENTRIES {
                *cache = Cache::default();
            }
            cache
                .requests
                .entry(request_key)
                .or_insert_with(|| Cached {
                    metric: self.request_counter(route, backend, class),
                    _labels: [route.clone(), backend.clone()],
                })
                .metric
                .inc();
            cache
                .latency
                .entry(route_key)
                .or_insert_with(|| Cached {
                    metric: self.route_latency(route),
                    _labels: [route.clone(), None],
                })
                .metric
                .observe(seconds);
            true
        });
        if cached != Ok(true) {
            self.request_counter(route, backend, class).inc();
            self.route_latency(route).observe(seconds);
        }
    }

    fn request_counter(
        &self,
        route: &Option<Arc<str>>,
        backend: &Option<Arc<str>>,
        class: StatusClass,
    ) -> Counter {
        self.requests
            .get_or_create(&RequestLabels {
                route: Label(route.clone()),
                backend: Label(backend.clone()),
                code: class,
            })
            .clone()
    }

    fn route_latency(&self, route: &Option<Arc<str>>) -> Histogram {
        self.latency
            .get_or_create(&RouteLabels {
                route: Label(route.clone()),
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_of(metrics: &Metrics, route: &str) -> Option<String> {
        metrics
            .encode()
            .lines()
            .find(|l| l.starts_with("portcullis_requests_total") && l.contains(route))
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
    }

    #[test]
    fn cached_handles_count_for_their_own_gateway_and_labels() {
        let (one, two) = (Metrics::new(), Metrics::new());
        let route: Option<Arc<str>> = Some("shop/cart".into());
        let backend: Option<Arc<str>> = Some("shop/api".into());
        let ok = StatusClass::of(http::StatusCode::OK);
        for _ in 0..3 {
            one.observe_request(&route, &backend, ok, 0.001);
        }
        two.observe_request(&route, &backend, ok, 0.001);
        // Another label with the same text is the same series.
        let same_text: Option<Arc<str>> = Some("shop/cart".into());
        two.observe_request(&same_text, &backend, ok, 0.001);
        assert_eq!(count_of(&one, "shop/cart").as_deref(), Some("3"));
        assert_eq!(count_of(&two, "shop/cart").as_deref(), Some("2"));
    }
}
