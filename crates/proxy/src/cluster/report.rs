//! Telling the operator which config revision this replica serves: a condition on the replica's
//! own Pod (the format, and why a Pod condition, are in [`portcullis_config::replica`]).
//!
//! The newest report wins: reports made while a write is under way or failing are folded into
//! the next write, which is retried with a growing pause until the API server takes it. A
//! replica that cannot report keeps serving; the operator then counts it as stale.

use std::time::Duration;

use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use portcullis_config::replica::{CONDITION_TYPE, Report};
use serde_json::json;
use tokio::{sync::watch, task::JoinHandle};

/// The environment variables the gateway Deployment sets from the downward API.
pub const POD_NAME_ENV: &str = "POD_NAME";
/// See [`POD_NAME_ENV`].
pub const POD_NAMESPACE_ENV: &str = "POD_NAMESPACE";

/// The longest pause between two attempts to write a report.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Sends this replica's reports to its Pod.
pub struct Reporter {
    latest: watch::Sender<Option<Report>>,
    task: Option<JoinHandle<()>>,
}

impl Reporter {
    /// A reporter for the Pod named by `POD_NAMESPACE`/`POD_NAME`; without them (a proxy
    /// started by hand) reports go nowhere.
    pub fn from_env(client: Client) -> Self {
        let pod = std::env::var(POD_NAMESPACE_ENV)
            .ok()
            .zip(std::env::var(POD_NAME_ENV).ok())
            .filter(|(namespace, name)| !namespace.is_empty() && !name.is_empty());
        let (latest, receiver) = watch::channel(None);
        let task = match pod {
            Some((namespace, name)) => Some(tokio::spawn(write_reports(
                Api::namespaced(client, &namespace),
                name,
                receiver,
            ))),
            None => {
                tracing::info!(
                    "{POD_NAMESPACE_ENV} or {POD_NAME_ENV} is not set: the served config \
                     revision is not reported to the operator"
                );
                None
            }
        };
        Self { latest, task }
    }

    /// Reports `report`, unless it is already the latest.
    pub fn report(&self, report: Report) {
        self.latest.send_if_modified(|latest| {
            let changed = latest.as_ref() != Some(&report);
            *latest = Some(report);
            changed
        });
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Writes every new report to Pod `name`, until the sender is gone.
async fn write_reports(pods: Api<Pod>, name: String, mut latest: watch::Receiver<Option<Report>>) {
    let mut written: Option<Report> = None;
    let mut backoff = Duration::from_millis(250);
    loop {
        let report = latest.borrow_and_update().clone();
        match report {
            Some(report) if written.as_ref() != Some(&report) => {
                match write(&pods, &name, &report).await {
                    Ok(()) => {
                        tracing::debug!(%report, "config revision reported");
                        written = Some(report);
                        backoff = Duration::from_millis(250);
                    }
                    Err(error) => {
                        tracing::warn!(%error, pod = %name, "cannot report the served config revision; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            _ => {}
        }
        if latest.changed().await.is_err() {
            return;
        }
    }
}

/// One strategic-merge patch of the Pod's status: conditions merge by `type`, so the kubelet's
/// (and anyone else's) are left as they are.
async fn write(pods: &Api<Pod>, name: &str, report: &Report) -> Result<(), kube::Error> {
    let text = report.condition();
    let patch = json!({
        "status": {
            "conditions": [{
                "type": CONDITION_TYPE,
                "status": text.status,
                "reason": text.reason,
                "message": text.message,
                "lastTransitionTime": Timestamp::now().to_string(),
            }]
        }
    });
    pods.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map(|_| ())
}
