//! What this build of the gateway can serve: for one compiled rule, whether a replica can
//! enforce everything the rule asks for and, if not, why — each reason naming the Route field.
//!
//! Both halves call the same function, so they never disagree. The data plane answers every
//! request of an unservable rule with 503 and the reason, and keeps serving every other rule
//! (a protection is never skipped, and one rule never takes the others down); the operator puts
//! the same reasons in the Route's and the Gateway's status and in Events; `portcullis check`
//! warns about them.
//!
//! Two kinds of reason:
//! - a policy or action this build does not implement: [`Feature::is_supported`] is the one
//!   table of what is implemented. Implementing a policy means flipping its entry there;
//! - a Secret the rule reads (API keys, a JWKS, basic-auth users) that is missing, unreadable or
//!   malformed. Callers know different things about Secrets: the proxy reads the mounted files,
//!   the operator only knows whether the Secret exists, `portcullis check` knows the Secrets in
//!   its manifests. They say what they know through [`SecretState`]; the checks of the content
//!   live here, pure, so that every caller that has the content judges it the same way.

use std::fmt;

use crate::{
    diagnostics::reason as diagnostics_reason,
    snapshot::{
        Action, AuthConfig, CacheBackend, JwksConfig, ObjectKey, RateLimitScope, RuleConfig,
        SecretFile, Snapshot,
    },
};

/// The reasons a rule is not served (CamelCase, as status conditions and metric labels carry
/// them).
pub mod reason {
    /// The rule asks for a policy or action this build does not implement. Gateway API's reason
    /// for a value the implementation does not support.
    pub const UNSUPPORTED_VALUE: &str = super::diagnostics_reason::UNSUPPORTED_VALUE;
    /// A Secret (or the key of it) the rule reads does not exist.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// A Secret the rule reads exists but cannot be read, or its content is malformed.
    pub const INVALID_SECRET: &str = "InvalidSecret";
    /// The rule itself cannot be built (a value no compiler should have let through, such as a
    /// snapshot edited by hand).
    pub const INVALID: &str = super::diagnostics_reason::INVALID;
}

/// A policy or action a rule can ask for whose support depends on the build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Feature {
    /// `auth.type: ApiKey`.
    ApiKeyAuth,
    /// `auth.type: JWT`.
    JwtAuth,
    /// `auth.type: Basic`.
    BasicAuth,
    /// `rateLimit` with `scope: Local`.
    LocalRateLimit,
    /// `rateLimit` with `scope: Global`.
    GlobalRateLimit,
    /// `cache` with `backend: Local`.
    LocalCache,
    /// `cache` with `backend: Shared`.
    SharedCache,
    /// `aggregate` instead of `backendRefs`.
    Aggregate,
}

impl Feature {
    /// Whether this build serves the feature: the one table of what is implemented.
    pub const fn is_supported(self) -> bool {
        match self {
            Feature::ApiKeyAuth => true,
            Feature::JwtAuth => true,
            Feature::BasicAuth => true,
            Feature::LocalRateLimit => true,
            Feature::GlobalRateLimit => true,
            Feature::LocalCache => true,
            Feature::SharedCache => true,
            Feature::Aggregate => true,
        }
    }

    /// The rule's field that asks for the feature (relative to the rule).
    pub const fn field(self) -> &'static str {
        match self {
            Feature::ApiKeyAuth | Feature::JwtAuth | Feature::BasicAuth => "auth",
            Feature::LocalRateLimit | Feature::GlobalRateLimit => "rateLimit",
            Feature::LocalCache | Feature::SharedCache => "cache",
            Feature::Aggregate => "aggregate",
        }
    }

    /// What the feature is, for messages.
    pub const fn description(self) -> &'static str {
        match self {
            Feature::ApiKeyAuth => "API-key authentication",
            Feature::JwtAuth => "JWT authentication",
            Feature::BasicAuth => "basic authentication",
            Feature::LocalRateLimit => "rate limiting",
            Feature::GlobalRateLimit => "global rate limiting",
            Feature::LocalCache => "response caching",
            Feature::SharedCache => "shared response caching",
            Feature::Aggregate => "aggregation",
        }
    }
}

/// The features `rule` asks for, in the order of its fields. A policy inherited from the
/// Gateway's `spec.defaults` is in the rule already.
pub fn features(rule: &RuleConfig) -> Vec<Feature> {
    let policies = &rule.policies;
    let mut features = Vec::new();
    match &policies.auth {
        Some(AuthConfig::ApiKey { .. }) => features.push(Feature::ApiKeyAuth),
        Some(AuthConfig::Jwt { .. }) => features.push(Feature::JwtAuth),
        Some(AuthConfig::Basic { .. }) => features.push(Feature::BasicAuth),
        None => {}
    }
    match policies.rate_limit.as_ref().map(|r| r.scope) {
        Some(RateLimitScope::Local) => features.push(Feature::LocalRateLimit),
        Some(RateLimitScope::Global) => features.push(Feature::GlobalRateLimit),
        None => {}
    }
    match policies.cache.as_ref().map(|c| c.backend) {
        Some(CacheBackend::Local) => features.push(Feature::LocalCache),
        Some(CacheBackend::Shared) => features.push(Feature::SharedCache),
        None => {}
    }
    if matches!(rule.action, Action::Aggregate { .. }) {
        features.push(Feature::Aggregate);
    }
    features
}

/// What a Secret file holds, which decides how its content is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretContent {
    /// `consumer:key` lines.
    ApiKeys,
    /// A JWKS document (JSON with a `keys` array).
    Jwks,
    /// `user:hash` lines (htpasswd).
    BasicUsers,
}

/// A Secret file a rule reads, and the field (relative to the rule) that names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleSecret<'a> {
    /// `auth.apiKey.secretRef`, `auth.jwt.jwksSecretRef` or `auth.basic.secretRef`.
    pub field: &'static str,
    /// The file.
    pub file: &'a SecretFile,
    /// What it holds.
    pub content: SecretContent,
}

/// Every Secret file `rule` reads. A JWT rule whose key set comes from a `jwksUri` reads none:
/// each replica fetches the URL itself, and an unreachable issuer is the data plane's to report.
pub fn secret_files(rule: &RuleConfig) -> Vec<RuleSecret<'_>> {
    let secret = match &rule.policies.auth {
        Some(AuthConfig::ApiKey { keys, .. }) => RuleSecret {
            field: "auth.apiKey.secretRef",
            file: keys,
            content: SecretContent::ApiKeys,
        },
        Some(AuthConfig::Jwt {
            jwks: JwksConfig::Secret(jwks),
            ..
        }) => RuleSecret {
            field: "auth.jwt.jwksSecretRef",
            file: jwks,
            content: SecretContent::Jwks,
        },
        Some(AuthConfig::Basic { users, .. }) => RuleSecret {
            field: "auth.basic.secretRef",
            file: users,
            content: SecretContent::BasicUsers,
        },
        Some(AuthConfig::Jwt {
            jwks: JwksConfig::Uri(_),
            ..
        })
        | None => return Vec::new(),
    };
    vec![secret]
}

/// What a caller knows about one Secret file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretState {
    /// The file is there. Its content when the caller read it (then it is checked), `None`
    /// when only its existence is known.
    Present(Option<Vec<u8>>),
    /// The Secret, or the key of it, does not exist.
    Missing,
    /// It exists but cannot be read; the text says why (never the content).
    Unreadable(String),
}

/// One reason a rule cannot be served.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gap {
    /// The Route field, like `spec.rules[2].rateLimit`.
    pub field: String,
    /// A reason from [`reason`].
    pub reason: &'static str,
    /// What is wrong, for the people who run the gateway (may name Secrets, never their
    /// content).
    pub message: String,
}

impl Gap {
    /// A gap of the rule with index `rule_index`, at `field` relative to the rule.
    pub fn new(
        rule_index: usize,
        field: &str,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        let field = if field.is_empty() {
            rule_field(rule_index)
        } else {
            format!("{}.{field}", rule_field(rule_index))
        };
        Self {
            field,
            reason,
            message: message.into(),
        }
    }

    /// What a client whose request hit the rule may read: the field and the kind of problem,
    /// never the name of a Secret or a file.
    pub fn public(&self) -> String {
        match self.reason {
            reason::UNSUPPORTED_VALUE => format!("{}: {}", self.field, self.message),
            reason::SECRET_NOT_FOUND | reason::INVALID_SECRET => {
                format!("{}: a Secret it needs is missing or invalid", self.field)
            }
            _ => format!("{}: the rule is invalid", self.field),
        }
    }
}

impl fmt::Display for Gap {
    /// `field: message`, the tail of a `portcullis check` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// `spec.rules[<index>]`.
pub fn rule_field(rule_index: usize) -> String {
    format!("spec.rules[{rule_index}]")
}

/// Why `rule` cannot be served by this build: nothing when it can. `secret` tells what the
/// caller knows about each Secret file the rule reads.
pub fn unservable(rule: &RuleConfig, secret: impl FnMut(&SecretFile) -> SecretState) -> Vec<Gap> {
    unservable_with(rule, Feature::is_supported, secret)
}

/// [`unservable`], with `supported` in place of this build's table (tests switch features on).
fn unservable_with(
    rule: &RuleConfig,
    supported: impl Fn(Feature) -> bool,
    mut secret: impl FnMut(&SecretFile) -> SecretState,
) -> Vec<Gap> {
    let index = rule.rule_index;
    let mut gaps: Vec<Gap> = features(rule)
        .into_iter()
        .filter(|feature| !supported(*feature))
        .map(|feature| {
            Gap::new(
                index,
                feature.field(),
                reason::UNSUPPORTED_VALUE,
                format!(
                    "{} is not supported by this version of the gateway yet",
                    feature.description()
                ),
            )
        })
        .collect();
    for needed in secret_files(rule) {
        let file = needed.file;
        let named = format!(
            "Secret {}/{} (key {:?})",
            file.namespace, file.name, file.key
        );
        let problem = match secret(file) {
            SecretState::Present(None) => None,
            SecretState::Present(Some(content)) => check_content(needed.content, &content)
                .err()
                .map(|e| (reason::INVALID_SECRET, format!("{named}: {e}"))),
            SecretState::Missing => Some((reason::SECRET_NOT_FOUND, format!("{named} not found"))),
            SecretState::Unreadable(why) => Some((
                reason::INVALID_SECRET,
                format!("{named} cannot be read: {why}"),
            )),
        };
        if let Some((reason, message)) = problem {
            gaps.push(Gap::new(index, needed.field, reason, message));
        }
    }
    gaps
}

/// A rule of a snapshot that a replica of this build answers with 503, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnservedRule {
    /// The Route.
    pub route: ObjectKey,
    /// The rule's index in the Route.
    pub rule_index: usize,
    /// The rule's name, if it has one.
    pub name: Option<String>,
    /// Every reason, never empty.
    pub gaps: Vec<Gap>,
}

impl fmt::Display for UnservedRule {
    /// `Route namespace/name spec.rules[i].field: message; ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, gap) in self.gaps.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "Route {} {gap}", self.route)?;
        }
        Ok(())
    }
}

/// The rules of `snapshot` this build cannot serve, in snapshot order.
pub fn unserved_rules(
    snapshot: &Snapshot,
    mut secret: impl FnMut(&SecretFile) -> SecretState,
) -> Vec<UnservedRule> {
    snapshot
        .rules
        .iter()
        .filter_map(|rule| {
            let gaps = unservable(rule, &mut secret);
            (!gaps.is_empty()).then(|| UnservedRule {
                route: rule.route.clone(),
                rule_index: rule.rule_index,
                name: rule.name.clone(),
                gaps,
            })
        })
        .collect()
}

/// Checks the content of a Secret file; the error says what is wrong without quoting it.
///
/// The form first (one entry per line, at least one), then the data plane's own engine reads
/// it (hash formats, duplicates, key types): `portcullis check`, the operator and the replicas
/// judge a Secret the same way.
pub fn check_content(kind: SecretContent, content: &[u8]) -> Result<(), String> {
    use portcullis_policy::auth::{ApiKeyAuth, BasicAuth, DEFAULT_REALM, JwksSource, KeyLocation};
    let text = std::str::from_utf8(content).map_err(|_| "it is not UTF-8 text".to_owned())?;
    let engine = match kind {
        SecretContent::ApiKeys => {
            check_lines(text, "consumer:key")?;
            let header = http::HeaderName::from_static("x-api-key");
            ApiKeyAuth::new(content, KeyLocation::Header(header), DEFAULT_REALM, false).map(drop)
        }
        SecretContent::BasicUsers => {
            check_lines(text, "user:hash")?;
            BasicAuth::new(content, DEFAULT_REALM, false).map(drop)
        }
        SecretContent::Jwks => {
            let document: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| format!("it is not a JSON document (line {})", e.line()))?;
            if !document
                .get("keys")
                .is_some_and(serde_json::Value::is_array)
            {
                return Err("it is not a JWKS: no \"keys\" array".to_owned());
            }
            JwksSource::from_secret(content).map(drop)
        }
    };
    engine.map_err(|e| e.to_string())
}

/// Every line that is not empty or a `#` comment is `name:value` with both parts non-empty.
fn check_lines(text: &str, form: &str) -> Result<(), String> {
    let mut entries = 0;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
                entries += 1;
            }
            _ => return Err(format!("line {} is not {form}", number + 1)),
        }
    }
    if entries == 0 {
        return Err(format!("it holds no {form} line"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "capability_tests.rs"]
mod tests;
