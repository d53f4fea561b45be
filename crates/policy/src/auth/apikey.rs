//! API keys: `consumer:key` lines from a Secret, held only as SHA-256 digests.

use std::{collections::HashMap, sync::Arc};

use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::percent_decode_str;

use super::{
    ConfigError, Identity, Refusal, RefusalReason,
    cache::{Digest32, digest},
    quoted,
};

/// Where a request carries its API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLocation {
    /// A request header (the default is `x-api-key`).
    Header(HeaderName),
    /// A query parameter of that name; its value is percent-decoded (a `+` stays a `+`).
    Query(String),
}

impl Default for KeyLocation {
    fn default() -> Self {
        Self::Header(HeaderName::from_static("x-api-key"))
    }
}

/// The API-key engine of a rule: which consumer each key belongs to.
///
/// Lookup hashes the presented key and finds its digest in a hash table. That lookup is not
/// constant time, and need not be: its timing depends only on SHA-256 of what the caller sent,
/// so at best it reveals bytes of a stored digest, from which no key can be recovered. Nothing
/// here compares a presented key with a stored key byte by byte, which is the leak that matters.
pub struct ApiKeyAuth {
    consumers: HashMap<Digest32, Arc<str>>,
    location: KeyLocation,
    keep_credential: bool,
    challenge: HeaderValue,
}

impl ApiKeyAuth {
    /// Builds the engine from the Secret's `consumer:key` lines (blank lines and `#` comments
    /// are skipped). `keep_credential` forwards the key header to the upstream.
    ///
    /// Refuses a line without `:`, an empty consumer or key, a consumer name that is not
    /// printable ASCII without spaces, and a key or consumer listed twice; errors name the
    /// line, never the key.
    pub fn new(
        secret: &[u8],
        location: KeyLocation,
        realm: &str,
        keep_credential: bool,
    ) -> Result<Self, ConfigError> {
        let consumers = parse_lines(secret)?;
        let param = match &location {
            KeyLocation::Header(name) => format!("header={}", quoted("header", name.as_str())?),
            KeyLocation::Query(name) => format!("query={}", quoted("query parameter", name)?),
        };
        let challenge = format!("ApiKey realm={}, {param}", quoted("realm", realm)?);
        let challenge = HeaderValue::try_from(challenge).map_err(|_| {
            ConfigError::Setting("the API-key challenge is not a header value".into())
        })?;
        Ok(Self {
            consumers,
            location,
            keep_credential,
            challenge,
        })
    }

    /// How many consumers the Secret lists.
    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Identity, Refusal> {
        let refuse = |reason| Refusal::new(reason, &self.challenge);
        let presented: Vec<u8> = match &self.location {
            KeyLocation::Header(name) => {
                let mut values = headers.get_all(name).iter();
                match (values.next(), values.next()) {
                    (None, _) => return Err(refuse(RefusalReason::Missing)),
                    (Some(_), Some(_)) => return Err(refuse(RefusalReason::Malformed)),
                    (Some(value), None) => value.as_bytes().trim_ascii().to_vec(),
                }
            }
            KeyLocation::Query(name) => query
                .into_iter()
                .flat_map(|query| query.split('&'))
                .find_map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (key == name).then(|| percent_decode_str(value).collect())
                })
                .unwrap_or_default(),
        };
        if presented.is_empty() {
            return Err(refuse(RefusalReason::Missing));
        }
        match self.consumers.get(&digest(&[&presented])) {
            Some(consumer) => Ok(Identity {
                consumer: Some(consumer.clone()),
                claims: None,
            }),
            None => Err(refuse(RefusalReason::UnknownKey)),
        }
    }

    pub(crate) fn prepare_upstream(&self, headers: &mut HeaderMap) {
        if let (KeyLocation::Header(name), false) = (&self.location, self.keep_credential) {
            headers.remove(name);
        }
    }
}

fn parse_lines(secret: &[u8]) -> Result<HashMap<Digest32, Arc<str>>, ConfigError> {
    let text = std::str::from_utf8(secret).map_err(|e| ConfigError::Line {
        line: secret[..e.valid_up_to()].split(|&b| b == b'\n').count(),
        message: "is not UTF-8 text".into(),
    })?;
    let mut consumers = HashMap::new();
    let mut names = std::collections::HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let line_error = |message: &str| ConfigError::Line {
            line: index + 1,
            message: message.to_owned(),
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((consumer, key)) = line.split_once(':') else {
            return Err(line_error("expected `consumer:key`"));
        };
        let (consumer, key) = (consumer.trim(), key.trim());
        if consumer.is_empty()
            || consumer.len() > 128
            || !consumer.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(line_error(
                "the consumer name must be 1 to 128 printable ASCII characters without spaces",
            ));
        }
        if key.is_empty() {
            return Err(line_error("the key is empty"));
        }
        if !names.insert(consumer.to_owned()) {
            return Err(line_error(&format!(
                "consumer {consumer:?} is listed twice"
            )));
        }
        if consumers
            .insert(digest(&[key.as_bytes()]), Arc::from(consumer))
            .is_some()
        {
            return Err(line_error(
                "this key is already given to another consumer; every key must be unique",
            ));
        }
    }
    Ok(consumers)
}

impl std::fmt::Debug for ApiKeyAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyAuth")
            .field("consumers", &self.consumers.len())
            .field("location", &self.location)
            .field("keep_credential", &self.keep_credential)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "apikey_tests.rs"]
mod tests;
