//! A rule's policies → its [`Guard`]: the engines of `portcullis-policy`, built from the rule's
//! config and the Secret files it reads, or carried over from the previous table when the
//! policy did not change.

use std::{sync::Arc, time::Duration};

use http::HeaderName;
use portcullis_config::{
    capability::{Gap, reason},
    snapshot::{
        ApiKeyLocation, AuthConfig, CacheBackend, CacheConfig, JwksConfig, ObjectKey,
        RateLimitConfig, RateLimitFailureMode, RateLimitKeyType, RateLimitScope, RedisConfig,
        RuleConfig,
    },
};
use portcullis_policy::{
    auth::{
        ApiKeyAuth, Authenticator, BasicAuth, DEFAULT_REALM, HttpsJwksFetch, JwksSource,
        JwtAlgorithm, JwtAuth, JwtConfig, KeyLocation, RefreshSchedule,
    },
    cache::{CacheRule, LocalCache},
    rate::{DEFAULT_MAX_KEYS, FailureMode, GlobalLimiter, LocalLimiter, RateLimitHeaders},
    shared::{DEFAULT_TIMEOUT as SHARED_TIMEOUT, SharedStore},
};
use sha2::{Digest, Sha256};

use super::Secrets;
use crate::guard::{
    Auth, Cache, Engines, Guard, Limiter, Rate, RateKey, Refresh, RemoteJwks, SharedLink,
};

/// The most a replica's response cache holds, bodies and fields together.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The memory tier of a shared cache, in front of Redis: small, as most hits come from
/// Redis and this only saves the round trip for the hottest answers.
pub const SHARED_CACHE_MEMORY_BYTES: u64 = 16 * 1024 * 1024;

/// The largest body the cache keeps; larger answers stream through.
pub const CACHE_ENTRY_BYTES: usize = 1024 * 1024;

/// Builds the guard of `config`. `previous` holds the engines of the table being served, `next`
/// gathers those of the table being built. A policy that cannot be built (a Secret whose
/// content the engine refuses) is a gap: the rule answers 503.
pub fn compile(
    config: &RuleConfig,
    secrets: &Secrets,
    (gateway, route): (&ObjectKey, &Arc<str>),
    previous: &Engines,
    next: &mut Engines,
) -> Result<Guard, Gap> {
    let index = config.rule_index;
    let policies = &config.policies;
    let auth = match &policies.auth {
        Some(auth) => Some(
            compile_auth(auth, secrets, previous, next)
                .map(|mut auth| {
                    // Sorted by the compiler; sorted again so that a hand-written snapshot
                    // cannot make a listed consumer miss.
                    auth.allowed = policies
                        .allowed_consumers
                        .iter()
                        .map(|c| c.as_str().into())
                        .collect();
                    auth.allowed.sort();
                    auth
                })
                .map_err(|(field, reason, message)| Gap::new(index, field, reason, message))?,
        ),
        None => None,
    };
    let rate = match &policies.rate_limit {
        Some(limit) => Some(
            compile_rate(
                limit,
                config.name.as_deref(),
                (gateway, route, index),
                previous,
                next,
            )
            .map_err(|message| Gap::new(index, "rateLimit", reason::INVALID, message))?,
        ),
        None => None,
    };
    let cache = policies
        .cache
        .as_ref()
        .map(|cache| compile_cache(cache, auth.is_some(), previous, next))
        .transpose()
        .map_err(|message| Gap::new(index, "cache", reason::INVALID, message))?;
    Ok(Guard { auth, rate, cache })
}

type AuthError = (&'static str, &'static str, String);

fn compile_auth(
    config: &AuthConfig,
    secrets: &Secrets,
    previous: &Engines,
    next: &mut Engines,
) -> Result<Auth, AuthError> {
    let read = |field: &'static str, file| {
        secrets
            .read(file)
            .map_err(|message| (field, reason::INVALID_SECRET, message))
    };
    let refused = |field: &'static str| {
        move |error: portcullis_policy::auth::ConfigError| {
            (field, reason::INVALID_SECRET, error.to_string())
        }
    };
    let header = |field: &'static str, name: &str| {
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            (
                field,
                reason::INVALID,
                format!("{name:?} is not a valid header name"),
            )
        })
    };
    match config {
        AuthConfig::ApiKey {
            keys,
            location,
            keep_credential,
        } => {
            const FIELD: &str = "auth.apiKey.secretRef";
            let (location, strip_query) = match location {
                ApiKeyLocation::Header(name) => (
                    KeyLocation::Header(header("auth.apiKey.header", name)?),
                    None,
                ),
                ApiKeyLocation::QueryParameter(name) => (
                    KeyLocation::Query(name.clone()),
                    (!keep_credential).then(|| name.clone()),
                ),
            };
            let content = read(FIELD, keys)?;
            let engine = ApiKeyAuth::new(&content, location, DEFAULT_REALM, *keep_credential)
                .map_err(refused(FIELD))?;
            Ok(Auth {
                engine: Authenticator::ApiKey(Arc::new(engine)),
                strip_query,
                allowed: Vec::new(),
            })
        }
        AuthConfig::Basic {
            users,
            keep_authorization,
        } => {
            const FIELD: &str = "auth.basic.secretRef";
            let content = read(FIELD, users)?;
            let engine = BasicAuth::new(&content, DEFAULT_REALM, *keep_authorization)
                .map_err(refused(FIELD))?;
            Ok(Auth {
                engine: Authenticator::Basic(Arc::new(engine)),
                strip_query: None,
                allowed: Vec::new(),
            })
        }
        AuthConfig::Jwt {
            issuer,
            audiences,
            jwks,
            algorithms,
            leeway_ms,
            claims_to_headers,
            keep_authorization,
        } => {
            let source = match jwks {
                JwksConfig::Secret(file) => {
                    const FIELD: &str = "auth.jwt.jwksSecretRef";
                    let content = read(FIELD, file)?;
                    JwksSource::from_secret(&content).map_err(refused(FIELD))?
                }
                JwksConfig::Uri(uri) => remote_jwks(uri, previous, next)
                    .map_err(|e| ("auth.jwt.jwksUri", reason::INVALID, e.to_string()))?,
            };
            let mut jwt = JwtConfig::new(issuer.clone());
            jwt.audiences.clone_from(audiences);
            jwt.algorithms = algorithms
                .iter()
                .map(|alg| format!("{alg:?}").parse::<JwtAlgorithm>())
                .collect::<Result<_, _>>()
                .map_err(|e| ("auth.jwt.algorithms", reason::INVALID, e.to_string()))?;
            jwt.leeway = Duration::from_millis(*leeway_ms);
            jwt.keep_authorization = *keep_authorization;
            jwt.claim_headers = claims_to_headers
                .iter()
                .map(|c| {
                    Ok((
                        c.claim.clone(),
                        header("auth.jwt.claimsToHeaders", &c.header)?,
                    ))
                })
                .collect::<Result<_, AuthError>>()?;
            let engine = JwtAuth::new(jwt, source)
                .map_err(|e| ("auth.jwt", reason::INVALID, e.to_string()))?;
            Ok(Auth {
                engine: Authenticator::Jwt(Arc::new(engine)),
                strip_query: None,
                allowed: Vec::new(),
            })
        }
    }
}

/// The key set at `uri`, fetched and refreshed in the background for as long as a table
/// uses it: one per URI, carried over from the previous table (a reload neither refetches nor
/// forgets it).
fn remote_jwks(
    uri: &str,
    previous: &Engines,
    next: &mut Engines,
) -> Result<JwksSource, portcullis_policy::auth::ConfigError> {
    if let Some(kept) = next.jwks.get(uri).or_else(|| previous.jwks.get(uri)) {
        let kept = kept.clone();
        next.jwks.insert(uri.to_owned(), kept.clone());
        return Ok(kept.source.clone());
    }
    let fetch = HttpsJwksFetch::new(uri)?;
    let source = JwksSource::remote(Arc::new(fetch), RefreshSchedule::default());
    let refresher = source.clone();
    // Outside a runtime (an offline compile) nothing is fetched: the rule refuses tokens with
    // `keys_unavailable` until a replica's refresh loads the set.
    let task = tokio::runtime::Handle::try_current()
        .ok()
        .map(|runtime| runtime.spawn(async move { refresher.run().await }));
    next.jwks.insert(
        uri.to_owned(),
        RemoteJwks {
            source: source.clone(),
            refresh: Arc::new(Refresh(task)),
        },
    );
    Ok(source)
}

/// The connection to the shared Redis `config` names: the previous table's while the address
/// and password are the same (a reload keeps the connection), else a new one.
pub fn shared_link(
    config: &RedisConfig,
    secrets: &Secrets,
    previous: &Engines,
) -> Result<SharedLink, String> {
    let password = config
        .password
        .as_ref()
        .map(|file| secrets.read(file))
        .transpose()?
        .map(|bytes| {
            String::from_utf8(bytes)
                .map(|p| p.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|_| "the Redis password is not UTF-8".to_owned())
        })
        .transpose()?;
    let password_digest = password
        .as_deref()
        .map(|p| <[u8; 32]>::from(Sha256::digest(p.as_bytes())));
    if let Some(Ok(kept)) = &previous.shared
        && kept.address == config.address
        && kept.password_digest == password_digest
    {
        return Ok(kept.clone());
    }
    let store = SharedStore::new(&config.address, password.as_deref(), SHARED_TIMEOUT)
        .map_err(|e| e.to_string())?;
    Ok(SharedLink {
        address: config.address.clone(),
        password_digest,
        store: Arc::new(store),
    })
}

fn compile_rate(
    config: &RateLimitConfig,
    name: Option<&str>,
    (gateway, route, index): (&ObjectKey, &Arc<str>, usize),
    previous: &Engines,
    next: &mut Engines,
) -> Result<Rate, String> {
    let period = Duration::from_millis(config.period_ms);
    let slot = (route.clone(), index);
    let kept = previous
        .limiters
        .get(&slot)
        .filter(|(kept, _)| kept == config)
        .map(|(_, limiter)| limiter.clone());
    let (kind, key) = match (config.key.kind, config.key.name.as_deref()) {
        (RateLimitKeyType::ClientIp, _) => ("ClientIP".to_owned(), RateKey::ClientIp),
        (RateLimitKeyType::ApiKey, _) => ("ApiKey".to_owned(), RateKey::Consumer),
        (RateLimitKeyType::Header, Some(header)) => (
            format!("Header={header}"),
            RateKey::Header(
                HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| format!("key.name {header:?} is not a valid header name"))?,
            ),
        ),
        (RateLimitKeyType::Claim, Some(claim)) => {
            (format!("Claim={claim}"), RateKey::Claim(claim.to_owned()))
        }
        (kind, None) => return Err(format!("a {kind:?} key needs a name")),
    };
    let limiter = match (config.scope, kept) {
        (RateLimitScope::Local, Some(kept @ Limiter::Local(_))) => kept,
        (RateLimitScope::Local, _) => Limiter::Local(Arc::new(
            LocalLimiter::new(config.requests, period, config.burst, DEFAULT_MAX_KEYS)
                .map_err(|e| e.to_string())?,
        )),
        (RateLimitScope::Global, kept) => {
            // A rule whose Gateway has no usable Redis is a gap: it answers 503, never
            // unlimited.
            let store = next.shared_store("scope Global")?;
            match kept {
                Some(Limiter::Global(kept)) if Arc::ptr_eq(kept.store(), &store) => {
                    Limiter::Global(kept)
                }
                _ => {
                    let failure_mode = match config.failure_mode {
                        RateLimitFailureMode::FailOpen => FailureMode::Open,
                        RateLimitFailureMode::FailClosed => FailureMode::Closed,
                    };
                    // Names the buckets in Redis: this rule of this gateway, keyed this way.
                    let scope = format!("{gateway}:{route}:{index}:{kind}");
                    let limiter = GlobalLimiter::new(
                        store,
                        &scope,
                        config.requests,
                        period,
                        config.burst,
                        failure_mode,
                        DEFAULT_MAX_KEYS,
                    )
                    .map_err(|e| e.to_string())?;
                    Limiter::Global(Arc::new(limiter))
                }
            }
        }
    };
    next.limiters
        .insert(slot, (config.clone(), limiter.clone()));
    Ok(Rate {
        limiter,
        headers: RateLimitHeaders::new(name.unwrap_or("default"), config.requests, period),
        key,
    })
}

/// The memory tier in front of the shared Redis, one per replica: the previous table's while
/// the connection is the same one.
fn shared_cache(previous: &Engines, next: &mut Engines) -> Result<Arc<LocalCache>, String> {
    let store = next.shared_store("cache.backend")?;
    if let Some(cache) = &next.shared_cache {
        return Ok(cache.clone());
    }
    let cache = match &previous.shared_cache {
        Some(kept)
            if previous
                .shared_store("")
                .is_ok_and(|s| Arc::ptr_eq(&s, &store)) =>
        {
            kept.clone()
        }
        _ => Arc::new(LocalCache::shared(
            SHARED_CACHE_MEMORY_BYTES,
            CACHE_ENTRY_BYTES,
            store,
        )),
    };
    next.shared_cache = Some(cache.clone());
    Ok(cache)
}

fn compile_cache(
    config: &CacheConfig,
    authenticated: bool,
    previous: &Engines,
    next: &mut Engines,
) -> Result<Cache, String> {
    let vary = config
        .vary
        .iter()
        .map(|name| {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("vary: {name:?} is not a valid header name"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut rule = CacheRule::new(
        Duration::from_millis(config.ttl_ms),
        vary,
        Duration::from_millis(config.stale_if_error_ms.unwrap_or(0)),
    );
    // Behind authentication, answers may differ by caller: each consumer has its own entries.
    if authenticated {
        rule = rule.keyed_by_consumer();
    }
    let store = match config.backend {
        CacheBackend::Local => {
            next.cache
                .get_or_insert_with(|| {
                    previous.cache.clone().unwrap_or_else(|| {
                        Arc::new(LocalCache::new(CACHE_BYTES, CACHE_ENTRY_BYTES))
                    })
                })
                .clone()
        }
        CacheBackend::Shared => shared_cache(previous, next)?,
    };
    Ok(Cache { rule, store })
}
