//! Timeouts that outlive the response head: `request` and `backendRequest` cover the whole
//! response, so a backend that sends its head in time and then stalls the body is cut off too.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::{Body, BoxError};

/// A response body that fails when `deadline` passes before it ends (the client sees the
/// response cut off: the connection or stream is reset).
pub struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    /// Wraps `inner` with a deadline.
    pub fn new(inner: Body, deadline: Instant) -> Self {
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(
                "the response body ran past the route's timeout".into()
            )));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
