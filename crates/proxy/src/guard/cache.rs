//! A rule's response cache around its action: a hit is answered from memory; a miss runs the
//! action once per key (concurrent misses wait for it) and keeps what may be kept.

use std::{borrow::Cow, convert::Infallible, future::Future, sync::Arc};

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use http::{HeaderMap, Method, Response, request::Parts};
use http_body_util::{BodyExt as _, BodyStream, StreamBody};
use hyper::body::{Body as _, Frame};
use portcullis_policy::cache::{
    CacheRequest, CacheRule, CacheStatus, Fetched, LocalCache, Lookup, Upstream,
};

use super::Admitted;
use crate::{
    body::{Body, BoxError, full},
    upstream::materialize,
};

/// A rule's response cache.
#[derive(Debug)]
pub struct Cache {
    /// What the rule keys and keeps.
    pub rule: CacheRule,
    /// The replica's cache.
    pub store: Arc<LocalCache>,
}

/// How the cache answered, for the `portcullis_policy_decisions` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A fresh stored copy.
    Hit,
    /// A stale copy, the backend having failed.
    Stale,
    /// The backend's answer.
    Miss,
}

impl CacheOutcome {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Stale => "stale",
            Self::Miss => "miss",
        }
    }
}

/// The parts of a request the cache keys by, owned: the action borrows the head mutably
/// while the cache holds these.
#[derive(Debug)]
pub struct Keyed {
    /// GET or HEAD.
    pub method: Method,
    /// The host the request was routed by (lowercase, no port).
    pub host: String,
    /// The normalized path and the query.
    pub path_and_query: String,
    /// The request's fields (for the rule's `vary` and the credentials that bypass it).
    pub headers: HeaderMap,
    /// The authenticated consumer, for a rule keyed by consumer.
    pub consumer: Option<Arc<str>>,
}

impl Cache {
    /// What the cache keys `head` by, for a GET or HEAD (other methods bypass the cache).
    /// `host` and `path` are those the request was routed by.
    pub fn keyed(
        &self,
        head: &Parts,
        host: &str,
        path: &str,
        admitted: Option<&Admitted>,
    ) -> Option<Keyed> {
        if head.method != Method::GET && head.method != Method::HEAD {
            return None;
        }
        let path_and_query = match head.uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        Some(Keyed {
            method: head.method.clone(),
            host: host.to_owned(),
            path_and_query,
            headers: head.headers.clone(),
            consumer: admitted
                .and_then(|a| a.identity.as_ref())
                .and_then(|i| i.consumer.clone()),
        })
    }

    /// The fresh copy in this replica's memory for a GET or HEAD with head `head` (routed by
    /// `host` and `path`), if there is one, without copying anything of the request: the hit
    /// path. `None` goes on with [`keyed`](Self::keyed) and [`serve`](Self::serve).
    pub async fn fresh(
        &self,
        head: &Parts,
        host: &str,
        path: &str,
        admitted: Option<&Admitted>,
    ) -> Option<Response<Body>> {
        if head.method != Method::GET && head.method != Method::HEAD {
            return None;
        }
        let path_and_query = match head.uri.query() {
            Some(query) => Cow::Owned(format!("{path}?{query}")),
            None => Cow::Borrowed(path),
        };
        let request = CacheRequest {
            method: &head.method,
            host,
            path_and_query: &path_and_query,
            headers: &head.headers,
            consumer: admitted
                .and_then(|a| a.identity.as_ref())
                .and_then(|i| i.consumer.as_deref()),
        };
        let hit = self.store.fresh(&self.rule, &request).await?;
        Some(hit.map(full))
    }

    /// Answers from the cache, or from `fetch` (the rule's action), keeping its answer when
    /// it may be kept. The response carries `X-Cache`.
    pub async fn serve<F>(&self, keyed: &Keyed, fetch: F) -> (Response<Body>, CacheOutcome)
    where
        F: Future<Output = Response<Body>>,
    {
        let request = CacheRequest {
            method: &keyed.method,
            host: &keyed.host,
            path_and_query: &keyed.path_and_query,
            headers: &keyed.headers,
            consumer: keyed.consumer.as_deref(),
        };
        let limit = self.store.max_entry_bytes();
        let fetched = async move { Ok::<_, Infallible>(read(fetch.await, limit).await) };
        let lookup = match self.store.get_or_fetch(&self.rule, &request, fetched).await {
            Ok(lookup) => lookup,
            Err(never) => match never {},
        };
        match lookup {
            Lookup::Hit(response) => (response.map(full), CacheOutcome::Hit),
            Lookup::Stale(response) => (response.map(full), CacheOutcome::Stale),
            Lookup::Miss { response, .. } => (response.map(full), CacheOutcome::Miss),
            Lookup::Streamed(mut response) => {
                CacheStatus::Miss.apply(response.headers_mut());
                (response, CacheOutcome::Miss)
            }
        }
    }
}

/// Reads the action's response whole when its body fits in `limit`; a larger one (or an
/// upgrade) streams through, the bytes read so far in front of the rest.
async fn read(mut response: Response<Body>, limit: usize) -> Upstream<Response<Body>> {
    materialize(&mut response);
    if response.status() == http::StatusCode::SWITCHING_PROTOCOLS
        || response.body().size_hint().lower() > limit as u64
    {
        return Upstream::Streamed(response);
    }
    let (parts, mut body) = response.into_parts();
    // Sized from the length the backend announced, so a stored body holds no spare capacity
    // the cache's byte bound would not see.
    let announced = usize::try_from(body.size_hint().lower()).unwrap_or(limit);
    let mut read = BytesMut::with_capacity(announced.min(limit));
    let mut trailers: Option<HeaderMap> = None;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    read.extend_from_slice(&data);
                    if read.len() > limit {
                        let rest = rejoin(read.freeze(), body);
                        return Upstream::Streamed(Response::from_parts(parts, rest));
                    }
                }
                Err(frame) => trailers = frame.into_trailers().ok(),
            },
            // The backend broke off: what was read goes out, then the error, as it would have
            // without the cache; nothing is stored.
            Some(Err(error)) => {
                let rest = Body::boxed(StreamBody::new(futures::stream::iter([
                    Ok(Frame::data(read.freeze())),
                    Err(error),
                ])));
                return Upstream::Streamed(Response::from_parts(parts, rest));
            }
        }
    }
    // Trailers are rare on cacheable answers; one that has them streams through unchanged.
    if let Some(trailers) = trailers {
        let frames = [
            Ok::<_, BoxError>(Frame::data(read.freeze())),
            Ok(Frame::trailers(trailers)),
        ];
        let body = Body::boxed(StreamBody::new(futures::stream::iter(frames)));
        return Upstream::Streamed(Response::from_parts(parts, body));
    }
    // A body of unknown length grew by doubling: what is kept is copied to its exact size.
    let body = if read.capacity() > read.len() + read.len() / 16 {
        Bytes::copy_from_slice(&read)
    } else {
        read.freeze()
    };
    Upstream::Buffered(Fetched {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// `read` followed by the rest of `body`.
fn rejoin(read: Bytes, body: Body) -> Body {
    let first = futures::stream::iter([Ok(Frame::data(read))]);
    let rest = BodyStream::new(body);
    Body::boxed(StreamBody::new(first.chain(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response whose body comes in `chunks` of unknown total length (as a chunked answer).
    fn chunked(chunks: &[&'static [u8]]) -> Response<Body> {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        Response::new(Body::boxed(StreamBody::new(futures::stream::iter(frames))))
    }

    #[tokio::test]
    async fn a_body_of_unknown_length_within_the_limit_is_read_whole() {
        match read(chunked(&[b"ab", b"cd"]), 8).await {
            Upstream::Buffered(fetched) => assert_eq!(fetched.body, "abcd"),
            Upstream::Streamed(_) => panic!("a small body is kept"),
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_streams_through_with_the_bytes_read_first() {
        let Upstream::Streamed(response) = read(chunked(&[b"abc", b"def", b"ghi"]), 4).await else {
            panic!("a body over the limit is not kept");
        };
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| "the body")
            .map(|b| b.to_bytes());
        assert_eq!(body, Ok(Bytes::from_static(b"abcdefghi")));
    }
}
