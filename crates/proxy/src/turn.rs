//! Writes grouped by scheduler turn.
//!
//! A worker serves many connections, and in one turn it handles every request and response
//! that became ready since the last. Writing each one out the moment it is made sends the
//! endpoints and clients a trickle: each write can find its reader asleep and wake it, and a
//! woken reader handles one message and sleeps again. Writing them at the end of the turn sends
//! a burst instead, which each reader takes in one wake: fewer wakeups and context switches on
//! the other side, and fewer wakeup interrupts sent from this one.
//!
//! The plain server waits before serving a request (twice: after one turn its write to the
//! endpoint still went out among the next turn's responses, after two it goes out with them)
//! and before writing its response. A request alone on its worker has nothing to be grouped
//! with and does not wait, and neither does one served off the workers (the fallback when
//! their threads cannot start): the count is per thread, and a multi-threaded runtime moves
//! tasks between threads.
//!
//! Measured with the proxy pinned to one core and the load generator and endpoint sharing the
//! other (`hack/bench-proxy.sh`), against the same build without the waits: context switches on
//! the shared core fell from about 0.31 to 0.12 per request, rescheduling interrupts there from
//! about 0.12 to 0.05, the proxy's kernel time per request by about 1 µs, more than the extra
//! polls cost (about 0.3 µs of user time), and requests/s rose by 5–8 %, p99 unchanged. One wait
//! before serving did about half as well; three or five did worse than two.

use std::cell::Cell;

thread_local! {
    /// Requests being served on this thread's worker.
    static SERVING: Cell<usize> = const { Cell::new(0) };
}

/// A request being served, counted on its worker while it lives.
#[derive(Debug)]
pub struct Serving(());

impl Serving {
    /// Counts a request from now until the value is dropped.
    pub fn start() -> Self {
        SERVING.with(|n| n.set(n.get() + 1));
        Serving(())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        SERVING.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// Returns once the tasks that were ready before this one have had their turn, when other
/// requests are being served on this worker; at once otherwise.
pub async fn end_of_turn() {
    if crate::server::workers::current() != 0 && SERVING.with(Cell::get) > 1 {
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use std::{
        pin::pin,
        sync::mpsc,
        task::{Context, Poll, Waker},
    };

    use super::*;
    use crate::server::workers::Worker;

    /// How many polls `end_of_turn` takes with `others` other requests being served, on a
    /// worker when `on_worker`.
    fn polls(on_worker: bool, others: usize) -> usize {
        let count = move || {
            let _serving: Vec<Serving> = (0..=others).map(|_| Serving::start()).collect();
            let mut wait = pin!(end_of_turn());
            let mut cx = Context::from_waker(Waker::noop());
            (1..10)
                .find(|_| matches!(wait.as_mut().poll(&mut cx), Poll::Ready(())))
                .unwrap_or(10)
        };
        if !on_worker {
            return count();
        }
        let worker = Worker::start(1).expect("worker");
        let (sender, receiver) = mpsc::channel();
        worker.spawn(async move {
            let _ = sender.send(count());
        });
        receiver.recv().expect("the worker answers")
    }

    #[test]
    fn a_request_among_others_on_a_worker_waits_a_turn_and_a_lone_one_does_not() {
        assert_eq!(polls(true, 1), 2);
        assert_eq!(polls(true, 0), 1);
        // Off the workers the per-thread count means nothing: no wait.
        assert_eq!(polls(false, 1), 1);
        assert_eq!(SERVING.with(Cell::get), 0);
    }
}
