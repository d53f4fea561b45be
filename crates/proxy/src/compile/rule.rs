//! Rules and matches: snapshot → [`Rule`] and [`RequestMatch`]; a rule this proxy cannot serve
//! as written answers 503.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use portcullis_config::{
    capability::{self, Gap},
    snapshot::{
        Action as ActionConfig, FilterConfig, HeaderModifierConfig, MatchConfig, PathMatchType,
        PathModifierConfig, PathModifierType, RetryOn, RuleConfig, Scheme as SchemeConfig,
        Snapshot, ValueMatchConfig, ValueMatchType,
    },
};

use super::Secrets;
use crate::{
    filters::{Cors, Filters, HeaderModifier, Mirror, PathRewrite, Redirect, Scheme, UrlRewrite},
    guard::{Engines, Guard},
    metrics::{Label, UnservedLabels},
    route::{
        Action, Aggregate, AggregatePart, DEFAULT_BACKEND_IDLE, HeaderCondition, PartTarget,
        PathMatch, Policy, QueryCondition, RequestMatch, RetryPolicy, Rule, Unserved, ValueMatch,
        WeightedBackend, WeightedBackends,
    },
};

/// Compiles one rule. A rule this build cannot serve as written — what
/// [`capability::unservable`] finds, a value that does not compile, or one of `gaps` (found
/// by the caller, such as a match that does not compile) — answers 503 with the reasons.
pub fn compile(
    config: &RuleConfig,
    snapshot: &Snapshot,
    secrets: &Secrets,
    engines: (&Engines, &mut Engines),
    mut gaps: Vec<Gap>,
) -> Rule {
    let index = config.rule_index;
    gaps.extend(capability::unservable(config, |file| secrets.state(file)));
    let mut fail = |field: &str, message: String| {
        gaps.push(Gap::new(index, field, capability::reason::INVALID, message));
    };
    let policies = &config.policies;
    let mut filters = Filters {
        cors: policies.cors.as_ref().map(|c| Cors {
            allow_origins: c.allow_origins.clone(),
            allow_methods: c.allow_methods.clone(),
            allow_headers: c.allow_headers.clone(),
            expose_headers: c.expose_headers.clone(),
            allow_credentials: c.allow_credentials,
            max_age: c.max_age,
        }),
        ..Filters::default()
    };
    for filter in &config.filters {
        match filter {
            FilterConfig::RequestHeaderModifier(m) => match header_modifier(m) {
                Ok(m) => filters.request_headers = Some(m),
                Err(e) => fail("filters", format!("RequestHeaderModifier: {e}")),
            },
            FilterConfig::ResponseHeaderModifier(m) => match header_modifier(m) {
                Ok(m) => filters.response_headers = Some(m),
                Err(e) => fail("filters", format!("ResponseHeaderModifier: {e}")),
            },
            FilterConfig::UrlRewrite(rewrite) => {
                let hostname = match rewrite.hostname.as_deref().map(HeaderValue::from_str) {
                    Some(Ok(value)) => Some(value),
                    Some(Err(_)) => {
                        fail(
                            "filters",
                            "URLRewrite: hostname is not a valid header value".to_owned(),
                        );
                        None
                    }
                    None => None,
                };
                filters.url_rewrite = Some(UrlRewrite {
                    hostname,
                    path: rewrite.path.as_ref().map(path_rewrite),
                });
            }
            FilterConfig::RequestMirror(mirror) => {
                // A mirror whose backend did not resolve mirrors nothing; the request is served.
                if let Some(backend) = &mirror.backend
                    && snapshot.backends.contains_key(backend)
                {
                    filters.mirrors.push(Mirror {
                        backend: backend.clone(),
                        percent: mirror.percent.min(100),
                        max_in_flight: mirror.max_in_flight.max(1),
                        in_flight: Default::default(),
                    });
                }
            }
        }
    }
    let action = match &config.action {
        ActionConfig::Backends { backends } => Action::Forward(WeightedBackends::new(
            backends
                .iter()
                .map(|b| WeightedBackend {
                    backend: b
                        .backend
                        .clone()
                        .filter(|name| snapshot.backends.contains_key(name)),
                    weight: b.weight,
                })
                .collect(),
        )),
        ActionConfig::Aggregate { parts } => Action::Aggregate(Aggregate {
            parts: parts
                .iter()
                .map(|part| AggregatePart {
                    name: part.name.clone(),
                    backend: part
                        .backend
                        .clone()
                        .filter(|name| snapshot.backends.contains_key(name)),
                    target: PartTarget::new(&part.path),
                    timeout: timeout(Some(part.timeout_ms)),
                    on_failure: part.on_failure,
                })
                .collect(),
        }),
        ActionConfig::Redirect(redirect) => match StatusCode::from_u16(redirect.status_code) {
            Ok(status) if status.is_redirection() => Action::Redirect(Redirect {
                scheme: redirect.scheme.map(|s| match s {
                    SchemeConfig::Http => Scheme::Http,
                    SchemeConfig::Https => Scheme::Https,
                }),
                hostname: redirect.hostname.clone(),
                port: redirect.port,
                path: redirect.path.as_ref().map(path_rewrite),
                status,
            }),
            _ => {
                fail(
                    "filters",
                    format!(
                        "RequestRedirect: statusCode {} is not a redirect",
                        redirect.status_code
                    ),
                );
                Action::Status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        },
    };
    let route: Arc<str> = Arc::from(config.route.to_string());
    // The policies' engines are only built for a rule the capability check let through (a
    // missing Secret is reported there, once).
    let guard = if gaps.is_empty() {
        let (previous, next) = engines;
        let names = (&snapshot.gateway, &route);
        match super::policy::compile(config, secrets, names, previous, next) {
            Ok(guard) => guard,
            Err(gap) => {
                gaps.push(gap);
                Guard::default()
            }
        }
    } else {
        Guard::default()
    };
    if !gaps.is_empty() {
        return unserved(route, index, &gaps);
    }
    let policy = Policy {
        request_timeout: timeout(policies.timeouts.request_ms),
        backend_timeout: timeout(policies.timeouts.backend_request_ms),
        backend_idle: match policies.timeouts.backend_idle_ms {
            None => Some(DEFAULT_BACKEND_IDLE),
            configured => timeout(configured),
        },
        max_request_body: policies
            .max_request_body_bytes
            .unwrap_or(portcullis_api::policy::DEFAULT_MAX_REQUEST_BODY_BYTES),
        upgrades: config
            .upgrades
            .clone()
            .unwrap_or_else(|| vec!["websocket".to_owned()]),
        retry: policies.retry.as_ref().map(|retry| RetryPolicy {
            attempts: retry.attempts,
            on_gateway_error: retry
                .retry_on
                .iter()
                .any(|on| matches!(on, RetryOn::GatewayError)),
            on_server_error: retry
                .retry_on
                .iter()
                .any(|on| matches!(on, RetryOn::ServerError)),
            codes: retry.codes.clone().into_boxed_slice(),
            backoff: Duration::from_millis(retry.backoff_ms),
            budget_percent: retry.budget_percent,
            non_idempotent: retry.non_idempotent,
        }),
    };
    Rule {
        route,
        index,
        filters,
        action,
        policy,
        guard,
    }
}

/// A rule that answers every request with 503 and the reasons in `gaps` (never empty): no
/// filter, no backend, no policy of it runs.
fn unserved(route: Arc<str>, index: usize, gaps: &[Gap]) -> Rule {
    let mut body =
        format!("Service Unavailable: Route {route} rule {index} is not served by this gateway:\n");
    for gap in gaps {
        body.push_str("  ");
        body.push_str(&gap.public());
        body.push('\n');
    }
    let reason = gaps
        .first()
        .map_or(capability::reason::INVALID, |g| g.reason);
    Rule {
        route: route.clone(),
        index,
        filters: Filters::default(),
        action: Action::Unserved(Unserved {
            reasons: gaps.iter().map(ToString::to_string).collect(),
            labels: UnservedLabels {
                route: Label(Some(route)),
                rule: index.to_string(),
                reason,
            },
            body: Bytes::from(body),
        }),
        policy: Policy::default(),
        guard: Guard::default(),
    }
}

/// `0` disables a timeout, like leaving it out.
fn timeout(ms: Option<u64>) -> Option<Duration> {
    ms.filter(|ms| *ms > 0).map(Duration::from_millis)
}

fn path_rewrite(config: &PathModifierConfig) -> PathRewrite {
    match config.kind {
        PathModifierType::ReplaceFullPath => PathRewrite::Full(config.value.clone()),
        PathModifierType::ReplacePrefixMatch => PathRewrite::Prefix(config.value.clone()),
    }
}

fn header_modifier(config: &HeaderModifierConfig) -> Result<HeaderModifier, String> {
    let pair = |name: &str, value: &str| -> Result<(HeaderName, HeaderValue), String> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a valid header name"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of {name} is not a valid header value"))?;
        Ok((name, value))
    };
    Ok(HeaderModifier {
        set: config
            .set
            .iter()
            .map(|h| pair(&h.name, &h.value))
            .collect::<Result<_, _>>()?,
        add: config
            .add
            .iter()
            .map(|h| pair(&h.name, &h.value))
            .collect::<Result<_, _>>()?,
        remove: config
            .remove
            .iter()
            .map(|name| {
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("{name:?} is not a valid header name"))
            })
            .collect::<Result<_, _>>()?,
    })
}

/// Compiles the conditions of one entry.
pub fn compile_match(config: &MatchConfig) -> Result<RequestMatch, String> {
    let path = match config.path.kind {
        PathMatchType::Exact => PathMatch::Exact(config.path.value.clone()),
        PathMatchType::PathPrefix => PathMatch::prefix(&config.path.value),
        PathMatchType::RegularExpression => PathMatch::regex(&config.path.value)
            .map_err(|e| format!("path regular expression: {e}"))?,
    };
    let method = config
        .method
        .map(|m| Method::from_bytes(m.as_str().as_bytes()))
        .transpose()
        .map_err(|e| format!("method: {e}"))?;
    let headers = config
        .headers
        .iter()
        .map(|h| {
            Ok(HeaderCondition {
                name: HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| format!("{:?} is not a valid header name", h.name))?,
                value: value_match(h)?,
            })
        })
        .collect::<Result<_, String>>()?;
    let query = config
        .query_params
        .iter()
        .map(|q| {
            Ok(QueryCondition {
                name: q.name.clone(),
                value: value_match(q)?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(RequestMatch {
        path,
        method,
        headers,
        query,
    })
}

fn value_match(config: &ValueMatchConfig) -> Result<ValueMatch, String> {
    match config.kind {
        ValueMatchType::Exact => Ok(ValueMatch::Exact(config.value.clone())),
        ValueMatchType::RegularExpression => ValueMatch::regex(&config.value)
            .map_err(|e| format!("{}: regular expression: {e}", config.name)),
    }
}
