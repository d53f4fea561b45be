//! Rules the gateway replicas answer with 503 (pure): found with the capability check the proxy
//! itself runs ([`portcullis_config::capability`]), from what the operator knows — the snapshot
//! and which referenced Secrets do not exist — and turned into the words of the Gateway's
//! `Programmed`, the Route's `PartiallyInvalid` and `ResolvedRefs`, and their Events.

use std::collections::BTreeSet;

use portcullis_config::{
    capability::{self, SecretState, UnservedRule},
    diagnostics::{ConditionResult, RouteParentResult},
    snapshot::{ObjectKey, Snapshot},
};

use crate::conditions::{self, Observed, reason};

/// Rules named in full in a Gateway condition; more are counted.
const LISTED: usize = 5;

/// The rules of `snapshot` this build cannot serve, given the referenced Secrets that do not
/// exist (the operator does not read the others' content: the replicas check it).
pub fn unserved_rules(snapshot: &Snapshot, missing: &BTreeSet<ObjectKey>) -> Vec<UnservedRule> {
    capability::unserved_rules(snapshot, |file| {
        if missing.contains(&ObjectKey::new(&file.namespace, &file.name)) {
            SecretState::Missing
        } else {
            SecretState::Present(None)
        }
    })
}

/// What the Gateway's `Programmed` says while rules are not served: each Route, rule and reason
/// (the first few in full).
pub fn gateway_message(unserved: &[UnservedRule]) -> String {
    let mut message = format!(
        "{} rule(s) of attached Routes answer 503 until this gateway can serve them: ",
        unserved.len()
    );
    let listed: Vec<String> = unserved
        .iter()
        .take(LISTED)
        .map(|r| r.to_string())
        .collect();
    message.push_str(&listed.join("; "));
    if unserved.len() > LISTED {
        message.push_str(&format!(
            "; and {} more (see the Routes' status)",
            unserved.len() - LISTED
        ));
    }
    message
}

/// The `PartiallyInvalid` condition of a parent of `route`, when rules of it are not served.
pub fn route_condition(route: &ObjectKey, unserved: &[UnservedRule]) -> Option<Observed> {
    let gaps: Vec<_> = unserved
        .iter()
        .filter(|r| &r.route == route)
        .flat_map(|r| &r.gaps)
        .collect();
    let first = gaps.first()?;
    // Gateway API's reason for this condition; a rule held back only by a Secret says so.
    let why = if gaps
        .iter()
        .any(|g| g.reason == capability::reason::UNSUPPORTED_VALUE)
    {
        capability::reason::UNSUPPORTED_VALUE
    } else {
        first.reason
    };
    let listed: Vec<String> = gaps.iter().map(ToString::to_string).collect();
    Some(Observed::yes(
        conditions::PARTIALLY_INVALID,
        why,
        format!("Rules answering 503: {}", listed.join("; ")),
    ))
}

/// `results`, with `ResolvedRefs` turned False for Routes with a rule that reads a Secret that
/// does not exist (the compiler does not see Secrets; the operator does).
pub fn with_missing_secrets(
    results: &[RouteParentResult],
    unserved: &[UnservedRule],
) -> Vec<RouteParentResult> {
    let mut results = results.to_vec();
    for rule in unserved {
        let Some(gap) = rule
            .gaps
            .iter()
            .find(|g| g.reason == capability::reason::SECRET_NOT_FOUND)
        else {
            continue;
        };
        for result in results
            .iter_mut()
            .filter(|r| r.route == rule.route && r.resolved_refs.status)
        {
            result.resolved_refs = ConditionResult {
                status: false,
                reason: reason::SECRET_NOT_FOUND,
                message: format!("{gap}: the rule answers 503 until it exists"),
            };
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use portcullis_api::route::ParentRef;
    use portcullis_config::snapshot::{
        Action, ApiKeyLocation, AuthConfig, ResolvedPolicies, RuleConfig, SecretFile,
    };

    use super::*;

    fn rule(route: &str, index: usize) -> RuleConfig {
        RuleConfig {
            route: ObjectKey::new("shop", route),
            rule_index: index,
            name: None,
            filters: Vec::new(),
            action: Action::Backends {
                backends: Vec::new(),
            },
            policies: ResolvedPolicies::default(),
            upgrades: None,
        }
    }

    fn snapshot() -> Snapshot {
        let mut users = rule("users", 0);
        users.policies.auth = Some(AuthConfig::ApiKey {
            keys: SecretFile::new("shop", "api-keys", "keys"),
            location: ApiKeyLocation::Header("x-api-key".to_owned()),
            keep_credential: false,
        });
        let mut orders = rule("orders", 1);
        orders.policies.auth = Some(AuthConfig::Basic {
            users: SecretFile::new("shop", "partners", "users"),
            keep_authorization: false,
        });
        let mut snapshot: Snapshot = serde_json::from_value(serde_json::json!({
            "apiVersion": portcullis_config::API_VERSION,
            "gateway": { "namespace": "shop", "name": "edge" },
            "revision": "",
            "listeners": [],
            "rules": [],
            "backends": {},
            "drain": { "delayMs": 0, "timeoutMs": 0 },
        }))
        .expect("a snapshot");
        snapshot.rules = vec![users, orders, rule("catalog", 0)];
        snapshot
    }

    #[test]
    fn the_gateway_names_every_route_rule_and_reason() {
        let missing = BTreeSet::from([
            ObjectKey::new("shop", "api-keys"),
            ObjectKey::new("shop", "partners"),
        ]);
        let unserved = unserved_rules(&snapshot(), &missing);
        assert_eq!(unserved.len(), 2, "the catalog rule is served");
        assert_eq!(
            gateway_message(&unserved),
            "2 rule(s) of attached Routes answer 503 until this gateway can serve them: Route \
             shop/users spec.rules[0].auth.apiKey.secretRef: Secret shop/api-keys (key \"keys\") \
             not found; Route shop/orders spec.rules[1].auth.basic.secretRef: Secret \
             shop/partners (key \"users\") not found"
        );
        let partners = BTreeSet::from([ObjectKey::new("shop", "partners")]);
        let served = unserved_rules(&snapshot(), &partners);
        assert_eq!(served.len(), 1, "users is served once its Secret exists");
    }

    #[test]
    fn a_route_with_unserved_rules_is_partially_invalid_and_a_missing_secret_unresolved() {
        let missing = BTreeSet::from([ObjectKey::new("shop", "api-keys")]);
        let unserved = unserved_rules(&snapshot(), &missing);
        let users = ObjectKey::new("shop", "users");
        let condition = route_condition(&users, &unserved).expect("users is partially invalid");
        assert_eq!(condition.type_, "PartiallyInvalid");
        assert!(condition.status);
        assert_eq!(condition.reason, "SecretNotFound");
        assert!(
            condition.message.starts_with(
                "Rules answering 503: spec.rules[0].auth.apiKey.secretRef: Secret shop/api-keys"
            ),
            "{}",
            condition.message
        );
        assert_eq!(
            route_condition(&ObjectKey::new("shop", "catalog"), &unserved),
            None
        );

        let ok = ConditionResult {
            status: true,
            reason: "ResolvedRefs",
            message: String::new(),
        };
        let result = RouteParentResult {
            route: users,
            parent_ref_index: 0,
            parent_ref: serde_json::from_value::<ParentRef>(serde_json::json!({ "name": "edge" }))
                .expect("a parentRef"),
            accepted: ok.clone(),
            resolved_refs: ok,
            listeners: Vec::new(),
        };
        let results = with_missing_secrets(&[result], &unserved);
        assert!(!results[0].resolved_refs.status);
        assert_eq!(results[0].resolved_refs.reason, "SecretNotFound");
        assert_eq!(
            results[0].resolved_refs.message,
            "spec.rules[0].auth.apiKey.secretRef: Secret shop/api-keys (key \"keys\") not \
             found: the rule answers 503 until it exists"
        );
    }
}
