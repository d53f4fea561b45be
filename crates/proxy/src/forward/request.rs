//! The request sent upstream: hop-by-hop headers removed, Host kept (or rewritten),
//! `X-Forwarded-*` made (beside the header map), request header filter applied, path rewritten
//! or forwarded as is.

use http::{
    HeaderValue, StatusCode,
    header::{CONNECTION, HOST, UPGRADE},
    request::Parts,
    uri::PathAndQuery,
};

use super::{Connection, forwarded, strip_hop_by_hop};
use crate::{route::RouteEntry, upstream::RequestTemplate};

/// Builds the upstream request (without body) from the client's request head, taking its
/// headers and target out of it. `normalized` is the normalized path when normalizing changed
/// it; `upgrade` the `Upgrade` header of a WebSocket handshake, kept through the hop-by-hop
/// cleanup.
pub fn template(
    parts: &mut Parts,
    conn: &Connection,
    trusted: bool,
    entry: &RouteEntry,
    normalized: Option<String>,
    upgrade: Option<HeaderValue>,
) -> Result<RequestTemplate, StatusCode> {
    let filters = &entry.rule.filters;
    let mut headers = std::mem::take(&mut parts.headers);
    strip_hop_by_hop(&mut headers);
    let upgrade_requested = upgrade.is_some();
    if let Some(protocol) = upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, protocol);
    }
    // The host the request was routed by (`request_host`): the URI's authority when it has one
    // (HTTP/2 `:authority`, or an HTTP/1.1 absolute-form target, which replaces Host per RFC
    // 9112 §3.2.2), else Host. HTTP/1 upstreams need it as Host.
    let original_host = match parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        Some(authority) => {
            headers.insert(HOST, authority.clone());
            Some(authority)
        }
        None => headers.get(HOST).cloned(),
    };
    let mut forwarded = forwarded(
        &mut headers,
        &conn.peer_value,
        trusted,
        conn.scheme,
        original_host,
    );
    let mut path_rewrite = None;
    if let Some(rewrite) = &filters.url_rewrite {
        if let Some(host) = &rewrite.hostname {
            headers.insert(HOST, host.clone());
        }
        path_rewrite = rewrite.path.as_ref();
    }
    if let Some(modifier) = &filters.request_headers {
        // The filter sees the forwarded fields like any other, and may change them.
        std::mem::take(&mut forwarded).apply(&mut headers);
        modifier.apply(&mut headers);
    }
    let uri = std::mem::take(&mut parts.uri);
    let path_and_query = match (path_rewrite, normalized) {
        // Unchanged: forward the client's bytes as they are (no copy).
        (None, None) => uri
            .into_parts()
            .path_and_query
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
        (rewrite, normalized) => {
            let path = normalized.unwrap_or_else(|| uri.path().to_owned());
            let path = match rewrite {
                Some(rewrite) => rewrite.apply(&path, entry.matched_prefix()),
                None => path,
            };
            let full = match uri.query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            PathAndQuery::try_from(full).map_err(|_| StatusCode::BAD_REQUEST)?
        }
    };
    Ok(RequestTemplate {
        method: parts.method.clone(),
        path_and_query,
        headers,
        forwarded,
        upgrade: upgrade_requested,
        // Not for a rule whose filters read or change the response's fields: they would go
        // into the map at once (`upstream::materialize`), parsed twice.
        relay: conn.relays_heads && filters.response_headers.is_none() && filters.cors.is_none(),
    })
}
