//! Failover drills: what a client of a Portcullis gateway notices when a replica drains or
//! dies, the config churns, the API server or the operator's leader goes away, a backend
//! endpoint dies, or someone applies a broken Route — with real processes (see
//! `drill_support`): three `portcullis proxy --configmap` replicas behind HAProxy, a steady load
//! of GETs and POSTs through it, the test control plane and two operator instances.
//!
//! `make drill` runs this with the table shown; `make test` runs it too. The assertions are on
//! what clients see (failed requests, POSTs run twice), never on timings: the timings are
//! figures for `bench/RESULTS.md`.
//!
//! This binary has one test and so its own control plane: drill 4 stops the API server.

#[path = "drill_support/mod.rs"]
mod drill_support;
#[path = "operator_support/mod.rs"]
mod operator_support;
#[path = "proxy_support/mod.rs"]
mod proxy_support;
mod support;

use std::time::{Duration, Instant};

use drill_support::{
    DRAIN_DELAY, LEASE, Stage, exact, replica_name,
    report::{Row, ms, table},
    route,
};
use kube::Api;
use operator_support::{TIMEOUT, apply_all};
use portcullis_api::Route;
use support::control_plane::eventually;

/// How long the API server stays down in drill 4.
const API_OUTAGE: Duration = Duration::from_secs(30);

/// How long drill 4 waits for the operator to compile an edit made after the API server's
/// return before writing the ConfigMap itself.
const OPERATOR_AFTER_OUTAGE: Duration = Duration::from_secs(60);

/// Route edits in drill 3.
const EDITS: usize = 50;

/// How long the load runs on after an event, so that its after-effects are in the window.
const AFTERMATH: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_notice_no_failover() {
    let mut stage = Stage::start().await;
    let mut rows = Vec::new();
    rows.push(drain_one_replica(&mut stage).await);
    rows.push(kill_one_replica(&mut stage).await);
    rows.push(route_edits(&stage).await);
    rows.push(api_server_outage(&stage).await);
    rows.push(leader_killed(&mut stage).await);
    rows.push(backend_endpoint_killed(&stage).await);
    rows.push(bad_route(&stage).await);
    stage.load.stop();
    println!(
        "\nFailover drills (3 replicas behind HAProxy, ~240 requests/s, a quarter POSTs):\n\n{}",
        table(&rows)
    );
    for row in &rows {
        assert_eq!(
            row.duplicated_posts, 0,
            "{}: the backend ran POSTs twice",
            row.drill
        );
    }
}

/// Fails the drill if clients saw a failed GET (and, with `posts`, a failed POST).
fn assert_no_failures(row: &Row, posts: bool) {
    let window = &row.window;
    let failed = window.failed_gets + if posts { window.failed_posts } else { 0 };
    assert_eq!(
        failed, 0,
        "{}: clients saw failed requests: {:?}",
        row.drill, window.failures
    );
}

/// 1. SIGTERM one replica, as a rolling update does: it drains (the load balancer sees
///    `/ready` turn 503 and moves on) and exits 0; started again, it takes traffic again.
async fn drain_one_replica(stage: &mut Stage) -> Row {
    let mark = stage.mark();
    stage.replicas[0].terminate();
    let status = stage.replicas[0]
        .exited(Duration::from_secs(30))
        .await
        .expect("the draining replica exits");
    assert!(status.success(), "a drained replica exits 0, not {status}");
    let drained = stage.load.now() - mark.from;
    let restart = stage.load.now();
    stage.restart(0).await;
    let back = stage
        .load
        .first_served_by(&replica_name(0), restart, TIMEOUT)
        .await
        .expect("the restarted replica takes traffic again");
    tokio::time::sleep(AFTERMATH).await;
    let recovery = format!(
        "exited 0 after {} (drain.delay {DRAIN_DELAY}); back in service {} after restart",
        ms(drained),
        ms(back - restart)
    );
    let row = stage
        .row(&mark, "1. SIGTERM one replica (drain)", recovery)
        .await;
    assert_no_failures(&row, true);
    row
}

/// 2. kill -9 one replica: HAProxy retries the GETs it had in flight on the others; POSTs in
///    flight on it are lost (failed, never run twice); the two survivors carry the load.
async fn kill_one_replica(stage: &mut Stage) -> Row {
    let mark = stage.mark();
    stage.replicas[1].kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed = replica_name(1);
    let after = stage
        .load
        .samples_between(mark.from + Duration::from_secs(1), stage.load.now());
    assert!(
        after.iter().all(|s| s.replica.as_deref() != Some(&killed)),
        "the load balancer still sends to the dead replica"
    );
    for survivor in [0, 2].map(replica_name) {
        assert!(
            after
                .iter()
                .any(|s| s.replica.as_deref() == Some(&survivor)),
            "{survivor} carries part of the load"
        );
    }
    let mut row = stage
        .row(&mark, "2. kill -9 one replica", String::new())
        .await;
    let impact = row.window.last_failure.map(|at| at - mark.from);
    let restart = stage.load.now();
    stage.restart(1).await;
    let back = stage
        .load
        .first_served_by(&killed, restart, TIMEOUT)
        .await
        .expect("the restarted replica takes traffic again");
    row.recovery = format!(
        "{}; back in service {} after restart",
        impact.map_or("no failure".to_owned(), |d| format!(
            "last failure {} after the kill",
            ms(d)
        )),
        ms(back - restart)
    );
    // A POST in flight on the killed replica cannot be retried safely: counted, not asserted.
    assert_no_failures(&row, false);
    row
}

/// 3. Route edits through the API, one after the other, each served by every replica before
///    the next.
async fn route_edits(stage: &Stage) -> Row {
    let mark = stage.mark();
    let mut served = Vec::new();
    for edit in 1..=EDITS {
        let path = format!("/edit-{edit}");
        let began = Instant::now();
        stage.edit(&path).await;
        served.push(stage.served_everywhere(&path, 200, began).await);
    }
    let revision = stage.converged().await;
    served.sort();
    let recovery = format!(
        "edit → served by all 3: p50 {}, p99 {}; all on revision {}",
        ms(drill_support::load::percentile(&served, 50.0)),
        ms(drill_support::load::percentile(&served, 99.0)),
        &revision[..revision.len().min(12)]
    );
    let row = stage.row(&mark, "3. 50 Route edits", recovery).await;
    assert_no_failures(&row, true);
    row
}

/// 4. The API server down for 30 s (killed, then started again): the replicas keep serving
///    what they have; once it is back, a new Route edit is served within seconds (their
///    watches are re-established).
///
/// The operator's watches retry within 3 s of the API's return, but after a 30 s outage its
/// Lease has expired and leadership is settled again first, which on a saturated machine can
/// take long. The drill gives it [`OPERATOR_AFTER_OUTAGE`], then writes the ConfigMap the
/// operator would write (the same compile, the same revision), so that the replicas' share is
/// measured either way; the row says which happened.
async fn api_server_outage(stage: &Stage) -> Row {
    let mark = stage.mark();
    let startup = stage.ctx.control_plane.stop_api_server(API_OUTAGE).await;
    let ready = Instant::now();
    stage.edit("/edit-after-outage").await;
    let compiled = tokio::time::timeout(
        OPERATOR_AFTER_OUTAGE,
        proxy_support::await_config(&stage.ctx, |s| {
            s.to_yaml()
                .is_ok_and(|yaml| yaml.contains("/edit-after-outage"))
        }),
    )
    .await;
    let operator = match compiled {
        Ok(_) => format!("the operator compiled it in {}", ms(ready.elapsed())),
        Err(_) => {
            proxy_support::write_compiled_config(&stage.ctx).await;
            format!(
                "the operator had not compiled it after {} (ConfigMap written by the drill)",
                ms(OPERATOR_AFTER_OUTAGE)
            )
        }
    };
    let written = Instant::now();
    let served = stage
        .served_everywhere("/edit-after-outage", 200, written)
        .await;
    let recovery = format!(
        "API ready {} after its restart; an edit made then: {operator}; all 3 replicas \
         served it {} after it was in the ConfigMap",
        ms(startup),
        ms(served)
    );
    let row = stage.row(&mark, "4. API server down 30 s", recovery).await;
    assert_no_failures(&row, true);
    row
}

/// 5. The operator's leader killed (no Lease release) while Routes are being edited: the
///    standby takes the Lease when it expires and the edits made meanwhile are served.
async fn leader_killed(stage: &mut Stage) -> Row {
    let mark = stage.mark();
    let ctx = stage.ctx.clone();
    let editor = tokio::spawn(async move {
        for edit in 0.. {
            let path = format!("/churn-{edit}");
            let route = route(&ctx.namespace, "churn", &[exact(&path, "web")]);
            apply_all(&ctx.client, &[route]).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    // The leader is the instance that reconciles the edits; the standby reconciles nothing.
    let (leader, before) = eventually(
        "one operator instance to reconcile the edits and the other to stand by",
        TIMEOUT,
        || async {
            let counts = || {
                stage
                    .operators
                    .iter()
                    .map(|o| o.metrics.reconciles("gateway"))
            };
            let before: Vec<u64> = counts().collect();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let grew: Vec<usize> = counts()
                .zip(&before)
                .enumerate()
                .filter(|(_, (after, before))| after > *before)
                .map(|(index, _)| index)
                .collect();
            match grew[..] {
                [leader] => Some((leader, before[1 - leader])),
                _ => None,
            }
        },
    )
    .await;
    let leader = stage.operators.remove(leader);
    let standby = &stage.operators[0];
    let killed = Instant::now();
    tokio::task::spawn_blocking(move || leader.kill())
        .await
        .expect("the leader is killed");
    eventually("the standby to reconcile", TIMEOUT, || async {
        (standby.metrics.reconciles("gateway") > before).then_some(())
    })
    .await;
    let took_over = killed.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    editor.abort();
    let began = Instant::now();
    stage.edit("/edit-after-takeover").await;
    let served = stage
        .served_everywhere("/edit-after-takeover", 200, began)
        .await;
    stage.converged().await;
    let recovery = format!(
        "standby's first reconcile {} after the kill (Lease {}); next edit served in {}",
        ms(took_over),
        ms(LEASE),
        ms(served)
    );
    let row = stage
        .row(&mark, "5. operator leader killed", recovery)
        .await;
    assert_no_failures(&row, true);
    row
}

/// 6. One of the service's two endpoints killed: the Route's retries hide it from GETs, outlier
///    detection ejects it, and its EndpointSlice (marked not ready a second later, as the
///    EndpointSlice controller does when the pod goes) takes it out for good.
async fn backend_endpoint_killed(stage: &Stage) -> Row {
    let mark = stage.mark();
    stage.endpoints[1].kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy_support::put_endpoint_slice(&stage.ctx, "web-b", "web", stage.endpoints[1].addr, false)
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut row = stage
        .row(&mark, "6. one backend endpoint killed", String::new())
        .await;
    row.recovery = row
        .window
        .last_failure
        .map_or("no failure".to_owned(), |at| {
            format!("last failure {} after the kill", ms(at - mark.from))
        });
    // A POST the dead endpoint had received may have run: the gateway does not retry it.
    assert_no_failures(&row, false);
    row
}

/// 7. A Route whose second rule names a ServiceBackend that does not exist: that rule alone
///    answers 500, its first rule and every other Route keep serving, and the Route's status
///    names the rule.
async fn bad_route(stage: &Stage) -> Row {
    let mark = stage.mark();
    let applied = Instant::now();
    let rules = [exact("/fine", "web"), exact("/broken", "missing")];
    let route = route(&stage.ctx.namespace, "half-broken", &rules);
    apply_all(&stage.ctx.client, &[route]).await;
    let routes: Api<Route> = stage.ctx.api();
    let message = eventually(
        "the Route's status to name the bad rule",
        TIMEOUT,
        || async {
            let route = routes.get("half-broken").await.ok()?;
            let parent = route.status?.parents.into_iter().next()?;
            let resolved = parent
                .conditions
                .into_iter()
                .find(|c| c.type_ == "ResolvedRefs")?;
            (resolved.status == "False").then_some(resolved.message)
        },
    )
    .await;
    let reported = applied.elapsed();
    assert!(
        message.contains("spec.rules[1]"),
        "the status names the rule: {message}"
    );
    stage.served_everywhere("/fine", 200, applied).await;
    stage.served_everywhere("/broken", 500, applied).await;
    tokio::time::sleep(AFTERMATH).await;
    let recovery = format!(
        "status named spec.rules[1] {} after the apply; that rule answers 500, the rest 200",
        ms(reported)
    );
    let row = stage
        .row(&mark, "7. a Route with a bad rule", recovery)
        .await;
    assert_no_failures(&row, true);
    row
}
