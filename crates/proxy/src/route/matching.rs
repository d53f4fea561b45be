//! Match conditions of one route entry (Gateway API `HTTPRouteMatch`): every field must hold.

use http::{HeaderName, Method, request::Parts};
use regex::Regex;

/// How the path is compared.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// The whole path, case-sensitive.
    Exact(String),
    /// Whole leading segments; stored without a trailing slash (`/` is stored as the empty string,
    /// which matches every path).
    Prefix(String),
    /// A regular expression that must match the whole path.
    Regex(Regex),
}

impl PathMatch {
    /// A `PathPrefix` match; a trailing slash of the configured value is ignored.
    pub fn prefix(value: &str) -> Self {
        PathMatch::Prefix(value.trim_end_matches('/').to_owned())
    }

    /// A `RegularExpression` match anchored at both ends.
    pub fn regex(pattern: &str) -> Result<Self, regex::Error> {
        Regex::new(&format!("^(?:{pattern})$")).map(PathMatch::Regex)
    }

    /// Whether the (normalized) path matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(value) => path == value,
            PathMatch::Prefix(prefix) => prefix_matches(prefix, path),
            PathMatch::Regex(re) => re.is_match(path),
        }
    }
}

/// Segment-wise prefix test: `/abc` matches `/abc`, `/abc/` and `/abc/def`, never `/abcd`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// How a header or query value is compared.
#[derive(Debug, Clone)]
pub enum ValueMatch {
    /// Equal, case-sensitive.
    Exact(String),
    /// A regular expression that must match the whole value.
    Regex(Regex),
}

impl ValueMatch {
    /// A `RegularExpression` value match anchored at both ends.
    pub fn regex(pattern: &str) -> Result<Self, regex::Error> {
        Regex::new(&format!("^(?:{pattern})$")).map(ValueMatch::Regex)
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatch::Exact(expected) => expected == value,
            ValueMatch::Regex(re) => re.is_match(value),
        }
    }
}

/// A header condition. Names are case-insensitive: [`HeaderName`] is lower case by construction.
#[derive(Debug, Clone)]
pub struct HeaderCondition {
    /// The header name.
    pub name: HeaderName,
    /// The expected value.
    pub value: ValueMatch,
}

/// A query parameter condition; name and value are case-sensitive.
#[derive(Debug, Clone)]
pub struct QueryCondition {
    /// The parameter name.
    pub name: String,
    /// The expected value.
    pub value: ValueMatch,
}

/// All the conditions of one match; the request must meet every one of them.
#[derive(Debug, Clone)]
pub struct RequestMatch {
    /// The path condition (default: prefix `/`).
    pub path: PathMatch,
    /// The method, when set. `GET` does not match `HEAD`.
    pub method: Option<Method>,
    /// Header conditions (only the first entry per name counts; the compiler drops the rest).
    pub headers: Vec<HeaderCondition>,
    /// Query parameter conditions (only the first entry per name counts).
    pub query: Vec<QueryCondition>,
}

impl Default for RequestMatch {
    fn default() -> Self {
        Self {
            path: PathMatch::prefix("/"),
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
        }
    }
}

impl RequestMatch {
    /// Whether the request with head `req`, whose normalized path is `path`, meets every
    /// condition.
    pub fn matches(&self, req: &Parts, path: &str) -> bool {
        if let Some(method) = &self.method
            && req.method != method
        {
            return false;
        }
        if !self.path.matches(path) {
            return false;
        }
        let headers_ok = self.headers.iter().all(|cond| {
            // Repeated request headers are folded with ", " (RFC 9110 §5.3), so a value
            // condition sees what a single combined header line would carry.
            let mut values = req.headers.get_all(&cond.name).iter();
            let Some(first) = values.next() else {
                return false;
            };
            let Ok(first) = first.to_str() else {
                return false;
            };
            let rest: Vec<&str> = values.filter_map(|v| v.to_str().ok()).collect();
            if rest.is_empty() {
                cond.value.matches(first)
            } else {
                let mut folded = first.to_owned();
                for v in rest {
                    folded.push_str(", ");
                    folded.push_str(v);
                }
                cond.value.matches(&folded)
            }
        });
        if !headers_ok {
            return false;
        }
        if self.query.is_empty() {
            return true;
        }
        let query = req.uri.query().unwrap_or("");
        self.query.iter().all(|cond| {
            query_value(query, &cond.name).is_some_and(|value| cond.value.matches(&value))
        })
    }
}

/// The first value of query parameter `name`, percent-decoded (`+` is a space).
fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_component(key) == name).then(|| decode_component(value))
    })
}

/// A query component as `application/x-www-form-urlencoded` has it: `+` is a space, `%HH` a
/// byte, and a `%` not followed by two hex digits stays as it is.
fn decode_component(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    fn get(uri: &str) -> Parts {
        Request::builder()
            .uri(uri)
            .body(())
            .expect("request")
            .into_parts()
            .0
    }

    #[test]
    fn prefix_matches_whole_segments_only() {
        let p = PathMatch::prefix("/abc");
        assert!(p.matches("/abc"));
        assert!(p.matches("/abc/"));
        assert!(p.matches("/abc/def"));
        assert!(!p.matches("/abcd"));
        assert!(!PathMatch::prefix("/v2").matches("/v2example"));
        assert!(!PathMatch::prefix("/full").matches("/full-path-and-host"));
    }

    #[test]
    fn prefix_ignores_trailing_slash_in_configured_value() {
        let p = PathMatch::prefix("/abc/");
        assert!(p.matches("/abc"));
        assert!(p.matches("/abc/x"));
        assert!(PathMatch::prefix("/").matches("/anything"));
        assert!(PathMatch::prefix("/").matches("/"));
    }

    #[test]
    fn exact_is_case_sensitive_and_trailing_slash_sensitive() {
        let p = PathMatch::Exact("/abc".into());
        assert!(p.matches("/abc"));
        assert!(!p.matches("/abc/"));
        assert!(!p.matches("/Abc"));
        assert!(!p.matches("/abcd"));
    }

    #[test]
    fn regex_must_match_the_whole_path() {
        let p = PathMatch::regex("/v[0-9]+/.*").expect("regex");
        assert!(p.matches("/v1/users"));
        assert!(!p.matches("/api/v1/users"));
    }

    #[test]
    fn header_names_are_case_insensitive_and_values_are_not() {
        let m = RequestMatch {
            headers: vec![HeaderCondition {
                name: HeaderName::from_static("version"),
                value: ValueMatch::Exact("two".into()),
            }],
            ..RequestMatch::default()
        };
        let req = Request::builder()
            .uri("/")
            .header("Version", "two")
            .body(())
            .expect("request")
            .into_parts()
            .0;
        assert!(m.matches(&req, "/"));
        let req = Request::builder()
            .uri("/")
            .header("version", "Two")
            .body(())
            .expect("request")
            .into_parts()
            .0;
        assert!(!m.matches(&req, "/"));
        assert!(!m.matches(&get("/"), "/"));
    }

    #[test]
    fn query_params_are_case_sensitive_and_extra_params_are_allowed() {
        let m = RequestMatch {
            query: vec![QueryCondition {
                name: "animal".into(),
                value: ValueMatch::Exact("whale".into()),
            }],
            ..RequestMatch::default()
        };
        assert!(m.matches(&get("/?animal=whale"), "/"));
        assert!(m.matches(&get("/?x=1&animal=whale&y"), "/"));
        assert!(!m.matches(&get("/?ANIMAL=Whale"), "/"));
        assert!(!m.matches(&get("/?animal=dolphin&animal=whale"), "/"));
        assert!(!m.matches(&get("/"), "/"));
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(query_value("q=a%20b+c", "q").as_deref(), Some("a b c"));
        assert_eq!(query_value("q=%zz", "q").as_deref(), Some("%zz"));
        assert_eq!(query_value("q=%", "q").as_deref(), Some("%"));
    }

    #[test]
    fn get_method_does_not_match_head() {
        let m = RequestMatch {
            method: Some(Method::GET),
            ..RequestMatch::default()
        };
        assert!(m.matches(&get("/"), "/"));
        let head = Request::builder()
            .method(Method::HEAD)
            .uri("/")
            .body(())
            .expect("request")
            .into_parts()
            .0;
        assert!(!m.matches(&head, "/"));
    }
}
