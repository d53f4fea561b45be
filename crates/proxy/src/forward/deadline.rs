//! Timeouts: [`within`] for the wait for a response head, and [`DeadlineBody`] for the body
//! after it, since `request` and `backendRequest` cover the whole response (a backend that sends
//! its head in time and then stalls the body is cut off too), and `backendIdle` every wait for
//! the backend, the head's and each piece of the body's.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::{Body, BoxError};

/// A future given at most a time limit, when there is one; see [`within`].
pub struct Within<'a, F> {
    inner: Pin<&'a mut F>,
    deadline: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
}

/// Runs `inner` until `deadline` (for ever without one): `None` when the time ran out.
///
/// The same as choosing between `tokio::time::timeout_at(deadline, inner)` and `inner` itself,
/// except that `inner` is polled where the caller pinned it (the forwarding futures are
/// kilobytes, and each move copies them whole), and the timer is only armed once `inner` has
/// to wait.
pub fn within<F: Future>(deadline: Option<Instant>, inner: Pin<&mut F>) -> Within<'_, F> {
    Within {
        inner,
        deadline,
        sleep: None,
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(output) = this.inner.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        let Some(deadline) = this.deadline else {
            return Poll::Pending;
        };
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

/// A response body that fails when `deadline` passes before it ends, or when the backend sends
/// nothing for `idle` while the body is waited for (the client sees the response cut off: the
/// connection or stream is reset). The timer is only armed when the body has to wait: a body
/// already read whole costs none.
#[derive(Debug)]
pub struct DeadlineBody {
    inner: Body,
    deadline: Option<Instant>,
    idle: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl DeadlineBody {
    /// Wraps `inner` with a deadline and an idle limit (either may be absent).
    pub fn new(inner: Body, deadline: Option<Instant>, idle: Option<Duration>) -> Self {
        Self {
            inner,
            deadline,
            idle,
            sleep: None,
        }
    }

    /// The body it wraps.
    pub fn inner_mut(&mut self) -> &mut Body {
        &mut self.inner
    }

    /// When the wait that starts now ends: the sooner of the deadline and the idle limit.
    fn limit(&self) -> Option<Instant> {
        let idle = self.idle.and_then(|idle| Instant::now().checked_add(idle));
        match (self.deadline, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
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
            if this.idle.is_some()
                && let Some(limit) = this.limit()
                && let Some(sleep) = this.sleep.as_mut()
            {
                // Something arrived: the backend's silence counts from now.
                sleep.as_mut().reset(limit);
            }
            return Poll::Ready(frame);
        }
        if this.sleep.is_none() {
            let Some(limit) = this.limit() else {
                return Poll::Pending;
            };
            this.sleep = Some(Box::pin(tokio::time::sleep_until(limit)));
        }
        if let Some(sleep) = this.sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(
                "the response body ran past the route's timeout or its backend went silent".into(),
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
