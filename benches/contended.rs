//! `contended`: throughput of each lock under a mix of requests, at 1, 2, 4,
//! 8 and 16 threads (oversubscribed on a 2-core machine on purpose, so that
//! parking is exercised).
//!
//! ```sh
//! cargo bench --bench contended                          # about 6 minutes on 2 cores
//! PHASE_LOCK_BENCH_QUICK=1 cargo bench --bench contended # CI smoke: 1 and 4 threads, 100 ns only
//! cargo bench --bench contended -- ri-50-50-0            # criterion's filter works as usual
//! ```
//!
//! Mixes (percent read/intent/write, drawn independently per request):
//! `read-only` 100/0/0 and `rw-90-0-10` 90/0/10 run on the plain rwlock set
//! (ours, std, parking_lot, `ShardedLock`); `intent-only` 0/100/0,
//! `ri-50-50-0`, `riw-45-45-10` and `ri-90-10-0` (read-mostly) run on the
//! two-class set (ours, std and parking_lot with intent = write, and the
//! Mutex + Condvar group lock).
//!
//! Each request holds the lock for about 0 ns, 100 ns or 1 µs of real work
//! ([`reports::work`], calibrated at start-up) and then does the same amount
//! of work outside the lock. One criterion iteration is one request of any
//! thread, so criterion's time per iteration is the inverse of the total
//! throughput. Each `iter_custom` call spawns the threads, releases them
//! with a barrier, and times from the release to the end of the last thread;
//! every thread does `iters / threads` requests. Locks are cache-padded.
//!
//! After criterion has run, the benchmark prints throughput tables and the
//! goal ratios, and writes them to `target/phase-lock-report/contended.md`.
//!
//! The lock adapters, the workloads and the sample recorder are the library
//! of the workspace member `phase-lock-reports` (a dev-dependency), which
//! the report tools share.

use phase_lock_reports as reports;

use std::fmt::Write as _;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use crossbeam_utils::CachePadded;
use reports::{Comparator, LockVisitor, MIXES, Mix, Work};

/// The matrix this run measures.
struct Plan {
    threads: Vec<usize>,
    work_ns: Vec<u32>,
    samples: usize,
}

impl Plan {
    fn get() -> Plan {
        if reports::quick() {
            Plan { threads: vec![1, 4], work_ns: vec![100], samples: 10 }
        } else {
            Plan { threads: vec![1, 2, 4, 8, 16], work_ns: vec![0, 100, 1000], samples: 10 }
        }
    }
}

/// The criterion group of a mix at a work size.
fn group_name(mix: &Mix, work: Work) -> String {
    format!("contended-{}-{}", mix.name, work.label())
}

/// The recorded id of one benchmark.
fn bench_id(mix: &Mix, work: Work, lock: &str, threads: usize) -> String {
    format!("{}/{lock}/{threads}", group_name(mix, work))
}

/// Registers one lock at every thread count of a mix and work size.
struct Register<'a, 'c> {
    group: &'a mut criterion::BenchmarkGroup<'c, criterion::measurement::WallTime>,
    mix: Mix,
    work: Work,
    threads: &'a [usize],
}

impl LockVisitor for Register<'_, '_> {
    fn visit<L: Comparator>(&mut self) {
        let (mix, work) = (self.mix, self.work);
        for &threads in self.threads {
            let id = bench_id(&mix, work, L::NAME, threads);
            self.group.bench_with_input(BenchmarkId::new(L::NAME, threads), &threads, |b, &threads| {
                b.iter_custom(|iters| {
                    let lock = CachePadded::new(L::new());
                    let per_thread = iters.div_ceil(threads as u64);
                    let (elapsed, _) = reports::run_threads(
                        threads,
                        |i| reports::contended_ops(&*lock, &mix, work, work, per_thread, i as u64 + 1),
                        || {},
                    );
                    // Every thread ran `per_thread` requests: report the time
                    // per request actually made.
                    let done = per_thread * threads as u64;
                    let scaled = elapsed.mul_f64(iters as f64 / done as f64);
                    reports::samples::record(&id, iters, scaled);
                    scaled
                })
            });
        }
    }
}

/// One row of the summary: a lock's throughput at each thread count.
struct Collect<'a> {
    mix: Mix,
    work: Work,
    plan: &'a Plan,
    rows: Vec<(&'static str, Vec<Option<f64>>)>,
}

impl LockVisitor for Collect<'_> {
    fn visit<L: Comparator>(&mut self) {
        let mops = self
            .plan
            .threads
            .iter()
            .map(|&t| {
                reports::samples::estimate_ns(&bench_id(&self.mix, self.work, L::NAME, t), self.plan.samples)
                    .map(|ns| 1e3 / ns)
            })
            .collect();
        self.rows.push((L::NAME, mops));
    }
}

/// Prints and writes the throughput tables and goal ratios.
fn summary(plan: &Plan) {
    let mut out = String::new();
    let _ = writeln!(out, "Contended throughput, million lock acquisitions per second (all threads together)\n");
    let _ = writeln!(out, "machine: {}; commit: {}\n", reports::machine(), reports::git_commit());
    let _ = writeln!(
        out,
        "ratio: ours / best of std and parking_lot (two-class mixes: they take the write lock for intent). \
         Goals: two-class ri-50-50-0 at 4 threads, 100ns: ≥ 1.3; plain mixes: ≥ 0.90 at every thread count.\n"
    );
    for mix in &MIXES {
        for &ns in &plan.work_ns {
            let work = Work { nominal_ns: ns, units: 0 };
            let mut c = Collect { mix: *mix, work, plan, rows: Vec::new() };
            if mix.has_intent() {
                reports::visit_two_class(&mut c);
            } else {
                reports::visit_plain(&mut c);
            }
            if c.rows.iter().all(|r| r.1.iter().all(Option::is_none)) {
                continue;
            }
            let _ = writeln!(out, "### {} ({}), {} in / {} out\n", mix.name, pct(mix), work.label(), work.label());
            let _ = write!(out, "| threads |");
            for (name, _) in &c.rows {
                let _ = write!(out, " {name} |");
            }
            let _ = writeln!(out, " ratio |");
            let _ = writeln!(out, "|---:|{}---:|", "---:|".repeat(c.rows.len()));
            for (i, t) in plan.threads.iter().enumerate() {
                let _ = write!(out, "| {t} |");
                for (_, v) in &c.rows {
                    let _ = write!(out, " {} |", v[i].map_or("–".to_owned(), |v| format!("{v:.2}")));
                }
                let get = |n: &str| c.rows.iter().find(|r| r.0 == n).and_then(|r| r.1[i]);
                let best = [reports::StdRw::NAME, reports::ParkingLotRw::NAME]
                    .iter()
                    .filter_map(|n| get(n))
                    .fold(0.0, f64::max);
                let ratio = get(<reports::Ours>::NAME).filter(|_| best > 0.0).map(|o| o / best);
                let _ = writeln!(out, " {} |", ratio.map_or("–".to_owned(), |r| format!("{r:.2}")));
            }
            let _ = writeln!(out);
        }
    }
    let _ = writeln!(out, "### Goals\n");
    for line in goal_lines(plan) {
        let _ = writeln!(out, "* {line}");
    }
    print!("\n{out}");
    let path = reports::samples::bench_dir().join("contended.md");
    match std::fs::write(&path, &out) {
        Ok(()) => println!("written to {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

/// Throughput (Mops/s) of lock `name` on `mix` at `work_ns` and `threads`.
fn mops(mix: &Mix, work_ns: u32, name: &str, threads: usize, samples: usize) -> Option<f64> {
    let work = Work { nominal_ns: work_ns, units: 0 };
    reports::samples::estimate_ns(&bench_id(mix, work, name, threads), samples).map(|ns| 1e3 / ns)
}

/// The goal verdicts this benchmark can judge.
fn goal_lines(plan: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    let best_stock = |mix: &Mix, ns: u32, t: usize| {
        [reports::StdRw::NAME, reports::ParkingLotRw::NAME]
            .iter()
            .filter_map(|n| mops(mix, ns, n, t, plan.samples).map(|v| (v, *n)))
            .fold(None, |a: Option<(f64, &str)>, b| if a.is_none_or(|a| b.0 > a.0) { Some(b) } else { a })
    };
    if let Some(mix) = MIXES.iter().find(|m| m.name == "ri-50-50-0")
        && let (Some(o), Some((b, who))) =
            (mops(mix, 100, <reports::Ours>::NAME, 4, plan.samples), best_stock(mix, 100, 4))
    {
        let r = o / b;
        lines.push(format!(
            "two-class ri-50-50-0, 4 threads, 100ns: ours {o:.2} Mops/s, best stock emulation {who} {b:.2} → {r:.2}× \
             (goal ≥ 1.3×: {})",
            if r >= 1.3 { "met" } else { "missed" }
        ));
    }
    let mut misses = Vec::new();
    let mut checked = 0;
    for mix in MIXES.iter().filter(|m| !m.has_intent()) {
        for &ns in &plan.work_ns {
            for &t in &plan.threads {
                if let (Some(o), Some((b, who))) =
                    (mops(mix, ns, <reports::Ours>::NAME, t, plan.samples), best_stock(mix, ns, t))
                {
                    checked += 1;
                    if o / b < 0.9 {
                        misses.push(format!("{} {ns}ns {t} thr: {:.2}× {who}", mix.name, o / b));
                    }
                }
            }
        }
    }
    if checked != 0 {
        lines.push(format!(
            "plain mixes, ours ≥ 0.90× the best of std and parking_lot at every point: {} of {checked} points below{}",
            misses.len(),
            if misses.is_empty() { " (goal met)".to_owned() } else { format!(" (goal missed): {}", misses.join("; ")) }
        ));
    }
    lines
}

/// `r/i/w` percentages of a mix.
fn pct(mix: &Mix) -> String {
    format!("{}/{}/{}", mix.pct[0], mix.pct[1], mix.pct[2])
}

fn main() {
    let plan = Plan::get();
    let (warm, measure) = if reports::quick() {
        (Duration::from_millis(50), Duration::from_millis(100))
    } else {
        (Duration::from_millis(200), Duration::from_millis(500))
    };
    let mut c = Criterion::default()
        .sample_size(plan.samples)
        .warm_up_time(warm)
        .measurement_time(measure)
        .nresamples(10_000)
        .without_plots()
        .configure_from_args();
    for mix in &MIXES {
        for &ns in &plan.work_ns {
            let work = Work::ns(ns);
            let mut group = c.benchmark_group(group_name(mix, work));
            let mut reg = Register { group: &mut group, mix: *mix, work, threads: &plan.threads };
            if mix.has_intent() {
                reports::visit_two_class(&mut reg);
            } else {
                reports::visit_plain(&mut reg);
            }
            group.finish();
        }
    }
    c.final_summary();
    summary(&plan);
}
