//! The policies a rule enforces before its action runs, in order: authentication (who calls),
//! rate limiting (how often), then the response cache around the action (which answers can be
//! served from memory). The engines live in `portcullis-policy`; this module drives them on the
//! request path and turns their refusals into responses.
//!
//! A rule without policies has an empty [`Guard`]: the request path checks three `None`s and
//! pays nothing else.

mod cache;
mod rate;

use std::{net::IpAddr, sync::Arc};

use http::{
    HeaderValue, Response, StatusCode, Uri,
    header::{RETRY_AFTER, WWW_AUTHENTICATE},
    request::Parts,
    uri::PathAndQuery,
};
use portcullis_config::snapshot::RateLimitConfig;
use portcullis_policy::{
    auth::{Authenticator, Identity, JwksSource, Refusal, strip_query_param},
    cache::LocalCache,
    rate::{Decision, retry_after_secs},
    shared::SharedStore,
};

pub use portcullis_policy::rate::Checked;

pub use self::{
    cache::{Cache, CacheOutcome, Keyed},
    rate::{Limiter, Rate, RateKey},
};
use crate::{body::Body, fast_hash::FastMap, forward::local};

/// The policies of one rule that run before its action.
#[derive(Debug, Default)]
pub struct Guard {
    /// Authentication.
    pub auth: Option<Auth>,
    /// Rate limiting.
    pub rate: Option<Rate>,
    /// Response caching (GET and HEAD).
    pub cache: Option<Cache>,
}

/// A rule's authentication.
#[derive(Debug)]
pub struct Auth {
    /// The engine.
    pub engine: Authenticator,
    /// The query parameter an API key may come in, removed before forwarding unless the rule
    /// keeps the credential.
    pub strip_query: Option<String>,
    /// The consumers admitted, sorted; empty admits every authenticated caller.
    pub allowed: Vec<Box<str>>,
}

impl Auth {
    /// Whether `identity` is among the consumers the rule admits.
    fn admits(&self, identity: &Identity) -> bool {
        self.allowed.is_empty()
            || identity.consumer.as_deref().is_some_and(|consumer| {
                self.allowed
                    .binary_search_by(|allowed| allowed.as_ref().cmp(consumer))
                    .is_ok()
            })
    }
}

/// What the guard learnt about an admitted request, for the response and the cache.
#[derive(Debug, Default)]
pub struct Admitted {
    /// The caller, when the rule authenticates.
    pub identity: Option<Identity>,
    /// The rate limit's answer, whose fields go on the response.
    pub rate: Option<Checked>,
}

/// Why the guard answered a request itself, for the `portcullis_policy_decisions` metric.
#[derive(Debug, Clone, Copy)]
pub enum Stopped {
    /// Authentication refused the request, with the refusal's reason label.
    Auth(&'static str),
    /// Over the rate limit.
    RateLimited,
    /// A global rate limit that fails closed could not be counted: the shared Redis gave no
    /// answer, for the reason labelled.
    RateUncounted(&'static str),
}

impl Guard {
    /// Whether the rule has no policy here.
    pub fn is_empty(&self) -> bool {
        self.auth.is_none() && self.rate.is_none() && self.cache.is_none()
    }

    /// The rule's cache and what it keys the request by, when the rule caches and the request
    /// may be served from the cache (GET and HEAD).
    pub fn cached(
        &self,
        head: &Parts,
        host: &str,
        path: &str,
        admitted: Option<&Admitted>,
    ) -> Option<(&Cache, Keyed)> {
        let cache = self.cache.as_ref()?;
        Some((cache, cache.keyed(head, host, path, admitted)?))
    }

    /// Authenticates and rate-limits the request with head `head` from `client`; on success
    /// edits the head for the upstream (the credential removed unless kept, claim headers
    /// set). `Err` is the response to send instead, and why.
    pub async fn admit(
        &self,
        head: &mut Parts,
        client: IpAddr,
    ) -> Result<Admitted, (Response<Body>, Stopped)> {
        let mut admitted = Admitted::default();
        if let Some(auth) = &self.auth {
            match auth
                .engine
                .authenticate(&head.headers, head.uri.query())
                .await
            {
                Ok(identity) if auth.admits(&identity) => admitted.identity = Some(identity),
                Ok(_) => {
                    let refusal = Refusal::forbidden();
                    let stopped = Stopped::Auth(refusal.reason().label());
                    return Err((refused(&refusal), stopped));
                }
                Err(refusal) => {
                    let stopped = Stopped::Auth(refusal.reason().label());
                    return Err((refused(&refusal), stopped));
                }
            }
        }
        if let Some(rate) = &self.rate {
            let checked = rate.check(head, client, admitted.identity.as_ref()).await;
            if !checked.is_allowed() {
                let stopped = match checked {
                    Checked::Counted(_) => Stopped::RateLimited,
                    Checked::Uncounted { error, .. } => Stopped::RateUncounted(error),
                };
                return Err((rate.refused(&checked), stopped));
            }
            admitted.rate = Some(checked);
        }
        if let (Some(auth), Some(identity)) = (&self.auth, &admitted.identity) {
            auth.engine.prepare_upstream(identity, &mut head.headers);
            if let Some(name) = &auth.strip_query {
                strip_query(&mut head.uri, name);
            }
        }
        Ok(admitted)
    }
}

/// The answer to a refused credential: 401 with the challenge (RFC 9110 §11.6.1), or 403.
fn refused(refusal: &Refusal) -> Response<Body> {
    let mut response = local(refusal.status());
    if refusal.status() == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, refusal.www_authenticate().clone());
    }
    response
}

/// 429 with `Retry-After` in whole seconds.
fn too_many(decision: &Decision) -> Response<Body> {
    let mut response = local(StatusCode::TOO_MANY_REQUESTS);
    if let Decision::Limited { retry_after, .. } = decision {
        response.headers_mut().insert(
            RETRY_AFTER,
            HeaderValue::from(retry_after_secs(*retry_after)),
        );
    }
    response
}

/// Removes the query parameter `name` from `uri` (an API key must not reach the upstream).
fn strip_query(uri: &mut Uri, name: &str) {
    let Some(query) = uri.query() else {
        return;
    };
    let path = uri.path();
    let kept = match strip_query_param(query, name) {
        Some(std::borrow::Cow::Borrowed(_)) => return,
        Some(kept) => format!("{path}?{kept}"),
        None => path.to_owned(),
    };
    let Ok(path_and_query) = PathAndQuery::try_from(kept) else {
        return;
    };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(path_and_query);
    if let Ok(stripped) = Uri::from_parts(parts) {
        *uri = stripped;
    }
}

/// The engines that outlive one routing table: a reload keeps them when the rule asks for the
/// same policy (a Route edit elsewhere must not reset every caller's rate limit or empty the
/// cache).
#[derive(Debug, Default)]
pub struct Engines {
    /// The response cache of this replica, shared by every rule with `backend: Local`; made
    /// when a rule first asks for it.
    pub cache: Option<Arc<LocalCache>>,
    /// Each rate-limited rule's limiter, by Route and rule index, with the policy it was made
    /// for.
    pub limiters: FastMap<(Arc<str>, usize), (RateLimitConfig, Limiter)>,
    /// The memory tier in front of the shared Redis, shared by every rule with
    /// `backend: Shared`; made when a rule first asks for it.
    pub shared_cache: Option<Arc<LocalCache>>,
    /// The key sets fetched from `jwksUri`s, by URI.
    pub jwks: FastMap<String, RemoteJwks>,
    /// The connection to the Gateway's `sharedState.redis`, when it has one: kept while its
    /// address and password stay the same, or why it could not be made.
    pub shared: Option<Result<SharedLink, String>>,
}

/// A replica's connection to the shared Redis, and what it was made from.
#[derive(Debug, Clone)]
pub struct SharedLink {
    /// `host:port`.
    pub address: String,
    /// A digest of the password, to notice a change without keeping the password twice.
    pub password_digest: Option<[u8; 32]>,
    /// The connection.
    pub store: Arc<SharedStore>,
}

impl Engines {
    /// Drops the rate-limit keys that went idle in every rule's limiter (call every few
    /// seconds: one pass over each limiter's keys).
    pub fn retain_recent(&self) {
        for (_, limiter) in self.limiters.values() {
            limiter.retain_recent();
        }
    }

    /// The shared Redis for a rule's `field` that needs it, or the message of the rule's gap.
    pub fn shared_store(&self, field: &str) -> Result<Arc<SharedStore>, String> {
        match &self.shared {
            Some(Ok(link)) => Ok(link.store.clone()),
            Some(Err(error)) => Err(format!("{field} needs sharedState.redis: {error}")),
            None => Err(format!(
                "{field} needs the Gateway's sharedState.redis, which is not configured"
            )),
        }
    }
}

/// A key set fetched from an issuer, and the task that keeps it fresh.
#[derive(Debug, Clone)]
pub struct RemoteJwks {
    /// The keys.
    pub source: JwksSource,
    /// Stops the refreshes when the last table using the key set is gone.
    pub refresh: Arc<Refresh>,
}

/// A background refresh, aborted when dropped.
#[derive(Debug)]
pub struct Refresh(pub Option<tokio::task::JoinHandle<()>>);

impl Drop for Refresh {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}
