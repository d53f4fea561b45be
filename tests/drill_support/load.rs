//! The drills' client load: a steady, paced stream of idempotent GETs and a share of POSTs
//! through the load balancer, as an application's users would send it, every request recorded
//! (when it started, how long it took, whether it failed, which replica answered).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt as _, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::{sync::watch, task::JoinHandle};

use super::backend::POST_ID;

/// The response header the load balancer names the replica in.
pub const REPLICA_HEADER: &str = "x-replica";

/// Concurrent clients, each sending one request at a time.
const WORKERS: usize = 6;
/// The pause between the starts of one client's requests: 6 clients × 40/s = 240 requests/s.
const PACE: Duration = Duration::from_millis(25);
/// Every this many requests of a client, one is a POST.
const POST_EVERY: u64 = 4;
/// A request that takes longer has failed (a user would have given up).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One request, as the client saw it.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When it started, since the load started.
    pub at: Duration,
    /// Whether it was a POST (else a GET).
    pub post: bool,
    /// How long it took to the end of the response body (or to the failure).
    pub latency: Duration,
    /// The replica that answered, from the load balancer's header.
    pub replica: Option<String>,
    /// Why it failed (a status other than 200, a transport error, a timeout); `None` if it did
    /// not.
    pub failure: Option<String>,
}

/// The requests of a time window, summed up.
#[derive(Clone, Debug, Default)]
pub struct Window {
    /// Requests started in the window.
    pub sent: usize,
    /// GETs among them that failed.
    pub failed_gets: usize,
    /// POSTs among them that failed.
    pub failed_posts: usize,
    /// The 99th percentile of their latencies (nearest rank).
    pub p99: Duration,
    /// The first few failures, for the message of a failed assertion.
    pub failures: Vec<String>,
    /// The last start of a failed request, since the load started.
    pub last_failure: Option<Duration>,
}

/// The running load; stopped when dropped.
pub struct Load {
    started: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
    progress: Arc<Vec<AtomicU64>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts the clients against the load balancer at `target`: GET `/api/items`, and every
    /// [`POST_EVERY`]th request `POST /api/orders` with a unique id in [`POST_ID`].
    pub fn start(target: SocketAddr) -> Self {
        let started = Instant::now();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let progress: Arc<Vec<AtomicU64>> = Arc::new((0..WORKERS).map(|_| 0.into()).collect());
        let (stop, stopped) = watch::channel(false);
        // Idle connections close on the client's side well before the load balancer's
        // keep-alive timeout, so a request never races the load balancer closing its connection.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(5))
            .build_http();
        let ids = Arc::new(AtomicU64::new(0));
        let tasks = (0..WORKERS)
            .map(|worker| {
                let client = client.clone();
                let (samples, progress, ids) = (samples.clone(), progress.clone(), ids.clone());
                let stopped = stopped.clone();
                tokio::spawn(async move {
                    let mut ticks = tokio::time::interval(PACE);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    for count in 0u64.. {
                        ticks.tick().await;
                        if *stopped.borrow() {
                            return;
                        }
                        let post = (count + worker as u64).is_multiple_of(POST_EVERY);
                        let id = post.then(|| ids.fetch_add(1, Ordering::Relaxed));
                        let begun = Instant::now();
                        let sample = send(&client, target, id, begun - started).await;
                        if let Ok(mut samples) = samples.lock() {
                            samples.push(sample);
                        }
                        let at = u64::try_from((begun - started).as_micros()).unwrap_or(u64::MAX);
                        progress[worker].store(at, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Self {
            started,
            samples,
            progress,
            stop,
            tasks,
        }
    }

    /// Now, on the load's clock.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until every request started before `at` has finished (each client sends one at a
    /// time, so once each has started a later one).
    pub async fn settle(&self, at: Duration) {
        let at = u64::try_from(at.as_micros()).unwrap_or(u64::MAX);
        let deadline = Instant::now() + REQUEST_TIMEOUT * 3;
        while self.progress.iter().any(|p| p.load(Ordering::Relaxed) < at) {
            assert!(
                Instant::now() < deadline,
                "the drill's clients stopped sending"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The requests started from `from` to `to`, once they have all finished.
    pub async fn window(&self, from: Duration, to: Duration) -> Window {
        self.settle(to).await;
        let samples = self.samples_between(from, to);
        let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
        latencies.sort();
        let failed: Vec<&Sample> = samples.iter().filter(|s| s.failure.is_some()).collect();
        Window {
            sent: samples.len(),
            failed_gets: failed.iter().filter(|s| !s.post).count(),
            failed_posts: failed.iter().filter(|s| s.post).count(),
            p99: percentile(&latencies, 99.0),
            failures: failed
                .iter()
                .take(5)
                .map(|s| {
                    let method = if s.post { "POST" } else { "GET" };
                    let failure = s.failure.as_deref().unwrap_or_default();
                    format!("{method} at {:?}: {failure}", s.at)
                })
                .collect(),
            last_failure: failed.iter().map(|s| s.at).max(),
        }
    }

    /// The requests started from `from` to `to` (finished or not).
    pub fn samples_between(&self, from: Duration, to: Duration) -> Vec<Sample> {
        self.samples
            .lock()
            .map(|samples| {
                samples
                    .iter()
                    .filter(|s| s.at >= from && s.at < to)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// When `replica` first answered a request started after `after`, waiting up to `timeout`.
    pub async fn first_served_by(
        &self,
        replica: &str,
        after: Duration,
        timeout: Duration,
    ) -> Option<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            let served = self
                .samples_between(after, Duration::MAX)
                .into_iter()
                .filter(|s| s.failure.is_none() && s.replica.as_deref() == Some(replica))
                .map(|s| s.at)
                .min();
            if served.is_some() || Instant::now() >= deadline {
                return served;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the clients.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One request through the load balancer; never fails itself, the failure is in the sample.
async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    target: SocketAddr,
    post_id: Option<u64>,
    at: Duration,
) -> Sample {
    let begun = Instant::now();
    let request = match post_id {
        Some(id) => Request::post(format!("http://{target}/api/orders"))
            .header(POST_ID, id)
            .body(Full::new(Bytes::from_static(b"{\"item\":\"portcullis\"}"))),
        None => Request::get(format!("http://{target}/api/items")).body(Full::new(Bytes::new())),
    };
    let exchange = async {
        let response = client
            .request(request.map_err(|e| e.to_string())?)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = response.status();
        let replica = response
            .headers()
            .get(REPLICA_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?
            .to_bytes();
        if status != http::StatusCode::OK {
            return Err(format!(
                "status {status} from {replica:?}: {}",
                String::from_utf8_lossy(&body).trim()
            ));
        }
        Ok(replica)
    };
    let (replica, failure) = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(Ok(replica)) => (replica, None),
        Ok(Err(e)) => (None, Some(e)),
        Err(_) => (None, Some(format!("no answer within {REQUEST_TIMEOUT:?}"))),
    };
    Sample {
        at,
        post: post_id.is_some(),
        latency: begun.elapsed(),
        replica,
        failure,
    }
}

/// Nearest-rank percentile of sorted `samples` (zero when there are none).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
