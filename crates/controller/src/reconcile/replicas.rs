//! What the gateway replicas report serving, counted against the current revision: the
//! observed half of `Programmed` and of `status.config`.
//!
//! Each replica writes the revision it serves as a condition on its own Pod (the format, and
//! why a Pod condition, are in [`portcullis_config::replica`]); the operator watches the
//! gateway Pods and counts the ready ones.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use portcullis_config::{
    configmap::GATEWAY_LABEL,
    replica::{CONDITION_TYPE, Report},
};

/// One ready gateway replica and what it reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    /// The Pod's name.
    pub name: String,
    /// Its report, if it made one.
    pub report: Option<Report>,
}

/// The ready replicas of Gateway `namespace/gateway` among `pods`, sorted by name. A Pod being
/// deleted is not counted: it is leaving the load balancer.
pub fn ready<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    namespace: &str,
    gateway: &str,
) -> Vec<Replica> {
    let mut replicas: Vec<Replica> = pods
        .into_iter()
        .filter(|pod| {
            pod.namespace().as_deref() == Some(namespace)
                && pod.labels().get(GATEWAY_LABEL).map(String::as_str) == Some(gateway)
                && pod.metadata.deletion_timestamp.is_none()
                && condition(pod, "Ready").is_some_and(|c| c.status == "True")
        })
        .map(|pod| Replica {
            name: pod.name_any(),
            report: condition(pod, CONDITION_TYPE)
                .and_then(|c| Report::parse(c.reason.as_deref()?, c.message.as_deref()?)),
        })
        .collect();
    replicas.sort_by(|a, b| a.name.cmp(&b.name));
    replicas
}

fn condition<'a>(
    pod: &'a Pod,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The ready replicas sorted by what they serve, relative to the current revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// Serving the current revision.
    pub live: Vec<String>,
    /// Serving an older revision, or not reporting (yet).
    pub stale: Vec<String>,
    /// Refused the current revision: the replica and why.
    pub rejected: Vec<(String, String)>,
}

impl Served {
    /// How many replicas are ready.
    pub fn ready(&self) -> usize {
        self.live.len() + self.stale.len() + self.rejected.len()
    }

    /// Whether every ready replica serves the current revision (and at least one is ready).
    pub fn all_live(&self) -> bool {
        !self.live.is_empty() && self.stale.is_empty() && self.rejected.is_empty()
    }

    /// `live/ready`, for `kubectl get`.
    pub fn fraction(&self) -> String {
        format!("{}/{}", self.live.len(), self.ready())
    }

    /// The first refusal, naming its replica.
    pub fn last_error(&self) -> Option<String> {
        self.rejected
            .first()
            .map(|(replica, error)| format!("replica {replica}: {error}"))
    }
}

/// Sorts `replicas` by what they serve relative to `revision`.
pub fn served(replicas: &[Replica], revision: &str) -> Served {
    let mut served = Served::default();
    for replica in replicas {
        let name = replica.name.clone();
        match &replica.report {
            Some(report) if report.serving() == Some(revision) => served.live.push(name),
            Some(Report::Refused { refused, error, .. }) if refused == revision => {
                served.rejected.push((name, error.clone()));
            }
            _ => served.stale.push(name),
        }
    }
    served
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use kube::api::ObjectMeta;

    use super::*;

    fn pod(name: &str, ready: bool, report: Option<&Report>) -> Pod {
        let mut conditions = vec![PodCondition {
            type_: "Ready".to_owned(),
            status: if ready { "True" } else { "False" }.to_owned(),
            ..PodCondition::default()
        }];
        if let Some(report) = report {
            let text = report.condition();
            conditions.push(PodCondition {
                type_: CONDITION_TYPE.to_owned(),
                status: text.status.to_owned(),
                reason: Some(text.reason.to_owned()),
                message: Some(text.message),
                ..PodCondition::default()
            });
        }
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("shop".to_owned()),
                labels: Some([(GATEWAY_LABEL.to_owned(), "edge".to_owned())].into()),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                conditions: Some(conditions),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    fn serving(revision: &str) -> Report {
        Report::Served {
            revision: revision.to_owned(),
        }
    }

    #[test]
    fn each_ready_replica_is_live_stale_or_rejected() {
        let refused = Report::Refused {
            serving: Some("old".to_owned()),
            refused: "new".to_owned(),
            error: "unreadable".to_owned(),
        };
        let pods = [
            pod("edge-c", true, Some(&serving("new"))),
            pod("edge-a", true, Some(&serving("old"))),
            pod("edge-b", true, Some(&refused)),
            pod("edge-d", true, None),
            pod("edge-e", false, Some(&serving("new"))),
        ];
        let replicas = ready(&pods, "shop", "edge");
        assert_eq!(replicas.len(), 4, "the unready replica is not counted");
        let served = served(&replicas, "new");
        assert_eq!(served.live, ["edge-c"]);
        assert_eq!(served.stale, ["edge-a", "edge-d"]);
        assert_eq!(
            served.rejected,
            [("edge-b".to_owned(), "unreadable".to_owned())]
        );
        assert_eq!(served.fraction(), "1/4");
        assert!(!served.all_live());
        assert_eq!(
            served.last_error().as_deref(),
            Some("replica edge-b: unreadable")
        );
    }

    #[test]
    fn a_refusal_of_an_older_revision_is_stale_not_rejected() {
        let refused = Report::Refused {
            serving: Some("older".to_owned()),
            refused: "old".to_owned(),
            error: "unreadable".to_owned(),
        };
        let served = served(
            &ready(&[pod("edge-a", true, Some(&refused))], "shop", "edge"),
            "new",
        );
        assert_eq!(served.stale, ["edge-a"]);
    }

    #[test]
    fn other_gateways_and_leaving_pods_are_not_counted() {
        let mut leaving = pod("edge-a", true, Some(&serving("new")));
        leaving.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let mut other = pod("front-a", true, Some(&serving("new")));
        other
            .labels_mut()
            .insert(GATEWAY_LABEL.to_owned(), "front".to_owned());
        let replicas = ready(&[leaving, other], "shop", "edge");
        assert!(replicas.is_empty());
        assert!(
            !served(&replicas, "new").all_live(),
            "no replica is not all live"
        );
    }
}
