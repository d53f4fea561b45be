//! Lease-based leader election: only the holder of the Lease runs the controllers, and so
//! only it writes; a standby takes over when the holder stops renewing (it died) or releases
//! the Lease (it shut down).

use std::time::Duration;

use futures::{FutureExt, future};
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
#[cfg(test)]
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use tracing::{info, warn};

use crate::runtime::{ControllerConfig, RunError, run_controllers};

/// A future that resolves when the controllers must stop, cloneable.
pub type Stop = future::Shared<future::BoxFuture<'static, ()>>;

/// Runs `work` unless `stop` resolves first, and then drops it where it stands.
///
/// The fence of leadership: when the Lease is lost, a reconcile in flight must not go on
/// writing beside the new leader (whose view may be newer). Every write is an idempotent
/// server-side apply or status patch, so a reconcile dropped halfway is simply done again by
/// whoever leads next. `None` when stopped.
pub async fn fenced<T>(stop: &Stop, work: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        () = stop.clone() => None,
        outcome = work => Some(outcome),
    }
}

/// Lease-based leader election: only the holder of the Lease runs the controllers (and so
/// writes); a standby takes over when the holder stops renewing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own).
    pub lease_namespace: String,
    /// How long a Lease holds without renewal: a dead leader is replaced after at most this.
    pub lease_duration: Duration,
    /// How long before expiry the holder renews.
    pub renew_before: Duration,
}

impl LeaderElection {
    /// A Lease of `lease_duration`, renewed a third of it before expiry (at most 5 s before):
    /// a short Lease still leaves the holder time to renew.
    pub fn new(lease_name: &str, lease_namespace: &str, lease_duration: Duration) -> Self {
        Self {
            lease_name: lease_name.to_owned(),
            lease_namespace: lease_namespace.to_owned(),
            lease_duration,
            renew_before: (lease_duration / 3)
                .clamp(Duration::from_secs(1), Duration::from_secs(5)),
        }
    }
}

impl Default for LeaderElection {
    fn default() -> Self {
        Self {
            lease_name: "portcullis-controller".to_owned(),
            lease_namespace: "portcullis-system".to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_before: Duration::from_secs(5),
        }
    }
}

/// Waits for the Lease, runs the controllers while holding it, and stands by again when it is
/// lost, until shutdown.
pub(crate) async fn lead(
    client: Client,
    config: &ControllerConfig,
    election: &LeaderElection,
    shutdown: Stop,
) -> Result<(), RunError> {
    let lease_error = |message: String| RunError::Lease {
        namespace: election.lease_namespace.clone(),
        name: election.lease_name.clone(),
        message,
    };
    let (duration, grace) = (
        election.lease_duration.as_secs(),
        election.renew_before.as_secs(),
    );
    if duration < 2 || grace < 1 || grace >= duration {
        return Err(lease_error(format!(
            "a lease of {duration} s renewed {grace} s before expiry leaves no time to renew: \
             use a lease duration of at least 2 s, renewed at least 1 s before it expires"
        )));
    }
    let manager = LeaseManagerBuilder::new(client.clone(), &election.lease_name)
        .with_namespace(&election.lease_namespace)
        .with_identity(&config.identity)
        .with_duration(duration)
        .with_grace(grace)
        .build()
        .await
        .map_err(|e| lease_error(e.to_string()))?;
    let (mut leading, lease_task) = manager.watch().await;
    loop {
        info!(identity = %config.identity, "standing by for the leader lease");
        tokio::select! {
            () = shutdown.clone() => break,
            changed = leading.wait_for(|leader| *leader) => {
                if changed.is_err() {
                    break;
                }
            }
        }
        info!(identity = %config.identity, "leading: starting the controllers");
        config.metrics.set_leader(true);
        let mut lost = leading.clone();
        let stop = async move {
            let _ = lost.wait_for(|leader| !*leader).await;
        };
        let stop = future::select(stop.boxed(), shutdown.clone()).map(|_| ());
        run_controllers(client.clone(), config, stop.boxed().shared()).await;
        config.metrics.set_leader(false);
        if shutdown.clone().now_or_never().is_some() {
            break;
        }
        warn!(identity = %config.identity, "lost the leader lease: controllers stopped");
    }
    // Dropping the receiver makes the lease task release the Lease, so a standby takes over
    // at once rather than after the Lease expires.
    drop(leading);
    match lease_task.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(lease_error(e.to_string())),
        Err(e) => Err(lease_error(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_in_flight_when_leadership_is_lost_goes_no_further() {
        let (lose, lost) = tokio::sync::oneshot::channel::<()>();
        let stop: Stop = async move {
            let _ = lost.await;
        }
        .boxed()
        .shared();
        let wrote = Arc::new(AtomicBool::new(false));
        let writer = wrote.clone();
        let work = async move {
            // A reconcile waiting on the API server when the Lease goes.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            writer.store(true, Ordering::SeqCst);
        };
        let fence = tokio::spawn({
            let stop = stop.clone();
            async move { fenced(&stop, work).await }
        });
        lose.send(()).expect("the fence listens");
        assert_eq!(fence.await.expect("the fence ends"), None);
        assert!(!wrote.load(Ordering::SeqCst), "nothing after the loss");
        assert_eq!(
            fenced(&stop, async { 1 }).await,
            None,
            "nor anything started later"
        );
    }
}
