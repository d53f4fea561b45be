//! The body type the gateway passes between clients and upstreams.
//!
//! An enum rather than one boxed trait object: the bodies of nearly every request are an empty
//! or small body the gateway made, or an endpoint's response read by the request's own task, and
//! none of those needs an allocation to be passed along.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body_util::{BodyExt, combinators::BoxBody};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::{
    forward::DeadlineBody,
    upstream::{CarriesRelayed, H1Body, Relayed},
};

/// Any error a body can fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body: streamed from a peer, or built by the gateway.
pub enum Body {
    /// No bytes.
    Empty,
    /// Bytes the gateway holds (handed out by the first poll).
    Full(Option<Bytes>),
    /// A response streaming from an HTTP/1.1 endpoint connection.
    Upstream(H1Body),
    /// A response body cut off at its route's timeout.
    Deadline(Box<DeadlineBody>),
    /// Any other body (a client's request body, wrappers), boxed.
    Boxed(BoxBody<Bytes, BoxError>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Body::Empty"),
            Body::Full(bytes) => f
                .debug_tuple("Body::Full")
                .field(&bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
            Body::Upstream(body) => f.debug_tuple("Body::Upstream").field(body).finish(),
            Body::Deadline(body) => f.debug_tuple("Body::Deadline").field(body).finish(),
            Body::Boxed(_) => f.write_str("Body::Boxed"),
        }
    }
}

/// Boxing a body hides its relayed fields: see `upstream::materialize`.
impl CarriesRelayed for Body {
    fn take_relayed(&mut self) -> Option<Box<Relayed>> {
        match self {
            Body::Upstream(body) => body.take_relayed(),
            Body::Deadline(body) => body.inner_mut().take_relayed(),
            Body::Empty | Body::Full(_) | Body::Boxed(_) => None,
        }
    }
}

impl Body {
    /// Whether the whole body is in memory already: reading it never waits for anyone.
    pub fn is_buffered_whole(&self) -> bool {
        match self {
            Body::Empty | Body::Full(_) => true,
            Body::Upstream(body) => body.is_buffered_whole(),
            Body::Deadline(_) | Body::Boxed(_) => false,
        }
    }

    /// Boxes any other body.
    pub fn boxed<B>(body: B) -> Self
    where
        B: HttpBody<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        Body::Boxed(body.map_err(Into::into).boxed())
    }
}

/// An empty body.
pub fn empty() -> Body {
    Body::Empty
}

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    let bytes = bytes.into();
    if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Full(Some(bytes))
    }
}

/// A streamed body from hyper.
pub fn incoming(body: hyper::body::Incoming) -> Body {
    Body::boxed(body)
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Upstream(body) => Pin::new(body).poll_frame(cx),
            Body::Deadline(body) => Pin::new(&mut **body).poll_frame(cx),
            Body::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(bytes) => bytes.is_none(),
            Body::Upstream(body) => body.is_end_stream(),
            Body::Deadline(body) => body.is_end_stream(),
            Body::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Upstream(body) => body.size_hint(),
            Body::Deadline(body) => body.size_hint(),
            Body::Boxed(body) => body.size_hint(),
        }
    }
}
