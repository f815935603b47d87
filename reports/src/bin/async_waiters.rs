//! The async baselines of issue 20, printed (no page yet): on tokio's
//! multi-thread runtime with 2 workers, 64 and 1,024 tasks, ~100 ns inside
//! the lock and a `yield_now` between requests, the throughput and the
//! longest wait per class (from the call) of `tokio::sync::RwLock` and
//! `async_lock::RwLock` (write for intent) beside the runtime's own ceiling
//! (no lock), in paired rounds; then each lock's uncontended read.
//!
//! ```sh
//! cargo run --release -p phase-lock-reports --features async --bin async_waiters
//! PHASE_LOCK_BENCH_QUICK=1 cargo run --release -p phase-lock-reports --features async --bin async_waiters  # one short round
//! ```
//!
//! Takes about 40 s (5 rounds of 300 ms per point). phase-lock's
//! own async waiters join the table once they exist.

use std::time::Duration;

use phase_lock_reports::async_locks::{AsyncRun, run_async_tasks, uncontended_read_ns};
use phase_lock_reports::{AsyncComparator, AsyncLockRw, Mix, NoLock, TokioRw, Work, median, quick};

/// The mixes the async goals name (read/intent/write percentages).
const ASYNC_MIXES: [Mix; 4] = [
    Mix { name: "read-only", pct: [100, 0, 0] },
    Mix { name: "ri-50-50-0", pct: [50, 50, 0] },
    Mix { name: "rw-90-0-10", pct: [90, 0, 10] },
    Mix { name: "rw-50-0-50", pct: [50, 0, 50] },
];

/// Milliseconds, or `-` for a class that made no request.
fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1e3))
}

fn main() {
    let (rounds, run) = if quick() { (1, Duration::from_millis(50)) } else { (5, Duration::from_millis(300)) };
    let inside = Work::ns(100);
    println!(
        "| tasks | mix | lock | M ops/s (median of {rounds}) | × ceiling | longest wait read / intent / write (ms) |"
    );
    println!("|---:|---|---|---:|---:|---|");
    for tasks in [64, 1024] {
        for mix in ASYNC_MIXES {
            // Paired rounds: every lock once per round, so that drift
            // between rounds touches them alike.
            let mut runs: [Vec<AsyncRun>; 3] = Default::default();
            for _ in 0..rounds {
                runs[0].push(run_async_tasks::<NoLock>(2, tasks, mix, inside, run));
                runs[1].push(run_async_tasks::<TokioRw>(2, tasks, mix, inside, run));
                runs[2].push(run_async_tasks::<AsyncLockRw>(2, tasks, mix, inside, run));
            }
            let names = [NoLock::NAME, TokioRw::NAME, AsyncLockRw::NAME];
            let medians: Vec<f64> = runs.iter().map(|r| median(r.iter().map(|x| x.ops_per_s).collect())).collect();
            for (i, r) in runs.iter().enumerate() {
                let longest: [Option<Duration>; 3] =
                    std::array::from_fn(|c| r.iter().filter_map(|x| x.longest_wait[c]).max());
                println!(
                    "| {tasks} | {} | {} | {:.2} | {:.2} | {} / {} / {} |",
                    mix.name,
                    names[i],
                    medians[i] / 1e6,
                    medians[i] / medians[0],
                    ms(longest[0]),
                    ms(longest[1]),
                    ms(longest[2])
                );
            }
        }
    }
    let iters = if quick() { 10_000 } else { 1_000_000 };
    println!();
    println!("uncontended read + release (ns, fastest of 5 × {iters}):");
    println!("  {}: {:.1}", NoLock::NAME, uncontended_read_ns::<NoLock>(iters));
    println!("  {}: {:.1}", TokioRw::NAME, uncontended_read_ns::<TokioRw>(iters));
    println!("  {}: {:.1}", AsyncLockRw::NAME, uncontended_read_ns::<AsyncLockRw>(iters));
}
