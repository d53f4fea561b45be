//! HTTP Basic credentials against htpasswd lines with bcrypt or argon2id hashes.
//!
//! A bcrypt check costs milliseconds of CPU, so it runs on tokio's blocking pool, never on the
//! I/O workers; successful checks are remembered for a minute, keyed by a SHA-256 of
//! `user:password` so the cache holds no password.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use argon2::{Argon2, PasswordVerifier, password_hash::phc::PasswordHash};
use base64::{Engine, engine::general_purpose::STANDARD};
use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};

use super::{
    ConfigError, Identity, Refusal, RefusalReason,
    cache::{VerifiedCache, digest},
    quoted,
};

/// How long a successful check is remembered.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// How many successful checks are remembered.
const CACHE_CAPACITY: usize = 10_000;

/// A stored password hash, checked for its format at load.
#[derive(Clone)]
enum StoredHash {
    Bcrypt(Arc<str>),
    Argon2id(Arc<str>),
}

impl StoredHash {
    fn parse(hash: &str) -> Result<Self, &'static str> {
        if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
            hash.parse::<bcrypt::HashParts>()
                .map(|_| Self::Bcrypt(Arc::from(hash)))
                .map_err(|_| "is not a well-formed bcrypt hash")
        } else if hash.starts_with("$argon2id$") {
            PasswordHash::new(hash)
                .map(|_| Self::Argon2id(Arc::from(hash)))
                .map_err(|_| "is not a well-formed argon2id hash")
        } else if hash.starts_with("$apr1$") || hash.starts_with("{SHA}") || hash.starts_with("$1$")
        {
            Err(
                "uses MD5 or SHA-1, which Portcullis refuses: re-create it with `htpasswd -B` (bcrypt)",
            )
        } else {
            Err(
                "is not a bcrypt ($2y$) or argon2id hash (plain-text passwords are refused): \
                 create it with `htpasswd -B`",
            )
        }
    }

    /// The check itself: blocking, milliseconds.
    fn verify(&self, password: &[u8]) -> bool {
        match self {
            Self::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Self::Argon2id(hash) => Argon2::default().verify_password(password, &**hash).is_ok(),
        }
    }
}

/// The Basic engine of a rule: users and their password hashes.
pub struct BasicAuth {
    users: HashMap<String, StoredHash>,
    /// Checked when the user is unknown, so an unknown user costs what a wrong password does.
    decoy: StoredHash,
    cache: VerifiedCache<Arc<str>>,
    keep_authorization: bool,
    challenge: HeaderValue,
}

impl BasicAuth {
    /// Builds the engine from htpasswd lines `user:hash` (blank lines and `#` comments are
    /// skipped). Only bcrypt (`$2a$`, `$2b$`, `$2y$`) and argon2id hashes are accepted; errors
    /// name the line. `keep_authorization` forwards the credential to the upstream.
    pub fn new(
        htpasswd: &[u8],
        realm: &str,
        keep_authorization: bool,
    ) -> Result<Self, ConfigError> {
        let text = String::from_utf8_lossy(htpasswd);
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line_error = |message: String| ConfigError::Line {
                line: index + 1,
                message,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(line_error(
                    "expected `user:hash` (as `htpasswd -B` writes)".into(),
                ));
            };
            if user.is_empty() || user.chars().any(char::is_control) {
                return Err(line_error(
                    "the user name is empty or has control characters".into(),
                ));
            }
            let hash = StoredHash::parse(hash)
                .map_err(|why| line_error(format!("the hash of {user:?} {why}")))?;
            if users.insert(user.to_owned(), hash).is_some() {
                return Err(line_error(format!("user {user:?} is listed twice")));
            }
        }
        let Some(decoy) = users.values().next().cloned() else {
            return Err(ConfigError::Setting(
                "the htpasswd Secret lists no user".into(),
            ));
        };
        let challenge = format!("Basic realm={}, charset=\"UTF-8\"", quoted("realm", realm)?);
        let challenge = HeaderValue::try_from(challenge).map_err(|_| {
            ConfigError::Setting("the Basic challenge is not a header value".into())
        })?;
        Ok(Self {
            users,
            decoy,
            cache: VerifiedCache::new(CACHE_CAPACITY),
            keep_authorization,
            challenge,
        })
    }

    pub(crate) async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, Refusal> {
        let refuse = |reason| Refusal::new(reason, &self.challenge);
        let (user, password) = self.credentials(headers)?;
        let cache_key = digest(&[user.as_bytes(), password.as_bytes()]);
        let now = Instant::now();
        if let Some(consumer) = self.cache.get(&cache_key, now) {
            return Ok(identity(consumer));
        }
        let known = self.users.get(&user);
        let hash = known.unwrap_or(&self.decoy).clone();
        let verified = tokio::task::spawn_blocking(move || hash.verify(password.as_bytes()))
            .await
            .unwrap_or(false);
        if !(verified && known.is_some()) {
            return Err(refuse(RefusalReason::BadCredentials));
        }
        let consumer: Arc<str> = Arc::from(user);
        self.cache
            .insert(cache_key, consumer.clone(), now, CACHE_TTL);
        Ok(identity(consumer))
    }

    pub(crate) fn prepare_upstream(&self, headers: &mut HeaderMap) {
        if !self.keep_authorization {
            headers.remove(AUTHORIZATION);
        }
    }

    /// The user and password of `Authorization: Basic ...` (RFC 7617, UTF-8).
    fn credentials(&self, headers: &HeaderMap) -> Result<(String, String), Refusal> {
        let malformed = || Refusal::new(RefusalReason::Malformed, &self.challenge);
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let value = match (values.next(), values.next()) {
            (None, _) => return Err(Refusal::new(RefusalReason::Missing, &self.challenge)),
            (Some(value), None) => value.to_str().map_err(|_| malformed())?,
            (Some(_), Some(_)) => return Err(malformed()),
        };
        let (scheme, encoded) = value.split_once(' ').ok_or_else(malformed)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(malformed());
        }
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
        let (user, password) = decoded.split_once(':').ok_or_else(malformed)?;
        Ok((user.to_owned(), password.to_owned()))
    }
}

fn identity(consumer: Arc<str>) -> Identity {
    Identity {
        consumer: Some(consumer),
        claims: None,
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("users", &self.users.len())
            .field("keep_authorization", &self.keep_authorization)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "basic_tests.rs"]
mod tests;
