//! Randomized-schedule models of phase-lock, under shuttle's PCT scheduler;
//! the models live in `tests/`. Run them with
//! `RUSTFLAGS="--cfg phase_lock_shuttle" cargo test -p shuttle-tests --release`.
//!
//! loom explores every schedule up to a preemption bound, which is
//! exhaustive but limits its models to two or three threads. shuttle samples
//! schedules instead: PCT (probabilistic concurrency testing) gives every
//! bug of depth `d` (one that `d` ordering constraints between threads
//! expose) a known chance per run, whatever the number of threads, so these
//! models run four and five threads through every kind of acquisition.
//! shuttle treats every atomic as `SeqCst`, so it cannot find a missing
//! acquire or release; loom's models check orderings.
//!
//! This library holds what the models share: the runner with its
//! iteration count, depth and seed (each overridable from the environment),
//! and the thread bodies.
#![cfg(phase_lock_shuttle)]
#![warn(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use phase_lock::PatientLock;
use phase_lock_soak::{Holders, Rng, mixed_op_with};
use shuttle::scheduler::PctScheduler;
use shuttle::{Config, MaxSteps, Runner};

/// The number from the environment variable `var`, or `default`.
fn from_env(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{var}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// Runs `f` under shuttle's PCT scheduler.
///
/// * `SHUTTLE_ITERATIONS` schedules (default 10,000, CI's count);
/// * at depth `SHUTTLE_DEPTH` (default 3: PCT places two priority changes
///   in each run, so every bug that two preemptions expose has a chance in
///   every run, at any point of it);
/// * from seed `SHUTTLE_SEED` (default fixed, so that a CI failure replays;
///   shuttle also prints the failing schedule).
///
/// A schedule in which every thread is blocked fails as a deadlock: a lost
/// wake-up.
pub fn check(f: impl Fn() + Send + Sync + 'static) {
    let iterations = from_env("SHUTTLE_ITERATIONS", 10_000) as usize;
    let depth = from_env("SHUTTLE_DEPTH", 3) as usize;
    let seed = from_env("SHUTTLE_SEED", 0x5eed);
    let mut config = Config::new();
    // The lock's relaxed orderings are deliberate and checked by loom.
    config.silence_warnings = true;
    // Every spin yields under shuttle; a schedule this long is a livelock.
    config.max_steps = MaxSteps::FailAfter(200_000);
    Runner::new(PctScheduler::new_from_seed(seed, depth, iterations), config).run(f);
}

/// The shared state of one model: the lock, its exclusion checker, and the
/// count of the writes that landed.
pub struct World<const P: u32, const B: bool> {
    /// The lock under test; every write adds one to its value.
    pub lock: PatientLock<u64, P, B>,
    /// Who is inside, by kind, as the model's threads report it.
    pub holders: Holders,
    /// Writes that the threads made.
    pub writes: AtomicU64,
}

impl<const P: u32, const B: bool> World<P, B> {
    /// A world around `lock` (fresh, or biased by the caller).
    pub fn new(lock: PatientLock<u64, P, B>) -> Arc<Self> {
        Arc::new(World { lock, holders: Holders::default(), writes: AtomicU64::new(0) })
    }

    /// `ops` random acquisitions of any kind (blocking, try, timed,
    /// downgrades: the soak's mix), each yielding inside its critical
    /// section so that the others run while it holds the lock. The choices
    /// come from the schedule's random stream, so a failure replays.
    pub fn mixed(&self, ops: usize) {
        use shuttle::rand::Rng as _;
        let mut rng = Rng::new(shuttle::rand::thread_rng().r#gen());
        for _ in 0..ops {
            mixed_op_with(&self.lock, &self.holders, &self.writes, &mut rng, |_| shuttle::thread::yield_now());
        }
    }

    /// The end of a model: every write landed once, and the lock is free
    /// with no waiting flag or hold left behind.
    ///
    /// # Panics
    ///
    /// When a write was lost or doubled, or the lock is not idle.
    pub fn assert_settled(&self) {
        assert_eq!(*self.lock.read(), self.writes.load(SeqCst), "a write was lost or doubled");
        assert!(!self.lock.is_locked(), "a hold was left behind");
        assert!(self.lock.try_write().is_some(), "a waiting flag or a hold was left behind");
    }
}

/// Runs `bodies` on threads of their own and joins them all.
///
/// # Panics
///
/// When a thread panicked (the model's failure).
pub fn run_threads(bodies: Vec<Box<dyn FnOnce() + Send>>) {
    let handles: Vec<_> = bodies.into_iter().map(shuttle::thread::spawn).collect();
    for h in handles {
        h.join().expect("a model thread panicked");
    }
}
