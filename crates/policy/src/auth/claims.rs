//! Verified JWT claims forwarded to the upstream as request headers.

use http::{HeaderMap, HeaderName, HeaderValue, header};
use serde_json::{Map, Value};

use super::ConfigError;

/// Headers a claim may never be written to: they frame or route the request, or carry the
/// credential itself.
const RESERVED: &[HeaderName] = &[
    header::AUTHORIZATION,
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::HOST,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
];

/// Which claim goes to which request header.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClaimHeaders(Vec<(String, HeaderName)>);

impl ClaimHeaders {
    pub(crate) fn new(pairs: &[(String, HeaderName)]) -> Result<Self, ConfigError> {
        for (claim, name) in pairs {
            if claim.is_empty() {
                return Err(ConfigError::Setting(format!(
                    "header {name}: the claim name is empty"
                )));
            }
            if RESERVED.contains(name) || name.as_str().starts_with("keep-alive") {
                return Err(ConfigError::Setting(format!(
                    "claim {claim:?} cannot be forwarded in header {name}: choose another header \
                     name (for example x-jwt-{claim})"
                )));
            }
        }
        Ok(Self(pairs.to_vec()))
    }

    /// Removes every client-sent copy of the claim headers, then sets each from the verified
    /// claims (a claim the token lacks leaves its header absent).
    pub(crate) fn apply(&self, claims: Option<&Map<String, Value>>, headers: &mut HeaderMap) {
        for (_, name) in &self.0 {
            headers.remove(name);
        }
        let Some(claims) = claims else {
            return;
        };
        for (claim, name) in &self.0 {
            if let Some(value) = claims.get(claim).and_then(header_value) {
                headers.append(name.clone(), value);
            }
        }
    }
}

/// A claim as a header value: strings, numbers and booleans as their text; anything else, and
/// strings that a header cannot carry as they are, as ASCII-only JSON.
fn header_value(claim: &Value) -> Option<HeaderValue> {
    let text = match claim {
        Value::Null => return None,
        Value::String(text) if is_header_safe(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        other => ascii_json(other),
    };
    HeaderValue::try_from(text).ok()
}

fn is_header_safe(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !text.starts_with(' ')
        && !text.ends_with(' ')
}

/// JSON with every non-ASCII character escaped as `\uXXXX` (serde_json escapes the controls).
fn ascii_json(value: &Value) -> String {
    let json = value.to_string();
    let mut out = String::with_capacity(json.len());
    for ch in json.chars() {
        if ch.is_ascii() {
            out.push(ch);
        } else {
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn claims_become_header_safe_values() {
        let text = |value: Value| header_value(&value).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(text(json!("alice")).as_deref(), Some("alice"));
        assert_eq!(text(json!(42)).as_deref(), Some("42"));
        assert_eq!(text(json!(true)).as_deref(), Some("true"));
        assert_eq!(text(json!(["a", "b"])).as_deref(), Some(r#"["a","b"]"#));
        assert_eq!(text(json!("José\n")).as_deref(), Some(r#""Jos\u00e9\n""#));
        assert_eq!(text(json!("🦀")).as_deref(), Some(r#""\ud83e\udd80""#));
        assert_eq!(text(Value::Null), None);
    }

    #[test]
    fn claims_cannot_overwrite_the_request_framing_or_credentials() {
        for name in [
            "authorization",
            "host",
            "content-length",
            "transfer-encoding",
        ] {
            let pair = ("sub".to_owned(), HeaderName::from_static(name));
            assert!(ClaimHeaders::new(&[pair]).is_err(), "{name}");
        }
    }
}
