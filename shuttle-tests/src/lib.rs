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

use phase_lock::{PatientLock, RwLockIntentExt};
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

    /// One blocking acquisition of `kind` (0 read, 1 intent, 2 write),
    /// checked by the exclusion checker: a write adds one to the value,
    /// then `inside` runs, and the thread yields while it holds the lock.
    ///
    /// # Panics
    ///
    /// When the lock let in a holder it excludes (or `inside` panics).
    pub fn blocking(&self, kind: usize, inside: impl FnOnce()) {
        let h = &self.holders;
        let (counter, name) = match kind {
            0 => (&h.read, "read"),
            1 => (&h.intent, "intent"),
            _ => (&h.write, "write"),
        };
        // Each guard is held to the end of its arm.
        let held = || {
            h.enter(counter, name);
            inside();
            shuttle::thread::yield_now();
            counter.fetch_sub(1, SeqCst);
        };
        match kind {
            0 => {
                let _g = self.lock.read();
                held();
            }
            1 => {
                let _g = self.lock.intent();
                held();
            }
            _ => {
                let mut g = self.lock.write();
                *g += 1;
                self.writes.fetch_add(1, SeqCst);
                held();
            }
        }
    }

    /// Runs `body(world, kind)` on a thread of its own for each of `kinds`,
    /// joins them all, and checks the end of the model
    /// ([`World::assert_settled`]).
    ///
    /// # Panics
    ///
    /// When a thread panicked or the lock did not settle.
    pub fn run_kinds(self: &Arc<Self>, kinds: &[usize], body: fn(&World<P, B>, usize)) {
        let bodies = kinds
            .iter()
            .map(|&kind| {
                let w = self.clone();
                Box::new(move || body(&w, kind)) as Box<dyn FnOnce() + Send>
            })
            .collect();
        run_threads(bodies);
        self.assert_settled();
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
