//! An aggregate rule, compiled: the parts a request fans out to and how each part's request
//! target is made from the client's.

use std::time::Duration;

use portcullis_config::snapshot::PartFailurePolicy;

/// The placeholder in a part's path that stands for the request's path.
const PATH_PLACEHOLDER: &str = "{path}";

/// A rule that calls several backends in parallel and answers with one JSON object keyed by
/// part name (executed by `forward::aggregate`).
#[derive(Debug)]
pub struct Aggregate {
    /// The parts, in the order of the Route (the order of the keys in the merged object).
    pub parts: Vec<AggregatePart>,
}

/// One backend call of an aggregate.
#[derive(Debug)]
pub struct AggregatePart {
    /// The key of this part in the merged object.
    pub name: String,
    /// The backend, `namespace/name`; `None` when the reference did not resolve (the part then
    /// always fails).
    pub backend: Option<String>,
    /// The request target of the part.
    pub target: PartTarget,
    /// The part's own time limit; `None`: only the rule's timeouts apply.
    pub timeout: Option<Duration>,
    /// What a failure of this part does to the whole answer.
    pub on_failure: PartFailurePolicy,
}

/// A part's path and query as written in the Route, split around `{path}` once at compile time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartTarget {
    /// The literal pieces between the placeholders (one more than there are placeholders).
    pieces: Vec<String>,
    /// Whether the part names a query of its own (a `?` in the written path).
    has_query: bool,
}

impl PartTarget {
    /// Parses `written`, a part's path as the Route gives it.
    pub fn new(written: &str) -> Self {
        Self {
            pieces: written.split(PATH_PLACEHOLDER).map(str::to_owned).collect(),
            has_query: written.contains('?'),
        }
    }

    /// The target for a request whose path (normalized, after the rule's `URLRewrite`) is
    /// `path` and whose query is `query`: every `{path}` replaced by `path`. The request's
    /// query is appended only when the part names no query of its own, so that a part written
    /// `/users{path}` sees `?fields=name` like a forwarded request would, while a part written
    /// `/orders?user={path}` gets exactly that.
    pub fn render(&self, path: &str, query: Option<&str>) -> String {
        let mut target = self.pieces.join(path);
        if let Some(query) = query.filter(|q| !self.has_query && !q.is_empty()) {
            target.push('?');
            target.push_str(query);
        }
        target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_placeholders_are_replaced_by_the_request_path() {
        let target = PartTarget::new("/users{path}");
        assert_eq!(target.render("/42", None), "/users/42");
        let twice = PartTarget::new("/a{path}/b{path}");
        assert_eq!(twice.render("/x", None), "/a/x/b/x");
        let fixed = PartTarget::new("/health");
        assert_eq!(fixed.render("/x", None), "/health");
    }

    #[test]
    fn the_request_query_follows_only_parts_without_a_query_of_their_own() {
        let plain = PartTarget::new("/users{path}");
        assert_eq!(
            plain.render("/42", Some("fields=name")),
            "/users/42?fields=name"
        );
        assert_eq!(plain.render("/42", Some("")), "/users/42");
        let own = PartTarget::new("/orders?user={path}");
        assert_eq!(own.render("/42", Some("fields=name")), "/orders?user=/42");
    }
}
