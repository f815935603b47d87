//! The async comparison harness: an async rwlock measured through one trait
//! ([`AsyncComparator`]), the stock async locks and the runtime's own
//! ceiling ([`NoLock`]) as adapters, and the task driver
//! ([`run_async_tasks`]): tokio's multi-thread runtime, tasks that draw a
//! class per request, hold the lock for a calibrated [`Work`] and yield to
//! the runtime between requests, each wait timed from the call.
//!
//! phase-lock's own async waiters (issue 20) are measured through the same
//! trait once they exist; until then the `async_waiters` tool measures the
//! stock locks against the ceiling.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::locks::Class;
use crate::workload::{Mix, Rng, Work};

/// An async lock as the harness drives it: `with(class, f)` acquires in
/// `class`, runs `f` inside and releases. Stock rwlocks take their write
/// lock for intent.
pub trait AsyncComparator: Send + Sync + 'static {
    /// The lock's name in tables.
    const NAME: &'static str;

    /// A new, free lock.
    fn new() -> Self;

    /// Acquires in `class`, runs `f` inside, releases.
    fn with(&self, class: Class, f: impl FnOnce() -> u64 + Send) -> impl Future<Output = u64> + Send;
}

/// No lock at all: what the runtime and the harness cost by themselves, the
/// ceiling no lock can pass.
pub struct NoLock;

impl AsyncComparator for NoLock {
    const NAME: &'static str = "no lock (ceiling)";

    fn new() -> Self {
        NoLock
    }

    async fn with(&self, _class: Class, f: impl FnOnce() -> u64 + Send) -> u64 {
        f()
    }
}

/// An adapter for a stock async rwlock whose `read()` and `write()` return
/// futures of guards (write for intent).
macro_rules! stock_async_rwlock {
    ($(#[$doc:meta])* $name:ident, $lock:ty, $label:expr) => {
        $(#[$doc])*
        pub struct $name($lock);

        impl AsyncComparator for $name {
            const NAME: &'static str = $label;

            fn new() -> Self {
                $name(<$lock>::new(0))
            }

            async fn with(&self, class: Class, f: impl FnOnce() -> u64 + Send) -> u64 {
                match class {
                    Class::Read => {
                        let g = self.0.read().await;
                        std::hint::black_box(*g) ^ f()
                    }
                    Class::Intent | Class::Write => {
                        let mut g = self.0.write().await;
                        *g = g.wrapping_add(1);
                        f()
                    }
                }
            }
        }
    };
}

stock_async_rwlock!(
    /// `tokio::sync::RwLock` (write for intent).
    TokioRw,
    tokio::sync::RwLock<u64>,
    "tokio RwLock"
);
stock_async_rwlock!(
    /// `async_lock::RwLock` (write for intent).
    AsyncLockRw,
    async_lock::RwLock<u64>,
    "async-lock RwLock"
);

/// What one run measured.
#[derive(Clone, Copy, Debug)]
pub struct AsyncRun {
    /// Requests completed per second, all tasks together.
    pub ops_per_s: f64,
    /// The longest wait per class, from the call to holding the lock
    /// (`None`: the class made no request).
    pub longest_wait: [Option<Duration>; 3],
}

/// Runs `tasks` tasks on a tokio multi-thread runtime with `workers` worker
/// threads for about `duration`: each draws its class from `mix`, holds the
/// lock of type `L` for `inside`, then yields to the runtime
/// (`tokio::task::yield_now`) before its next request.
///
/// # Panics
///
/// If the runtime cannot be built or a task panics.
pub fn run_async_tasks<L: AsyncComparator>(
    workers: usize,
    tasks: usize,
    mix: Mix,
    inside: Work,
    duration: Duration,
) -> AsyncRun {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).build().expect("a tokio runtime");
    let lock = Arc::new(L::new());
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let (lock, stop) = (lock.clone(), stop.clone());
            runtime.spawn(async move {
                let mut rng = Rng::new(i as u64 + 1);
                let (mut done, mut longest) = (0u64, [None::<Duration>; 3]);
                while !stop.load(Relaxed) {
                    let class = mix.pick(&mut rng);
                    let called = Instant::now();
                    let slot = &mut longest[class as usize];
                    lock.with(class, || {
                        let waited = called.elapsed();
                        *slot = Some(slot.map_or(waited, |w: Duration| w.max(waited)));
                        inside.run()
                    })
                    .await;
                    done += 1;
                    tokio::task::yield_now().await;
                }
                (done, longest)
            })
        })
        .collect();
    // The clock runs on this thread, outside the runtime: no timer in the
    // runtime's own loop.
    let start = Instant::now();
    std::thread::sleep(duration);
    stop.store(true, Relaxed);
    let elapsed = start.elapsed();
    let mut total = 0u64;
    let mut longest = [None::<Duration>; 3];
    runtime.block_on(async {
        for h in handles {
            let (done, l) = h.await.expect("a task panicked");
            total += done;
            for (mine, theirs) in longest.iter_mut().zip(l) {
                *mine = match (*mine, theirs) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
        }
    });
    AsyncRun { ops_per_s: total as f64 / elapsed.as_secs_f64(), longest_wait: longest }
}

/// Nanoseconds per uncontended read acquisition and release of a lock of
/// type `L` (`with(Read, ..)` with nothing inside), the fastest of five
/// runs of `iters` each, on one task of a two-worker runtime.
///
/// # Panics
///
/// If the runtime cannot be built.
pub fn uncontended_read_ns<L: AsyncComparator>(iters: u32) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("a tokio runtime");
    let lock = L::new();
    runtime.block_on(async {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(lock.with(Class::Read, || 0).await);
            }
            best = best.min(start.elapsed().as_nanos() as f64 / f64::from(iters));
        }
        best
    })
}
