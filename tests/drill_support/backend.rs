//! The service behind the gateway in the drills: real HTTP endpoints that share one "database"
//! of POSTs, so that a POST the service ran twice (a retry that re-sent work already done) is
//! counted rather than lost in the totals.

use std::{
    collections::HashSet,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, task::JoinHandle};

/// The header the drill's client puts a unique id in, on every POST.
pub const POST_ID: &str = "x-drill-post";

/// How long the service works on a request: long enough that a replica or an endpoint killed
/// at any moment has requests in flight, as it would in production.
pub const SERVICE_TIME: Duration = Duration::from_millis(20);

/// What the service has seen, over all its endpoints.
#[derive(Default)]
pub struct Ledger {
    seen: Mutex<HashSet<u64>>,
    duplicates: AtomicU64,
}

impl Ledger {
    /// POSTs run more than once: the same id arrived again.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    fn record(&self, method: &Method, id: Option<u64>) {
        if method == Method::POST {
            let fresh = match (id, self.seen.lock()) {
                (Some(id), Ok(mut seen)) => seen.insert(id),
                _ => true,
            };
            if !fresh {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One endpoint of the service: a listener and its connections, all in one task, so that
/// [`Endpoint::kill`] ends them together, as when the process behind the endpoint dies.
pub struct Endpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Endpoint {
    /// Starts an endpoint named `name` on `addr` (port 0: any), recording into `ledger`. It
    /// answers every request `200 <name>`, [`SERVICE_TIME`] after the request body has arrived.
    pub async fn start(name: &'static str, addr: SocketAddr, ledger: Arc<Ledger>) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("endpoint {name} binds {addr}: {e}"));
        let addr = listener.local_addr().expect("a bound address");
        let task = tokio::spawn(async move {
            // Dropped with this task: aborting it closes every connection of the endpoint.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let ledger = ledger.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let ledger = ledger.clone();
                        async move {
                            let id = request
                                .headers()
                                .get(POST_ID)
                                .and_then(|v| v.to_str().ok()?.parse().ok());
                            let method = request.method().clone();
                            // The work is recorded once the whole request has arrived.
                            let _ = request.into_body().collect().await;
                            tokio::time::sleep(SERVICE_TIME).await;
                            ledger.record(&method, id);
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Reap finished connections so the set does not grow with the run.
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, task }
    }

    /// Kills the endpoint: its listener and every open connection close at once.
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}
