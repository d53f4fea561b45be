//! Writes grouped by scheduler turn.
//!
//! A worker serves many connections, and in one turn it handles every request and response
//! that became ready since the last. Writing each one out the moment it is made sends the
//! endpoints and clients a trickle: each write can find its reader asleep and wake it, and a
//! woken reader handles one message and sleeps again. Waiting for the end of the turn first
//! sends them a burst instead, which each reader takes in one wake: fewer wakeups and context
//! switches on the other side, and fewer wakeup interrupts sent from this one.
//!
//! The plain server waits for the end of the turn twice per request: before serving it (so
//! that the requests read in one turn go to their endpoints together) and before writing its
//! response (so that the responses go to their clients together).
//!
//! Measured with the proxy pinned to one core and the load generator and endpoint sharing the
//! other (`hack/bench-proxy.sh`), against the same build without the waits: context switches on
//! the shared core fell from 0.24–0.33 to 0.16–0.22 per request, rescheduling interrupts there
//! from about 0.09–0.13 to 0.07, and the proxy's kernel time per request by about 1 µs, more
//! than the extra polls cost (about 1,450 instructions, 0.4 µs). Alone on a worker, a request
//! waits two extra trips through the scheduler (a non-blocking poll of the reactor each):
//! microseconds.

/// Returns once the tasks that were ready before this one have had their turn.
pub async fn end_of_turn() {
    tokio::task::yield_now().await;
}
