//! CORS: the gateway answers preflight requests itself and decorates the answers to
//! cross-origin requests (Gateway API `HTTPCORSFilter` semantics).

use http::{
    HeaderMap, HeaderValue, Method, Response, StatusCode,
    header::{
        ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
        ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
        ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD,
        ORIGIN, VARY,
    },
};

use crate::body::{self, Body};

/// A rule's CORS policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// Allowed origins: exact (`https://app.example.com`), wildcard (`https://*.example.com`,
    /// any number of labels) or `*`.
    pub allow_origins: Vec<String>,
    /// Allowed methods (`*` allows any).
    pub allow_methods: Vec<String>,
    /// Allowed request headers (`*` allows any).
    pub allow_headers: Vec<String>,
    /// Response headers the browser may read.
    pub expose_headers: Vec<String>,
    /// Whether credentials are allowed: then the concrete origin, methods and headers are
    /// echoed, never `*`.
    pub allow_credentials: bool,
    /// Seconds the browser may cache a preflight answer.
    pub max_age: u32,
}

impl Cors {
    /// Whether `origin` is allowed.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allow_origins
            .iter()
            .any(|allowed| origin_matches(allowed, origin))
    }

    /// Whether the request is a preflight: `OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`.
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(ORIGIN)
            && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The gateway's answer to a preflight: 204, with the `Access-Control-Allow-*` headers when
    /// the origin is allowed and without them otherwise.
    pub fn preflight(&self, request: &HeaderMap) -> Response<Body> {
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        headers.insert(VARY, HeaderValue::from_static("origin"));
        let Some(origin) = request.get(ORIGIN).and_then(|o| o.to_str().ok()) else {
            return response;
        };
        if !self.allows_origin(origin) {
            return response;
        }
        self.set_origin(headers, origin);
        let requested_method = request.get(ACCESS_CONTROL_REQUEST_METHOD).cloned();
        let methods = if self.allow_methods.iter().any(|m| m == "*") {
            if self.allow_credentials {
                // The answer now depends on what was asked: a cache must not reuse it for
                // another method.
                headers.append(
                    VARY,
                    HeaderValue::from_static("access-control-request-method"),
                );
                requested_method
            } else {
                Some(HeaderValue::from_static("*"))
            }
        } else {
            joined(&self.allow_methods)
        };
        if let Some(methods) = methods {
            headers.insert(ACCESS_CONTROL_ALLOW_METHODS, methods);
        }
        let requested_headers = request.get(ACCESS_CONTROL_REQUEST_HEADERS).cloned();
        let allow_headers = if self.allow_headers.iter().any(|h| h == "*") {
            if self.allow_credentials {
                headers.append(
                    VARY,
                    HeaderValue::from_static("access-control-request-headers"),
                );
                requested_headers
            } else {
                Some(HeaderValue::from_static("*"))
            }
        } else {
            joined(&self.allow_headers)
        };
        if let Some(allow_headers) = allow_headers {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
        }
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(self.max_age));
        response
    }

    /// Adds the CORS headers to the answer to a cross-origin request with `Origin: origin`.
    pub fn decorate(&self, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
        let allowed = origin
            .and_then(|o| o.to_str().ok())
            .filter(|o| self.allows_origin(o));
        let expose = match allowed {
            Some(_) if self.allow_credentials && self.expose_headers.iter().any(|h| h == "*") => {
                // With credentials a browser reads `*` as a header named `*` (Fetch): name the
                // answer's own headers instead.
                let names: Vec<&str> = response.keys().map(http::HeaderName::as_str).collect();
                HeaderValue::from_str(&names.join(", ")).ok()
            }
            Some(_) => joined(&self.expose_headers),
            None => None,
        };
        response.append(VARY, HeaderValue::from_static("origin"));
        let Some(origin) = allowed else {
            return;
        };
        self.set_origin(response, origin);
        if let Some(expose) = expose {
            response.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose);
        }
    }

    fn set_origin(&self, headers: &mut HeaderMap, origin: &str) {
        let any = self.allow_origins.iter().any(|o| o == "*");
        let value = if any && !self.allow_credentials {
            HeaderValue::from_static("*")
        } else {
            match HeaderValue::from_str(origin) {
                Ok(value) => value,
                Err(_) => return,
            }
        };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if self.allow_credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

fn joined(values: &[String]) -> Option<HeaderValue> {
    if values.is_empty() {
        return None;
    }
    HeaderValue::from_str(&values.join(", ")).ok()
}

/// `https://*.bar.com` matches `https://a.bar.com` and `https://a.b.bar.com`, not
/// `https://bar.com`; `*` matches every origin; otherwise scheme, host and port must be equal
/// (ASCII case-insensitive).
fn origin_matches(allowed: &str, origin: &str) -> bool {
    if allowed == "*" {
        return true;
    }
    match allowed.split_once("://*.") {
        Some((scheme, suffix)) => {
            let Some((origin_scheme, host)) = origin.split_once("://") else {
                return false;
            };
            origin_scheme.eq_ignore_ascii_case(scheme)
                && host.len() > suffix.len() + 1
                && host
                    .to_ascii_lowercase()
                    .ends_with(&format!(".{}", suffix.to_ascii_lowercase()))
        }
        None => allowed.eq_ignore_ascii_case(origin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(credentials: bool) -> Cors {
        Cors {
            allow_origins: vec!["https://app.example.com".into(), "https://*.bar.com".into()],
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["x-token".into()],
            expose_headers: vec!["x-trace".into()],
            allow_credentials: credentials,
            max_age: 5,
        }
    }

    fn preflight_headers(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, HeaderValue::from_str(origin).expect("origin"));
        h.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        h
    }

    #[test]
    fn wildcard_origins_match_several_labels_but_not_the_bare_domain() {
        let c = cors(false);
        assert!(c.allows_origin("https://xpto.www.bar.com"));
        assert!(c.allows_origin("https://a.bar.com"));
        assert!(!c.allows_origin("https://bar.com"));
        assert!(!c.allows_origin("http://a.bar.com"));
        assert!(c.allows_origin("https://APP.example.com"));
        assert!(!c.allows_origin("https://evil.example.com"));
    }

    #[test]
    fn preflight_for_an_allowed_origin_lists_what_is_allowed() {
        let response = cors(true).preflight(&preflight_headers("https://a.bar.com"));
        let h = response.headers();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://a.bar.com");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "GET, POST");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "x-token");
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "5");
    }

    #[test]
    fn preflight_for_another_origin_allows_nothing() {
        let response = cors(false).preflight(&preflight_headers("https://evil.example"));
        assert!(!response.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[test]
    fn without_credentials_a_star_origin_is_answered_with_star() {
        let c = Cors {
            allow_origins: vec!["*".into()],
            allow_credentials: false,
            ..cors(false)
        };
        let mut response = HeaderMap::new();
        let origin = HeaderValue::from_static("https://any.where");
        c.decorate(Some(&origin), &mut response);
        assert_eq!(response[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(!response.contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));
        assert_eq!(response[ACCESS_CONTROL_EXPOSE_HEADERS], "x-trace");
    }

    #[test]
    fn with_credentials_wildcards_echo_the_request() {
        let c = Cors {
            allow_methods: vec!["*".into()],
            allow_headers: vec!["*".into()],
            ..cors(true)
        };
        let mut request = preflight_headers("https://app.example.com");
        request.insert(
            ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("x-a, x-b"),
        );
        let response = c.preflight(&request);
        assert_eq!(response.headers()[ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(response.headers()[ACCESS_CONTROL_ALLOW_HEADERS], "x-a, x-b");
        let vary: Vec<_> = response.headers().get_all(VARY).iter().collect();
        assert_eq!(
            vary,
            [
                "origin",
                "access-control-request-method",
                "access-control-request-headers"
            ]
        );
    }

    #[test]
    fn with_credentials_a_star_origin_echoes_the_origin_and_exposes_the_answers_headers() {
        let c = Cors {
            allow_origins: vec!["*".into()],
            expose_headers: vec!["*".into()],
            ..cors(true)
        };
        let mut response = HeaderMap::new();
        response.insert("x-trace", HeaderValue::from_static("1"));
        let origin = HeaderValue::from_static("https://any.where");
        c.decorate(Some(&origin), &mut response);
        assert_eq!(response[ACCESS_CONTROL_ALLOW_ORIGIN], "https://any.where");
        assert_eq!(response[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(response[VARY], "origin");
        assert_eq!(response[ACCESS_CONTROL_EXPOSE_HEADERS], "x-trace");
    }
}
