//! `uncontended`: one thread, lock + unlock of each mode of each lock.
//!
//! ```sh
//! cargo bench --bench uncontended                          # about 40 s
//! PHASE_LOCK_BENCH_QUICK=1 cargo bench --bench uncontended # CI smoke, a few s
//! scripts/callgrind-uncontended.sh                         # instruction counts
//! ```
//!
//! Stock locks have no intent mode; their `intent` rows take the write lock
//! (what a user would do), and are printed for completeness. The goal the
//! numbers are held to compares our read and intent acquisitions with the
//! faster of std's and parking_lot's *read* acquisition, and our write
//! acquisition with the faster of their *write* acquisitions. After criterion
//! has run, the benchmark prints that comparison and writes it to
//! `target/phase-lock-report/uncontended.md`.
//!
//! With `PHASE_LOCK_CALLGRIND=<lock>/<mode>/<n>` set, the binary runs `n`
//! lock + unlock pairs in [`callgrind_loop`] and exits without criterion:
//! `scripts/callgrind-uncontended.sh` counts that function's instructions.
//!
//! The lock adapters and the sample recorder are the library of the
//! workspace member `phase-lock-reports` (a dev-dependency).

use phase_lock_reports as reports;

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use crossbeam_utils::CachePadded;
use reports::{Class, Comparator, LockVisitor};

/// Criterion's sample count here (also how many trailing samples the summary
/// averages).
fn sample_size() -> usize {
    if reports::quick() { 10 } else { 30 }
}

/// The benchmark id of `mode` on lock `name`.
fn bench_id(mode: Class, name: &str) -> String {
    format!("uncontended-{}/{name}", mode.name())
}

/// Registers the three modes of one lock with criterion.
struct Register<'a>(&'a mut Criterion);

impl LockVisitor for Register<'_> {
    fn visit<L: Comparator>(&mut self) {
        let lock = CachePadded::new(L::new());
        for mode in Class::ALL {
            let id = bench_id(mode, L::NAME);
            self.0.bench_function(&id, |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        lock.with(mode, || black_box(()));
                    }
                    let elapsed = start.elapsed();
                    reports::samples::record(&id, iters, elapsed);
                    elapsed
                })
            });
        }
    }
}

/// Lock + unlock `n` times: the one function callgrind counts.
#[inline(never)]
fn callgrind_loop<L: Comparator>(lock: &L, mode: Class, n: u64) {
    for _ in 0..n {
        lock.with(mode, || black_box(()));
    }
}

/// Runs [`callgrind_loop`] for the lock named in the request, if it is this
/// one.
struct CallgrindRun {
    lock: String,
    mode: Class,
    n: u64,
    found: bool,
}

impl LockVisitor for CallgrindRun {
    fn visit<L: Comparator>(&mut self) {
        if L::NAME == self.lock {
            let lock = CachePadded::new(L::new());
            callgrind_loop(black_box(&*lock), black_box(self.mode), black_box(self.n));
            self.found = true;
        }
    }
}

/// Handles `PHASE_LOCK_CALLGRIND=<lock>/<mode>/<n>`.
fn callgrind_mode(spec: &str) {
    let parts: Vec<&str> = spec.split('/').collect();
    let [lock, mode, n] = parts[..] else {
        panic!("PHASE_LOCK_CALLGRIND must be <lock>/<mode>/<n>, not {spec:?}");
    };
    let mode = Class::ALL.into_iter().find(|c| c.name() == mode).expect("mode is read, intent or write");
    let n = n.parse().expect("n is a number");
    let mut run = CallgrindRun { lock: lock.to_owned(), mode, n, found: false };
    reports::visit_all(&mut run);
    assert!(run.found, "unknown lock {lock:?}");
}

/// Collects the measured ns per lock + unlock of every lock and mode.
struct Collect {
    rows: Vec<(&'static str, bool, [Option<f64>; 3])>,
}

impl LockVisitor for Collect {
    fn visit<L: Comparator>(&mut self) {
        let ns = Class::ALL.map(|m| reports::samples::estimate_ns(&bench_id(m, L::NAME), sample_size()));
        self.rows.push((L::NAME, L::NATIVE_INTENT, ns));
    }
}

/// Prints and writes the summary table and the goal ratios.
fn summary() {
    let mut c = Collect { rows: Vec::new() };
    reports::visit_all(&mut c);
    let cell = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2}"));
    let mut out = String::new();
    let _ = writeln!(out, "Uncontended lock + unlock, ns (criterion, mean of the measurement samples)\n");
    let _ = writeln!(out, "machine: {}; commit: {}\n", reports::machine(), reports::git_commit());
    let _ = writeln!(out, "| lock | read | intent | write |");
    let _ = writeln!(out, "|------|-----:|-------:|------:|");
    for (name, native, ns) in &c.rows {
        let star = if *native { "" } else { " (intent = write)" };
        let _ = writeln!(out, "| {name}{star} | {} | {} | {} |", cell(ns[0]), cell(ns[1]), cell(ns[2]));
    }
    let get = |name: &str, m: Class| c.rows.iter().find(|r| r.0 == name).and_then(|r| r.2[m.index()]);
    let best = |m: Class| {
        [reports::StdRw::NAME, reports::ParkingLotRw::NAME]
            .iter()
            .filter_map(|n| get(n, m))
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.min(v))))
    };
    let _ = writeln!(out, "\nGoal: each mode of ours ≤ 1.05× the faster of std and parking_lot for the same kind\n");
    let _ = writeln!(out, "| mode | ours ns | best stock ns (kind) | ratio | goal ≤ 1.05 |");
    let _ = writeln!(out, "|------|--------:|---------------------:|------:|-------------|");
    for (mode, kind) in [(Class::Read, Class::Read), (Class::Intent, Class::Read), (Class::Write, Class::Write)] {
        if let (Some(o), Some(b)) = (get(<reports::Ours>::NAME, mode), best(kind)) {
            let r = o / b;
            let verdict = if r <= 1.05 { "met" } else { "missed" };
            let _ = writeln!(out, "| {} | {o:.2} | {b:.2} ({}) | {r:.3} | {verdict} |", mode.name(), kind.name());
        }
    }
    print!("\n{out}");
    let path = reports::samples::bench_dir().join("uncontended.md");
    if let Err(e) = std::fs::write(&path, &out) {
        eprintln!("cannot write {}: {e}", path.display());
    } else {
        println!("\nwritten to {}", path.display());
    }
}

fn main() {
    if let Ok(spec) = std::env::var("PHASE_LOCK_CALLGRIND") {
        callgrind_mode(&spec);
        return;
    }
    let (warm, measure) = if reports::quick() {
        (Duration::from_millis(100), Duration::from_millis(200))
    } else {
        (Duration::from_millis(500), Duration::from_secs(2))
    };
    let mut c = Criterion::default()
        .sample_size(sample_size())
        .warm_up_time(warm)
        .measurement_time(measure)
        .nresamples(10_000)
        .without_plots()
        .configure_from_args();
    reports::visit_all(&mut Register(&mut c));
    c.final_summary();
    summary();
}
