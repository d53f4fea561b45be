//! The request path through the gateway, in order: refuse smuggling, normalize the path once,
//! match the route, then answer locally (redirect, error) or apply the request filters and
//! forward (failover, circuit breaker, load balancing, timeouts, retries, mirrors), then apply
//! the response filters and report the exchange.

mod aggregate;
mod attempt;
mod client_body;
mod deadline;
mod exchange;
mod headers;
mod mirror;
mod request;
mod upgrade;

use std::{
    borrow::Cow,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::Arc,
};

pub use attempt::{Failure, UpstreamBody, backoff, retryable};
use bytes::Bytes;
pub use client_body::{ClientBody, ClientFault};
pub use deadline::DeadlineBody;
pub use exchange::{Exchange, ObservedBody};
pub use headers::{forwarded, is_hop_by_hop, peer_value, strip_hop_by_hop, upgrade_request};
use http::{
    HeaderValue, Response, StatusCode, Version,
    header::{CONNECTION, CONTENT_TYPE, LOCATION, ORIGIN},
    request::Parts,
};
use http_body_util::{BodyExt, Limited};
use hyper::{body::Body as HttpBody, upgrade::OnUpgrade};

use crate::{
    balance::hash_bytes,
    body::{self, Body, BoxError},
    filters::{Cors, RedirectRequest, Scheme},
    gateway::Gateway,
    guard::{Admitted, Cache, CacheOutcome, Checked, Keyed},
    host::request_host,
    path,
    route::{Action, RouteEntry, RouteTable, Unserved},
    upstream::{Backend, HashOn, materialize},
    validate,
};

/// Marks a request whose head carried both `Content-Length` and `Transfer-Encoding`, seen by the
/// server in the raw bytes (`server::framing`); the gateway refuses it.
#[derive(Debug, Clone, Copy)]
pub struct FramingConflict;

/// What the server knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The port the gateway accepted the connection on: it selects the listener's routes.
    pub port: u16,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The peer's address as `X-Forwarded-For` gives it (made once, shared by every request).
    pub peer_value: HeaderValue,
    /// The client's server writes an endpoint's response fields as they came
    /// ([`crate::upstream::Relayed`]; the plain server): responses then reach it with them
    /// beside the header map, not in it.
    pub relays_heads: bool,
}

impl Connection {
    /// A connection from `peer`, accepted on `port`.
    pub fn new(peer: SocketAddr, port: u16, scheme: Scheme) -> Self {
        Self {
            peer,
            port,
            scheme,
            peer_value: peer_value(peer.ip()),
            relays_heads: false,
        }
    }
}

impl Gateway {
    /// Serves one request: its head, lent (the gateway takes what it forwards out of it), and
    /// its body. Never fails: every problem becomes a status code. The response body reports
    /// the exchange (metrics, access log) when it ends.
    pub async fn handle<B>(
        self: Arc<Self>,
        conn: &Connection,
        head: &mut Parts,
        body: B,
    ) -> Response<ObservedBody>
    where
        B: HttpBody<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        let table = self.table();
        let client = self
            .settings
            .trusted_proxies
            .client_ip(conn.peer.ip(), &head.headers);
        let mut exchange = Exchange::new(client, head.method.clone());
        let version = head.version;
        let mut response = self.serve(&table, conn, head, body, &mut exchange).await;
        if self.is_draining() && version <= Version::HTTP_11 {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let status = response.status();
        response.map(|inner| ObservedBody::new(inner, status, exchange, self.clone()))
    }

    async fn serve<B>(
        &self,
        table: &Arc<RouteTable>,
        conn: &Connection,
        head: &mut Parts,
        body: B,
        exchange: &mut Exchange,
    ) -> Response<Body>
    where
        B: HttpBody<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        // Framing, Host and request-target (`validate`): refused before any route or backend,
        // and the connection closed, so that nothing sent after the head is read as a request.
        if let Err(refusal) = validate::check(head) {
            if self.settings.access_log {
                exchange.host = request_host(head).unwrap_or_default().into_owned();
                exchange.path = head.uri.path().to_owned();
            }
            let mut response = Response::new(body::full(format!(
                "{}: {}\n",
                refusal.status.canonical_reason().unwrap_or("Bad Request"),
                refusal.reason
            )));
            *response.status_mut() = refusal.status;
            let headers = response.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        // The normalized path, when normalizing changed anything (the common case costs nothing).
        let normalized = if path::is_normal(head.uri.path()) {
            None
        } else {
            match path::normalize(head.uri.path()) {
                Ok(normalized) => Some(normalized),
                Err(_) => return local(StatusCode::BAD_REQUEST),
            }
        };
        let path = normalized.as_deref().unwrap_or(head.uri.path());
        let host = request_host(head).unwrap_or_default();
        if self.settings.access_log {
            exchange.path = path.to_owned();
            exchange.host = host.to_string();
        }
        let Some(listener) = table.listener(conn.port) else {
            return local(StatusCode::NOT_FOUND);
        };
        let Some(entry) = listener.route(head, &host, path) else {
            return local(StatusCode::NOT_FOUND);
        };
        let rule = &entry.rule;
        exchange.route = Some(rule.route.clone());
        // CORS preflights are answered by the gateway, before anything else of the rule.
        let cors = rule.filters.cors.as_ref();
        if let Some(cors) = cors
            && Cors::is_preflight(&head.method, &head.headers)
        {
            return cors.preflight(&head.headers);
        }
        let origin = cors.and_then(|_| head.headers.get(ORIGIN).cloned());
        // The body limit comes before the rule's policies: a body declared larger than the
        // rule accepts is refused at once, never read, authenticated or forwarded (a chunked
        // one is stopped as it streams: `ClientBody`).
        if body.size_hint().lower() > rule.policy.max_request_body {
            let mut response = local(StatusCode::PAYLOAD_TOO_LARGE);
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        // Authentication and rate limiting, which edit the head: what was borrowed from it is
        // copied first (only for a rule with policies).
        let (host, path, admitted) = if rule.guard.auth.is_none() && rule.guard.rate.is_none() {
            (host, Cow::Borrowed(path), None)
        } else {
            let (host, path) = (Cow::Owned(host.into_owned()), path.to_owned());
            match rule.guard.admit(head, exchange.client).await {
                Ok(admitted) => {
                    if let Some(Checked::Uncounted { error, .. }) = admitted.rate {
                        self.metrics.rate_uncounted(&rule.route, true, error);
                    }
                    exchange.consumer = admitted
                        .identity
                        .as_ref()
                        .and_then(|identity| identity.consumer.clone());
                    (host, Cow::Owned(path), Some(admitted))
                }
                Err((mut response, stopped)) => {
                    self.metrics.policy_stopped(&rule.route, stopped);
                    if let Some(cors) = cors {
                        cors.decorate(origin.as_ref(), response.headers_mut());
                    }
                    return response;
                }
            }
        };
        let path = &*path;
        // A fresh copy in memory answers at once, before anything of the request is copied.
        let hit = match &rule.guard.cache {
            Some(cache) if !matches!(rule.action, Action::Unserved(_)) => {
                cache.fresh(head, &host, path, admitted.as_ref()).await
            }
            _ => None,
        };
        let mut response = if let Some(hit) = hit {
            self.metrics.cache_outcome(&rule.route, CacheOutcome::Hit);
            hit
        } else {
            match &rule.action {
                Action::Status(status) => local(*status),
                Action::Unserved(unserved) => {
                    self.metrics
                        .unserved_requests
                        .get_or_create(&unserved.labels)
                        .inc();
                    return unserved_response(unserved);
                }
                Action::Redirect(redirect) => {
                    let location = redirect.location(RedirectRequest {
                        scheme: conn.scheme,
                        host: &host,
                        path,
                        query: head.uri.query(),
                        listener_port: conn.port,
                        matched_prefix: entry.matched_prefix(),
                    });
                    let mut response = local(redirect.status);
                    if let Ok(value) = HeaderValue::from_str(&location) {
                        response.headers_mut().insert(LOCATION, value);
                    }
                    response
                }
                Action::Aggregate(aggregate) => {
                    let cached = rule.guard.cached(head, &host, path, admitted.as_ref());
                    let aggregating = pin!(
                        self.aggregate(table, conn, entry, aggregate, head, normalized, exchange)
                    );
                    match cached {
                        Some(cached) => self.through_cache(&rule.route, cached, aggregating).await,
                        None => aggregating.await,
                    }
                }
                Action::Forward(backends) => {
                    let Some(name) = backends.pick(fastrand::u64(..)) else {
                        return local(StatusCode::INTERNAL_SERVER_ERROR);
                    };
                    let Some(primary) = table.backends.get(name) else {
                        return local(StatusCode::INTERNAL_SERVER_ERROR);
                    };
                    let cached = rule.guard.cached(head, &host, path, admitted.as_ref());
                    // Pinned where it is made, in this future's own state: not built elsewhere and
                    // copied in (kilobytes), and no allocation.
                    let forwarding = pin!(self.forward(
                        table, conn, entry, primary, head, body, normalized, exchange
                    ));
                    match cached {
                        Some(cached) => self.through_cache(&rule.route, cached, forwarding).await,
                        None => forwarding.await,
                    }
                }
            }
        };
        if let (
            Some(rate),
            Some(Admitted {
                rate: Some(decision),
                ..
            }),
        ) = (&rule.guard.rate, &admitted)
        {
            materialize(&mut response);
            rate.decorate(decision, response.headers_mut());
        }
        if let Some(cors) = cors {
            materialize(&mut response);
            cors.decorate(origin.as_ref(), response.headers_mut());
        }
        response
    }

    /// Answers from the rule's cache, or from `action` (pinned by the caller), counting how.
    async fn through_cache<F>(
        &self,
        route: &Arc<str>,
        (cache, keyed): (&Cache, Keyed),
        action: Pin<&mut F>,
    ) -> Response<Body>
    where
        F: Future<Output = Response<Body>>,
    {
        let (response, outcome) = cache.serve(&keyed, action).await;
        self.metrics.cache_outcome(route, outcome);
        response
    }

    #[allow(clippy::too_many_arguments)]
    async fn forward<B>(
        &self,
        table: &Arc<RouteTable>,
        conn: &Connection,
        entry: &RouteEntry,
        primary: &Arc<Backend>,
        head: &mut Parts,
        body: B,
        normalized: Option<String>,
        exchange: &mut Exchange,
    ) -> Response<Body>
    where
        B: HttpBody<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        let rule = &entry.rule;
        let Some(backend) = table.available_backend(primary) else {
            exchange.backend = Some(primary.label.clone());
            self.metrics.upstream_error(primary.name(), "no_endpoint");
            return local(StatusCode::SERVICE_UNAVAILABLE);
        };
        exchange.backend = Some(backend.label.clone());
        let Some(admission) = backend.admit() else {
            self.metrics.upstream_error(backend.name(), "overloaded");
            return local(StatusCode::SERVICE_UNAVAILABLE);
        };
        exchange.admission = Some(admission);

        // An upgrade needs hyper's handle on the client connection, which hyper gives only to
        // requests that may upgrade: a request without one (the plain server's never ask) is
        // forwarded as an ordinary request, its headers not even looked at.
        let (upgrade, client_upgrade) = match head.extensions.remove::<OnUpgrade>() {
            Some(on) => match upgrade_request(head.version, &head.headers, &rule.policy.upgrades) {
                Some(protocol) => (Some(protocol), Some(on)),
                None => (None, None),
            },
            None => (None, None),
        };
        let hash = hash_key(backend, head, exchange);
        let trusted = self.settings.trusted_proxies.contains(conn.peer.ip());
        let mut template = match request::template(head, conn, trusted, entry, normalized, upgrade)
        {
            Ok(template) => template,
            Err(status) => return local(status),
        };

        let wants_replay = rule.policy.retry.is_some() || !rule.filters.mirrors.is_empty();
        let body = match self
            .buffer_body(body, wants_replay, rule.policy.max_request_body, exchange)
            .await
        {
            Ok(body) => body,
            Err(status) => return local(status),
        };
        if let UpstreamBody::Replayable(bytes) = &body {
            mirror::spawn(
                table,
                &self.metrics,
                &rule.filters.mirrors,
                &template,
                bytes,
            );
        }

        // `request` counts from the request's arrival, for the head as for the body.
        let request_deadline = rule
            .policy
            .request_timeout
            .and_then(|limit| tokio::time::Instant::from_std(exchange.start).checked_add(limit));
        // Pinned where it is made, in a block of its own: not copied into a wrapper, and its
        // slot ends with the block.
        let result = {
            let sending = pin!(attempt::send(
                self,
                backend,
                &rule.policy,
                &mut template,
                body,
                hash,
                exchange
            ));
            match deadline::within(request_deadline, sending).await {
                Some(result) => result,
                None => {
                    self.metrics
                        .upstream_error(backend.name(), "request_timeout");
                    Err(Failure::Timeout)
                }
            }
        };
        let mut response = match result {
            Ok(response) => response,
            Err(failure) => {
                let mut response = local(failure.status());
                if let Failure::Client(_) = failure {
                    // What is left of the client's body is never read.
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                return response;
            }
        };
        if let (Some(client), StatusCode::SWITCHING_PROTOCOLS) = (client_upgrade, response.status())
        {
            let upstream = hyper::upgrade::on(&mut response);
            upgrade::splice(client, upstream);
            let (parts, _) = response.into_parts();
            return Response::from_parts(parts, body::empty());
        }
        // Changed where it is: a response is not taken apart and made again. Relayed fields
        // (`upstream::Relayed`) hold nothing hop-by-hop; a filter that reads or changes the
        // fields needs them in the map.
        strip_hop_by_hop(response.headers_mut());
        if let Some(modifier) = &rule.filters.response_headers {
            materialize(&mut response);
            modifier.apply(response.headers_mut());
        }
        let deadline = match (request_deadline, exchange.attempt_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let idle = rule.policy.backend_idle;
        if (deadline.is_none() && idle.is_none()) || response.body().is_end_stream() {
            return response;
        }
        response.map(|body| Body::Deadline(Box::new(DeadlineBody::new(body, deadline, idle))))
    }

    /// Buffers the body when it is empty, or when it should be replayable and is known to be
    /// small; streams it otherwise, at most `limit` bytes of it, watched for the client's
    /// faults (`exchange.client_fault`).
    async fn buffer_body<B>(
        &self,
        body: B,
        wants_replay: bool,
        limit: u64,
        exchange: &mut Exchange,
    ) -> Result<UpstreamBody, StatusCode>
    where
        B: HttpBody<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        if body.is_end_stream() {
            return Ok(UpstreamBody::Replayable(Bytes::new()));
        }
        let buffered = self.settings.max_buffered_body;
        let small = body
            .size_hint()
            .exact()
            .is_some_and(|n| n <= buffered as u64);
        if wants_replay && small {
            let collected = Limited::new(body, buffered).collect().await;
            return match collected {
                Ok(collected) => Ok(UpstreamBody::Replayable(collected.to_bytes())),
                Err(_) => Err(StatusCode::BAD_REQUEST),
            };
        }
        let fault = ClientFault::default();
        exchange.client_fault = Some(fault.clone());
        let streamed = Body::boxed(ClientBody::new(Body::boxed(body), limit, fault));
        Ok(UpstreamBody::Stream(Some(streamed)))
    }
}

/// The consistent-hash key of a request for `backend`, if it hashes one.
fn hash_key(backend: &Backend, req: &Parts, exchange: &Exchange) -> Option<u64> {
    match backend.spec.hash_on.as_ref()? {
        HashOn::Header(name) => req
            .headers
            .get(name)
            .map(|value| hash_bytes(value.as_bytes())),
        HashOn::Cookie(name) => cookie(req, name).map(|value| hash_bytes(value.as_bytes())),
        HashOn::ClientIp => Some(match exchange.client {
            std::net::IpAddr::V4(ip) => hash_bytes(&ip.octets()),
            std::net::IpAddr::V6(ip) => hash_bytes(&ip.octets()),
        }),
    }
}

fn cookie<'a>(req: &'a Parts, name: &str) -> Option<&'a str> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// The header that tells a client its request reached a rule this gateway does not serve, with
/// the reason (`UnsupportedValue`, `SecretNotFound`, ...).
pub const UNSERVED_HEADER: &str = "portcullis-unserved";

/// The 503 of a rule this build cannot serve: the reasons a client may read, and the reason
/// code in [`UNSERVED_HEADER`].
fn unserved_response(unserved: &Unserved) -> Response<Body> {
    let mut response = Response::new(body::full(unserved.body.clone()));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        UNSERVED_HEADER,
        HeaderValue::from_static(unserved.labels.reason),
    );
    response
}

/// A response the gateway makes itself: the status and its reason as plain text.
pub fn local(status: StatusCode) -> Response<Body> {
    let text = format!("{}\n", status.canonical_reason().unwrap_or("error"));
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
