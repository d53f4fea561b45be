//! Waiting on a client connection and on what supervises it (the shutdown signal, the idle and
//! header-read ticker) without polling the latter on every wake-up of the connection.
//!
//! A connection's task wakes several times per request (the request arrives, the endpoint
//! answers, the client's socket drains); a `select!` would poll the shutdown and ticker futures
//! each time. Here they are polled with a waker of their own that raises a flag before waking the
//! task, so they are polled again only when one of them has something to say.

use std::{
    future::{Future, poll_fn},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

use tokio::time::Interval;

/// What ended a wait.
pub(super) enum Event<T, S> {
    /// The connection finished.
    Done(T),
    /// The shutdown signal changed (or its sender is gone), with what its future gave.
    Shutdown(S),
    /// The ticker ticked.
    Tick,
}

/// The waker given to the supervising futures: it marks them as due, then wakes the task.
#[derive(Default)]
struct Due {
    due: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Due {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.due.store(true, Ordering::Release);
        if let Ok(task) = self.task.lock()
            && let Some(task) = task.as_ref()
        {
            task.wake_by_ref();
        }
    }
}

/// Waits on one connection and its supervising futures.
pub(super) struct Supervisor {
    due: Arc<Due>,
    waker: Waker,
}

impl Supervisor {
    pub(super) fn new() -> Self {
        let due = Arc::new(Due::default());
        let waker = Waker::from(due.clone());
        Self { due, waker }
    }

    /// Waits until `conn` finishes, `shutdown` completes or `ticker` ticks (either may be
    /// absent). The supervising futures are polled at the first poll and then only when they
    /// woke the task.
    pub(super) async fn next<C, S>(
        &self,
        mut conn: Pin<&mut C>,
        mut shutdown: Option<Pin<&mut S>>,
        mut ticker: Option<&mut Interval>,
    ) -> Event<C::Output, S::Output>
    where
        C: Future + ?Sized,
        S: Future + ?Sized,
    {
        let mut first = true;
        poll_fn(|cx| {
            if let Poll::Ready(output) = conn.as_mut().poll(cx) {
                return Poll::Ready(Event::Done(output));
            }
            if !std::mem::take(&mut first) && !self.due.due.swap(false, Ordering::AcqRel) {
                return Poll::Pending;
            }
            if let Ok(mut task) = self.due.task.lock()
                && !task.as_ref().is_some_and(|t| t.will_wake(cx.waker()))
            {
                *task = Some(cx.waker().clone());
            }
            let mut side = Context::from_waker(&self.waker);
            if let Some(shutdown) = shutdown.as_mut()
                && let Poll::Ready(output) = shutdown.as_mut().poll(&mut side)
            {
                return Poll::Ready(Event::Shutdown(output));
            }
            if let Some(ticker) = ticker.as_mut()
                && ticker.poll_tick(&mut side).is_ready()
            {
                return Poll::Ready(Event::Tick);
            }
            Poll::Pending
        })
        .await
    }
}
