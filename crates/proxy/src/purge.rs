//! `POST /cache/purge?prefix=<host/path>` on the admin listener: drops the cached answers whose
//! key starts with the prefix, in this replica's memory and in the shared Redis.
//!
//! The admin listener is otherwise read-only and unauthenticated, so this endpoint does not
//! exist (404, like any unknown path) unless the proxy was started with a purge token
//! (`--purge-token-file`); then a purge needs `Authorization: Bearer <token>`, compared by
//! digest in constant time. A cache key is the request's host (lowercase) followed by its
//! path and query, so `prefix=shop.example.com/catalog` purges every `/catalog…` answer of
//! that host. Each replica keeps its own memory: a purge reaches the replica it is sent to
//! (and, for shared caches, Redis, which every replica reads on a miss of its own memory).

use std::path::Path;

use http::{
    HeaderValue, Method, Request, Response, StatusCode,
    header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE},
};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{
    body::{self, Body},
    gateway::Gateway,
};

/// The admin path of the purge endpoint.
pub const PATH: &str = "/cache/purge";

/// The token a purge must present.
#[derive(Clone)]
pub struct PurgeToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for PurgeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PurgeToken(..)")
    }
}

impl PurgeToken {
    /// The token in the file at `path` (surrounding whitespace ignored; at least 16 bytes).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let content = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the purge token {}: {e}", path.display()))?;
        let token = content.trim();
        if token.len() < 16 {
            return Err(format!(
                "the purge token in {} is shorter than 16 characters",
                path.display()
            ));
        }
        Ok(Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Whether `authorization` is `Bearer <the token>`.
    fn accepts(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(token) = authorization
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
        else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Equal digests, compared without an early exit.
        digest
            .iter()
            .zip(&self.digest)
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
    }
}

/// The answer to a request for [`PATH`]; `None` when purging is off (the caller answers 404).
pub async fn respond<B>(
    gateway: &Gateway,
    token: Option<&PurgeToken>,
    req: &Request<B>,
) -> Option<Response<Body>> {
    let token = token?;
    if req.method() != Method::POST {
        let mut response =
            json_answer(StatusCode::METHOD_NOT_ALLOWED, json!({"error": "use POST"}));
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return Some(response);
    }
    if !token.accepts(req.headers().get(AUTHORIZATION)) {
        let mut response = json_answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "a purge needs Authorization: Bearer <purge token>"}),
        );
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Some(response);
    }
    let prefix = req.uri().query().and_then(|query| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| *name == "prefix")
            .map(|(_, value)| percent_encoding::percent_decode_str(value).collect::<Vec<u8>>())
    });
    let Some(prefix) = prefix.filter(|p| !p.is_empty()) else {
        return Some(json_answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "name what to purge: ?prefix=<host>/<path> (for example shop.example.com/catalog)"}),
        ));
    };
    let shown = String::from_utf8_lossy(&prefix).into_owned();
    let table = gateway.table();
    if let Some(cache) = &table.engines.cache {
        // A local cache has no shared tier: this cannot fail.
        let _ = cache.purge_prefix(&prefix).await;
    }
    let shared = match &table.engines.shared_cache {
        None => json!(null),
        Some(cache) => match cache.purge_prefix(&prefix).await {
            Ok(()) => json!("purged"),
            Err(error) => {
                tracing::warn!(%error, prefix = %shown, "the shared cache was not purged");
                return Some(json_answer(
                    StatusCode::BAD_GATEWAY,
                    json!({"prefix": shown, "replica": "purged", "shared": error.to_string()}),
                ));
            }
        },
    };
    tracing::info!(prefix = %shown, "cache purged");
    Some(json_answer(
        StatusCode::OK,
        json!({"prefix": shown, "replica": "purged", "shared": shared}),
    ))
}

fn json_answer(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(body::full(format!("{value}\n")));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
