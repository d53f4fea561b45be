//! One request/response exchange: what the access log and metrics need to know about it, and
//! the response body wrapper that reports it when the body ends.

use std::{
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Instant, SystemTime},
};

use bytes::Bytes;
use http::{Method, StatusCode};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::{
    access_log::{self, AccessRecord},
    body::{Body, BoxError},
    gateway::Gateway,
    metrics::StatusClass,
    upstream::{Admission, CarriesRelayed, Endpoint, InFlight, Relayed},
};

/// What is known about a request as it goes through the gateway.
#[derive(Debug)]
pub struct Exchange {
    /// When the request arrived.
    pub start: Instant,
    /// The client address.
    pub client: IpAddr,
    /// The method.
    pub method: Method,
    /// The host, without port.
    pub host: String,
    /// The normalized path.
    pub path: String,
    /// The Route, once matched.
    pub route: Option<Arc<str>>,
    /// The authenticated consumer, when the rule authenticates.
    pub consumer: Option<Arc<str>>,
    /// The backend, once chosen.
    pub backend: Option<Arc<str>>,
    /// The endpoint of the last attempt.
    pub endpoint: Option<Arc<Endpoint>>,
    /// The circuit-breaker slot, released with the response body.
    pub admission: Option<Admission>,
    /// The endpoint's in-flight count, released with the response body.
    pub in_flight: Option<InFlight>,
    /// When the attempt that produced the response runs out of its `backendRequest` time.
    pub attempt_deadline: Option<tokio::time::Instant>,
    /// Set when the request body streams: tells a failed attempt whether the client broke it.
    pub client_fault: Option<super::ClientFault>,
}

impl Exchange {
    /// A new exchange for a request from `client`.
    pub fn new(client: IpAddr, method: Method) -> Self {
        Self {
            start: Instant::now(),
            client,
            method,
            host: String::new(),
            path: String::new(),
            route: None,
            consumer: None,
            backend: None,
            endpoint: None,
            admission: None,
            in_flight: None,
            attempt_deadline: None,
            client_fault: None,
        }
    }
}

/// A response body that counts its bytes and, when it ends or is dropped, records the
/// exchange in metrics and the access log.
pub struct ObservedBody {
    inner: Body,
    bytes: u64,
    status: StatusCode,
    exchange: Option<Exchange>,
    gateway: Arc<Gateway>,
}

impl CarriesRelayed for ObservedBody {
    fn take_relayed(&mut self) -> Option<Box<Relayed>> {
        self.inner.take_relayed()
    }
}

impl ObservedBody {
    /// Wraps `inner`, the body of a response with `status`.
    pub fn new(inner: Body, status: StatusCode, exchange: Exchange, gateway: Arc<Gateway>) -> Self {
        Self {
            inner,
            bytes: 0,
            status,
            exchange: Some(exchange),
            gateway,
        }
    }

    fn report(&mut self) {
        let Some(exchange) = self.exchange.take() else {
            return;
        };
        let elapsed = exchange.start.elapsed();
        let metrics = &self.gateway.metrics;
        metrics.observe_request(
            &exchange.route,
            &exchange.backend,
            StatusClass::of(self.status),
            elapsed.as_secs_f64(),
        );
        if self.gateway.settings.access_log {
            access_log::write(&AccessRecord {
                ts: access_log::rfc3339(SystemTime::now()),
                client: exchange.client.to_string(),
                method: exchange.method.as_str(),
                host: &exchange.host,
                path: &exchange.path,
                route: exchange.route.as_deref(),
                consumer: exchange.consumer.as_deref(),
                backend: exchange.backend.as_deref(),
                endpoint: exchange.endpoint.as_ref().map(|e| e.address.as_str()),
                status: self.status.as_u16(),
                duration_ms: elapsed.as_secs_f64() * 1000.0,
                bytes: self.bytes,
            });
        }
    }
}

impl HttpBody for ObservedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.report(),
            _ => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        self.report();
    }
}
