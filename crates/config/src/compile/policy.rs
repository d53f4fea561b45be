//! Policies: a rule's own, else the Gateway's `defaults`, each kind replaced as a whole.
//!
//! Each policy is checked where it is written (a rule, or `spec.defaults` of the Gateway), so a
//! problem is reported once, at its field. A rule that inherits a broken default cannot be served
//! as its author meant, so it is refused (fail closed) with a message naming the default.

use portcullis_api::policy::{
    AuthPolicy, CacheBackend, CachePolicy, CorsPolicy, Policies, RateLimitKeyType, RateLimitPolicy,
    RateLimitScope, RequestBodyPolicy, RetryPolicy, Timeouts,
};

use super::{Ctx, Invalid, auth::auth};
use crate::{
    diagnostics::reason,
    snapshot::{
        AuthConfig, CacheConfig, CorsConfig, RateLimitConfig, RateLimitKeyConfig, ResolvedPolicies,
        RetryConfig, TimeoutsConfig,
    },
};

/// The policies written in one place (a rule or the Gateway defaults), by reference.
#[derive(Clone, Copy, Default)]
pub(crate) struct PolicyRefs<'a> {
    pub(crate) timeouts: Option<&'a Timeouts>,
    pub(crate) retry: Option<&'a RetryPolicy>,
    pub(crate) auth: Option<&'a AuthPolicy>,
    pub(crate) rate_limit: Option<&'a RateLimitPolicy>,
    pub(crate) cache: Option<&'a CachePolicy>,
    pub(crate) cors: Option<&'a CorsPolicy>,
    pub(crate) request_body: Option<&'a RequestBodyPolicy>,
}

impl<'a> From<&'a Policies> for PolicyRefs<'a> {
    fn from(p: &'a Policies) -> Self {
        Self {
            timeouts: p.timeouts.as_ref(),
            retry: p.retry.as_ref(),
            auth: p.auth.as_ref(),
            rate_limit: p.rate_limit.as_ref(),
            cache: p.cache.as_ref(),
            cors: p.cors.as_ref(),
            request_body: p.request_body.as_ref(),
        }
    }
}

/// Policies compiled from one place; `Err` marks a kind that was written but is invalid.
#[derive(Clone, Debug)]
pub(crate) struct CompiledPolicies {
    timeouts: Result<TimeoutsConfig, Invalid>,
    retry: Result<Option<RetryConfig>, Invalid>,
    /// The credential, and the consumers admitted (empty: all).
    auth: Result<(Option<AuthConfig>, Vec<String>), Invalid>,
    rate_limit: Result<Option<RateLimitConfig>, Invalid>,
    cache: Result<Option<CacheConfig>, Invalid>,
    cors: Result<Option<CorsConfig>, Invalid>,
    max_request_body_bytes: Result<Option<u64>, Invalid>,
}

impl Default for CompiledPolicies {
    fn default() -> Self {
        Self {
            timeouts: Ok(TimeoutsConfig::default()),
            retry: Ok(None),
            auth: Ok((None, Vec::new())),
            rate_limit: Ok(None),
            cache: Ok(None),
            cors: Ok(None),
            max_request_body_bytes: Ok(None),
        }
    }
}

/// Compiles the policies written at `prefix` (`spec.defaults` or `spec.rules[i]`); secrets are
/// looked up in `secret_namespace`.
pub(crate) fn compile(
    refs: PolicyRefs<'_>,
    ctx: &mut Ctx<'_>,
    prefix: &str,
    secret_namespace: &str,
    shared_state: bool,
) -> CompiledPolicies {
    CompiledPolicies {
        timeouts: refs.timeouts.map_or(Ok(TimeoutsConfig::default()), |t| {
            timeouts(t, ctx, &format!("{prefix}.timeouts"))
        }),
        retry: opt(refs.retry, |r| retry(r, ctx, &format!("{prefix}.retry"))),
        auth: refs.auth.map_or(Ok((None, Vec::new())), |a| {
            auth(a, ctx, &format!("{prefix}.auth"), secret_namespace)
        }),
        rate_limit: opt(refs.rate_limit, |r| {
            rate_limit(r, ctx, &format!("{prefix}.rateLimit"), shared_state)
        }),
        cache: opt(refs.cache, |c| {
            cache(c, ctx, &format!("{prefix}.cache"), shared_state)
        }),
        cors: opt(refs.cors, |c| Ok(cors(c))),
        max_request_body_bytes: Ok(refs.request_body.map(|b| b.max_bytes)),
    }
}

fn opt<T, U>(
    value: Option<&T>,
    f: impl FnOnce(&T) -> Result<U, Invalid>,
) -> Result<Option<U>, Invalid> {
    value.map(f).transpose()
}

/// The policies in force for a rule: each kind the rule writes, else the Gateway default.
///
/// `Err` when a kind in force is invalid; the diagnostics are already reported, except for a
/// broken inherited default, which is reported here against the rule.
pub(crate) fn resolve(
    rule: PolicyRefs<'_>,
    own: CompiledPolicies,
    defaults: &CompiledPolicies,
    ctx: &mut Ctx<'_>,
    rule_field: &str,
    gateway: &str,
) -> Result<ResolvedPolicies, Invalid> {
    let mut ok = true;
    let mut pick = |written: bool, own_is_ok: bool, default_is_ok: bool, kind: &str| {
        if written {
            ok &= own_is_ok;
            true
        } else {
            if !default_is_ok {
                ok = false;
                ctx.error(
                    rule_field,
                    reason::INVALID,
                    format!(
                        "inherits spec.defaults.{kind} of Gateway {gateway}, which is invalid; \
                         fix the Gateway or set {kind} on the rule"
                    ),
                );
            }
            false
        }
    };
    let timeouts = pick(
        rule.timeouts.is_some(),
        own.timeouts.is_ok(),
        defaults.timeouts.is_ok(),
        "timeouts",
    );
    let retry = pick(
        rule.retry.is_some(),
        own.retry.is_ok(),
        defaults.retry.is_ok(),
        "retry",
    );
    let auth = pick(
        rule.auth.is_some(),
        own.auth.is_ok(),
        defaults.auth.is_ok(),
        "auth",
    );
    let rate_limit = pick(
        rule.rate_limit.is_some(),
        own.rate_limit.is_ok(),
        defaults.rate_limit.is_ok(),
        "rateLimit",
    );
    let cache = pick(
        rule.cache.is_some(),
        own.cache.is_ok(),
        defaults.cache.is_ok(),
        "cache",
    );
    let cors = pick(
        rule.cors.is_some(),
        own.cors.is_ok(),
        defaults.cors.is_ok(),
        "cors",
    );
    let request_body = pick(
        rule.request_body.is_some(),
        own.max_request_body_bytes.is_ok(),
        defaults.max_request_body_bytes.is_ok(),
        "requestBody",
    );
    if !ok {
        return Err(Invalid);
    }
    fn choose<T: Clone + Default>(
        own_wins: bool,
        own: Result<T, Invalid>,
        default: &Result<T, Invalid>,
    ) -> T {
        if own_wins {
            own.unwrap_or_default()
        } else {
            default.clone().unwrap_or_default()
        }
    }
    let (auth, allowed_consumers) = choose(auth, own.auth, &defaults.auth);
    Ok(ResolvedPolicies {
        timeouts: choose(timeouts, own.timeouts, &defaults.timeouts),
        retry: choose(retry, own.retry, &defaults.retry),
        auth,
        allowed_consumers,
        rate_limit: choose(rate_limit, own.rate_limit, &defaults.rate_limit),
        cache: choose(cache, own.cache, &defaults.cache),
        cors: choose(cors, own.cors, &defaults.cors),
        max_request_body_bytes: choose(
            request_body,
            own.max_request_body_bytes,
            &defaults.max_request_body_bytes,
        ),
    })
}

fn timeouts(t: &Timeouts, ctx: &mut Ctx<'_>, field: &str) -> Result<TimeoutsConfig, Invalid> {
    let request = t
        .request
        .as_deref()
        .map(|v| ctx.millis(v, &format!("{field}.request")))
        .transpose();
    let backend_request = t
        .backend_request
        .as_deref()
        .map(|v| ctx.millis(v, &format!("{field}.backendRequest")))
        .transpose();
    let backend_idle = t
        .backend_idle
        .as_deref()
        .map(|v| ctx.millis(v, &format!("{field}.backendIdle")))
        .transpose();
    let (request_ms, backend_request_ms, backend_idle_ms) =
        (request?, backend_request?, backend_idle?);
    if let (Some(r), Some(b)) = (request_ms, backend_request_ms)
        && r != 0
        && b > r
    {
        ctx.error(
            format!("{field}.backendRequest"),
            reason::INVALID,
            "backendRequest must not be longer than request (unless request is 0s)",
        );
        return Err(Invalid);
    }
    Ok(TimeoutsConfig {
        request_ms,
        backend_request_ms,
        backend_idle_ms,
    })
}

fn retry(r: &RetryPolicy, ctx: &mut Ctx<'_>, field: &str) -> Result<RetryConfig, Invalid> {
    let backoff_ms = ctx.millis(&r.backoff, &format!("{field}.backoff"))?;
    let mut retry_on = r
        .retry_on
        .clone()
        .unwrap_or_else(|| portcullis_api::policy::default_retry_on(&r.codes));
    retry_on.sort();
    retry_on.dedup();
    let mut ok = true;
    for (i, code) in r.codes.iter().enumerate() {
        if !(400..=599).contains(code) {
            ctx.error(
                format!("{field}.codes[{i}]"),
                reason::INVALID,
                format!("retry code {code} is not an HTTP status code from 400 to 599"),
            );
            ok = false;
        }
    }
    if !ok {
        return Err(Invalid);
    }
    let mut codes = r.codes.clone();
    codes.sort_unstable();
    codes.dedup();
    Ok(RetryConfig {
        attempts: r.attempts,
        retry_on,
        codes,
        backoff_ms,
        budget_percent: r.budget_percent,
        non_idempotent: r.non_idempotent,
    })
}

fn rate_limit(
    r: &RateLimitPolicy,
    ctx: &mut Ctx<'_>,
    field: &str,
    shared_state: bool,
) -> Result<RateLimitConfig, Invalid> {
    let period_ms = ctx.millis(&r.period, &format!("{field}.period"))?;
    let mut ok = true;
    if period_ms == 0 {
        ctx.error(
            format!("{field}.period"),
            reason::INVALID,
            "period must be longer than 0s",
        );
        ok = false;
    }
    if r.requests == 0 {
        ctx.error(
            format!("{field}.requests"),
            reason::INVALID,
            "requests must be greater than 0",
        );
        ok = false;
    }
    let needs_name = matches!(
        r.key.kind,
        RateLimitKeyType::Header | RateLimitKeyType::Claim
    );
    if needs_name != r.key.name.is_some() {
        ctx.error(
            format!("{field}.key.name"),
            reason::INVALID,
            "name is required for Header and Claim keys, and not allowed otherwise",
        );
        ok = false;
    }
    if r.scope == RateLimitScope::Global && !shared_state {
        ctx.error(
            format!("{field}.scope"),
            reason::INVALID,
            "scope Global needs the Gateway's spec.sharedState.redis; set it, or use scope Local",
        );
        ok = false;
    }
    if !ok {
        return Err(Invalid);
    }
    let name = match r.key.kind {
        RateLimitKeyType::Header => r.key.name.as_ref().map(|n| n.to_ascii_lowercase()),
        _ => r.key.name.clone(),
    };
    Ok(RateLimitConfig {
        requests: r.requests,
        period_ms,
        burst: r.burst,
        key: RateLimitKeyConfig {
            kind: r.key.kind,
            name,
        },
        scope: r.scope,
        failure_mode: r.failure_mode,
    })
}

fn cache(
    c: &CachePolicy,
    ctx: &mut Ctx<'_>,
    field: &str,
    shared_state: bool,
) -> Result<CacheConfig, Invalid> {
    let ttl = ctx.millis(&c.ttl, &format!("{field}.ttl"));
    let stale = c
        .stale_if_error
        .as_deref()
        .map(|v| ctx.millis(v, &format!("{field}.staleIfError")))
        .transpose();
    let (ttl_ms, stale_if_error_ms) = (ttl?, stale?);
    if c.backend == CacheBackend::Shared && !shared_state {
        ctx.error(
            format!("{field}.backend"),
            reason::INVALID,
            "backend Shared needs the Gateway's spec.sharedState.redis; set it, or use backend Local",
        );
        return Err(Invalid);
    }
    let mut vary: Vec<String> = Vec::new();
    for name in &c.vary {
        let name = name.to_ascii_lowercase();
        if !vary.contains(&name) {
            vary.push(name);
        }
    }
    Ok(CacheConfig {
        ttl_ms,
        vary,
        stale_if_error_ms,
        backend: c.backend,
    })
}

fn cors(c: &CorsPolicy) -> CorsConfig {
    CorsConfig {
        allow_origins: c.allow_origins.clone(),
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        allow_credentials: c.allow_credentials,
        max_age: c.max_age,
    }
}
