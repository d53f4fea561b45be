//! A coarse timer for long limits on a connection worker: `backendIdle`'s 60 s default is armed
//! for nearly every request and almost never fires, and a tokio timer costs an allocation and
//! two trips through the timer wheel each time. Here a wait is a slot in a list of the worker
//! thread (no lock, no allocation once warm) that one ticker task per worker sweeps every
//! [`TICK`]: a limit fires up to one tick late, which is nothing against a limit of seconds.
//!
//! Only on a current-thread runtime (the connection workers), where a task never changes
//! threads; anywhere else, and for limits closer than [`COARSE_FROM`], callers use a tokio
//! timer.

use std::{cell::RefCell, task::Context, time::Duration};

use tokio::{runtime::RuntimeFlavor, time::Instant};

/// How often the ticker sweeps.
pub const TICK: Duration = Duration::from_secs(1);

/// Limits closer than this get a tokio timer.
pub const COARSE_FROM: Duration = Duration::from_secs(5);

thread_local! {
    static WAITS: RefCell<Waits> = RefCell::new(Waits::default());
}

/// The waits of one worker thread.
#[derive(Default)]
struct Waits {
    slots: Vec<Option<(Instant, std::task::Waker)>>,
    free: Vec<usize>,
    ticking: bool,
}

/// One wait until `deadline`, swept by its worker's ticker.
#[derive(Debug)]
pub struct CoarseTimer {
    deadline: Instant,
    slot: Option<usize>,
}

impl CoarseTimer {
    /// A coarse timer for `deadline`, when one may be used here: on a current-thread runtime
    /// and for a deadline at least [`COARSE_FROM`] away.
    pub fn new(deadline: Instant) -> Option<Self> {
        let far = deadline.saturating_duration_since(Instant::now()) >= COARSE_FROM;
        let here = tokio::runtime::Handle::try_current()
            .is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::CurrentThread);
        (far && here).then_some(Self {
            deadline,
            slot: None,
        })
    }

    /// Whether the deadline has passed; if not, the task is woken by the ticker once it has.
    pub fn poll_expired(&mut self, cx: &Context<'_>) -> bool {
        if Instant::now() >= self.deadline {
            return true;
        }
        WAITS.with(|waits| {
            let mut waits = waits.borrow_mut();
            match self.slot {
                Some(slot) => {
                    if let Some(Some((_, waker))) = waits.slots.get_mut(slot)
                        && !waker.will_wake(cx.waker())
                    {
                        waker.clone_from(cx.waker());
                    }
                }
                None => {
                    let entry = Some((self.deadline, cx.waker().clone()));
                    let slot = match waits.free.pop() {
                        Some(slot) => {
                            waits.slots[slot] = entry;
                            slot
                        }
                        None => {
                            waits.slots.push(entry);
                            waits.slots.len() - 1
                        }
                    };
                    self.slot = Some(slot);
                }
            }
            if !waits.ticking {
                waits.ticking = true;
                tokio::spawn(tick());
            }
        });
        false
    }
}

impl Drop for CoarseTimer {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            WAITS.with(|waits| {
                let mut waits = waits.borrow_mut();
                if let Some(entry) = waits.slots.get_mut(slot) {
                    *entry = None;
                    waits.free.push(slot);
                }
            });
        }
    }
}

/// Wakes the waits whose deadline passed, every [`TICK`], while there are any.
async fn tick() {
    loop {
        tokio::time::sleep(TICK).await;
        let now = Instant::now();
        let done = WAITS.with(|waits| {
            let mut waits = waits.borrow_mut();
            let mut any = false;
            for (deadline, waker) in waits.slots.iter().flatten() {
                any = true;
                if *deadline <= now {
                    waker.wake_by_ref();
                }
            }
            if !any {
                waits.ticking = false;
            }
            !any
        });
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_coarse_wait_is_woken_by_the_ticker_and_frees_its_slot() {
        assert!(CoarseTimer::new(Instant::now() + Duration::from_secs(30)).is_some());
        assert!(CoarseTimer::new(Instant::now() + Duration::from_secs(1)).is_none());
        // Built directly, so that the test waits a tick, not five seconds.
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut timer = CoarseTimer {
            deadline,
            slot: None,
        };
        poll_fn(|cx| {
            if timer.poll_expired(cx) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        assert!(Instant::now() >= deadline);
        drop(timer);
        WAITS.with(|waits| {
            let waits = waits.borrow();
            assert!(waits.slots.iter().all(Option::is_none));
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn not_on_a_runtime_whose_tasks_move() {
        assert!(CoarseTimer::new(Instant::now() + Duration::from_secs(30)).is_none());
    }
}
