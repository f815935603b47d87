//! The scaling report: what the biased shared path buys and costs.
//!
//! ```sh
//! cargo run --release -p phase-lock-reports --bin scaling                           # ~2 min on 2 cores
//! PHASE_LOCK_BENCH_QUICK=1 cargo run --release -p phase-lock-reports --bin scaling  # smoke: one run per point
//! ```
//!
//! Four measurements, each followed by the ratios that summarize it, printed
//! and written to `docs/results/scaling.md` (header: command, commit,
//! machine, date; `phase_lock_reports::page`):
//!
//! 1. **Shared-only, nothing inside.** Every thread takes the lock in one
//!    shared kind and releases it at once, for a fixed time; total
//!    acquisitions per second at 1, 2, 4 and 8 threads. Stock locks run
//!    their read lock for both kinds (intent-only would be their write lock,
//!    which is no comparison).
//! 2. **Uncontended lock + unlock**, one thread, each mode, in the same plain
//!    loop for every lock: nanoseconds per pair, in 21 paired rounds (each
//!    round times every lock once, back to back); summarized by the median
//!    of the rounds' ratios, with the best round of each lock beside it.
//! 3. **One thread alternating 10 reads and 1 write**: the biased lock
//!    against the same lock without bias (the bias must not be set, and
//!    nothing may be paid for it).
//! 4. **Revocation cost**: two threads read until the lock is biased, then a
//!    `try_write` revokes it (one scan of the 1024-slot table) and enters;
//!    the time of that `try_write`, median of 25, against an uncontended
//!    `try_write` (no bias).
//!
//! Each point is the median of five runs (one in quick mode).

use phase_lock_reports as reports;

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use reports::page::Page;
use reports::{Class, Comparator, Ours, OursUnbiased, ParkingLotRw, StdRw};

/// This report's page, and the environment variables it reads.
const PAGE: Page = Page::new("scaling", "phase-lock scaling report", &["PHASE_LOCK_BENCH_QUICK", "PHASE_LOCK_COMMIT"]);

/// How long each thread runs in a shared-only point.
const SPAN: Duration = Duration::from_millis(200);

/// Total acquisitions per second of `threads` threads taking `lock` in
/// `class` and releasing it at once, for `SPAN`.
fn shared_only<L: Comparator>(class: Class, threads: usize) -> f64 {
    let lock = CachePadded::new(L::new());
    let stop = AtomicBool::new(false);
    let (elapsed, counts) = reports::run_threads(
        threads,
        |_| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    lock.with(class, || black_box(()));
                }
                n += 64;
            }
            n
        },
        || {
            std::thread::sleep(SPAN);
            stop.store(true, Ordering::Relaxed);
        },
    );
    counts.iter().sum::<u64>() as f64 / elapsed.as_secs_f64()
}

/// Nanoseconds per lock + unlock pair of `class` on an uncontended `L`.
fn uncontended<L: Comparator>(class: Class) -> f64 {
    const PAIRS: u32 = 2_000_000;
    let lock = CachePadded::new(L::new());
    let start = Instant::now();
    for _ in 0..PAIRS {
        lock.with(class, || black_box(()));
    }
    start.elapsed().as_nanos() as f64 / f64::from(PAIRS)
}

/// Acquisitions per second of one thread alternating 10 reads and 1 write.
fn alternating<L: Comparator>() -> f64 {
    const ROUNDS: u32 = 200_000;
    let lock = CachePadded::new(L::new());
    let start = Instant::now();
    for _ in 0..ROUNDS {
        for _ in 0..10 {
            lock.with(Class::Read, || black_box(()));
        }
        lock.with(Class::Write, || black_box(()));
    }
    f64::from(ROUNDS * 11) / start.elapsed().as_secs_f64()
}

/// Nanoseconds of a `try_write` + unlock that revokes a freshly biased,
/// idle lock.
fn revocation_ns() -> f64 {
    use phase_lock::lock_api::RawRwLock;
    let lock = phase_lock::RawPhaseLock::new();
    let biased = AtomicBool::new(false);
    // Two readers until one of them gets a published hold.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let start = Instant::now();
                while !biased.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(2) {
                    let h = lock.lock_shared();
                    if h.is_published() {
                        biased.store(true, Ordering::Relaxed);
                    }
                    // SAFETY: the read hold taken just above.
                    unsafe { lock.unlock_shared(h) };
                }
            });
        }
    });
    assert!(biased.load(Ordering::Relaxed), "two readers never biased the lock");
    let start = Instant::now();
    let w = lock.try_lock_exclusive().expect("an idle biased lock refused a writer");
    let ns = start.elapsed().as_nanos() as f64;
    // SAFETY: the write hold taken just above.
    unsafe { lock.unlock_exclusive(w) };
    ns
}

/// The median of `runs` runs of `f`.
fn median(runs: usize, mut f: impl FnMut() -> f64) -> f64 {
    reports::median((0..runs).map(|_| f()).collect())
}

/// Paired rounds of the uncontended measurement.
const UNCONTENDED_ROUNDS: usize = 21;

/// A summary line under a table: a ratio, with the figures it comes from.
fn summary(out: &mut String, text: String) {
    let line = format!("- {text}");
    eprintln!("{line}");
    let _ = writeln!(out, "{line}");
}

fn main() {
    let quick = reports::quick();
    let runs = if quick { 1 } else { 5 };
    let mut out = PAGE.header();
    let of = if runs == 1 { "one run".to_owned() } else { format!("the median of {runs} runs") };
    let _ = writeln!(out, "Each figure is {of} (uncontended: paired rounds).\n");

    // 1. Shared-only.
    let threads = [1usize, 2, 4, 8];
    let _ = writeln!(out, "## Shared-only, nothing inside (million acquisitions per second, all threads)\n");
    let _ = writeln!(out, "| kind | lock | {} |", threads.map(|t| format!("{t} thr")).join(" | "));
    let _ = writeln!(out, "|---|---|{}", "---:|".repeat(threads.len()));
    let mut table = |kind: Class, name: &str, f: &dyn Fn(usize) -> f64| -> Vec<f64> {
        let row: Vec<f64> = threads.iter().map(|&t| median(runs, || f(t))).collect();
        let cells: Vec<_> = row.iter().map(|r| format!("{:.1}", r / 1e6)).collect();
        let line = format!("| {kind:?} | {name} | {} |", cells.join(" | "));
        eprintln!("{line}");
        let _ = writeln!(out, "{line}");
        row
    };
    let mut ours_rows = Vec::new();
    for kind in [Class::Read, Class::Intent] {
        let ours = table(kind, Ours::<1000>::NAME, &|t| shared_only::<Ours>(kind, t));
        let unbiased = table(kind, OursUnbiased::NAME, &|t| shared_only::<OursUnbiased>(kind, t));
        let std = table(kind, "std (read)", &|t| shared_only::<StdRw>(Class::Read, t));
        let pl = table(kind, "parking_lot (read)", &|t| shared_only::<ParkingLotRw>(Class::Read, t));
        ours_rows.push((kind, ours, unbiased, std, pl));
    }
    let _ = writeln!(out);
    for (kind, ours, unbiased, std, pl) in &ours_rows {
        let stock = std[1].max(pl[1]);
        summary(
            &mut out,
            format!(
                "{kind:?}-only, ours at 2 threads over ours at 1 thread: {:.1} / {:.1} M/s = {:.2}× (unbiased: {:.2}×)",
                ours[1] / 1e6,
                ours[0] / 1e6,
                ours[1] / ours[0],
                unbiased[1] / unbiased[0]
            ),
        );
        summary(
            &mut out,
            format!(
                "{kind:?}-only, 2 threads, ours over the better stock read lock: {:.1} / {:.1} M/s = {:.2}×",
                ours[1] / 1e6,
                stock / 1e6,
                ours[1] / stock
            ),
        );
    }

    // 2. Uncontended, in paired rounds: each round times every lock in
    // every mode once, back to back, so that the host's drift (a few percent
    // within seconds, the size of the differences measured here) hits all of
    // them alike. Per lock and mode: the best of the rounds; per round: our
    // time over the better stock lock's; summarized by the median of those.
    let rounds = if quick { 3 } else { UNCONTENDED_ROUNDS };
    let names = [Ours::<1000>::NAME, OursUnbiased::NAME, "std (intent = write)", "parking_lot (intent = write)"];
    let modes = [Class::Read, Class::Intent, Class::Write];
    // times[round][lock][mode]
    let times: Vec<[[f64; 3]; 4]> = (0..rounds)
        .map(|_| {
            [
                modes.map(uncontended::<Ours>),
                modes.map(uncontended::<OursUnbiased>),
                modes.map(uncontended::<StdRw>),
                modes.map(uncontended::<ParkingLotRw>),
            ]
        })
        .collect();
    let _ =
        writeln!(out, "\n## Uncontended lock + unlock (ns per pair; {rounds} paired rounds, best round per lock)\n");
    let _ = writeln!(out, "| lock | read | intent | write |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let best_of = |lock: usize, mode: usize| times.iter().map(|r| r[lock][mode]).fold(f64::INFINITY, f64::min);
    for (lock, name) in names.iter().enumerate() {
        let line = format!("| {name} | {:.2} | {:.2} | {:.2} |", best_of(lock, 0), best_of(lock, 1), best_of(lock, 2));
        eprintln!("{line}");
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out);
    // Stock intent is its write lock; our intent is compared with the stock
    // *read* lock, the cheaper one.
    for (mode, name) in ["read", "intent", "write"].iter().enumerate() {
        let stock_mode = if mode == 2 { 2 } else { 0 };
        let stock = |r: &[[f64; 3]; 4]| r[2][stock_mode].min(r[3][stock_mode]);
        let ratio = reports::median(times.iter().map(|r| r[0][mode] / stock(r)).collect());
        let unbiased = reports::median(times.iter().map(|r| r[1][mode] / stock(r)).collect());
        let best = best_of(0, mode) / best_of(2, stock_mode).min(best_of(3, stock_mode));
        summary(
            &mut out,
            format!(
                "uncontended {name}, ours over the better stock lock's {}: median of the rounds' ratios {ratio:.3}× \
                 (best round against best round {best:.3}×; unbiased {unbiased:.3}×)",
                if mode == 2 { "write" } else { "read" },
            ),
        );
    }

    // 3. Alternating.
    let a = median(runs, alternating::<Ours>);
    let b = median(runs, alternating::<OursUnbiased>);
    let _ = writeln!(out, "\n## One thread, 10 reads then 1 write, repeated\n");
    summary(
        &mut out,
        format!(
            "one thread alternating 10 reads and 1 write, biased over unbiased: {:.1} / {:.1} M/s = {:.2}×",
            a / 1e6,
            b / 1e6,
            a / b
        ),
    );

    // 4. Revocation.
    let revoke = median(if quick { 5 } else { 25 }, revocation_ns);
    let _ = writeln!(out, "\n## Revocation (a try_write on an idle biased lock)\n");
    let line = format!(
        "- {revoke:.0} ns to revoke and enter (median), against {:.1} ns for an uncontended write lock + unlock (median round): one scan of the 8 KiB table",
        reports::median(times.iter().map(|r| r[0][2]).collect())
    );
    eprintln!("{line}");
    let _ = writeln!(out, "{line}");

    println!("{out}");
    PAGE.write(&out);
}
