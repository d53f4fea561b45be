//! Hostname patterns: exact names, `*.` wildcards and the catch-all `*`, their intersection and
//! their specificity (Gateway API semantics, `notes/httproute-semantics.md` 1.1).

use std::cmp::Ordering;

/// The virtual host name that matches every host.
pub(crate) const ANY: &str = "*";

/// True when every host matched by `inner` is also matched by `outer`.
///
/// Patterns form a laminar family: two patterns are either disjoint or one contains the other.
pub(crate) fn contains(outer: &str, inner: &str) -> bool {
    if outer == ANY || outer == inner {
        return true;
    }
    if inner == ANY {
        return false;
    }
    match outer.strip_prefix('*') {
        // `*.example.com` holds `a.example.com`, `a.b.example.com` and `*.b.example.com`, but
        // neither `example.com` nor `*.example.com`'s parent wildcards.
        Some(suffix) => {
            let inner_tail = inner.strip_prefix('*').unwrap_or(inner);
            inner_tail.len() > suffix.len() && inner_tail.ends_with(suffix)
        }
        None => false,
    }
}

/// The intersection of a listener hostname and a route hostname, when it is not empty.
///
/// The two are either disjoint or nested, so the intersection is the more specific of them.
fn intersect(listener: &str, route: &str) -> Option<String> {
    if contains(listener, route) {
        Some(route.to_owned())
    } else if contains(route, listener) {
        Some(listener.to_owned())
    } else {
        None
    }
}

/// The hostnames a Route serves on a listener: route hostnames narrowed to the listener's;
/// a Route without hostnames takes the listener's, a listener without hostname takes the
/// Route's; neither → [`ANY`]. Empty when nothing intersects. Sorted and unique.
pub(crate) fn effective(listener: Option<&str>, route: &[String]) -> Vec<String> {
    let listener = listener.unwrap_or(ANY);
    let mut out: Vec<String> = if route.is_empty() {
        vec![listener.to_owned()]
    } else {
        route
            .iter()
            .filter_map(|r| intersect(listener, r))
            .collect()
    };
    out.sort();
    out.dedup();
    out
}

/// Orders virtual host names most specific first: exact names, then wildcards with more
/// characters, then [`ANY`]; ties by name, so the order is total.
pub(crate) fn specificity(a: &str, b: &str) -> Ordering {
    fn rank(h: &str) -> (u8, std::cmp::Reverse<usize>) {
        if h == ANY {
            (2, std::cmp::Reverse(0))
        } else if h.starts_with('*') {
            (1, std::cmp::Reverse(h.len()))
        } else {
            (0, std::cmp::Reverse(h.len()))
        }
    }
    rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eff(listener: Option<&str>, route: &[&str]) -> Vec<String> {
        let route: Vec<String> = route.iter().map(|s| (*s).to_owned()).collect();
        effective(listener, &route)
    }

    #[test]
    fn wildcard_matches_subdomains_at_any_depth_but_not_the_parent() {
        assert!(contains("*.example.com", "a.example.com"));
        assert!(contains("*.example.com", "a.b.example.com"));
        assert!(contains("*.example.com", "*.b.example.com"));
        assert!(contains("*.example.com", "*.example.com"));
        assert!(!contains("*.example.com", "example.com"));
        assert!(!contains("*.b.example.com", "*.example.com"));
        assert!(!contains("a.example.com", "*.example.com"));
        assert!(contains(ANY, "*.example.com"));
        assert!(!contains("*.example.com", ANY));
        assert!(!contains("*.example.com", "xexample.com"));
    }

    #[test]
    fn listener_without_hostname_keeps_route_hostnames() {
        assert_eq!(eff(None, &["a.com", "*.b.com"]), ["*.b.com", "a.com"]);
        assert_eq!(eff(None, &[]), [ANY]);
    }

    #[test]
    fn route_without_hostnames_takes_the_listener_hostname() {
        assert_eq!(eff(Some("*.example.com"), &[]), ["*.example.com"]);
    }

    #[test]
    fn route_wildcard_on_exact_listener_narrows_to_the_listener_name() {
        assert_eq!(
            eff(Some("very.specific.com"), &["*.specific.com"]),
            ["very.specific.com"]
        );
    }

    #[test]
    fn route_wildcard_less_specific_than_listener_wildcard_is_narrowed() {
        assert_eq!(
            eff(Some("*.foo.example.com"), &["*.example.com"]),
            ["*.foo.example.com"]
        );
        assert_eq!(
            eff(Some("abc.foo.example.com"), &["*.example.com"]),
            ["abc.foo.example.com"]
        );
    }

    #[test]
    fn non_intersecting_route_hostnames_are_ignored() {
        assert_eq!(
            eff(Some("*.example.com"), &["a.example.com", "other.org"]),
            ["a.example.com"]
        );
        assert!(eff(Some("*.wildcard.io"), &["wildcard.io"]).is_empty());
    }

    #[test]
    fn virtual_hosts_sort_exact_then_longer_wildcards_then_catch_all() {
        let mut names = vec![
            "*",
            "*.example.com",
            "a.example.com",
            "*.a.example.com",
            "b.io",
        ];
        names.sort_by(|a, b| specificity(a, b));
        assert_eq!(
            names,
            [
                "a.example.com",
                "b.io",
                "*.a.example.com",
                "*.example.com",
                "*"
            ]
        );
    }
}
