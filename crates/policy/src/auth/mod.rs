//! Authentication: who the caller of a rule is, and what the upstream learns of it.
//!
//! Three engines, one per `auth.type` of a rule, each built from plain parameters (the Secret's
//! bytes, header names, durations) and then shared by every request of the rule:
//!
//! - [`ApiKeyAuth`]: `consumer:key` lines, keys held only as SHA-256 digests;
//! - [`BasicAuth`]: htpasswd lines with bcrypt or argon2id hashes, verified off the I/O threads;
//! - [`JwtAuth`]: signed JWTs checked against a [`JwksSource`] (a Secret, or an `https` URL
//!   fetched by [`HttpsJwksFetch`]).
//!
//! [`Authenticator`] puts them behind one call: [`Authenticator::authenticate`] answers an
//! [`Identity`] or a [`Refusal`] (status, metric label and `WWW-Authenticate` value), and
//! [`Authenticator::prepare_upstream`] edits the headers the upstream receives.

mod apikey;
mod basic;
mod cache;
mod claims;
mod fetch;
mod jwks;
mod jwt;
mod keyset;
mod refusal;

use std::{borrow::Cow, sync::Arc};

use http::HeaderMap;
use serde_json::Value;

pub use self::{
    apikey::{ApiKeyAuth, KeyLocation},
    basic::BasicAuth,
    fetch::HttpsJwksFetch,
    jwks::{
        BoxFuture, FetchError, JwksFetch, JwksResponse, JwksSource, RefreshError, RefreshSchedule,
        max_age,
    },
    jwt::{JwtAlgorithm, JwtAuth, JwtConfig},
    refusal::{Refusal, RefusalReason},
};

/// The realm named in challenges when a rule does not choose one.
pub const DEFAULT_REALM: &str = "portcullis";

/// Who the caller is, once authenticated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    /// The consumer's name, for access logs, metrics and rate-limit keys: the API key's consumer,
    /// the Basic user, or the JWT's `sub` claim. Never a credential.
    pub consumer: Option<Arc<str>>,
    /// The verified claims of a JWT; `None` for the other modes.
    pub claims: Option<Arc<serde_json::Map<String, Value>>>,
}

/// A Secret (or JWKS document) a Portcullis rule cannot use, with the line or key at fault.
/// Messages never contain key material.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A line of a `consumer:key` or htpasswd Secret is wrong.
    #[error("line {line}: {message}")]
    Line {
        /// The 1-based line number.
        line: usize,
        /// What is wrong and what to write instead.
        message: String,
    },
    /// A JWKS document is wrong as a whole.
    #[error("JWKS: {0}")]
    Jwks(String),
    /// A setting of the rule (header name, realm, algorithm list) is wrong.
    #[error("{0}")]
    Setting(String),
}

/// The authentication engine of one rule.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// `auth.type: ApiKey`.
    ApiKey(Arc<ApiKeyAuth>),
    /// `auth.type: Basic`.
    Basic(Arc<BasicAuth>),
    /// `auth.type: JWT`.
    Jwt(Arc<JwtAuth>),
}

impl Authenticator {
    /// Authenticates one request from its headers and raw query string (without the `?`).
    ///
    /// Cheap when the credential was seen recently (API keys always are; Basic and JWT
    /// verifications are cached); a bcrypt check runs on tokio's blocking pool, and a JWT with an
    /// unknown `kid` may wait for one JWKS refresh.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Identity, Refusal> {
        match self {
            Self::ApiKey(auth) => auth.authenticate(headers, query),
            Self::Basic(auth) => auth.authenticate(headers).await,
            Self::Jwt(auth) => auth.authenticate(headers).await,
        }
    }

    /// Edits the headers the upstream receives after a successful [`authenticate`]: removes the
    /// credential (`Authorization`, or the API key's header) unless the rule keeps it, and for
    /// JWT removes every client-sent claim header before setting them from the verified claims.
    ///
    /// An API key sent in the query string stays there: strip it from the forwarded URI with
    /// [`strip_query_param`].
    ///
    /// [`authenticate`]: Self::authenticate
    pub fn prepare_upstream(&self, identity: &Identity, headers: &mut HeaderMap) {
        match self {
            Self::ApiKey(auth) => auth.prepare_upstream(headers),
            Self::Basic(auth) => auth.prepare_upstream(headers),
            Self::Jwt(auth) => auth.prepare_upstream(identity, headers),
        }
    }
}

/// Removes every `name=...` pair from a raw query string (without the `?`), keeping the others
/// in order. Answers `None` when nothing is left, so the caller can drop the `?`; borrows the
/// input when there was nothing to remove.
pub fn strip_query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    let is_named = |pair: &str| pair.split('=').next() == Some(name);
    if !query.split('&').any(is_named) {
        return (!query.is_empty()).then_some(Cow::Borrowed(query));
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && !is_named(pair))
        .collect();
    (!kept.is_empty()).then(|| Cow::Owned(kept.join("&")))
}

/// A realm (or other challenge parameter) as an RFC 9110 quoted-string, refusing characters that
/// would need escaping so the challenge reads the same everywhere.
fn quoted(what: &str, value: &str) -> Result<String, ConfigError> {
    if value.is_empty()
        || value.len() > 256
        || !value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return Err(ConfigError::Setting(format!(
            "{what} {value:?} must be 1 to 256 printable ASCII characters without '\"' or '\\'"
        )));
    }
    Ok(format!("\"{value}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_query_param_removes_only_the_named_pair() {
        assert_eq!(
            strip_query_param("a=1&apikey=s3cret&b=2", "apikey").as_deref(),
            Some("a=1&b=2")
        );
        assert_eq!(strip_query_param("apikey=s3cret", "apikey"), None);
        assert_eq!(
            strip_query_param("apikeyx=1", "apikey").as_deref(),
            Some("apikeyx=1")
        );
        assert_eq!(strip_query_param("", "apikey"), None);
        assert_eq!(
            strip_query_param("apikey&apikey=2&c", "apikey").as_deref(),
            Some("c")
        );
    }

    #[test]
    fn realms_that_would_need_escaping_are_refused() {
        assert_eq!(quoted("realm", "shop").as_deref(), Ok("\"shop\""));
        assert!(quoted("realm", "a\"b").is_err());
        assert!(quoted("realm", "").is_err());
        assert!(quoted("realm", "line\nbreak").is_err());
    }
}
