//! The Gateway reconcile: fetch (I/O) → compile (pure) → build (pure) → apply (I/O) → status
//! (I/O), one module and one error variant per stage.

pub mod apply;
pub mod cleanup;
pub mod compile;
pub mod converged;
pub mod fetch;
pub mod orphans;
pub mod replicas;
pub mod rollout;
pub mod route_status;
pub mod status;
#[cfg(test)]
mod status_tests;
pub mod unserved;

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ObjectReference, Service},
};
use kube::{
    Client, Resource, ResourceExt,
    runtime::{
        controller::Action,
        events::{EventType, Recorder},
        reflector::ObjectRef,
    },
};
use portcullis_api::Gateway;
use portcullis_config::snapshot::ObjectKey;
use tracing::{debug, instrument, warn};

use self::{
    apply::ApplyError,
    compile::CompileError,
    fetch::FetchError,
    replicas::Replica,
    status::StatusError,
    status::{Facts, Programmed},
};
use crate::{
    children::{BuildError, BuildOptions, build_children},
    conditions::reason,
    leader, meta,
    metrics::Metrics,
    relations::{Relations, Used, mentioned_backends},
    stores::Stores,
};

/// The controller name, in metrics.
pub const CONTROLLER: &str = "gateway";

/// What every reconcile shares.
pub struct Context {
    /// The API client (the leader's).
    pub client: Client,
    /// What the watches have seen.
    pub stores: Stores,
    /// Which Gateways use which Routes, ServiceBackends and Secrets.
    pub relations: Arc<Relations>,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Reconcile counts, errors and durations.
    pub metrics: Arc<Metrics>,
    /// How children are built.
    pub options: BuildOptions,
    /// Gateways that got a warning Event (degraded, no ready replica) not yet followed by
    /// `Recovered`.
    pub alerted: std::sync::Mutex<std::collections::HashSet<ObjectKey>>,
    /// Resolves when leadership is lost or the operator stops: reconciles in flight are
    /// dropped (see [`leader::fenced`]).
    pub stop: leader::Stop,
    /// The recent revisions of each Gateway and the Route generations they carry.
    pub revisions: rollout::Revisions,
    /// How often a converged Gateway is checked again (drift of fields nobody watches, such as
    /// a LoadBalancer address appearing late, is caught at least this often).
    pub resync: Duration,
}

/// A failed reconcile, by stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Stage 1.
    #[error("fetch: {0}")]
    Fetch(#[from] FetchError),
    /// Stage 2.
    #[error("compile: {0}")]
    Compile(#[from] CompileError),
    /// Stage 3.
    #[error("build: {0}")]
    Build(#[from] BuildError),
    /// Stage 4.
    #[error("apply: {0}")]
    Apply(#[from] ApplyError),
    /// Stage 5.
    #[error("status: {0}")]
    Status(#[from] StatusError),
    /// Leadership was lost (or the operator is stopping): the reconcile was dropped before its
    /// next write.
    #[error("leadership was lost: the reconcile stopped before its next write")]
    Fenced,
    /// The reconcile took too long and was abandoned.
    #[error("the reconcile did not finish within {0:?}; it is retried")]
    Timeout(Duration),
}

impl Error {
    /// The stage, as a metric label.
    pub fn stage(&self) -> &'static str {
        match self {
            Error::Fetch(_) => "fetch",
            Error::Compile(_) => "compile",
            Error::Build(_) => "build",
            Error::Apply(_) => "apply",
            Error::Status(_) => "status",
            Error::Fenced => "fenced",
            Error::Timeout(_) => "timeout",
        }
    }
}

/// How long a reconcile waits for the watches' initial lists before it fails and is retried.
const STORES_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a whole reconcile may take. Every API call has its own timeout, but a reconcile
/// makes many; past this it is abandoned (each write is an idempotent server-side apply, so a
/// half-done reconcile is simply done again) and retried, so no Gateway waits behind a stuck one.
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(120);

/// Reconciles one Gateway.
#[instrument(skip(gateway, ctx), fields(gateway = %format!("{}/{}", gateway.namespace().unwrap_or_default(), gateway.name_any())))]
pub async fn reconcile(gateway: Arc<Gateway>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let work = tokio::time::timeout(RECONCILE_TIMEOUT, reconcile_stages(gateway, &ctx));
    match leader::fenced(&ctx.stop, work).await {
        Some(Ok(outcome)) => outcome,
        Some(Err(_)) => Err(Error::Timeout(RECONCILE_TIMEOUT)),
        None => Err(Error::Fenced),
    }
}

async fn reconcile_stages(gateway: Arc<Gateway>, ctx: &Context) -> Result<Action, Error> {
    ctx.stores
        .ready(STORES_READY_TIMEOUT)
        .await
        .map_err(FetchError::from)?;
    let namespace = gateway.namespace().unwrap_or_default();
    let key = ObjectKey::new(&namespace, gateway.name_any());
    if gateway.meta().deletion_timestamp.is_some() {
        ctx.relations.forget(&key);
        ctx.revisions.forget(&key);
        cleanup::finalize(&ctx.client, &ctx.stores.children, &gateway).await?;
        return Ok(Action::await_change());
    }

    // 1. fetch
    let inputs = fetch::inputs(&ctx.stores, &gateway);
    // 2. compile
    let compilation = match compile::compile(&gateway, &inputs) {
        Ok(compilation) => compilation,
        Err(error) => {
            let observed = Observed::of(ctx, &gateway);
            let facts = observed.facts(Programmed::No(reason::INVALID_CONFIG, error.to_string()));
            write_status(ctx, &gateway, &facts).await?;
            return Err(error.into());
        }
    };
    let secrets = fetch::secrets(
        &ctx.client,
        &ctx.stores.secrets,
        &namespace,
        &compilation.secret_refs,
    )
    .await?;
    let before = ctx.relations.record(
        key.clone(),
        Used {
            routes: inputs
                .routes
                .iter()
                .map(|r| ObjectKey::new(r.namespace().unwrap_or_default(), r.name_any()))
                .collect(),
            backends: mentioned_backends(&inputs.routes, &inputs.backends),
            secrets: compilation.secret_refs.all().cloned().collect(),
            missing_secrets: secrets.missing.clone(),
        },
    );
    for missing in secrets.missing.difference(&before.missing_secrets) {
        publish(
            &ctx.recorder,
            &gateway.object_ref(&()),
            EventType::Warning,
            reason::SECRET_NOT_FOUND,
            format!(
                "Secret {missing} is referenced but does not exist: the rules and listeners \
                 that need it are not served until it does; everything else is"
            ),
        )
        .await;
    }
    // The same check the replicas make: these rules answer 503, the others serve.
    let unserved = unserved::unserved_rules(&compilation.compiled.snapshot, &secrets.missing);

    // 3. build
    let snapshot = &compilation.compiled.snapshot;
    let children = match build_children(&gateway, snapshot, &secrets.sources, &ctx.options) {
        Ok(children) => children,
        Err(error) => {
            let observed = Observed::of(ctx, &gateway);
            let mut facts =
                observed.facts(Programmed::No(reason::INVALID_CONFIG, error.to_string()));
            facts.compilation = Some(&compilation);
            write_status(ctx, &gateway, &facts).await?;
            return Err(error.into());
        }
    };
    let config_bytes = Some(portcullis_config::configmap::stored_size(
        &children.config_map,
    ));

    // 4. apply
    let needs_finalizer = children
        .roles
        .iter()
        .any(|r| r.namespace().as_deref() != Some(namespace.as_str()))
        || cleanup::has_foreign_children(&ctx.stores.children, &gateway);
    cleanup::sync_finalizer(&ctx.client, &gateway, needs_finalizer).await?;
    let applied = apply::apply(&ctx.client, &ctx.stores.children, &gateway, children).await;
    // A failed apply leaves the children as they were: status keeps saying what they do.
    let mut observed = Observed::of(ctx, &gateway);
    let programmed = match &applied {
        Ok(applied) => {
            observed.deployment = applied.deployment.clone().or(observed.deployment);
            observed.service = applied.service.clone().or(observed.service);
            Programmed::Yes
        }
        Err(error) => Programmed::No(reason::APPLY_FAILED, error.to_string()),
    };
    if let Ok(applied) = &applied {
        debug!(writes = applied.writes, "children applied");
    }

    if applied.is_ok() {
        ctx.revisions.record(
            &key,
            &snapshot.revision,
            inputs.routes.iter().filter_map(|route| {
                let generation = route.meta().generation?;
                Some((
                    ObjectKey::new(route.namespace().unwrap_or_default(), route.name_any()),
                    generation,
                ))
            }),
        );
    }
    let rollout = ctx.revisions.rollout(&key, &observed.replicas);

    // 5. status
    let facts = Facts {
        compilation: Some(&compilation),
        missing_secrets: &secrets.missing,
        unserved: &unserved,
        config_bytes,
        ..observed.facts(programmed)
    };
    write_status(ctx, &gateway, &facts).await?;
    route_status::write_all(
        &ctx.client,
        &ctx.recorder,
        ctx.stores.routes.state(),
        &gateway,
        &route_status::Outcome {
            results: &unserved::with_missing_secrets(
                &compilation.compiled.diagnostics.parents,
                &unserved,
            ),
            unserved: &unserved,
            rollout: &rollout,
            now: status::now(),
        },
    )
    .await?;
    applied?;
    Ok(Action::requeue(ctx.resync))
}

static NO_SECRETS: std::collections::BTreeSet<ObjectKey> = std::collections::BTreeSet::new();

/// What the watches last saw of a Gateway's Deployment, Service and ready replicas: status is
/// computed from these whether or not this reconcile got as far as applying, so a Gateway whose
/// new config is refused still says what its running pods serve.
struct Observed {
    deployment: Option<Deployment>,
    service: Option<Service>,
    replicas: Vec<Replica>,
}

impl Observed {
    fn of(ctx: &Context, gateway: &Gateway) -> Self {
        let namespace = gateway.namespace().unwrap_or_default();
        let name = gateway.name_any();
        let child = meta::workload_name(&name);
        let children = &ctx.stores.children;
        Self {
            deployment: children
                .deployments
                .get(&ObjectRef::new(&child).within(&namespace))
                .map(|d| (*d).clone()),
            service: children
                .services
                .get(&ObjectRef::new(&child).within(&namespace))
                .map(|s| (*s).clone()),
            replicas: replicas::ready(
                children.pods.state().iter().map(|pod| &**pod),
                &namespace,
                &name,
            ),
        }
    }

    /// The facts of a reconcile that got no further than `programmed` says.
    fn facts(&self, programmed: Programmed) -> Facts<'_> {
        Facts {
            compilation: None,
            programmed,
            deployment: self.deployment.as_ref(),
            service: self.service.as_ref(),
            missing_secrets: &NO_SECRETS,
            unserved: &[],
            config_bytes: None,
            replicas: &self.replicas,
        }
    }
}

/// Writes the Gateway's status and publishes the Event its change deserves.
async fn write_status(ctx: &Context, gateway: &Gateway, facts: &Facts<'_>) -> Result<(), Error> {
    let status = status::gateway_status(gateway, facts, status::now());
    if !status::write(&ctx.client, gateway, &status).await? {
        return Ok(());
    }
    let previous = gateway.status.clone().unwrap_or_default();
    let key = ObjectKey::new(gateway.namespace().unwrap_or_default(), gateway.name_any());
    let alerted = ctx
        .alerted
        .lock()
        .map(|set| set.contains(&key))
        .unwrap_or(false);
    if let Some(problem) = status::problem_transition(&previous, &status) {
        publish(
            &ctx.recorder,
            &gateway.object_ref(&()),
            problem.type_,
            problem.reason,
            problem.note,
        )
        .await;
    }
    if let Some(rules) = status::rules_transition(&previous, &status) {
        publish(
            &ctx.recorder,
            &gateway.object_ref(&()),
            rules.type_,
            rules.reason,
            rules.note,
        )
        .await;
    }
    if let Some(transition) = status::transition(&previous, &status, alerted) {
        if let Ok(mut set) = ctx.alerted.lock() {
            if transition.type_ == EventType::Warning {
                set.insert(key);
            } else {
                set.remove(&key);
            }
        }
        publish(
            &ctx.recorder,
            &gateway.object_ref(&()),
            transition.type_,
            transition.reason,
            transition.note,
        )
        .await;
    }
    Ok(())
}

/// Requeues a failed Gateway with a short delay; the error is in the logs, the metrics and,
/// when the user can act on it, the Gateway's status.
pub fn error_policy(gateway: Arc<Gateway>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(
        gateway = %format!("{}/{}", gateway.namespace().unwrap_or_default(), gateway.name_any()),
        stage = error.stage(),
        "reconcile failed: {error}"
    );
    ctx.metrics.error(CONTROLLER, error.stage());
    Action::requeue(Duration::from_secs(5))
}

/// Publishes an Event; a failure to publish is logged, never fails the reconcile.
pub async fn publish(
    recorder: &Recorder,
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: String,
) {
    if let Err(error) = recorder
        .publish(&status::event(type_, reason, note), regarding)
        .await
    {
        warn!("cannot publish an Event: {error}");
    }
}
