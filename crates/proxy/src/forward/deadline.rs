//! Timeouts: [`within`] for the wait for a response head, and [`DeadlineBody`] for the body
//! after it, since `request` and `backendRequest` cover the whole response (a backend that sends
//! its head in time and then stalls the body is cut off too).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::{Body, BoxError};

/// A future given at most a time limit, when there is one; see [`within`].
pub struct Within<'a, F> {
    inner: Pin<&'a mut F>,
    sleep: Option<Pin<Box<Sleep>>>,
}

/// Runs `inner` until `deadline` (for ever without one): `None` when the time ran out.
///
/// The same as choosing between `tokio::time::timeout_at(deadline, inner)` and `inner` itself,
/// except that `inner` is polled where the caller pinned it: the forwarding futures are
/// kilobytes, and each move (into a wrapper, into the `.await`) copies them whole.
pub fn within<F: Future>(deadline: Option<Instant>, inner: Pin<&mut F>) -> Within<'_, F> {
    Within {
        inner,
        sleep: deadline.map(|deadline| Box::pin(tokio::time::sleep_until(deadline))),
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(output) = this.inner.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if let Some(sleep) = this.sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

/// A response body that fails when `deadline` passes before it ends (the client sees the
/// response cut off: the connection or stream is reset).
#[derive(Debug)]
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

    /// The body it wraps.
    pub fn inner_mut(&mut self) -> &mut Body {
        &mut self.inner
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
