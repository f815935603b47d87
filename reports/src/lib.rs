//! The measurement harness of phase-lock: the report tools (this crate's
//! binaries) and the library they share with the criterion benchmarks of the
//! root crate (`benches/`). Not published: nothing here is part of the lock.
//!
//! ```sh
//! cargo run --release -p phase-lock-reports --bin fairness            # → docs/results/fairness.md
//! cargo run --release -p phase-lock-reports --bin fairness -- --sweep # → docs/results/patience.md
//! cargo run --release -p phase-lock-reports --bin throughput          # → docs/results/throughput.md
//! cargo run --release -p phase-lock-reports --bin scaling             # → docs/results/scaling.md
//! cargo run --release -p phase-lock-reports --features async --bin async_waiters  # prints the async baselines
//! PHASE_LOCK_BENCH_QUICK=1 cargo run --release -p phase-lock-reports --bin fairness  # a quick smoke run
//! ```
//!
//! Each binary's doc comment says what it measures, how long it runs and
//! which environment variables it reads. Each writes one page under
//! `docs/results/` (see [`page`]) whose header names the command, the
//! commit, the machine and the date; a rerun replaces the page.
//!
//! The library, one idea per module:
//!
//! * [`locks`]: [`Comparator`], the one trait every lock is measured
//!   through, its adapters, and the lock sets;
//! * [`workload`]: the critical-section [`work`] and its calibration
//!   ([`Work`]), the operation [`Mix`]es, the per-thread random source
//!   ([`Rng`]) and the thread driver with a barrier start ([`run_threads`]);
//! * `async_locks` (feature `async`): the async harness: `AsyncComparator`, the stock
//!   async locks and the runtime's own ceiling, and the task driver;
//! * [`page`]: the results pages and their headers;
//! * [`samples`]: the benchmarks' recorder of criterion samples, for the
//!   ratio tables they print after criterion has run;
//! * here: the quick-mode knob ([`quick`]) and the [`median`] of repeated
//!   runs.

#![warn(missing_docs)]

#[cfg(feature = "async")]
pub mod async_locks;
pub mod locks;
pub mod page;
pub mod samples;
pub mod workload;

#[cfg(feature = "async")]
pub use async_locks::{AsyncComparator, AsyncLockRw, AsyncRun, NoLock, TokioRw};
pub use locks::{
    Class, Comparator, GroupMutex, LockVisitor, Ours, OursUnbiased, ParkingLotRw, Sharded, StdRw, visit_all,
    visit_patience_sweep, visit_plain, visit_two_class,
};
pub use page::{git_commit, machine};
pub use workload::{MIXES, Mix, Rng, Work, contended_ops, ns_per_unit, run_threads, work};

/// The median of `v` (not empty): the middle value after sorting, the upper
/// one of the two middles for an even count.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `true` when quick mode is asked for: the environment variable
/// `PHASE_LOCK_BENCH_QUICK` is set to anything but `0` or empty. The
/// benchmarks and the report tools then run a reduced matrix for a smoke
/// run, and the tools' pages say so in their header.
pub fn quick() -> bool {
    std::env::var("PHASE_LOCK_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_the_upper_middle() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
    }

    #[test]
    fn mixes_draw_their_percentages() {
        let mix = Mix { name: "t", pct: [50, 50, 0] };
        let mut rng = Rng::new(7);
        let reads = (0..10_000).filter(|_| mix.pick(&mut rng) == Class::Read).count();
        assert!((4_000..6_000).contains(&reads), "{reads} reads of 10000");
        assert!(mix.has_intent());
    }

    /// Every adapter excludes what its lock excludes: a shared class runs
    /// beside itself, a write beside nothing.
    #[test]
    fn adapters_hold_their_lock() {
        struct Check;
        impl LockVisitor for Check {
            fn visit<L: Comparator>(&mut self) {
                let lock = L::new();
                assert_eq!(lock.with(Class::Read, || 1) + lock.with(Class::Write, || 2), 3, "{}", L::NAME);
                let (_, out) = run_threads(4, |i| lock.with(Class::ALL[i % 3], || i), || {});
                assert_eq!(out, [0, 1, 2, 3], "{}", L::NAME);
            }
        }
        visit_all(&mut Check);
        visit_patience_sweep(&mut Check);
    }
}
