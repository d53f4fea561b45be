//! Aggregation: one request fans out to the parts of an aggregate rule in parallel, and their
//! JSON bodies come back as one object keyed by part name.
//!
//! Each part is an ordinary upstream request (`attempt::send`: failover, circuit breaker, load
//! balancing, pooled connections, retries, outlier accounting), made from the client's request
//! as forwarding makes it (hop-by-hop fields dropped, `X-Forwarded-*`, the rule's
//! `URLRewrite` and request header filter), except that:
//! - the method is `GET` and the client's body is not sent (nor the fields that describe it);
//! - the target is the part's path with `{path}` replaced by the request's path (after the
//!   rewrite), and the request's query appended only when the part's path has no query of its
//!   own;
//! - `Accept: application/json` is asked for, without content codings or conditions, since the
//!   answer must be JSON that Portcullis can read.
//!
//! A part fails when it cannot be sent, times out (its own `timeout`, else the rule's), answers
//! anything but 2xx, answers more than [`MAX_PART_BODY`] bytes, or answers something that is
//! not JSON (`application/json` or `application/*+json`, and valid). A failed `Fail` part
//! fails the whole answer: 502, or 504 when it timed out, at once (the other parts are
//! abandoned). A failed `Tolerate` part is `null`, a failed `Omit` part is left out, and both
//! are listed under [`ERRORS_KEY`]: an object from part name to a short reason.

use std::{fmt, net::IpAddr, pin::pin, sync::Arc};

use bytes::Bytes;
use futures::future::try_join_all;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode,
    header::{
        ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, IF_MATCH,
        IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
    },
    request::Parts,
    uri::PathAndQuery,
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use portcullis_config::snapshot::PartFailurePolicy;
use tokio::time::Instant;

use super::{
    Connection, Exchange, Failure, UpstreamBody, attempt, deadline, hash_key, local, request,
};
use crate::{
    body::{self, Body},
    gateway::Gateway,
    route::{Aggregate, AggregatePart, RouteEntry, RouteTable, Rule},
    upstream::{Admission, Backend, RequestTemplate, materialize},
};

/// The largest body a part may answer with; a larger one fails the part.
pub const MAX_PART_BODY: usize = 1024 * 1024;

/// The key of the merged object that lists the parts that failed (`Tolerate` and `Omit`), each
/// with a short reason.
pub const ERRORS_KEY: &str = "_errors";

/// Fields of the client's request that are not sent to parts: they describe a body the parts
/// do not get, or would let a part answer with something other than a whole, plain JSON body.
static NOT_SENT_TO_PARTS: [HeaderName; 11] = [
    CONTENT_LENGTH,
    CONTENT_TYPE,
    CONTENT_ENCODING,
    EXPECT,
    ACCEPT_ENCODING,
    RANGE,
    IF_RANGE,
    IF_MATCH,
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_UNMODIFIED_SINCE,
];

/// Why a part has no body to merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartFailure {
    /// The part's ServiceBackend is not in the configuration.
    NoBackend,
    /// Neither the backend nor its failover has an available endpoint.
    NoEndpoint,
    /// The backend's circuit breaker is open.
    Overloaded,
    /// The part's path, with the request's in it, is not a valid request target.
    BadTarget,
    /// The request failed upstream (connect, reset, timeout).
    Upstream(Failure),
    /// The backend answered a status other than 2xx.
    Status(StatusCode),
    /// The body is larger than [`MAX_PART_BODY`].
    TooLarge,
    /// The body is not JSON.
    NotJson,
}

impl PartFailure {
    /// The status of the whole answer when a `Fail` part fails so.
    fn status(self) -> StatusCode {
        match self {
            PartFailure::Upstream(Failure::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

impl fmt::Display for PartFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartFailure::NoBackend => f.write_str("backend not found"),
            PartFailure::NoEndpoint => f.write_str("no available endpoint"),
            PartFailure::Overloaded => f.write_str("backend overloaded"),
            PartFailure::BadTarget => f.write_str("invalid path"),
            PartFailure::Upstream(Failure::Connect) => f.write_str("connection failed"),
            PartFailure::Upstream(Failure::Reset) => f.write_str("connection reset"),
            PartFailure::Upstream(Failure::Timeout) => f.write_str("timed out"),
            PartFailure::Upstream(Failure::Client(status)) => {
                write!(f, "refused the client's request: {}", status.as_u16())
            }
            PartFailure::Upstream(Failure::Status(status)) | PartFailure::Status(status) => {
                write!(f, "status {}", status.as_u16())
            }
            PartFailure::TooLarge => write!(f, "body over {} bytes", MAX_PART_BODY),
            PartFailure::NotJson => f.write_str("not JSON"),
        }
    }
}

/// A part ready to be sent: its backend (after failover), its circuit-breaker slot (held until
/// its body is read) and its consistent-hash key.
struct Ready<'a> {
    backend: &'a Arc<Backend>,
    _admission: Admission,
    hash: Option<u64>,
}

/// A `Fail` part that failed: the whole answer fails.
struct FailedPart<'a> {
    name: &'a str,
    failure: PartFailure,
}

impl Gateway {
    /// Serves a request with an aggregate rule: the parts in parallel, their bodies merged
    /// into one JSON object, or 502/504 when a `Fail` part fails.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn aggregate(
        &self,
        table: &Arc<RouteTable>,
        conn: &Connection,
        entry: &RouteEntry,
        aggregate: &Aggregate,
        head: &mut Parts,
        normalized: Option<String>,
        exchange: &mut Exchange,
    ) -> Response<Body> {
        let rule = &entry.rule;
        // Backends, circuit breakers and hash keys first: the hash reads the client's headers,
        // which the template takes.
        let ready: Vec<Result<Ready<'_>, PartFailure>> = aggregate
            .parts
            .iter()
            .map(|part| self.ready(table, part, head, exchange))
            .collect();
        let trusted = self.settings.trusted_proxies.contains(conn.peer.ip());
        let mut base = match request::template(head, conn, trusted, entry, normalized, None) {
            Ok(template) => template,
            Err(status) => return local(status),
        };
        base.method = Method::GET;
        // The part's fields are read here, so they must be in the map.
        base.relay = false;
        for name in &NOT_SENT_TO_PARTS {
            base.headers.remove(name);
        }
        base.headers
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        let path = base.path_and_query.path().to_owned();
        let query = base.path_and_query.query().map(str::to_owned);
        let request_deadline = rule
            .policy
            .request_timeout
            .and_then(|limit| Instant::from_std(exchange.start).checked_add(limit));

        let calls = aggregate.parts.iter().zip(ready).map(|(part, ready)| {
            let target = part.target.render(&path, query.as_deref());
            let base = &base;
            let client = exchange.client;
            async move {
                let outcome = match ready {
                    Ok(ready) => {
                        self.call(rule, part, ready, base, target, client, request_deadline)
                            .await
                    }
                    Err(failure) => Err(failure),
                };
                match (outcome, part.on_failure) {
                    (Err(failure), PartFailurePolicy::Fail) => Err(FailedPart {
                        name: &part.name,
                        failure,
                    }),
                    (outcome, _) => Ok(outcome),
                }
            }
        });
        let outcomes = match try_join_all(calls).await {
            Ok(outcomes) => outcomes,
            Err(FailedPart { name, failure }) => {
                tracing::debug!(route = %rule.route, part = name, %failure, "aggregate part failed");
                return failed(name, failure);
            }
        };
        let mut response = Response::new(body::full(merge(&aggregate.parts, &outcomes)));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(modifier) = &rule.filters.response_headers {
            modifier.apply(response.headers_mut());
        }
        response
    }

    /// The backend a part goes to and its circuit-breaker slot, as forwarding chooses them.
    fn ready<'a>(
        &self,
        table: &'a RouteTable,
        part: &AggregatePart,
        head: &Parts,
        exchange: &Exchange,
    ) -> Result<Ready<'a>, PartFailure> {
        let primary = part
            .backend
            .as_ref()
            .and_then(|name| table.backends.get(name))
            .ok_or(PartFailure::NoBackend)?;
        let Some(backend) = table.available_backend(primary) else {
            self.metrics.upstream_error(primary.name(), "no_endpoint");
            return Err(PartFailure::NoEndpoint);
        };
        let Some(admission) = backend.admit() else {
            self.metrics.upstream_error(backend.name(), "overloaded");
            return Err(PartFailure::Overloaded);
        };
        Ok(Ready {
            backend,
            _admission: admission,
            hash: hash_key(backend, head, exchange),
        })
    }

    /// Sends one part and reads its JSON body, within the part's time limit and the rule's.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        rule: &Rule,
        part: &AggregatePart,
        ready: Ready<'_>,
        base: &RequestTemplate,
        target: String,
        client: IpAddr,
        request_deadline: Option<Instant>,
    ) -> Result<Bytes, PartFailure> {
        let mut template = base.clone();
        template.path_and_query =
            PathAndQuery::try_from(target).map_err(|_| PartFailure::BadTarget)?;
        let deadline = match (
            part.timeout.and_then(|t| Instant::now().checked_add(t)),
            request_deadline,
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // The part's own exchange holds its endpoint's in-flight count until its body is read.
        let mut part_exchange = Exchange::new(client, Method::GET);
        let backend = ready.backend;
        let calling = pin!(async {
            let response = attempt::send(
                self,
                backend,
                &rule.policy,
                &mut template,
                UpstreamBody::Replayable(Bytes::new()),
                ready.hash,
                &mut part_exchange,
            )
            .await
            .map_err(PartFailure::Upstream)?;
            read_json(response, part_exchange.attempt_deadline).await
        });
        match deadline::within(deadline, calling).await {
            Some(outcome) => outcome,
            None => {
                self.metrics.upstream_error(backend.name(), "part_timeout");
                Err(PartFailure::Upstream(Failure::Timeout))
            }
        }
    }
}

/// The body of a part's response, when it is 2xx, JSON and small enough; read by `deadline`
/// (the attempt's `backendRequest` limit, which covers the body as it does when forwarding).
async fn read_json(
    mut response: Response<Body>,
    deadline: Option<Instant>,
) -> Result<Bytes, PartFailure> {
    let status = response.status();
    if !status.is_success() {
        return Err(PartFailure::Status(status));
    }
    materialize(&mut response);
    let headers = response.headers();
    if !is_json(headers) {
        return Err(PartFailure::NotJson);
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_PART_BODY as u64) {
        return Err(PartFailure::TooLarge);
    }
    let reading = pin!(Limited::new(response.into_body(), MAX_PART_BODY).collect());
    let bytes = match deadline::within(deadline, reading).await {
        Some(Ok(collected)) => collected.to_bytes(),
        Some(Err(error)) if error.is::<LengthLimitError>() => return Err(PartFailure::TooLarge),
        Some(Err(_)) => return Err(PartFailure::Upstream(Failure::Reset)),
        None => return Err(PartFailure::Upstream(Failure::Timeout)),
    };
    if is_json_text(&bytes) {
        Ok(bytes)
    } else {
        Err(PartFailure::NotJson)
    }
}

/// Whether the response says its body is JSON: `application/json` or `application/*+json`.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
}

/// Whether `bytes` is one JSON value (UTF-8, nothing after it but whitespace): then it can be
/// put into the merged object as it is, without being parsed into a tree and written again.
fn is_json_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes)
        .is_ok_and(|text| serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok())
}

/// The merged object: each part's body under its name, in the Route's order; a failed part
/// `null` (`Tolerate`) or absent (`Omit`), and listed under [`ERRORS_KEY`].
fn merge(parts: &[AggregatePart], outcomes: &[Result<Bytes, PartFailure>]) -> Bytes {
    let size: usize = outcomes
        .iter()
        .map(|o| o.as_ref().map_or(0, Bytes::len))
        .sum();
    let mut out = Vec::with_capacity(size + 32 * parts.len() + 2);
    let mut errors = Vec::new();
    out.push(b'{');
    for (part, outcome) in parts.iter().zip(outcomes) {
        let value: &[u8] = match outcome {
            Ok(json) => json,
            Err(failure) => {
                errors.push((part.name.as_str(), failure.to_string()));
                if part.on_failure == PartFailurePolicy::Omit {
                    continue;
                }
                b"null"
            }
        };
        push_key(&mut out, &part.name);
        out.extend_from_slice(value);
    }
    if !errors.is_empty() {
        push_key(&mut out, ERRORS_KEY);
        out.push(b'{');
        for (i, (name, reason)) in errors.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_string(&mut out, name);
            out.push(b':');
            push_string(&mut out, reason);
        }
        out.push(b'}');
    }
    out.push(b'}');
    Bytes::from(out)
}

/// Writes `"key":`, after a comma unless it is the object's first member.
fn push_key(out: &mut Vec<u8>, key: &str) {
    if out.len() > 1 {
        out.push(b',');
    }
    push_string(out, key);
    out.push(b':');
}

fn push_string(out: &mut Vec<u8>, text: &str) {
    // A `&str` always serializes; the fallback keeps the object valid regardless.
    match serde_json::to_vec(text) {
        Ok(json) => out.extend_from_slice(&json),
        Err(_) => out.extend_from_slice(b"\"\""),
    }
}

/// The answer when a `Fail` part fails: 502 (504 on a timeout), naming the part.
fn failed(name: &str, failure: PartFailure) -> Response<Body> {
    let status = failure.status();
    let text = format!(
        "{}: part {name:?} of this aggregate failed: {failure}\n",
        status.canonical_reason().unwrap_or("error")
    );
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::route::PartTarget;

    fn part(name: &str, on_failure: PartFailurePolicy) -> AggregatePart {
        AggregatePart {
            name: name.to_owned(),
            backend: None,
            target: PartTarget::new("/"),
            timeout: Some(Duration::from_secs(1)),
            on_failure,
        }
    }

    #[test]
    fn merged_parts_keep_their_bodies_and_the_routes_order() {
        let parts = [
            part("user", PartFailurePolicy::Fail),
            part("orders", PartFailurePolicy::Tolerate),
        ];
        let merged = merge(
            &parts,
            &[
                Ok(Bytes::from_static(b"{\"id\": 1}")),
                Ok(Bytes::from_static(b"[1,2]")),
            ],
        );
        assert_eq!(merged, "{\"user\":{\"id\": 1},\"orders\":[1,2]}");
    }

    #[test]
    fn failed_parts_are_null_or_absent_and_listed_with_their_reason() {
        let parts = [
            part("user", PartFailurePolicy::Fail),
            part("orders", PartFailurePolicy::Tolerate),
            part("tips", PartFailurePolicy::Omit),
        ];
        let merged = merge(
            &parts,
            &[
                Ok(Bytes::from_static(b"{}")),
                Err(PartFailure::Upstream(Failure::Timeout)),
                Err(PartFailure::Status(StatusCode::NOT_FOUND)),
            ],
        );
        let value: serde_json::Value = serde_json::from_slice(&merged).expect("valid JSON");
        assert_eq!(
            value,
            serde_json::json!({
                "user": {},
                "orders": null,
                "_errors": { "orders": "timed out", "tips": "status 404" },
            })
        );
    }

    #[test]
    fn json_is_recognized_by_its_media_type_and_its_text() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/problem+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonp"));
        assert!(!is_json(&HeaderMap::new()));
        assert!(is_json_text(b" {\"a\": [1, \"\\u00e9\"]} \n"));
        assert!(is_json_text(b"null"));
        assert!(!is_json_text(b""));
        assert!(!is_json_text(b"{\"a\": 1} trailing"));
        assert!(!is_json_text(b"{\"a\": \"\xff\"}"));
        assert!(!is_json_text(b"<html></html>"));
    }

    #[test]
    fn a_failing_part_fails_the_whole_answer_with_a_gateway_status() {
        assert_eq!(
            PartFailure::Upstream(Failure::Timeout).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        for failure in [
            PartFailure::NoBackend,
            PartFailure::Upstream(Failure::Connect),
            PartFailure::Status(StatusCode::INTERNAL_SERVER_ERROR),
            PartFailure::TooLarge,
            PartFailure::NotJson,
        ] {
            assert_eq!(failure.status(), StatusCode::BAD_GATEWAY, "{failure}");
        }
    }
}
