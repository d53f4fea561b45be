//! The response fields that tell a caller about its limit: `Retry-After` on a 429, and the IETF
//! `RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers, the
//! structured-field form of drafts 08 to 12) on every response of a limited rule.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, header::RETRY_AFTER};

use super::Decision;

/// `RateLimit-Policy`: the quota a rule grants.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`: what is left of it for this caller.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Writes a rule's rate-limit fields onto its responses.
///
/// - `RateLimit-Policy: "<name>";q=<requests>;w=<period in seconds>` names the steady quota the
///   rule grants. `w` is whole seconds, rounded up, at least 1 (the draft has no finer unit).
/// - `RateLimit: "<name>";r=<remaining>;t=<seconds until the bucket is full again>`. The bucket
///   holds `requests + burst` tokens, so `r` can exceed `q` while the caller has burst left.
/// - On a refusal, also `Retry-After: <seconds>`: whole seconds rounded up, at least 1, so a
///   client that waits that long is admitted.
///
/// The policy field is built once per rule; each response costs one small formatted value.
#[derive(Debug, Clone)]
pub struct RateLimitHeaders {
    name: String,
    policy: HeaderValue,
}

impl RateLimitHeaders {
    /// The fields for a policy called `name` (for example the rule's name, or `"default"`)
    /// granting `requests` per `period`. Characters a structured-field string cannot carry
    /// become `_`.
    pub fn new(name: &str, requests: u32, period: Duration) -> Self {
        let name = sf_string(name);
        let window = ceil_secs(period).max(1);
        let policy = numeric_value(&format!("{name};q={requests};w={window}"));
        Self { name, policy }
    }

    /// The `RateLimit-Policy` value, as sent.
    pub fn policy(&self) -> &HeaderValue {
        &self.policy
    }

    /// The `RateLimit` value for `decision`.
    pub fn state(&self, decision: &Decision) -> HeaderValue {
        let remaining = decision.remaining();
        let reset = ceil_secs(decision.reset());
        numeric_value(&format!("{};r={remaining};t={reset}", self.name))
    }

    /// Sets `RateLimit-Policy`, `RateLimit` and, when `decision` refuses, `Retry-After` on a
    /// response's headers (replacing any the backend sent).
    pub fn apply(&self, decision: &Decision, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_POLICY, self.policy.clone());
        headers.insert(RATELIMIT, self.state(decision));
        match decision {
            Decision::Limited { retry_after, .. } => {
                headers.insert(
                    RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(*retry_after)),
                );
            }
            Decision::Allowed { .. } => {
                headers.remove(RETRY_AFTER);
            }
        }
    }
}

impl RateLimitHeaders {
    /// Sets the fields of a response whose request a global limit could not count (Redis gave
    /// no answer): the quota in `RateLimit-Policy`, and no `RateLimit`, since nothing is known
    /// of what is left. `retry_after` is set on a refusal.
    pub fn apply_uncounted(&self, retry_after: Option<Duration>, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_POLICY, self.policy.clone());
        headers.remove(RATELIMIT);
        match retry_after {
            Some(wait) => {
                headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(wait)));
            }
            None => {
                headers.remove(RETRY_AFTER);
            }
        }
    }
}

/// The `Retry-After` seconds for a wait: rounded up, and at least 1 (a client told 0 retries at
/// once and is refused again).
pub fn retry_after_secs(wait: Duration) -> u64 {
    ceil_secs(wait).max(1)
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// A structured-field string: quoted, with `"` and `\` escaped, and anything but printable ASCII
/// replaced, so the field value is always valid.
fn sf_string(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            ' '..='~' => quoted.push(c),
            _ => quoted.push('_'),
        }
    }
    quoted.push('"');
    quoted
}

/// Our values are printable ASCII by construction (`sf_string` and integers).
fn numeric_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("\"invalid\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_and_state_use_the_structured_field_form() {
        let fields = RateLimitHeaders::new("default", 100, Duration::from_secs(60));
        assert_eq!(fields.policy(), "\"default\";q=100;w=60");
        let limited = Decision::Limited {
            retry_after: Duration::from_millis(1500),
            reset: Duration::from_millis(11_200),
        };
        let mut headers = HeaderMap::new();
        fields.apply(&limited, &mut headers);
        assert_eq!(headers[RATELIMIT_POLICY], "\"default\";q=100;w=60");
        assert_eq!(headers[RATELIMIT], "\"default\";r=0;t=12");
        assert_eq!(headers[RETRY_AFTER], "2");
    }

    #[test]
    fn an_allowed_response_carries_no_retry_after() {
        let fields = RateLimitHeaders::new("orders", 5, Duration::from_secs(1));
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("30"));
        let allowed = Decision::Allowed {
            remaining: 4,
            reset: Duration::from_millis(200),
        };
        fields.apply(&allowed, &mut headers);
        assert_eq!(headers[RATELIMIT], "\"orders\";r=4;t=1");
        assert!(!headers.contains_key(RETRY_AFTER));
    }

    #[test]
    fn an_uncounted_answer_names_the_quota_and_claims_nothing_about_what_is_left() {
        let fields = RateLimitHeaders::new("orders", 5, Duration::from_secs(60));
        let mut headers = HeaderMap::new();
        headers.insert(RATELIMIT, HeaderValue::from_static("\"x\";r=9;t=1"));
        fields.apply_uncounted(None, &mut headers);
        assert_eq!(headers[RATELIMIT_POLICY], "\"orders\";q=5;w=60");
        assert!(!headers.contains_key(RATELIMIT));
        fields.apply_uncounted(Some(Duration::from_millis(400)), &mut headers);
        assert_eq!(headers[RETRY_AFTER], "1");
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn a_sub_second_period_advertises_a_one_second_window() {
        let fields = RateLimitHeaders::new("default", 10, Duration::from_millis(500));
        assert_eq!(fields.policy(), "\"default\";q=10;w=1");
    }

    #[test]
    fn a_policy_name_cannot_break_the_field() {
        let fields = RateLimitHeaders::new("a\"b\\c\né", 1, Duration::from_secs(1));
        assert_eq!(fields.policy(), "\"a\\\"b\\\\c__\";q=1;w=1");
    }
}
