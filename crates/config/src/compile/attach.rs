//! Attachment: which listeners of the Gateway a Route's `parentRef` binds to, and with which
//! hostnames (Gateway API 1.8 and 1.1.3).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use portcullis_api::{
    gateway::{FromNamespaces, Listener},
    route::ParentRef,
};

use super::hostname;
use crate::{NamespaceInfo, diagnostics::reason};

/// A Route bound to one listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attachment {
    /// Index of the listener in the Gateway's `spec.listeners`.
    pub(crate) listener: usize,
    /// The hostnames the Route serves there (listener ∩ route), sorted.
    pub(crate) hostnames: Vec<String>,
}

/// Why a parentRef did not attach: a reason from [`reason`] and a message.
pub(crate) type Refusal = (&'static str, String);

/// The listeners `parent` binds the Route to, or why it binds to none.
///
/// Listeners are narrowed by `sectionName` and `port` (no listener left: `NoMatchingParent`),
/// then by `allowedRoutes` (none left: `NotAllowedByListeners`), then by hostname intersection
/// (none left: `NoMatchingListenerHostname`).
pub(crate) fn attach(
    listeners: &[Listener],
    gateway_namespace: &str,
    route_namespace: &str,
    route_hostnames: &[String],
    parent: &ParentRef,
    namespaces: &[NamespaceInfo],
) -> Result<Vec<Attachment>, Refusal> {
    let selected: Vec<(usize, &Listener)> = listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| parent.section_name.as_deref().is_none_or(|s| s == l.name))
        .filter(|(_, l)| parent.port.is_none_or(|p| p == l.port))
        .collect();
    if selected.is_empty() {
        return Err((reason::NO_MATCHING_PARENT, no_listener_message(parent)));
    }
    let allowed: Vec<(usize, &Listener)> = selected
        .into_iter()
        .filter(|(_, l)| admits(l, gateway_namespace, route_namespace, namespaces))
        .collect();
    if allowed.is_empty() {
        return Err((
            reason::NOT_ALLOWED_BY_LISTENERS,
            format!(
                "no selected listener allows Routes from namespace {route_namespace:?} \
                 (see the listeners' allowedRoutes.namespaces)"
            ),
        ));
    }
    let attached: Vec<Attachment> = allowed
        .into_iter()
        .filter_map(|(index, l)| {
            let hostnames = hostname::effective(l.hostname.as_deref(), route_hostnames);
            (!hostnames.is_empty()).then_some(Attachment {
                listener: index,
                hostnames,
            })
        })
        .collect();
    if attached.is_empty() {
        return Err((
            reason::NO_MATCHING_LISTENER_HOSTNAME,
            format!(
                "none of the Route's hostnames ({}) matches the hostname of a selected listener",
                route_hostnames.join(", ")
            ),
        ));
    }
    Ok(attached)
}

fn no_listener_message(parent: &ParentRef) -> String {
    match (&parent.section_name, parent.port) {
        (Some(section), Some(port)) => {
            format!("the Gateway has no listener named {section:?} on port {port}")
        }
        (Some(section), None) => format!("the Gateway has no listener named {section:?}"),
        (None, Some(port)) => format!("the Gateway has no listener on port {port}"),
        (None, None) => "the Gateway has no listeners".to_owned(),
    }
}

/// Whether `listener` admits Routes from `route_namespace`.
fn admits(
    listener: &Listener,
    gateway_namespace: &str,
    route_namespace: &str,
    namespaces: &[NamespaceInfo],
) -> bool {
    let from = &listener.allowed_routes.namespaces;
    match from.from {
        FromNamespaces::Same => route_namespace == gateway_namespace,
        FromNamespaces::All => true,
        FromNamespaces::Selector => {
            let Some(selector) = &from.selector else {
                return false;
            };
            let empty = BTreeMap::new();
            let labels = namespaces
                .iter()
                .find(|n| n.name == route_namespace)
                .map_or(&empty, |n| &n.labels);
            selector_matches(selector, labels)
        }
    }
}

/// Kubernetes label selector semantics: every `matchLabels` pair and every `matchExpressions`
/// requirement must hold; an empty selector matches everything. An unknown operator matches
/// nothing, so a typo never widens access.
pub(crate) fn selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|req| {
        let values = req.values.as_deref().unwrap_or_default();
        let value = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: op.to_owned(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    #[test]
    fn empty_selector_matches_every_namespace() {
        assert!(selector_matches(&LabelSelector::default(), &labels(&[])));
    }

    #[test]
    fn match_labels_and_expressions_must_all_hold() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("team", "shop")])),
            match_expressions: Some(vec![
                req("env", "In", &["prod", "staging"]),
                req("legacy", "DoesNotExist", &[]),
            ]),
        };
        assert!(selector_matches(
            &selector,
            &labels(&[("team", "shop"), ("env", "prod")])
        ));
        assert!(!selector_matches(
            &selector,
            &labels(&[("team", "shop"), ("env", "dev")])
        ));
        assert!(!selector_matches(
            &selector,
            &labels(&[("team", "shop"), ("env", "prod"), ("legacy", "")])
        ));
        assert!(!selector_matches(&selector, &labels(&[("env", "prod")])));
    }

    #[test]
    fn not_in_and_exists_follow_kubernetes_semantics() {
        let not_in = LabelSelector {
            match_expressions: Some(vec![req("env", "NotIn", &["dev"])]),
            ..LabelSelector::default()
        };
        assert!(selector_matches(&not_in, &labels(&[])));
        assert!(!selector_matches(&not_in, &labels(&[("env", "dev")])));
        let exists = LabelSelector {
            match_expressions: Some(vec![req("env", "Exists", &[])]),
            ..LabelSelector::default()
        };
        assert!(selector_matches(&exists, &labels(&[("env", "x")])));
        assert!(!selector_matches(&exists, &labels(&[])));
    }

    #[test]
    fn unknown_operator_matches_nothing() {
        let selector = LabelSelector {
            match_expressions: Some(vec![req("env", "Like", &["prod"])]),
            ..LabelSelector::default()
        };
        assert!(!selector_matches(&selector, &labels(&[("env", "prod")])));
    }
}
