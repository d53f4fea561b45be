//! Hostnames: the request's host, and the patterns virtual hosts are selected by.

use std::borrow::Cow;

use http::{HeaderValue, header::HOST, request::Parts};

/// A hostname pattern of a virtual host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// One exact hostname, lower case.
    Exact(String),
    /// `*.example.com`: any host ending in `.example.com` (one or more labels before it), never
    /// `example.com` itself. Holds the suffix including the leading dot: `.example.com`.
    Wildcard(String),
    /// Every host.
    Any,
}

impl HostPattern {
    /// Parses `example.com`, `*.example.com` or `*` (or an empty string) into a pattern.
    pub fn parse(pattern: &str) -> Self {
        let pattern = pattern.trim().to_ascii_lowercase();
        if pattern.is_empty() || pattern == "*" {
            HostPattern::Any
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            HostPattern::Wildcard(suffix.to_owned())
        } else {
            HostPattern::Exact(pattern)
        }
    }

    /// The pattern as configured: `example.com`, `*.example.com` or `*`.
    pub fn as_pattern(&self) -> String {
        match self {
            HostPattern::Exact(name) => name.clone(),
            HostPattern::Wildcard(suffix) => format!("*{suffix}"),
            HostPattern::Any => "*".to_owned(),
        }
    }

    /// Whether `host` (lower case, without port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => name == host,
            HostPattern::Wildcard(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            HostPattern::Any => true,
        }
    }
}

/// The host a request is for, lower case and without port: the URI authority (HTTP/2 and
/// absolute-form requests) or else the `Host` header.
/// Borrowed from the request unless it had to be lowercased.
pub fn request_host(req: &Parts) -> Option<Cow<'_, str>> {
    host_of(req, req.headers.get(HOST))
}

/// [`request_host`] with the request's `Host` field already found (`field`).
pub fn host_of<'a>(req: &'a Parts, field: Option<&'a HeaderValue>) -> Option<Cow<'a, str>> {
    let raw = match req.uri.host() {
        Some(host) => host,
        None => field?.to_str().ok()?,
    };
    let host = strip_port(raw);
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

/// Drops a `:port` suffix, keeping bracketed IPv6 literals whole.
pub fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    // Bytes, not `rsplit_once`: this runs for every request.
    let bytes = authority.as_bytes();
    match bytes.iter().rposition(|&b| b == b':') {
        Some(colon) if bytes.iter().skip(colon + 1).all(u8::is_ascii_digit) => {
            authority.get(..colon).unwrap_or(authority)
        }
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    #[test]
    fn wildcard_matches_subdomains_but_not_the_bare_domain() {
        let p = HostPattern::parse("*.example.com");
        assert!(p.matches("a.example.com"));
        assert!(p.matches("a.b.example.com"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("aexample.com"));
    }

    #[test]
    fn patterns_print_as_configured() {
        for p in ["foo.com", "*.example.com", "*"] {
            assert_eq!(HostPattern::parse(p).as_pattern(), p);
        }
    }

    #[test]
    fn exact_and_any_patterns() {
        assert!(HostPattern::parse("foo.com").matches("foo.com"));
        assert!(!HostPattern::parse("foo.com").matches("bar.foo.com"));
        assert!(HostPattern::parse("").matches("anything"));
    }

    #[test]
    fn request_host_ignores_port_and_case() {
        let req = Request::builder()
            .uri("/x")
            .header("host", "Very.Specific.com:1234")
            .body(())
            .expect("request")
            .into_parts()
            .0;
        assert_eq!(request_host(&req).as_deref(), Some("very.specific.com"));
        let req = Request::builder()
            .uri("http://h2.example/x")
            .body(())
            .expect("request")
            .into_parts()
            .0;
        assert_eq!(request_host(&req).as_deref(), Some("h2.example"));
    }

    #[test]
    fn ipv6_literal_keeps_its_brackets() {
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("host"), "host");
        assert_eq!(strip_port("host:8080"), "host");
        // Not a port: kept as it is.
        assert_eq!(strip_port("host:abc"), "host:abc");
    }
}
