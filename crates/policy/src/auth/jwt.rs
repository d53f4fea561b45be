//! JWTs: signatures checked by `jsonwebtoken` with a key chosen by `kid` from a [`JwksSource`],
//! then `iss`, `aud`, `exp` and `nbf`; verified tokens are cached until they expire (at most
//! [`JwtConfig::cache_ttl_cap`]), so a busy caller pays the signature check once.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderName, HeaderValue, header::AUTHORIZATION};
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde_json::{Map, Value};

use super::{
    ConfigError, DEFAULT_REALM, Identity, JwksSource, Refusal, RefusalReason,
    cache::{VerifiedCache, digest},
    claims::ClaimHeaders,
    keyset::Selection,
    quoted,
};

mod algorithm;

pub use self::algorithm::JwtAlgorithm;

/// The settings of a JWT rule.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The required `iss`.
    pub issuer: String,
    /// Accepted `aud` values (any one suffices); empty accepts any audience, or none.
    pub audiences: Vec<String>,
    /// Accepted algorithms. HMAC ones need the key in a Secret ([`JwksSource::from_secret`]).
    pub algorithms: Vec<JwtAlgorithm>,
    /// Clock skew allowed on `exp` and `nbf` (default 30 s).
    pub leeway: Duration,
    /// Claims forwarded to the upstream, each as the named request header.
    pub claim_headers: Vec<(String, HeaderName)>,
    /// Forward `Authorization` to the upstream (default: removed).
    pub keep_authorization: bool,
    /// The realm of the `Bearer` challenge.
    pub realm: String,
    /// The longest a verified token is trusted without a new check (default 5 min).
    pub cache_ttl_cap: Duration,
    /// How many verified tokens are remembered (default 10,000; 0 disables the cache).
    pub cache_capacity: usize,
}

impl JwtConfig {
    /// Settings for tokens from `issuer`, RS256 and ES256, with the defaults above.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: Vec::new(),
            algorithms: vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256],
            leeway: Duration::from_secs(30),
            claim_headers: Vec::new(),
            keep_authorization: false,
            realm: DEFAULT_REALM.to_owned(),
            cache_ttl_cap: Duration::from_secs(300),
            cache_capacity: 10_000,
        }
    }
}

/// The JWT engine of a rule.
pub struct JwtAuth {
    validations: HashMap<Algorithm, Validation>,
    source: JwksSource,
    cache: VerifiedCache<(u64, Identity)>,
    cache_ttl_cap: Duration,
    claim_headers: ClaimHeaders,
    keep_authorization: bool,
    missing: HeaderValue,
    invalid: HeaderValue,
}

impl JwtAuth {
    /// Builds the engine. Refuses an empty algorithm list, HMAC algorithms with a remote key
    /// source, a realm that needs escaping, and claim headers that would overwrite the request's
    /// framing or credentials.
    pub fn new(config: JwtConfig, source: JwksSource) -> Result<Self, ConfigError> {
        if config.algorithms.is_empty() {
            return Err(ConfigError::Setting(
                "list at least one JWT algorithm".into(),
            ));
        }
        if let Some(hmac) = config.algorithms.iter().find(|alg| alg.is_hmac())
            && source.is_remote()
        {
            return Err(ConfigError::Setting(format!(
                "{} needs its shared secret in a Secret: a key set fetched from a URL holds \
                 only public keys",
                hmac.name()
            )));
        }
        let realm = quoted("realm", &config.realm)?;
        let challenge = |text: String| {
            HeaderValue::try_from(text).map_err(|_| {
                ConfigError::Setting("the Bearer challenge is not a header value".into())
            })
        };
        let validations = config
            .algorithms
            .iter()
            .map(|alg| (alg.to_jose(), validation(&config, alg.to_jose())))
            .collect();
        Ok(Self {
            validations,
            source,
            cache: VerifiedCache::new(config.cache_capacity),
            cache_ttl_cap: config.cache_ttl_cap,
            claim_headers: ClaimHeaders::new(&config.claim_headers)?,
            keep_authorization: config.keep_authorization,
            missing: challenge(format!("Bearer realm={realm}"))?,
            invalid: challenge(format!("Bearer realm={realm}, error=\"invalid_token\""))?,
        })
    }

    /// The key source, to [`replace`](JwksSource::replace) or [`run`](JwksSource::run) it.
    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    pub(crate) async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, Refusal> {
        let token = self.bearer_token(headers)?;
        let cache_key = digest(&[token.as_bytes()]);
        let now = Instant::now();
        if let Some((generation, identity)) = self.cache.get(&cache_key, now)
            && generation == self.source.generation()
        {
            return Ok(identity);
        }
        let refuse = |reason| Refusal::new(reason, &self.invalid);
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| refuse(unparsed_reason(token)))?;
        let validation = self
            .validations
            .get(&header.alg)
            .ok_or_else(|| refuse(RefusalReason::AlgorithmNotAllowed))?;
        let mut keys = self.source.keys();
        if matches!(
            keys.select(header.kid.as_deref(), header.alg),
            Selection::UnknownKid
        ) {
            self.source.refresh_for_unknown_kid().await;
            keys = self.source.keys();
        }
        let key = match keys.select(header.kid.as_deref(), header.alg) {
            Selection::Found(key) => key,
            Selection::UnknownKid if keys.len() == 0 => {
                return Err(refuse(RefusalReason::KeysUnavailable));
            }
            Selection::UnknownKid => return Err(refuse(RefusalReason::UnknownKid)),
            Selection::WrongAlgorithm => return Err(refuse(RefusalReason::AlgorithmNotAllowed)),
        };
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
            .map_err(|error| refuse(verify_reason(error.kind())))?
            .claims;
        let identity = Identity {
            consumer: claims.get("sub").and_then(Value::as_str).map(Arc::from),
            claims: Some(Arc::new(claims)),
        };
        let ttl = remaining_life(identity.claims.as_deref()).min(self.cache_ttl_cap);
        self.cache
            .insert(cache_key, (keys.generation(), identity.clone()), now, ttl);
        Ok(identity)
    }

    pub(crate) fn prepare_upstream(&self, identity: &Identity, headers: &mut HeaderMap) {
        self.claim_headers
            .apply(identity.claims.as_deref(), headers);
        if !self.keep_authorization {
            headers.remove(AUTHORIZATION);
        }
    }

    fn bearer_token<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, Refusal> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let value = match (values.next(), values.next()) {
            (None, _) => return Err(Refusal::new(RefusalReason::Missing, &self.missing)),
            (Some(value), None) => value,
            (Some(_), Some(_)) => {
                return Err(Refusal::new(RefusalReason::Malformed, &self.invalid));
            }
        };
        let malformed = || Refusal::new(RefusalReason::Malformed, &self.invalid);
        let value = value.to_str().map_err(|_| malformed())?;
        let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(malformed());
        }
        Ok(token)
    }
}

fn validation(config: &JwtConfig, alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = config.leeway.as_secs();
    validation.validate_nbf = true;
    validation.set_issuer(&[&config.issuer]);
    let mut required = vec!["exp", "iss"];
    if config.audiences.is_empty() {
        validation.validate_aud = false;
    } else {
        validation.set_audience(&config.audiences);
        required.push("aud");
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// A token whose header does not parse: `alg: none` (or another algorithm no one accepts) is
/// an algorithm refusal, anything else malformed.
fn unparsed_reason(token: &str) -> RefusalReason {
    let alg = token
        .split('.')
        .next()
        .and_then(|header| URL_SAFE_NO_PAD.decode(header).ok())
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
        .and_then(|header| header.get("alg").and_then(Value::as_str).map(str::to_owned));
    match alg {
        Some(_) => RefusalReason::AlgorithmNotAllowed,
        None => RefusalReason::Malformed,
    }
}

fn verify_reason(kind: &ErrorKind) -> RefusalReason {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => RefusalReason::BadSignature,
        ErrorKind::ExpiredSignature => RefusalReason::Expired,
        ErrorKind::ImmatureSignature => RefusalReason::NotYetValid,
        ErrorKind::InvalidIssuer => RefusalReason::WrongIssuer,
        ErrorKind::InvalidAudience => RefusalReason::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => RefusalReason::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => RefusalReason::WrongAudience,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            RefusalReason::InvalidClaims
        }
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm => RefusalReason::AlgorithmNotAllowed,
        _ => RefusalReason::Malformed,
    }
}

/// How long until the verified token's `exp` (zero when it is already in its leeway).
fn remaining_life(claims: Option<&Map<String, Value>>) -> Duration {
    let exp = claims
        .and_then(|claims| claims.get("exp"))
        .and_then(Value::as_f64);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64());
    exp.map_or(Duration::ZERO, |exp| {
        Duration::try_from_secs_f64(exp - now).unwrap_or(Duration::ZERO)
    })
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut algorithms: Vec<String> = self
            .validations
            .keys()
            .map(|alg| format!("{alg:?}"))
            .collect();
        algorithms.sort();
        f.debug_struct("JwtAuth")
            .field("algorithms", &algorithms)
            .field("source", &self.source)
            .field("claim_headers", &self.claim_headers)
            .field("keep_authorization", &self.keep_authorization)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
pub(crate) mod tests;
