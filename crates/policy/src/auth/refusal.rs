//! Why a request was not let through, in the terms of the response and of the metrics.

use http::{HeaderValue, StatusCode};

/// Why a credential was refused; [`label`](Self::label) is the `reason` label of the refusal
/// metric, so it is a small fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalReason {
    /// No credential at all (header or query parameter absent or empty).
    Missing,
    /// A credential that does not parse: not `Basic`/`Bearer`, bad base64, not three JWT parts.
    Malformed,
    /// An API key that belongs to no consumer.
    UnknownKey,
    /// A Basic user and password that do not match (unknown users included, indistinguishably).
    BadCredentials,
    /// A JWT whose signature does not verify with the key its header names.
    BadSignature,
    /// A JWT past its `exp` (beyond the leeway).
    Expired,
    /// A JWT before its `nbf` (beyond the leeway).
    NotYetValid,
    /// A JWT from another issuer, or without `iss`.
    WrongIssuer,
    /// A JWT for none of the rule's audiences, or without `aud` when the rule names audiences.
    WrongAudience,
    /// A JWT without `exp`, or whose `exp`/`nbf` is not a number.
    InvalidClaims,
    /// A JWT signed with an algorithm the rule does not accept (`none` and HMAC with a public
    /// key included).
    AlgorithmNotAllowed,
    /// A JWT whose `kid` is in no key set, even after a refresh; or no `kid` while several keys
    /// could match.
    UnknownKid,
    /// The rule's keys could not be loaded yet (a remote JWKS never fetched successfully).
    KeysUnavailable,
    /// The caller is known but the rule does not admit it (answered with 403).
    Forbidden,
}

impl RefusalReason {
    /// The metric label: `missing`, `malformed`, `unknown_key`, ...
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::BadCredentials => "bad_credentials",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::InvalidClaims => "invalid_claims",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnknownKid => "unknown_kid",
            Self::KeysUnavailable => "keys_unavailable",
            Self::Forbidden => "forbidden",
        }
    }
}

/// A refused request: what to answer and what to count.
#[derive(Clone, PartialEq, Eq)]
pub struct Refusal {
    reason: RefusalReason,
    challenge: HeaderValue,
}

impl Refusal {
    /// A refusal with the `WWW-Authenticate` value its authenticator prepared (never built from
    /// request data, so it cannot echo a credential).
    pub(crate) fn new(reason: RefusalReason, challenge: &HeaderValue) -> Self {
        Self {
            reason,
            challenge: challenge.clone(),
        }
    }

    /// The refusal of a caller who authenticated but is not among those the rule admits: 403,
    /// which carries no challenge (another credential would not help).
    pub fn forbidden() -> Self {
        Self {
            reason: RefusalReason::Forbidden,
            challenge: HeaderValue::from_static(""),
        }
    }

    /// Why the request was refused.
    pub fn reason(&self) -> RefusalReason {
        self.reason
    }

    /// 403 when the caller is known but not admitted, 401 otherwise.
    pub fn status(&self) -> StatusCode {
        match self.reason {
            RefusalReason::Forbidden => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The `WWW-Authenticate` header value every 401 carries (RFC 9110 §11.6.1).
    pub fn www_authenticate(&self) -> &HeaderValue {
        &self.challenge
    }
}

impl std::fmt::Debug for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refusal")
            .field("reason", &self.reason.label())
            .field("status", &self.status().as_u16())
            .finish()
    }
}
