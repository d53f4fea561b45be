//! HTTPRoute match precedence, as a sort key (Gateway API 1.3).
//!
//! Within one virtual host, entries are sorted by this key and the proxy takes the first that
//! matches, so "best match wins" is decided here, once, instead of on every request.

use std::cmp::Reverse;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::snapshot::{MatchConfig, PathMatchType};

/// Everything precedence looks at for one match of one rule.
#[derive(Clone, Debug)]
pub(crate) struct Candidate<'a> {
    pub(crate) r#match: &'a MatchConfig,
    pub(crate) created: Option<&'a Time>,
    /// `namespace/name` of the Route (compared as one string, as Gateway API says).
    pub(crate) route: &'a str,
    pub(crate) rule_index: usize,
    pub(crate) match_index: usize,
}

/// The sort key: smaller sorts first, i.e. wins.
///
/// 1. path kind: `Exact`, then `RegularExpression`, then `PathPrefix`. Gateway API leaves
///    regular expressions implementation-specific; we place them after exact paths and before
///    prefixes because an expression is a deliberate, narrow statement, and after prefixes a
///    catch-all `/` would make every expression on the host unreachable;
/// 2. more characters in the path value (prefixes are stored without trailing `/`);
/// 3. a method match;
/// 4. more header matches;
/// 5. more query parameter matches;
/// 6. the older Route (a Route without creation timestamp, as in offline manifests, counts as
///    the newest);
/// 7. the Route's `namespace/name`;
/// 8. the rule's index, then the match's index.
#[allow(clippy::type_complexity)]
pub(crate) fn key<'a>(
    c: &Candidate<'a>,
) -> (
    u8,
    Reverse<usize>,
    bool,
    Reverse<usize>,
    Reverse<usize>,
    (bool, Option<&'a Time>),
    &'a str,
    usize,
    usize,
) {
    let m = c.r#match;
    let kind = match m.path.kind {
        PathMatchType::Exact => 0,
        PathMatchType::RegularExpression => 1,
        PathMatchType::PathPrefix => 2,
    };
    (
        kind,
        Reverse(m.path.value.chars().count()),
        m.method.is_none(),
        Reverse(m.headers.len()),
        Reverse(m.query_params.len()),
        (c.created.is_none(), c.created),
        c.route,
        c.rule_index,
        c.match_index,
    )
}
