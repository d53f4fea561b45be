//! A demo service: a small JSON REST API over an in-memory store.
//!
//! `GET /<resource>` lists, `GET /<resource>/<id>` reads one, `POST /<resource>` creates one from
//! a JSON object body (the store assigns `id`), `GET /healthz` answers `ok`.
//!
//! `POST /outage` stands in for the service going down: until `DELETE /outage` it answers
//! every other request with 503, so the demo can show the gateway's stale copies and failover.
//! Only on the service's own port (the gateway's routes do not lead there).

use std::{
    collections::BTreeMap,
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header::CONTENT_TYPE};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The largest body a demo service accepts.
const MAX_BODY: usize = 64 * 1024;

/// One demo service's store.
#[derive(Debug)]
pub struct Store {
    resource: String,
    items: Mutex<BTreeMap<u64, Value>>,
    down: AtomicBool,
}

impl Store {
    /// A store of `resource` seeded with `seed` (objects; ids 1, 2, ... are assigned).
    pub fn new(resource: &str, seed: Vec<Value>) -> Arc<Self> {
        let items = seed
            .into_iter()
            .zip(1u64..)
            .map(|(mut item, id)| {
                item["id"] = json!(id);
                (id, item)
            })
            .collect();
        Arc::new(Self {
            resource: resource.to_owned(),
            items: Mutex::new(items),
            down: AtomicBool::new(false),
        })
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().trim_end_matches('/').to_owned();
        match (req.method(), path.as_str()) {
            (&Method::POST | &Method::DELETE, "/outage") => {
                let down = req.method() == Method::POST;
                self.down.store(down, Ordering::Relaxed);
                return reply(StatusCode::OK, json!({ "down": down }));
            }
            _ if self.down.load(Ordering::Relaxed) => {
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": format!("{} is down (POST /outage)", self.resource)}),
                );
            }
            (_, "/healthz") => return reply(StatusCode::OK, json!({"status": "ok"})),
            _ => {}
        }
        let base = format!("/{}", self.resource);
        let Some(rest) = path.strip_prefix(&base) else {
            return reply(StatusCode::NOT_FOUND, json!({"error": "not found"}));
        };
        match (req.method().clone(), rest) {
            (Method::GET, "") => {
                let items: Vec<Value> = self
                    .items
                    .lock()
                    .map(|items| items.values().cloned().collect())
                    .unwrap_or_default();
                reply(StatusCode::OK, json!({ &self.resource: items }))
            }
            (Method::POST, "") => {
                let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                    Ok(body) => body.to_bytes(),
                    Err(_) => {
                        return reply(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            json!({"error": "body too large"}),
                        );
                    }
                };
                let Ok(mut item) = serde_json::from_slice::<Value>(&body) else {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        json!({"error": "body must be JSON"}),
                    );
                };
                if !item.is_object() {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        json!({"error": "body must be a JSON object"}),
                    );
                }
                let Ok(mut items) = self.items.lock() else {
                    return reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "store"}));
                };
                let id = items.keys().next_back().copied().unwrap_or(0) + 1;
                item["id"] = json!(id);
                items.insert(id, item.clone());
                reply(StatusCode::CREATED, item)
            }
            (Method::GET, id) => {
                let item = id
                    .trim_start_matches('/')
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| self.items.lock().ok()?.get(&id).cloned());
                match item {
                    Some(item) => reply(StatusCode::OK, item),
                    None => reply(StatusCode::NOT_FOUND, json!({"error": "no such item"})),
                }
            }
            _ => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "method not allowed"}),
            ),
        }
    }
}

/// A JSON answer.
pub(super) fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Serves `store` on `listener` in the background.
pub fn serve(store: Arc<Store>, listener: TcpListener) -> Result<SocketAddr, String> {
    serve_with(listener, move |req| {
        let store = store.clone();
        async move { store.handle(req).await }
    })
}

/// Serves HTTP/1.1 on `listener` in the background, answering each request with `answer`.
pub fn serve_with<F, Fut>(listener: TcpListener, answer: F) -> Result<SocketAddr, String>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let answer = answer.clone();
                    async move { Ok::<_, Infallible>(answer(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}
