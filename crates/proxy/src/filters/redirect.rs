//! `RequestRedirect`: the gateway answers with a `Location` instead of calling a backend.

use http::StatusCode;

use super::PathRewrite;

/// A URL scheme of a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http`, well-known port 80.
    Http,
    /// `https`, well-known port 443.
    Https,
}

impl Scheme {
    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A `RequestRedirect` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// Scheme of the new location; the request's when `None`.
    pub scheme: Option<Scheme>,
    /// Host of the new location; the request's (without port) when `None`.
    pub hostname: Option<String>,
    /// Port of the new location; see [`Redirect::location`] for the default.
    pub port: Option<u16>,
    /// Path of the new location; the request's when `None`.
    pub path: Option<PathRewrite>,
    /// 301, 302, 303, 307 or 308.
    pub status: StatusCode,
}

/// What a redirect needs to know about the request it answers.
#[derive(Debug, Clone, Copy)]
pub struct RedirectRequest<'a> {
    /// `http` or `https`, from the listener.
    pub scheme: Scheme,
    /// The request host without port.
    pub host: &'a str,
    /// The normalized request path.
    pub path: &'a str,
    /// The query string, if any; kept in the new location.
    pub query: Option<&'a str>,
    /// The port of the listener the request came in on.
    pub listener_port: u16,
    /// The path prefix the entry matched, for `ReplacePrefixMatch`.
    pub matched_prefix: Option<&'a str>,
}

impl Redirect {
    /// The `Location` for a request. The port is the configured one; else the well-known port of
    /// the configured scheme; else the listener's port. It is left out when it is the scheme's
    /// well-known port.
    pub fn location(&self, req: RedirectRequest<'_>) -> String {
        let scheme = self.scheme.unwrap_or(req.scheme);
        let host = self.hostname.as_deref().unwrap_or(req.host);
        let port = match (self.port, self.scheme) {
            (Some(port), _) => port,
            (None, Some(scheme)) => scheme.default_port(),
            (None, None) => req.listener_port,
        };
        let path = match &self.path {
            Some(rewrite) => rewrite.apply(req.path, req.matched_prefix),
            None => req.path.to_owned(),
        };
        let mut location = format!("{}://{host}", scheme.as_str());
        if port != scheme.default_port() {
            location.push(':');
            location.push_str(&port.to_string());
        }
        location.push_str(&path);
        if let Some(query) = req.query {
            location.push('?');
            location.push_str(query);
        }
        location
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(listener_port: u16) -> RedirectRequest<'static> {
        RedirectRequest {
            scheme: Scheme::Http,
            host: "example.org",
            path: "/a/b",
            query: None,
            listener_port,
            matched_prefix: Some("/a"),
        }
    }

    fn redirect() -> Redirect {
        Redirect {
            scheme: None,
            hostname: None,
            port: None,
            path: None,
            status: StatusCode::FOUND,
        }
    }

    #[test]
    fn hostname_only_keeps_the_listener_port() {
        let r = Redirect {
            hostname: Some("example.net".into()),
            ..redirect()
        };
        assert_eq!(r.location(request(8080)), "http://example.net:8080/a/b");
        assert_eq!(r.location(request(80)), "http://example.net/a/b");
    }

    #[test]
    fn scheme_without_port_uses_the_well_known_port() {
        let r = Redirect {
            scheme: Some(Scheme::Https),
            ..redirect()
        };
        assert_eq!(r.location(request(8080)), "https://example.org/a/b");
    }

    #[test]
    fn explicit_port_is_used() {
        let r = Redirect {
            port: Some(8083),
            ..redirect()
        };
        assert_eq!(r.location(request(80)), "http://example.org:8083/a/b");
        let r = Redirect {
            scheme: Some(Scheme::Https),
            port: Some(443),
            ..redirect()
        };
        assert_eq!(r.location(request(80)), "https://example.org/a/b");
    }

    #[test]
    fn path_is_rewritten_and_query_kept() {
        let r = Redirect {
            path: Some(PathRewrite::Prefix("/z".into())),
            ..redirect()
        };
        let req = RedirectRequest {
            query: Some("q=1"),
            ..request(80)
        };
        assert_eq!(r.location(req), "http://example.org/z/b?q=1");
    }
}
