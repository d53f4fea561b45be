//! One JWKS document, compiled: the keys a token's header may name, and which algorithm each
//! key may verify.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse},
};
use serde_json::Value;

use super::ConfigError;

/// Every key set gets a distinct generation, so verifications cached under an older set are
/// not trusted once the keys change.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// The compiled keys of one JWKS document.
pub(crate) struct KeySet {
    keys: Vec<VerifyingKey>,
    generation: u64,
}

struct VerifyingKey {
    kid: Option<String>,
    /// The algorithms this key may verify: from its type and curve, narrowed by its `alg`.
    algorithms: &'static [Algorithm],
    pinned: Option<Algorithm>,
    key: DecodingKey,
}

/// The outcome of choosing a key for a token's header.
pub(crate) enum Selection<'a> {
    Found(&'a DecodingKey),
    /// No key has that `kid`, or there is no `kid` and several keys could verify the token.
    UnknownKid,
    /// The key the header names (or every key, without `kid`) cannot verify that algorithm: an
    /// HMAC token naming an RSA key lands here.
    WrongAlgorithm,
}

impl KeySet {
    /// A set with no keys (a remote JWKS before its first fetch).
    pub(crate) fn empty() -> Self {
        Self {
            keys: Vec::new(),
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Compiles a JWKS document. Keys for encryption or of unsupported types are skipped (an
    /// issuer may publish those too); a document with no usable signing key is refused.
    /// `oct` (HMAC) keys are accepted only when `allow_symmetric`: a shared secret belongs in a
    /// Secret, never behind a URL.
    pub(crate) fn parse(jwks: &[u8], allow_symmetric: bool) -> Result<Self, ConfigError> {
        let document: Value = serde_json::from_slice(jwks)
            .map_err(|e| ConfigError::Jwks(format!("not a JSON document: {e}")))?;
        let Some(entries) = document.get("keys").and_then(Value::as_array) else {
            return Err(ConfigError::Jwks(
                "expected an object with a \"keys\" array (RFC 7517 §5)".into(),
            ));
        };
        let keys: Vec<VerifyingKey> = entries
            .iter()
            .filter_map(|entry| compile(entry, allow_symmetric))
            .collect();
        if keys.is_empty() {
            let hint = if allow_symmetric {
                " (oct keys need at least 32 bytes)"
            } else {
                " (oct keys are only read from a Secret)"
            };
            return Err(ConfigError::Jwks(format!(
                "none of its {} keys can verify signatures: expected RSA, EC P-256/P-384, \
                 Ed25519 or oct keys without \"use\": \"enc\"{hint}",
                entries.len()
            )));
        }
        Ok(Self {
            keys,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Which set this is, for caches that must not outlive it.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// How many usable keys the set holds.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key for a token signed with `alg` and naming `kid`. Without `kid`, only a set with
    /// exactly one key for `alg` answers.
    pub(crate) fn select(&self, kid: Option<&str>, alg: Algorithm) -> Selection<'_> {
        let fits = |key: &&VerifyingKey| {
            key.algorithms.contains(&alg) && key.pinned.is_none_or(|pinned| pinned == alg)
        };
        match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|key| key.kid.as_deref() == Some(kid));
                let Some(first) = named.next() else {
                    return Selection::UnknownKid;
                };
                std::iter::once(first)
                    .chain(named)
                    .find(fits)
                    .map_or(Selection::WrongAlgorithm, |key| Selection::Found(&key.key))
            }
            None => {
                let mut fitting = self.keys.iter().filter(fits);
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Selection::Found(&key.key),
                    (Some(_), Some(_)) => Selection::UnknownKid,
                    (None, _) => Selection::WrongAlgorithm,
                }
            }
        }
    }
}

fn compile(entry: &Value, allow_symmetric: bool) -> Option<VerifyingKey> {
    let jwk: Jwk = serde_json::from_value(entry.clone()).ok()?;
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let algorithms: &'static [Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => &[Algorithm::EdDSA],
            _ => return None,
        },
        // RFC 7518 §3.2: an HMAC key is at least as long as the hash; shorter ones are guessable.
        AlgorithmParameters::OctetKey(oct)
            if allow_symmetric
                && base64::Engine::decode(&URL_SAFE_NO_PAD, &oct.value)
                    .is_ok_and(|secret| secret.len() >= 32) =>
        {
            &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
        }
        _ => return None,
    };
    let pinned = match jwk.common.key_algorithm {
        Some(alg) => Some(alg.to_string().parse::<Algorithm>().ok()?),
        None => None,
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(VerifyingKey {
        kid: jwk.common.key_id,
        algorithms,
        pinned,
        key,
    })
}
