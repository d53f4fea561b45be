//! Sending a request to a backend: endpoint choice, per-attempt timeout, retries within the
//! budget, and outlier bookkeeping.

use std::{pin::pin, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Method, Response, StatusCode};

use super::{ClientFault, exchange::Exchange};
use crate::{
    body::{self, Body},
    gateway::Gateway,
    route::{Policy, RetryPolicy},
    upstream::{Backend, Endpoint, Outcome, RequestTemplate, SendFailure},
};

/// The request body: kept in memory (so it can be sent again) or streamed once.
pub enum UpstreamBody {
    /// Buffered; any number of attempts.
    Replayable(Bytes),
    /// Streamed; a single attempt (taken by it).
    Stream(Option<Body>),
}

impl UpstreamBody {
    fn take(&mut self) -> Option<Body> {
        match self {
            // An empty one becomes `Body::Empty`: no allocation (most requests have none).
            UpstreamBody::Replayable(bytes) => Some(body::full(bytes.clone())),
            UpstreamBody::Stream(body) => body.take(),
        }
    }

    fn replayable(&self) -> bool {
        matches!(self, UpstreamBody::Replayable(_))
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made: the request was never sent.
    Connect,
    /// The connection broke before a response.
    Reset,
    /// The backend did not answer within `backendRequest`, or went silent for `backendIdle`.
    Timeout,
    /// The backend answered with a 5xx status, or with a status the retry policy lists.
    Status(StatusCode),
    /// The client broke the attempt (its body was malformed, abandoned, too slow or too large):
    /// the client gets this status and nothing counts against the endpoint.
    Client(StatusCode),
}

impl Failure {
    /// The status the client gets when this is the last failure.
    pub fn status(self) -> StatusCode {
        match self {
            Failure::Connect => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Reset => StatusCode::BAD_GATEWAY,
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::Status(status) | Failure::Client(status) => status,
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            // A listed 4xx is the client's or the application's answer, not the endpoint failing.
            Failure::Status(s) if s.is_client_error() => Outcome::Success,
            Failure::Status(s) if !is_gateway_status(s) => Outcome::ServerError,
            _ => Outcome::GatewayError,
        }
    }

    fn metric_kind(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::Status(_) => "status_5xx",
            Failure::Client(_) => "client",
        }
    }
}

fn is_gateway_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 502..=504)
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether a failure may be retried under `policy`. A connect failure sent nothing, so it is
/// always retried, whatever the method (Gateway API: implementations should retry connection
/// errors whenever a retry stanza exists); other failures only for idempotent methods unless the
/// policy allows all.
pub fn retryable(policy: &RetryPolicy, failure: Failure, method: &Method) -> bool {
    let method_ok = policy.non_idempotent || is_idempotent(method);
    match failure {
        Failure::Connect => true,
        Failure::Reset | Failure::Timeout => policy.on_gateway_error && method_ok,
        Failure::Status(s) => {
            let by_class = if is_gateway_status(s) {
                policy.on_gateway_error || policy.on_server_error
            } else {
                policy.on_server_error && s.is_server_error()
            };
            (by_class || policy.codes.contains(&s.as_u16())) && method_ok
        }
        Failure::Client(_) => false,
    }
}

/// Whether an answer with `status` is a failed attempt: any 5xx, or a status the rule's retry
/// lists (a 429, say). Anything else is a success, whatever the policy.
fn failed(policy: &Policy, status: StatusCode) -> bool {
    status.is_server_error()
        || policy
            .retry
            .as_ref()
            .is_some_and(|retry| retry.codes.contains(&status.as_u16()))
}

/// The wait before retry number `retry` (1-based): the backoff doubled each time, with ±50 %
/// jitter so that clients retrying together spread out.
pub fn backoff(base: Duration, retry: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << retry.saturating_sub(1).min(10));
    // Checked: a huge configured backoff must not overflow into a panic.
    Duration::try_from_secs_f64(exp.as_secs_f64() * (0.5 + fastrand::f64())).unwrap_or(exp)
}

/// Sends the request to `backend`, retrying as the policy allows. On success returns the
/// response head (a 5xx that was not retried is a success here: it goes to the client as is).
pub async fn send(
    gateway: &Gateway,
    backend: &Arc<Backend>,
    policy: &Policy,
    template: &mut RequestTemplate,
    mut body: UpstreamBody,
    hash: Option<u64>,
    exchange: &mut Exchange,
) -> Result<Response<Body>, Failure> {
    let mut retries = 0u32;
    let mut last_endpoint: Option<Arc<Endpoint>> = None;
    // The retry budget's slot of the retry in flight: held until that retry has its answer.
    let mut _retry_slot = None;
    loop {
        let Some(endpoint) = backend.pick(hash, last_endpoint.as_deref()) else {
            gateway
                .metrics
                .upstream_error(backend.name(), "no_endpoint");
            return Err(Failure::Connect);
        };
        exchange.endpoint = Some(endpoint.clone());
        let Some(request_body) = body.take() else {
            return Err(Failure::Reset);
        };
        // Without any chance of a retry the headers can be taken instead of copied.
        let last = policy.retry.is_none() || !body.replayable();
        let in_flight = endpoint.start_request();
        let now = tokio::time::Instant::now();
        exchange.attempt_deadline = policy
            .backend_timeout
            .and_then(|limit| now.checked_add(limit));
        // The head must come within the attempt's deadline and before the endpoint has been
        // silent for `backendIdle`.
        let head_deadline = match (
            exchange.attempt_deadline,
            policy.backend_idle.and_then(|idle| now.checked_add(idle)),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Pinned where it is made, in a block of its own: not copied into a wrapper, and its
        // slot ends with the block.
        let result = {
            let sending = pin!(backend.send(&endpoint, template, request_body, last));
            match super::deadline::within(head_deadline, sending).await {
                Some(result) => result.map_err(classify),
                None => Err(Failure::Timeout),
            }
        };
        // The client broke the attempt: its fault, answered as such, and nothing about the
        // endpoint is learned from it.
        if let Some(status) = exchange.client_fault.as_ref().and_then(ClientFault::status)
            && result
                .as_ref()
                .map_or(true, |response| response.status().is_server_error())
        {
            return Err(Failure::Client(status));
        }
        let failure = match result {
            Ok(response) if failed(policy, response.status()) => {
                let failure = Failure::Status(response.status());
                backend.record(&endpoint, failure.outcome());
                if !can_retry(policy, failure, template, &body, retries) {
                    exchange.in_flight = Some(in_flight);
                    return Ok(response);
                }
                failure
            }
            Ok(response) => {
                backend.record(&endpoint, Outcome::Success);
                exchange.in_flight = Some(in_flight);
                return Ok(response);
            }
            Err(failure) => {
                backend.record(&endpoint, failure.outcome());
                gateway
                    .metrics
                    .upstream_error(backend.name(), failure.metric_kind());
                if !can_retry(policy, failure, template, &body, retries) {
                    return Err(failure);
                }
                failure
            }
        };
        drop(in_flight);
        let Some(retry) = &policy.retry else {
            return Err(failure);
        };
        // The previous retry (if any) has its answer: its slot goes back first.
        _retry_slot = None;
        let Some(slot) = backend.admit_retry(retry.budget_percent) else {
            return Err(failure);
        };
        _retry_slot = Some(slot);
        retries += 1;
        gateway
            .metrics
            .retries
            .get_or_create(&crate::metrics::BackendLabels {
                backend: backend.name().to_owned(),
            })
            .inc();
        tracing::debug!(backend = backend.name(), ?failure, retries, "retrying");
        tokio::time::sleep(backoff(retry.backoff, retries)).await;
        last_endpoint = Some(endpoint);
    }
}

fn can_retry(
    policy: &Policy,
    failure: Failure,
    template: &RequestTemplate,
    body: &UpstreamBody,
    retries: u32,
) -> bool {
    let Some(retry) = &policy.retry else {
        return false;
    };
    retries < retry.attempts && body.replayable() && retryable(retry, failure, &template.method)
}

fn classify(failure: SendFailure) -> Failure {
    match failure {
        SendFailure::Connect => Failure::Connect,
        SendFailure::Reset => Failure::Reset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 2,
            on_gateway_error: true,
            on_server_error: false,
            codes: Box::new([]),
            backoff: Duration::from_millis(10),
            budget_percent: 20,
            non_idempotent: false,
        }
    }

    #[test]
    fn connect_failures_are_retried_for_any_method() {
        assert!(retryable(&policy(), Failure::Connect, &Method::POST));
    }

    #[test]
    fn post_is_not_retried_after_it_may_have_been_processed() {
        assert!(!retryable(&policy(), Failure::Reset, &Method::POST));
        assert!(!retryable(
            &policy(),
            Failure::Status(StatusCode::BAD_GATEWAY),
            &Method::POST
        ));
        let all = RetryPolicy {
            non_idempotent: true,
            ..policy()
        };
        assert!(retryable(&all, Failure::Reset, &Method::POST));
    }

    #[test]
    fn plain_500_needs_the_5xx_condition() {
        let s500 = Failure::Status(StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!retryable(&policy(), s500, &Method::GET));
        let on5xx = RetryPolicy {
            on_server_error: true,
            ..policy()
        };
        assert!(retryable(&on5xx, s500, &Method::GET));
        assert!(retryable(
            &policy(),
            Failure::Status(StatusCode::SERVICE_UNAVAILABLE),
            &Method::GET
        ));
    }

    #[test]
    fn listed_codes_are_retried_beside_the_classes_for_idempotent_methods_only() {
        let codes = RetryPolicy {
            on_gateway_error: false,
            codes: Box::new([429, 500]),
            ..policy()
        };
        let status = |s: u16| Failure::Status(StatusCode::from_u16(s).expect("status"));
        assert!(retryable(&codes, status(429), &Method::GET));
        assert!(retryable(&codes, status(500), &Method::GET));
        assert!(!retryable(&codes, status(503), &Method::GET), "not listed");
        assert!(!retryable(&codes, status(429), &Method::POST));
        let both = RetryPolicy {
            codes: Box::new([429]),
            ..policy()
        };
        assert!(retryable(&both, status(429), &Method::GET));
        assert!(retryable(&both, status(502), &Method::GET));
        assert!(!retryable(&both, status(500), &Method::GET));
    }

    #[test]
    fn a_listed_status_fails_the_attempt_but_does_not_count_against_the_endpoint() {
        let mut rule = Policy::default();
        assert!(!failed(&rule, StatusCode::TOO_MANY_REQUESTS));
        assert!(failed(&rule, StatusCode::INTERNAL_SERVER_ERROR));
        rule.retry = Some(RetryPolicy {
            codes: Box::new([429]),
            ..policy()
        });
        assert!(failed(&rule, StatusCode::TOO_MANY_REQUESTS));
        assert!(!failed(&rule, StatusCode::NOT_FOUND));
        assert_eq!(
            Failure::Status(StatusCode::TOO_MANY_REQUESTS).outcome(),
            Outcome::Success
        );
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        let base = Duration::from_millis(100);
        for retry in 1..4 {
            let expected = 100.0 * f64::from(1u32 << (retry - 1));
            let got = backoff(base, retry).as_secs_f64() * 1000.0;
            assert!(got >= expected * 0.5 && got <= expected * 1.5, "{got}");
        }
    }
}
