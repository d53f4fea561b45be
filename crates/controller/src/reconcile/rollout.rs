//! Whether a Route's current generation is served yet: the replicas report revisions (see
//! [`super::replicas`]), and the operator remembers which Route generations each recent
//! revision of a Gateway carries, so a Route can say "not yet served" until every ready
//! replica serves a revision that has it.
//!
//! Only the Routes an edit touched change: the others are carried, at the same generation, by
//! the old revision and the new one alike, so an edit costs the edited Route two status writes
//! and the others none. A revision the operator does not remember (it restarted, or a replica
//! serves something very old) decides nothing: the Route keeps what it said.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
};

use portcullis_config::snapshot::ObjectKey;

use super::replicas::Replica;

/// Revisions remembered per Gateway: enough for replicas a few edits behind.
const REMEMBERED: usize = 16;

/// The Route generations one revision carries.
type Generations = Arc<HashMap<ObjectKey, i64>>;

/// The recent revisions of every Gateway and the Route generations each carries.
#[derive(Default)]
pub struct Revisions {
    by_gateway: Mutex<HashMap<ObjectKey, VecDeque<(String, Generations)>>>,
}

impl Revisions {
    /// Remembers that `revision` of `gateway` carries `routes` (key and generation each).
    pub fn record(
        &self,
        gateway: &ObjectKey,
        revision: &str,
        routes: impl IntoIterator<Item = (ObjectKey, i64)>,
    ) {
        let generations: Generations = Arc::new(routes.into_iter().collect());
        let mut all = self
            .by_gateway
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let recent = all.entry(gateway.clone()).or_default();
        recent.retain(|(known, _)| known != revision);
        recent.push_back((revision.to_owned(), generations));
        while recent.len() > REMEMBERED {
            recent.pop_front();
        }
    }

    /// Forgets a Gateway that is gone.
    pub fn forget(&self, gateway: &ObjectKey) {
        self.by_gateway
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(gateway);
    }

    /// What the ready `replicas` of `gateway` serve, as Route generations.
    pub fn rollout(&self, gateway: &ObjectKey, replicas: &[Replica]) -> Rollout {
        let all = self
            .by_gateway
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let recent = all.get(gateway);
        let served = replicas
            .iter()
            .map(|replica| {
                let revision = replica.report.as_ref()?.serving()?;
                recent?
                    .iter()
                    .find(|(known, _)| known == revision)
                    .map(|(_, generations)| generations.clone())
            })
            .collect();
        Rollout { served }
    }
}

/// The Route generations each ready replica serves (`None`: not known).
#[derive(Clone, Debug, Default)]
pub struct Rollout {
    served: Vec<Option<Generations>>,
}

impl Rollout {
    /// A rollout nothing is known of: every Route keeps what it said.
    pub fn unknown() -> Self {
        Self { served: vec![None] }
    }

    /// Whether every ready replica serves `route` at `generation`: `Some(false)` as soon as one
    /// is known not to (or none is ready), `None` when it depends on a replica whose revision
    /// is not known.
    pub fn serves(&self, route: &ObjectKey, generation: i64) -> Option<bool> {
        if self.served.is_empty() {
            return Some(false);
        }
        let mut known = true;
        for served in &self.served {
            match served {
                Some(generations) if generations.get(route) != Some(&generation) => {
                    return Some(false);
                }
                Some(_) => {}
                None => known = false,
            }
        }
        known.then_some(true)
    }
}

#[cfg(test)]
mod tests {
    use portcullis_config::replica::Report;

    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("shop", name)
    }

    fn replica(revision: Option<&str>) -> Replica {
        Replica {
            name: "edge-a".to_owned(),
            report: revision.map(|r| Report::Served {
                revision: r.to_owned(),
            }),
        }
    }

    #[test]
    fn an_edited_route_is_served_once_every_replica_serves_its_generation() {
        let revisions = Revisions::default();
        let gateway = key("edge");
        revisions.record(&gateway, "r1", [(key("users"), 1), (key("orders"), 1)]);
        revisions.record(&gateway, "r2", [(key("users"), 2), (key("orders"), 1)]);

        let halfway = revisions.rollout(&gateway, &[replica(Some("r1")), replica(Some("r2"))]);
        assert_eq!(halfway.serves(&key("users"), 2), Some(false));
        assert_eq!(
            halfway.serves(&key("orders"), 1),
            Some(true),
            "an untouched route stays served"
        );

        let done = revisions.rollout(&gateway, &[replica(Some("r2")), replica(Some("r2"))]);
        assert_eq!(done.serves(&key("users"), 2), Some(true));
    }

    #[test]
    fn an_unknown_revision_decides_nothing_and_no_replica_serves_nothing() {
        let revisions = Revisions::default();
        let gateway = key("edge");
        revisions.record(&gateway, "r2", [(key("users"), 2)]);
        let unknown = revisions.rollout(&gateway, &[replica(Some("r0")), replica(None)]);
        assert_eq!(unknown.serves(&key("users"), 2), None);
        assert_eq!(
            revisions.rollout(&gateway, &[]).serves(&key("users"), 2),
            Some(false)
        );
    }

    #[test]
    fn only_the_recent_revisions_are_remembered() {
        let revisions = Revisions::default();
        let gateway = key("edge");
        for generation in 0..=i64::try_from(REMEMBERED).expect("small") {
            revisions.record(
                &gateway,
                &format!("r{generation}"),
                [(key("users"), generation)],
            );
        }
        let oldest = revisions.rollout(&gateway, &[replica(Some("r0"))]);
        assert_eq!(oldest.serves(&key("users"), 0), None);
        revisions.forget(&gateway);
        let newest = revisions.rollout(&gateway, &[replica(Some("r16"))]);
        assert_eq!(newest.serves(&key("users"), 16), None);
    }
}
