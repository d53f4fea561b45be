//! Connection workers: one thread per core, each with its own single-threaded runtime.
//!
//! A connection and every upstream connection its requests use stay on one thread, so a proxied
//! request never wakes another thread (the cost that dominates a work-stealing runtime on a
//! small machine). Each worker also has its own upstream connection pools (see
//! [`current`] and `Backend::client`).

use std::{cell::Cell, future::Future, sync::atomic::AtomicUsize};

use tokio::{runtime::Handle, sync::oneshot};

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// How many workers the process runs (0 until a server starts them).
pub static WORKER_COUNT: AtomicUsize = AtomicUsize::new(0);

/// The index of the worker running on this thread, from 1; 0 on any other thread.
pub fn current() -> usize {
    WORKER.with(Cell::get)
}

/// A worker thread; it stops when this handle is dropped.
#[derive(Debug)]
pub struct Worker {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl Worker {
    /// Starts worker number `index` (from 1).
    pub fn start(index: usize) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("worker runtime: {e}"))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("portcullis-worker-{index}"))
            .spawn(move || {
                WORKER.with(|w| w.set(index));
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| format!("worker thread: {e}"))?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }

    /// Runs `future` on this worker.
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(future);
    }
}
