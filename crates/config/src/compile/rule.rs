//! One Route's rules: matches, filters, action and policies, with every check the CRD schema
//! cannot make.

use portcullis_api::{
    Route,
    route::{
        FilterType, HeaderModifier, PathMatchType, PathModifier, PathModifierType, RouteMatch,
        RouteRule, ValueMatchType,
    },
};
use regex::Regex;

use super::{
    Ctx, Invalid,
    backend::{Lookup, Resolver},
    policy::{self, CompiledPolicies, PolicyRefs},
};
use crate::{
    diagnostics::reason,
    snapshot::{
        Action, AggregatePartConfig, FilterConfig, HeaderModifierConfig, HeaderValueConfig,
        MatchConfig, MirrorConfig, ObjectKey, PathMatchConfig, PathModifierConfig, RedirectConfig,
        RuleConfig, UrlRewriteConfig, ValueMatchConfig, WeightedBackend,
    },
};

/// A compiled rule and its matches (index = match index).
#[derive(Clone, Debug)]
pub(crate) struct CompiledRule {
    pub(crate) config: RuleConfig,
    pub(crate) matches: Vec<MatchConfig>,
}

/// What the rule compiler needs besides the Route.
pub(crate) struct RuleEnv<'e, 'b> {
    pub(crate) resolver: &'e mut Resolver<'b>,
    pub(crate) defaults: &'e CompiledPolicies,
    pub(crate) gateway: &'e ObjectKey,
    pub(crate) shared_state: bool,
}

/// Compiles every rule of `route`. `Err` when a rule cannot be served as written (the Route is
/// then not accepted); unresolved backend references are not errors here, they become 500s.
pub(crate) fn compile_rules(
    route: &Route,
    key: &ObjectKey,
    env: &mut RuleEnv<'_, '_>,
    ctx: &mut Ctx<'_>,
) -> Result<Vec<CompiledRule>, Invalid> {
    let mut out = Vec::new();
    let mut ok = true;
    for (index, rule) in route.spec.rules.iter().enumerate() {
        match compile_rule(rule, index, key, env, ctx) {
            Ok(r) => out.push(r),
            Err(Invalid) => ok = false,
        }
    }
    if ok { Ok(out) } else { Err(Invalid) }
}

fn compile_rule(
    rule: &RouteRule,
    index: usize,
    key: &ObjectKey,
    env: &mut RuleEnv<'_, '_>,
    ctx: &mut Ctx<'_>,
) -> Result<CompiledRule, Invalid> {
    let field = format!("spec.rules[{index}]");
    let default_match = [RouteMatch::default()];
    let written: &[RouteMatch] = if rule.matches.is_empty() {
        &default_match
    } else {
        &rule.matches
    };
    let matches: Vec<Result<MatchConfig, Invalid>> = written
        .iter()
        .enumerate()
        .map(|(i, m)| compile_match(m, ctx, &format!("{field}.matches[{i}]")))
        .collect();
    let filters = compile_filters(rule, written, key, env, ctx, &field);
    let action = compile_action(rule, written, key, env, ctx, &field);
    let refs = PolicyRefs {
        timeouts: rule.timeouts.as_ref(),
        retry: rule.retry.as_ref(),
        auth: rule.auth.as_ref(),
        rate_limit: rule.rate_limit.as_ref(),
        cache: rule.cache.as_ref(),
        cors: rule.cors.as_ref(),
        request_body: rule.request_body.as_ref(),
    };
    let own = policy::compile(refs, ctx, &field, &key.namespace, env.shared_state);
    let gateway = env.gateway.to_string();
    let policies = policy::resolve(refs, own, env.defaults, ctx, &field, &gateway);

    let upgrades = compile_upgrades(rule.upgrades.as_deref(), ctx, &format!("{field}.upgrades"));
    let matches: Result<Vec<MatchConfig>, Invalid> = matches.into_iter().collect();
    Ok(CompiledRule {
        config: RuleConfig {
            route: key.clone(),
            rule_index: index,
            name: rule.name.clone(),
            filters: filters?,
            action: action?,
            policies: policies?,
            upgrades: upgrades?,
        },
        matches: matches?,
    })
}

/// The `Upgrade` protocols a rule tunnels, lower case and sorted; each a token (RFC 9110
/// §7.8), never `h2c` (an HTTP/2 session past every rule).
fn compile_upgrades(
    upgrades: Option<&[String]>,
    ctx: &mut Ctx<'_>,
    field: &str,
) -> Result<Option<Vec<String>>, Invalid> {
    let Some(upgrades) = upgrades else {
        return Ok(None);
    };
    let mut ok = true;
    let mut out = Vec::with_capacity(upgrades.len());
    for (i, protocol) in upgrades.iter().enumerate() {
        let lower = protocol.to_ascii_lowercase();
        let name = lower.split('/').next().unwrap_or_default();
        if name == "h2c" {
            ok = false;
            ctx.error(
                format!("{field}[{i}]"),
                reason::INVALID,
                "h2c is never tunnelled: it would give the client an HTTP/2 session with the \
                 backend past every rule",
            );
        } else if lower.is_empty() || !lower.bytes().all(|b| b == b'/' || crate::is_tchar(b)) {
            ok = false;
            ctx.error(
                format!("{field}[{i}]"),
                reason::INVALID,
                format!("{protocol:?} is not a protocol name (a token, like websocket)"),
            );
        }
        out.push(lower);
    }
    out.sort();
    out.dedup();
    if ok { Ok(Some(out)) } else { Err(Invalid) }
}

/// A rule's match, normalized: prefixes without trailing `/`, header names lowercase, the first
/// of duplicate header or query names kept.
fn compile_match(m: &RouteMatch, ctx: &mut Ctx<'_>, field: &str) -> Result<MatchConfig, Invalid> {
    let mut ok = true;
    let value = match m.path.kind {
        PathMatchType::PathPrefix => {
            let trimmed = m.path.value.trim_end_matches('/');
            if trimmed.is_empty() { "/" } else { trimmed }.to_owned()
        }
        PathMatchType::Exact | PathMatchType::RegularExpression => m.path.value.clone(),
    };
    if m.path.kind == PathMatchType::RegularExpression {
        ok &= check_regex(&value, ctx, &format!("{field}.path.value"));
    } else if !value.starts_with('/') {
        ctx.error(
            format!("{field}.path.value"),
            reason::INVALID,
            "path value must start with '/'",
        );
        ok = false;
    }
    let mut headers: Vec<ValueMatchConfig> = Vec::new();
    for (i, h) in m.headers.iter().enumerate() {
        let name = h.name.to_ascii_lowercase();
        let f = format!("{field}.headers[{i}]");
        if headers.iter().any(|x| x.name == name) {
            ctx.warning(
                &f,
                reason::INVALID,
                format!("header {name:?} is matched twice; only the first counts"),
            );
            continue;
        }
        if h.kind == ValueMatchType::RegularExpression {
            ok &= check_regex(&h.value, ctx, &format!("{f}.value"));
        }
        headers.push(ValueMatchConfig {
            name,
            kind: h.kind,
            value: h.value.clone(),
        });
    }
    let mut query_params: Vec<ValueMatchConfig> = Vec::new();
    for (i, q) in m.query_params.iter().enumerate() {
        let f = format!("{field}.queryParams[{i}]");
        if query_params.iter().any(|x| x.name == q.name) {
            ctx.warning(
                &f,
                reason::INVALID,
                format!(
                    "query parameter {:?} is matched twice; only the first counts",
                    q.name
                ),
            );
            continue;
        }
        if q.kind == ValueMatchType::RegularExpression {
            ok &= check_regex(&q.value, ctx, &format!("{f}.value"));
        }
        query_params.push(ValueMatchConfig {
            name: q.name.clone(),
            kind: q.kind,
            value: q.value.clone(),
        });
    }
    if !ok {
        return Err(Invalid);
    }
    Ok(MatchConfig {
        path: PathMatchConfig {
            kind: m.path.kind,
            value,
        },
        method: m.method,
        headers,
        query_params,
    })
}

/// Whether `pattern` compiles as the proxy will use it: anchored at both ends.
fn check_regex(pattern: &str, ctx: &mut Ctx<'_>, field: &str) -> bool {
    match Regex::new(&format!("^(?:{pattern})$")) {
        Ok(_) => true,
        Err(e) => {
            let detail = e.to_string();
            let detail = detail.lines().last().unwrap_or_default().trim().to_owned();
            ctx.error(
                field,
                reason::UNSUPPORTED_VALUE,
                format!("invalid regular expression {pattern:?}: {detail}"),
            );
            false
        }
    }
}

/// The rule's filters, in order; a redirect is left out (it is the rule's action).
fn compile_filters(
    rule: &RouteRule,
    matches: &[RouteMatch],
    key: &ObjectKey,
    env: &mut RuleEnv<'_, '_>,
    ctx: &mut Ctx<'_>,
    field: &str,
) -> Result<Vec<FilterConfig>, Invalid> {
    let mut ok = true;
    let mut out = Vec::new();
    let count = |kind: FilterType| rule.filters.iter().filter(|f| f.kind == kind).count();
    for kind in [
        FilterType::RequestHeaderModifier,
        FilterType::ResponseHeaderModifier,
        FilterType::RequestRedirect,
        FilterType::UrlRewrite,
    ] {
        if count(kind) > 1 {
            ctx.error(
                format!("{field}.filters"),
                reason::INCOMPATIBLE_FILTERS,
                format!("{kind:?} may appear at most once per rule"),
            );
            ok = false;
        }
    }
    if count(FilterType::RequestRedirect) > 0 && count(FilterType::UrlRewrite) > 0 {
        ctx.error(
            format!("{field}.filters"),
            reason::INCOMPATIBLE_FILTERS,
            "RequestRedirect and URLRewrite cannot be combined in one rule",
        );
        ok = false;
    }
    for (i, filter) in rule.filters.iter().enumerate() {
        let f = format!("{field}.filters[{i}]");
        let compiled = match filter.kind {
            FilterType::RequestHeaderModifier => filter
                .request_header_modifier
                .as_ref()
                .map(|m| FilterConfig::RequestHeaderModifier(header_modifier(m))),
            FilterType::ResponseHeaderModifier => filter
                .response_header_modifier
                .as_ref()
                .map(|m| FilterConfig::ResponseHeaderModifier(header_modifier(m))),
            FilterType::RequestRedirect => {
                if filter.request_redirect.is_none() {
                    None
                } else {
                    continue;
                }
            }
            FilterType::UrlRewrite => match &filter.url_rewrite {
                Some(rw) => {
                    let path = rw
                        .path
                        .as_ref()
                        .map(|p| path_modifier(p, matches, ctx, &format!("{f}.urlRewrite.path")));
                    match path.transpose() {
                        Ok(path) => Some(FilterConfig::UrlRewrite(UrlRewriteConfig {
                            hostname: rw.hostname.clone(),
                            path,
                        })),
                        Err(Invalid) => {
                            ok = false;
                            continue;
                        }
                    }
                }
                None => None,
            },
            FilterType::RequestMirror => match &filter.request_mirror {
                Some(m) => {
                    if m.percent > 100 {
                        ctx.error(
                            format!("{f}.requestMirror.percent"),
                            reason::INVALID,
                            "percent must be between 0 and 100",
                        );
                        ok = false;
                    }
                    let backend = resolve(
                        &m.backend_ref.name,
                        key,
                        env,
                        ctx,
                        &format!("{f}.requestMirror.backendRef"),
                    );
                    Some(FilterConfig::RequestMirror(MirrorConfig {
                        backend,
                        percent: m.percent,
                        max_in_flight: m.max_in_flight,
                    }))
                }
                None => None,
            },
        };
        match compiled {
            Some(c) => out.push(c),
            None => {
                ctx.error(
                    &f,
                    reason::INVALID,
                    format!("the settings for type {:?} are missing", filter.kind),
                );
                ok = false;
            }
        }
    }
    if ok { Ok(out) } else { Err(Invalid) }
}

fn header_modifier(m: &HeaderModifier) -> HeaderModifierConfig {
    let values = |list: &[portcullis_api::route::HeaderValue]| {
        list.iter()
            .map(|h| HeaderValueConfig {
                name: h.name.to_ascii_lowercase(),
                value: h.value.clone(),
            })
            .collect()
    };
    HeaderModifierConfig {
        set: values(&m.set),
        add: values(&m.add),
        remove: m.remove.iter().map(|n| n.to_ascii_lowercase()).collect(),
    }
}

/// A path modifier; `ReplacePrefixMatch` needs exactly one match in the rule, of type
/// `PathPrefix` (otherwise the prefix to replace is ambiguous).
fn path_modifier(
    p: &PathModifier,
    matches: &[RouteMatch],
    ctx: &mut Ctx<'_>,
    field: &str,
) -> Result<PathModifierConfig, Invalid> {
    let value = match p.kind {
        PathModifierType::ReplaceFullPath => p.replace_full_path.clone(),
        PathModifierType::ReplacePrefixMatch => p.replace_prefix_match.clone(),
    };
    let Some(value) = value else {
        let name = match p.kind {
            PathModifierType::ReplaceFullPath => "replaceFullPath",
            PathModifierType::ReplacePrefixMatch => "replacePrefixMatch",
        };
        ctx.error(
            format!("{field}.{name}"),
            reason::INVALID,
            format!("{name} must be set for type {:?}", p.kind),
        );
        return Err(Invalid);
    };
    if p.kind == PathModifierType::ReplacePrefixMatch
        && !(matches.len() == 1 && matches[0].path.kind == PathMatchType::PathPrefix)
    {
        ctx.error(
            field,
            reason::UNSUPPORTED_VALUE,
            "ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix",
        );
        return Err(Invalid);
    }
    Ok(PathModifierConfig {
        kind: p.kind,
        value,
    })
}

/// The action of a rule whose filter `i` is `redirect`.
fn redirect_action(
    i: usize,
    redirect: &portcullis_api::route::RequestRedirect,
    matches: &[RouteMatch],
    ctx: &mut Ctx<'_>,
    field: &str,
) -> Result<Action, Invalid> {
    let f = format!("{field}.filters[{i}].requestRedirect");
    let path = redirect
        .path
        .as_ref()
        .map(|p| path_modifier(p, matches, ctx, &format!("{f}.path")))
        .transpose();
    let status_ok = [301, 302, 303, 307, 308].contains(&redirect.status_code);
    if !status_ok {
        ctx.error(
            format!("{f}.statusCode"),
            reason::UNSUPPORTED_VALUE,
            format!(
                "statusCode {} is not one of 301, 302, 303, 307, 308",
                redirect.status_code
            ),
        );
    }
    let path = path?;
    if !status_ok {
        return Err(Invalid);
    }
    Ok(Action::Redirect(RedirectConfig {
        scheme: redirect.scheme,
        hostname: redirect.hostname.clone(),
        path,
        port: redirect.port,
        status_code: redirect.status_code,
    }))
}

/// The action of a rule: its redirect, its aggregate or its weighted backends.
fn compile_action(
    rule: &RouteRule,
    matches: &[RouteMatch],
    key: &ObjectKey,
    env: &mut RuleEnv<'_, '_>,
    ctx: &mut Ctx<'_>,
    field: &str,
) -> Result<Action, Invalid> {
    let redirect = rule
        .filters
        .iter()
        .enumerate()
        .find_map(|(i, f)| f.request_redirect.as_ref().map(|r| (i, r)));
    let has_backends = !rule.backend_refs.is_empty();
    if let Some((i, redirect)) = redirect {
        if has_backends || rule.aggregate.is_some() {
            ctx.error(
                format!("{field}.filters[{i}]"),
                reason::INCOMPATIBLE_FILTERS,
                "a RequestRedirect rule answers by itself: remove its backendRefs and aggregate",
            );
            return Err(Invalid);
        }
        return redirect_action(i, redirect, matches, ctx, field);
    }
    if has_backends && rule.aggregate.is_some() {
        ctx.error(
            field,
            reason::INVALID,
            "a rule sends requests either to backendRefs or to an aggregate, not both",
        );
        return Err(Invalid);
    }
    if let Some(aggregate) = &rule.aggregate {
        let mut ok = true;
        let mut parts = Vec::new();
        for (i, part) in aggregate.parts.iter().enumerate() {
            let f = format!("{field}.aggregate.parts[{i}]");
            if aggregate.parts[..i].iter().any(|p| p.name == part.name) {
                ctx.error(
                    format!("{f}.name"),
                    reason::INVALID,
                    format!("aggregate part name {:?} is used twice", part.name),
                );
                ok = false;
            }
            let backend = resolve(
                &part.backend_ref.name,
                key,
                env,
                ctx,
                &format!("{f}.backendRef"),
            );
            match ctx.millis(&part.timeout, &format!("{f}.timeout")) {
                Ok(timeout_ms) => parts.push(AggregatePartConfig {
                    name: part.name.clone(),
                    backend,
                    path: part.path.clone(),
                    timeout_ms,
                    on_failure: part.on_failure,
                }),
                Err(Invalid) => ok = false,
            }
        }
        return if ok {
            Ok(Action::Aggregate { parts })
        } else {
            Err(Invalid)
        };
    }
    if !has_backends {
        // Valid, as in HTTPRoute (conformance HTTPRouteNoBackendRefs): said, not refused.
        ctx.warning(
            format!("{field}.backendRefs"),
            reason::INVALID,
            "the rule has no backendRefs: every request it matches answers 500",
        );
    }
    let mut ok = true;
    let mut backends = Vec::new();
    for (i, b) in rule.backend_refs.iter().enumerate() {
        let f = format!("{field}.backendRefs[{i}]");
        if b.weight > 1_000_000 {
            ctx.error(
                format!("{f}.weight"),
                reason::INVALID,
                "weight must be between 0 and 1000000",
            );
            ok = false;
        }
        let backend = resolve(&b.name, key, env, ctx, &f);
        backends.push(WeightedBackend {
            backend,
            weight: b.weight,
        });
    }
    if ok {
        Ok(Action::Backends { backends })
    } else {
        Err(Invalid)
    }
}

/// Resolves a ServiceBackend name in the Route's namespace; `None` (with a `ResolvedRefs`
/// diagnostic) when it does not exist or is invalid.
fn resolve(
    name: &str,
    key: &ObjectKey,
    env: &mut RuleEnv<'_, '_>,
    ctx: &mut Ctx<'_>,
    field: &str,
) -> Option<String> {
    match env.resolver.lookup(&key.namespace, name, ctx.sink) {
        Lookup::Found(k) => Some(k),
        Lookup::Missing => {
            ctx.unresolved(
                field,
                reason::BACKEND_NOT_FOUND,
                format!(
                    "ServiceBackend {name:?} not found in namespace {:?}",
                    key.namespace
                ),
            );
            None
        }
        Lookup::Invalid => {
            ctx.unresolved(
                field,
                reason::INVALID_BACKEND,
                format!(
                    "ServiceBackend {name:?} in namespace {:?} is invalid (see its own diagnostics)",
                    key.namespace
                ),
            );
            None
        }
    }
}
