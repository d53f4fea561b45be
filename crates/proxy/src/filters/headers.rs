//! `RequestHeaderModifier` and `ResponseHeaderModifier`.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Header edits: `set`, `add` and `remove`, with case-insensitive names; see
/// [`HeaderModifier::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderModifier {
    /// Replace every existing value (or add the header).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Append after the existing values, as another header line.
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Delete every value.
    pub remove: Vec<HeaderName>,
}

impl HeaderModifier {
    /// Applies the edits. The configuration allows one action per header name, so the order
    /// between the three lists only matters for invalid configurations; set, then add, then
    /// remove is what Envoy does.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
        for name in &self.remove {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> HeaderName {
        HeaderName::from_bytes(n.as_bytes()).expect("header name")
    }

    #[test]
    fn set_overwrites_regardless_of_case_add_appends_remove_deletes() {
        let modifier = HeaderModifier {
            set: vec![(
                name("X-Header-Set"),
                HeaderValue::from_static("set-overwrites"),
            )],
            add: vec![(
                name("X-Header-Add"),
                HeaderValue::from_static("add-appends-values"),
            )],
            remove: vec![name("X-Header-Remove")],
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-header-set", HeaderValue::from_static("some-other-value"));
        headers.insert("x-header-add", HeaderValue::from_static("some-other-value"));
        headers.insert("x-header-remove", HeaderValue::from_static("gone"));
        modifier.apply(&mut headers);
        assert_eq!(headers.get_all("x-header-set").iter().count(), 1);
        assert_eq!(headers["x-header-set"], "set-overwrites");
        let added: Vec<_> = headers.get_all("x-header-add").iter().collect();
        assert_eq!(added, ["some-other-value", "add-appends-values"]);
        assert!(!headers.contains_key("x-header-remove"));
    }

    #[test]
    fn set_adds_missing_header() {
        let modifier = HeaderModifier {
            set: vec![(name("x-new"), HeaderValue::from_static("v"))],
            ..HeaderModifier::default()
        };
        let mut headers = HeaderMap::new();
        modifier.apply(&mut headers);
        assert_eq!(headers["x-new"], "v");
    }
}
