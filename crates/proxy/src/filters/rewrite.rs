//! `URLRewrite`: the host and path sent upstream; also the path part of `RequestRedirect`.

use http::HeaderValue;

/// How a path is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRewrite {
    /// Replace the whole path.
    Full(String),
    /// Replace the segments matched by the entry's `PathPrefix` match.
    Prefix(String),
}

impl PathRewrite {
    /// The new path for `path`, which the entry matched with the path prefix `matched_prefix`
    /// (stored without its trailing slash). Implements the Gateway API table exactly:
    /// `/foo/bar` with prefix `/foo` and replacement `/xyz/` → `/xyz/bar`; replacement `""` or
    /// `/` → `/bar`; `/foo` → `/`.
    pub fn apply(&self, path: &str, matched_prefix: Option<&str>) -> String {
        match self {
            PathRewrite::Full(full) => ensure_absolute(full.clone()),
            PathRewrite::Prefix(replacement) => {
                let prefix = matched_prefix.unwrap_or("");
                let rest = path.strip_prefix(prefix).unwrap_or(path);
                let mut out = replacement.trim_end_matches('/').to_owned();
                out.push_str(rest);
                ensure_absolute(out)
            }
        }
    }
}

fn ensure_absolute(path: String) -> String {
    if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    }
}

/// A `URLRewrite` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRewrite {
    /// The Host sent upstream instead of the client's.
    pub hostname: Option<HeaderValue>,
    /// The path sent upstream instead of the (normalized) request path.
    pub path: Option<PathRewrite>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(path: &str, matched: &str, replacement: &str) -> String {
        let matched = matched.trim_end_matches('/');
        PathRewrite::Prefix(replacement.to_owned()).apply(path, Some(matched))
    }

    #[test]
    fn replace_prefix_match_follows_the_gateway_api_table() {
        let table = [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
        ];
        for (path, matched, replacement, expected) in table {
            assert_eq!(
                prefix(path, matched, replacement),
                expected,
                "{path} with prefix {matched} replaced by {replacement:?}"
            );
        }
    }

    #[test]
    fn replace_prefix_match_conformance_cases() {
        assert_eq!(
            prefix("/strip-prefix/three", "/strip-prefix", "/"),
            "/three"
        );
        assert_eq!(prefix("/strip-prefix", "/strip-prefix", "/"), "/");
        assert_eq!(prefix("/prefix/one/two", "/prefix/one", "/one"), "/one/two");
        assert_eq!(prefix("/anything", "/", "/api"), "/api/anything");
    }

    #[test]
    fn replace_full_path_replaces_everything() {
        let full = PathRewrite::Full("/one".into());
        assert_eq!(full.apply("/full/one/two", Some("/full")), "/one");
    }
}
