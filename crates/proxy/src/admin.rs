//! The admin listener: `/healthz`, `/ready`, `/metrics` and `/config`, read-only; and
//! `POST /cache/purge` when a purge token is configured ([`crate::purge`]). It stays up during
//! a drain so that load balancers can see `/ready` turn 503.

use std::{convert::Infallible, sync::Arc};

use http::{HeaderValue, Request, Response, StatusCode, header::CONTENT_TYPE};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::{
    access_log::rfc3339,
    body::{self, Body},
    gateway::Gateway,
    metrics::EndpointLabels,
    purge::{self, PurgeToken},
    route::Action,
};

/// Serves the admin endpoints on `listener` until the task is dropped.
pub fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    purge_token: Option<PurgeToken>,
) -> tokio::task::JoinHandle<()> {
    let purge_token = purge_token.map(Arc::new);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let gateway = gateway.clone();
            let purge_token = purge_token.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let gateway = gateway.clone();
                    let purge_token = purge_token.clone();
                    async move {
                        if req.uri().path() == purge::PATH
                            && let Some(response) =
                                purge::respond(&gateway, purge_token.as_deref(), &req).await
                        {
                            return Ok::<_, Infallible>(response);
                        }
                        Ok(respond(&gateway, &req))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// The answer to one admin request.
pub fn respond<B>(gateway: &Gateway, req: &Request<B>) -> Response<Body> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/ready" => {
            if gateway.is_ready() {
                text(StatusCode::OK, "ready\n")
            } else if gateway.is_draining() {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else if gateway.is_discovering() && gateway.reload_status().loaded_at.is_some() {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "waiting for the endpoints of the Service backends\n",
                )
            } else {
                // Why, when a config was refused: the pod's readiness probe shows it in Events.
                let why = gateway.reload_status().last_error;
                let body = why.map_or_else(
                    || "no config loaded\n".to_owned(),
                    |error| format!("no config loaded: {error}\n"),
                );
                text(StatusCode::SERVICE_UNAVAILABLE, body)
            }
        }
        "/metrics" => {
            refresh_endpoint_health(gateway);
            gateway
                .metrics
                .access_log_dropped
                .set(i64::try_from(crate::access_log::dropped()).unwrap_or(i64::MAX));
            let mut response = text(StatusCode::OK, gateway.metrics.encode());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        "/config" => {
            let mut response = text(StatusCode::OK, config_summary(gateway).to_string());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, content: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut response = Response::new(body::full(content));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn refresh_endpoint_health(gateway: &Gateway) {
    let table = gateway.table();
    let family = &gateway.metrics.endpoint_healthy;
    family.clear();
    for (name, backend) in &table.backends {
        for endpoint in &backend.endpoints().endpoints {
            family
                .get_or_create(&EndpointLabels {
                    backend: name.clone(),
                    endpoint: endpoint.address.clone(),
                })
                .set(i64::from(endpoint.is_available()));
        }
    }
}

/// What `/config` shows: the revision, a summary, the rules that answer 503 and what else is not
/// served as written, the last reload error and endpoint health.
pub fn config_summary(gateway: &Gateway) -> Value {
    let table = gateway.table();
    let status = gateway.reload_status();
    let mut listeners: Vec<Value> = table
        .listeners
        .values()
        .map(|l| {
            json!({
                "port": l.port,
                "tls": l.tls.is_some(),
                "virtualHosts": l.virtual_hosts.iter().map(|v| json!({
                    "hostname": v.hostname.as_pattern(),
                    "listener": v.listener,
                    "entries": v.entries().len(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    listeners.sort_by_key(|l| l["port"].as_u64());
    let mut backends = serde_json::Map::new();
    let mut names: Vec<&String> = table.backends.keys().collect();
    names.sort();
    for name in names {
        let Some(backend) = table.backends.get(name) else {
            continue;
        };
        let endpoints: Vec<Value> = backend
            .endpoints()
            .endpoints
            .iter()
            .map(|e| {
                json!({
                    "address": e.address,
                    "healthy": e.is_healthy(),
                    "ejected": e.is_ejected(),
                    "inFlight": e.in_flight(),
                })
            })
            .collect();
        backends.insert(
            name.clone(),
            json!({ "failover": backend.spec.failover, "endpoints": endpoints }),
        );
    }
    let unserved: Vec<Value> = table
        .unserved
        .iter()
        .filter_map(|rule| match &rule.action {
            Action::Unserved(unserved) => Some(json!({
                "route": rule.route.as_ref(),
                "rule": rule.index,
                "reasons": unserved.reasons,
            })),
            _ => None,
        })
        .collect();
    json!({
        "revision": table.revision,
        "ready": gateway.is_ready(),
        "draining": gateway.is_draining(),
        "loadedAt": status.loaded_at.map(rfc3339),
        "lastSwapMillis": status.last_swap_micros as f64 / 1000.0,
        "lastReloadMillis": status.last_reload_micros as f64 / 1000.0,
        "lastReloadError": status.last_error,
        "routeEntries": table.entry_count(),
        "unservedRules": unserved,
        "problems": table.problems,
        "listeners": listeners,
        "backends": backends,
    })
}
