//! The client's request body on its way to a backend, watched for the client's own faults: a
//! body larger than the rule accepts (413), a malformed chunked body or one the client
//! abandons midway (400), a client too slow to send it (408).
//!
//! Such a fault breaks the upstream request too, and without this the broken attempt would
//! look like the backend's failure: any client could eject a healthy endpoint with a handful
//! of bad requests. [`ClientFault`] tells the attempt that the fault was the client's, so it is
//! answered with the client's status and counts nowhere against the endpoint (not in outlier
//! detection, the circuit breaker, health, the retry budget or the backend's error metrics).

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU16, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::StatusCode;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::body::BoxError;

/// Set when the client's body failed by the client's fault: the status the client gets.
#[derive(Debug, Clone, Default)]
pub struct ClientFault(Arc<AtomicU16>);

impl ClientFault {
    /// The status for the client's fault, if there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            code => StatusCode::from_u16(code).ok(),
        }
    }

    fn set(&self, status: StatusCode) {
        let _ = self
            .0
            .compare_exchange(0, status.as_u16(), Ordering::AcqRel, Ordering::Acquire);
    }
}

/// A streamed request body that stops at `limit` bytes and records the client's faults.
pub struct ClientBody<B> {
    inner: B,
    remaining: u64,
    fault: ClientFault,
}

impl<B> ClientBody<B> {
    /// Wraps the client's body; more than `limit` bytes is a fault (413).
    pub fn new(inner: B, limit: u64, fault: ClientFault) -> Self {
        Self {
            inner,
            remaining: limit,
            fault,
        }
    }
}

impl<B> HttpBody for ClientBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |data| data.len() as u64);
                match this.remaining.checked_sub(len) {
                    Some(remaining) => {
                        this.remaining = remaining;
                        Poll::Ready(Some(Ok(frame)))
                    }
                    None => {
                        this.fault.set(StatusCode::PAYLOAD_TOO_LARGE);
                        Poll::Ready(Some(Err(
                            "the request body is larger than the rule accepts".into(),
                        )))
                    }
                }
            }
            Poll::Ready(Some(Err(error))) => {
                let error = error.into();
                this.fault.set(fault_status(&error));
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// 408 when the server gave up waiting for the client's body, 400 for anything else (a
/// malformed chunk, a connection closed before the body ended).
fn fault_status(error: &BoxError) -> StatusCode {
    let timed_out = error
        .downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout);
    if timed_out {
        StatusCode::REQUEST_TIMEOUT
    } else {
        StatusCode::BAD_REQUEST
    }
}
