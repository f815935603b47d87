//! The fairness report: how long each class of request waits, how much of
//! the lock each class gets, and how many phases of other classes a waiting
//! request sees begin — measured from outside the lock, for every lock of
//! the comparison, in every scenario.
//!
//! ```sh
//! cargo run --release -p phase-lock-reports --bin fairness                          # about 1.5 minutes
//! PHASE_LOCK_BENCH_QUICK=1 cargo run --release -p phase-lock-reports --bin fairness # smoke, about 15 s
//! PHASE_LOCK_REPORT_SECS=5 cargo run --release -p phase-lock-reports --bin fairness # longer runs
//! PHASE_LOCK_REPORT_ONLY=all-three-2-2-2 cargo run --release -p phase-lock-reports --bin fairness # one scenario
//! cargo run --release -p phase-lock-reports --bin fairness -- --sweep               # patience sweep (~1 min)
//! PHASE_LOCK_REPORT_SWEEP=1 cargo run --release -p phase-lock-reports --bin fairness # the same
//! ```
//!
//! It prints one table per scenario and writes them, with a summary, to
//! `docs/results/fairness.md` (header: command, commit, machine, date;
//! `phase_lock_reports::page`), and one SVG per scenario (the wait-time CDF
//! of each class, one line per lock) to `docs/results/img/<scenario>.svg`.
//!
//! The **patience sweep** (`--sweep` as the first argument, or
//! `PHASE_LOCK_REPORT_SWEEP=1`) runs only `read-intent-2-2`,
//! `plain-read-write-2-2` and `oversubscribed-16`, each on ours at every
//! patience P of `visit_patience_sweep` (0 = strict, 10 µs, 50 µs, 200 µs,
//! 1 ms = the default, 4 ms) and on std and parking_lot. It writes
//! `docs/results/patience.md` (per scenario and lock: acquisitions per
//! second, the longest wait and the p99.9 wait of the worst class,
//! throughput relative to the better of std and parking_lot) and
//! `docs/results/img/patience-pareto.svg` (throughput against the longest
//! and against the p99.9 wait: what fairness costs, and where the knee is).
//! `PHASE_LOCK_REPORT_SECS`, `PHASE_LOCK_BENCH_QUICK` and
//! `PHASE_LOCK_REPORT_ONLY` apply to it as well.
//!
//! # Scenarios
//!
//! Each thread belongs to one class for the whole run and issues requests
//! back to back: hold the lock for about 100 ns of real work, then do about
//! 100 ns of work outside it (plus the harness's own bookkeeping, below).
//! The exception is the open system (`open-16`): each request holds the
//! lock for about 1 µs and the thread then sleeps about 20 µs, so that
//! threads leave the processors between requests as they do in servers.
//! A scenario runs for 1.5 s per lock (0.25 s in quick mode). Two-class
//! scenarios run ours, std and parking_lot (intent takes their write lock)
//! and the Mutex + Condvar group lock; plain scenarios (read and write only)
//! run ours, std, parking_lot and `ShardedLock`.
//!
//! # What is measured, exactly
//!
//! * **Wait** of a request: from just before it calls the lock to the first
//!   instruction of its critical section (`Instant::now()` at both ends).
//! * **Acquisitions per second** of a class: requests of that class that
//!   entered, over the run's duration; **share**: its fraction of all
//!   requests that entered.
//! * **Phases**, as the harness sees them. Inside every critical section the
//!   harness keeps, per lock, one atomic word: the number of requests inside,
//!   the class of the most recent phase and a phase sequence number. A
//!   request that enters when the word says nobody is inside **begins a new
//!   phase** (and increments the sequence number) if the most recent phase
//!   was of another class, or if it is a write request; otherwise it
//!   continues that phase. A request that enters while others are inside
//!   joins their phase (and if they are of another class, or one of them or
//!   it writes, the harness counts an **exclusion violation**: there were
//!   none). Each request reads the sequence number `s0` just before calling
//!   the lock; inside, it learns the number `p` of the phase it is in. The
//!   **phases it saw begin while it waited** are `max(0, p - s0 - 1)`: the
//!   phases that began after `s0` other than its own.
//!
//!   Two limits of a measurement from outside, both stated rather than
//!   hidden. (1) Back-to-back phases of the same shared class count as one:
//!   the waiters a handoff admits together do not start their critical
//!   sections together (one is still waking up while another has finished),
//!   so the harness cannot tell "the phase went on" from "a new phase of the
//!   same class began". A same-class phase can never count against a waiting
//!   request of that class anyway (it would have been admitted into it). (2)
//!   The harness sees a phase begin when its first holder *starts its
//!   critical section*, which for a handoff to a parked waiter is a futex
//!   wake-up (microseconds) after the lock began the phase; and `s0` is read
//!   before the lock queues the request (the lock first takes its internal
//!   queue lock, which can take a while under contention). So a phase the
//!   lock began before the request was queued can be counted against it,
//!   and a request can even see two such phases. Both effects can only make
//!   the count higher than the lock's own count from the moment it queues,
//!   which is what the contract bounds; the report cannot separate them.
//! * **Preempted samples.** A thread preempted between reading `s0` and
//!   queueing in the lock can see any number of phases begin before it even
//!   asks. The harness therefore reads the thread's involuntary context
//!   switch count (`getrusage(RUSAGE_THREAD)`, `ru_nivcsw`) before each
//!   request; a request during which (from that read to the next request's
//!   read) the count rose is a *preempted sample*. Its wait and acquisition
//!   still count everywhere; only its phase count is reported in a separate
//!   column, "max phases (preempted)", next to how many such samples there
//!   were. The phase bound is checked on the other samples. Parking on a
//!   futex is a *voluntary* switch and does not mark a sample; but on Linux
//!   a `sched_yield` that switches counts as *involuntary*, so a lock that
//!   yields while it spins (ours does, briefly, before parking) marks some
//!   of its own samples too. The mark is therefore over-inclusive: it never
//!   misses a preemption, and the preempted column shows what it set apart.
//!
//! # Verdicts
//!
//! Per class, with `r` its acquisitions per second per thread of the class,
//! `best` the largest `r` of any class in the run, `ref99` the smallest p99
//! wait of any class in the run (at least 1 µs, about one futex wake-up, so
//! that ratios of sub-microsecond waits do not decide) and `ref_max` the
//! smallest longest wait of any class (at least 1 ms, a scheduler time
//! slice, so that one preemption does not decide):
//!
//! * **starved**: `r < best / 100`, or one of its requests waited 100 ms or
//!   more (a million times the critical section);
//! * **unfair**: otherwise, `r < best / 10`, or its p99 wait exceeds
//!   `10 × ref99`, or its longest wait exceeds `10 × ref_max`;
//! * **fair**: otherwise.
//!
//! These thresholds are the report's own and are fixed; they were not
//! chosen to make any lock pass.
//!
//! The report ends with comparisons drawn from the same run: the default
//! lock's throughput and longest waits against the stock locks', and the
//! strict lock's phase counts against the contract's bound of two.

use phase_lock_reports as reports;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use phase_lock::DEFAULT_PATIENCE_US;
use reports::page::{self, Page};
use reports::{Class, Comparator, LockVisitor, Work};

/// The environment variables this report reads.
const KNOBS: &[&str] = &[
    "PHASE_LOCK_BENCH_QUICK",
    "PHASE_LOCK_REPORT_SWEEP",
    "PHASE_LOCK_REPORT_SECS",
    "PHASE_LOCK_REPORT_ONLY",
    "PHASE_LOCK_COMMIT",
];

/// This report's page.
const PAGE: Page = Page::new("fairness", "phase-lock fairness report", KNOBS);

/// The patience sweep's page.
const SWEEP_PAGE: Page = PAGE.named("patience", "phase-lock patience sweep");

/// One scenario of the report.
struct Scenario {
    /// File-name-safe id.
    id: &'static str,
    /// What it is, for the table heading.
    title: &'static str,
    /// Threads of each class: read, intent, write.
    threads: [usize; 3],
    /// `true`: plain rwlock set (read and write only); `false`: two-class set.
    plain: bool,
    /// How a thread spends its time between requests.
    pace: Pace,
}

/// How a scenario's threads issue requests.
#[derive(Clone, Copy)]
enum Pace {
    /// Back to back: the settings' work inside the lock, and as much outside.
    Closed,
    /// An open system: `inside_ns` of work inside the lock, then a sleep of
    /// `sleep_us` before the next request (the kernel's timer slack adds
    /// some 50 µs), so that threads leave the processors between requests.
    Open { inside_ns: u32, sleep_us: u64 },
}

/// The scenarios, in report order.
const SCENARIOS: [Scenario; 10] = [
    Scenario {
        id: "read-flood-1-intent",
        title: "read flood (3 threads) + 1 intent thread",
        threads: [3, 1, 0],
        plain: false,
        pace: Pace::Closed,
    },
    Scenario {
        id: "intent-flood-1-read",
        title: "intent flood (3 threads) + 1 read thread",
        threads: [1, 3, 0],
        plain: false,
        pace: Pace::Closed,
    },
    Scenario {
        id: "read-intent-2-2",
        title: "equal read and intent floods (2 + 2 threads)",
        threads: [2, 2, 0],
        plain: false,
        pace: Pace::Closed,
    },
    Scenario {
        id: "all-three-2-2-2",
        title: "floods of all three (2 read + 2 intent + 2 write threads)",
        threads: [2, 2, 2],
        plain: false,
        pace: Pace::Closed,
    },
    Scenario {
        id: "oversubscribed-16",
        title: "oversubscribed: 16 threads (7 read + 7 intent + 2 write) on this machine",
        threads: [7, 7, 2],
        plain: false,
        pace: Pace::Closed,
    },
    Scenario {
        id: "mixed-3-3-1",
        title: "all three, 7 threads (3 read + 3 intent + 1 write)",
        threads: [3, 3, 1],
        plain: false,
        pace: Pace::Closed,
    },
    Scenario {
        id: "open-16",
        title: "open system: 16 threads (7 read + 7 intent + 2 write), ~1 µs inside, a ~20 µs sleep between requests",
        threads: [7, 7, 2],
        plain: false,
        pace: Pace::Open { inside_ns: 1000, sleep_us: 20 },
    },
    Scenario {
        id: "plain-read-flood-1-write",
        title: "plain: read flood (3 threads) + 1 writer",
        threads: [3, 0, 1],
        plain: true,
        pace: Pace::Closed,
    },
    Scenario {
        id: "plain-write-flood-1-read",
        title: "plain: write flood (3 threads) + 1 reader",
        threads: [1, 0, 3],
        plain: true,
        pace: Pace::Closed,
    },
    Scenario {
        id: "plain-read-write-2-2",
        title: "plain: equal read and write floods (2 + 2 threads)",
        threads: [2, 0, 2],
        plain: true,
        pace: Pace::Closed,
    },
];

/// The largest phase count kept exactly; larger counts share the last slot.
const PHASE_SLOTS: usize = 16;

/// Sub-buckets per power of two in [`Hist`] (about 3% resolution).
const SUB: u64 = 32;

/// A log-linear histogram of nanosecond values.
#[derive(Clone)]
struct Hist {
    buckets: Vec<u64>,
    max: u64,
    count: u64,
}

impl Hist {
    fn new() -> Hist {
        Hist { buckets: vec![0; 64 * SUB as usize], max: 0, count: 0 }
    }

    /// The bucket of `v`: exact below `SUB`, then `SUB` buckets per octave.
    fn bucket(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - SUB.trailing_zeros();
        ((shift as u64 + 1) * SUB + ((v >> shift) - SUB)) as usize
    }

    /// The largest value that falls into bucket `b`.
    fn upper(b: usize) -> u64 {
        let b = b as u64;
        if b < SUB {
            return b;
        }
        let shift = b / SUB - 1;
        ((b % SUB + SUB + 1) << shift) - 1
    }

    fn add(&mut self, v: u64) {
        self.buckets[Self::bucket(v)] += 1;
        self.max = self.max.max(v);
        self.count += 1;
    }

    fn merge(&mut self, o: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.max = self.max.max(o.max);
        self.count += o.count;
    }

    /// The value at quantile `q` (the upper edge of its bucket, capped by the
    /// exact maximum).
    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (b, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::upper(b).min(self.max);
            }
        }
        self.max
    }

    /// The CDF as (value, cumulative fraction) at each non-empty bucket.
    fn cdf(&self) -> Vec<(u64, f64)> {
        let mut seen = 0;
        let mut out = Vec::new();
        for (b, &n) in self.buckets.iter().enumerate() {
            if n != 0 {
                seen += n;
                out.push((Self::upper(b).min(self.max).max(1), seen as f64 / self.count as f64));
            }
        }
        out
    }
}

/// The harness's view of one lock: who is inside, and the phases.
///
/// Bits 0..22: requests inside; bits 22..24: class of the most recent phase
/// plus one (0: none yet); bits 24..64: the phase sequence number.
struct Tracker {
    word: CachePadded<AtomicU64>,
    violations: AtomicU64,
}

const INSIDE_MASK: u64 = (1 << 22) - 1;
const CLASS_SHIFT: u32 = 22;
const SEQ_SHIFT: u32 = 24;

impl Tracker {
    fn new() -> Tracker {
        Tracker { word: CachePadded::new(AtomicU64::new(0)), violations: AtomicU64::new(0) }
    }

    /// The sequence number of the phase that began most recently.
    fn seq(&self) -> u64 {
        self.word.load(Ordering::SeqCst) >> SEQ_SHIFT
    }

    /// Called first thing in a critical section: returns the phase number the
    /// request is in (see the module docs).
    fn enter(&self, class: Class) -> u64 {
        let tag = class as u64 + 1;
        let mut s = self.word.load(Ordering::SeqCst);
        loop {
            let inside = s & INSIDE_MASK;
            let last = (s >> CLASS_SHIFT) & 3;
            let seq = s >> SEQ_SHIFT;
            let (new, phase) = if inside == 0 && (last != tag || class == Class::Write) {
                (((seq + 1) << SEQ_SHIFT) | (tag << CLASS_SHIFT) | 1, seq + 1)
            } else {
                (s + 1, seq)
            };
            match self.word.compare_exchange_weak(s, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    if inside != 0 && (last != tag || class == Class::Write) {
                        self.violations.fetch_add(1, Ordering::Relaxed);
                    }
                    return phase;
                }
                Err(now) => s = now,
            }
        }
    }

    /// Called last thing in a critical section.
    fn leave(&self) {
        self.word.fetch_sub(1, Ordering::SeqCst);
    }
}

/// This thread's involuntary context switches so far.
fn involuntary_switches() -> i64 {
    // SAFETY: getrusage writes a `rusage` into the zeroed value we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru.ru_nivcsw
    }
}

/// What one class (or one thread) measured.
#[derive(Clone)]
struct ClassStats {
    threads: usize,
    waits: Hist,
    /// Phase-count histogram of the samples not preempted.
    phases_clean: [u64; PHASE_SLOTS],
    /// Phase-count histogram of the preempted samples.
    phases_preempted: [u64; PHASE_SLOTS],
    max_phases_clean: u64,
    max_phases_preempted: u64,
    preempted: u64,
}

impl ClassStats {
    fn new(threads: usize) -> ClassStats {
        ClassStats {
            threads,
            waits: Hist::new(),
            phases_clean: [0; PHASE_SLOTS],
            phases_preempted: [0; PHASE_SLOTS],
            max_phases_clean: 0,
            max_phases_preempted: 0,
            preempted: 0,
        }
    }

    fn add(&mut self, wait_ns: u64, phases: u64, preempted: bool) {
        self.waits.add(wait_ns);
        let slot = (phases as usize).min(PHASE_SLOTS - 1);
        if preempted {
            self.preempted += 1;
            self.phases_preempted[slot] += 1;
            self.max_phases_preempted = self.max_phases_preempted.max(phases);
        } else {
            self.phases_clean[slot] += 1;
            self.max_phases_clean = self.max_phases_clean.max(phases);
        }
    }

    fn merge(&mut self, o: &ClassStats) {
        self.threads += o.threads;
        self.waits.merge(&o.waits);
        for i in 0..PHASE_SLOTS {
            self.phases_clean[i] += o.phases_clean[i];
            self.phases_preempted[i] += o.phases_preempted[i];
        }
        self.max_phases_clean = self.max_phases_clean.max(o.max_phases_clean);
        self.max_phases_preempted = self.max_phases_preempted.max(o.max_phases_preempted);
        self.preempted += o.preempted;
    }

    /// Clean samples that saw more than `bound` phases.
    fn clean_over(&self, bound: usize) -> u64 {
        self.phases_clean[bound + 1..].iter().sum()
    }

    /// Preempted samples that saw more than `bound` phases.
    fn preempted_over(&self, bound: usize) -> u64 {
        self.phases_preempted[bound + 1..].iter().sum()
    }
}

/// The verdict on one class.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Starved,
    Unfair,
    Fair,
}

impl Verdict {
    fn name(self) -> &'static str {
        match self {
            Verdict::Starved => "starved",
            Verdict::Unfair => "unfair",
            Verdict::Fair => "fair",
        }
    }
}

/// One lock in one scenario.
struct RunResult {
    lock: &'static str,
    secs: f64,
    /// Per class, `None` if the scenario has no thread of it.
    classes: [Option<ClassStats>; 3],
    violations: u64,
}

impl RunResult {
    fn total(&self) -> u64 {
        self.classes.iter().flatten().map(|c| c.waits.count).sum()
    }

    fn rate(&self, c: &ClassStats) -> f64 {
        c.waits.count as f64 / self.secs
    }

    /// Acquisitions per second, all classes together.
    fn throughput(&self) -> f64 {
        self.total() as f64 / self.secs
    }

    /// The worst class by `stat` of its waits (the largest value) and that
    /// value; `None` if the run has no class.
    fn worst_wait(&self, stat: impl Fn(&Hist) -> u64) -> Option<(u64, Class)> {
        Class::ALL
            .into_iter()
            .filter_map(|class| self.classes[class.index()].as_ref().map(|c| (stat(&c.waits), class)))
            .max_by_key(|&(v, _)| v)
    }

    fn verdict(&self, class: Class) -> Option<Verdict> {
        let c = self.classes[class.index()].as_ref()?;
        let per_thread = |c: &ClassStats| self.rate(c) / c.threads as f64;
        let best = self.classes.iter().flatten().map(per_thread).fold(0.0, f64::max);
        let ref99 = self.classes.iter().flatten().map(|c| c.waits.quantile(0.99)).min().unwrap_or(0).max(1_000);
        let ref_max = self.classes.iter().flatten().map(|c| c.waits.max).min().unwrap_or(0).max(1_000_000);
        let r = per_thread(c);
        Some(if r < best / 100.0 || c.waits.max >= 100_000_000 {
            Verdict::Starved
        } else if r < best / 10.0 || c.waits.quantile(0.99) > 10 * ref99 || c.waits.max > 10 * ref_max {
            Verdict::Unfair
        } else {
            Verdict::Fair
        })
    }
}

/// Report settings.
struct Settings {
    secs: f64,
    inside: Work,
    outside: Work,
}

/// Runs one scenario on one lock type.
fn run_one<L: Comparator>(sc: &Scenario, set: &Settings) -> RunResult {
    let lock = CachePadded::new(L::new());
    let tracker = Tracker::new();
    let stop = AtomicBool::new(false);
    let classes: Vec<Class> = Class::ALL.iter().flat_map(|&c| std::iter::repeat_n(c, sc.threads[c.index()])).collect();
    let (inside, outside, sleep) = match sc.pace {
        Pace::Closed => (set.inside, set.outside, None),
        Pace::Open { inside_ns, sleep_us } => (Work::ns(inside_ns), set.outside, Some(Duration::from_micros(sleep_us))),
    };
    let (_, per_thread) = reports::run_threads(
        classes.len(),
        |i| {
            let class = classes[i];
            let mut stats = ClassStats::new(1);
            let mut pending: Option<(u64, u64)> = None;
            let mut switches = involuntary_switches();
            while !stop.load(Ordering::Relaxed) {
                let now = involuntary_switches();
                if let Some((wait, phases)) = pending.take() {
                    stats.add(wait, phases, now != switches);
                }
                switches = now;
                let t0 = Instant::now();
                let s0 = tracker.seq();
                let (t1, phase) = lock.with(class, || {
                    let phase = tracker.enter(class);
                    let t1 = Instant::now();
                    inside.run();
                    tracker.leave();
                    (t1, phase)
                });
                pending = Some(((t1 - t0).as_nanos() as u64, phase.saturating_sub(s0 + 1)));
                match sleep {
                    Some(d) => std::thread::sleep(d),
                    None => {
                        outside.run();
                    }
                }
            }
            if let Some((wait, phases)) = pending {
                stats.add(wait, phases, involuntary_switches() != switches);
            }
            (class, stats)
        },
        || {
            std::thread::sleep(Duration::from_secs_f64(set.secs));
            stop.store(true, Ordering::Relaxed);
        },
    );
    let mut merged: [Option<ClassStats>; 3] = [None, None, None];
    for (class, stats) in &per_thread {
        merged[class.index()].get_or_insert_with(|| ClassStats::new(0)).merge(stats);
    }
    RunResult { lock: L::NAME, secs: set.secs, classes: merged, violations: tracker.violations.load(Ordering::Relaxed) }
}

/// Runs a scenario on every lock of a set.
struct RunAll<'a> {
    sc: &'a Scenario,
    set: &'a Settings,
    results: Vec<RunResult>,
}

impl LockVisitor for RunAll<'_> {
    fn visit<L: Comparator>(&mut self) {
        eprint!("  {:<12}", L::NAME);
        let r = run_one::<L>(self.sc, self.set);
        eprintln!(" {:>10} acquisitions", r.total());
        self.results.push(r);
    }
}

/// A duration in ns, µs, ms or s with three significant digits.
fn fmt_ns(ns: u64) -> String {
    let v = ns as f64;
    if v < 1e3 {
        format!("{ns} ns")
    } else if v < 1e6 {
        format!("{:.3} µs", v / 1e3)
    } else if v < 1e9 {
        format!("{:.3} ms", v / 1e6)
    } else {
        format!("{:.3} s", v / 1e9)
    }
}

/// Rounds to three significant digits for display.
fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The markdown table of one scenario.
fn table(sc: &Scenario, results: &[RunResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {} (`{}`)\n", sc.title, sc.id);
    let _ = writeln!(
        out,
        "| lock | class | thr | acq/s | share | p50 | p99 | p99.9 | max | max phases | max phases (preempted) / samples | verdict |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut totals = Vec::new();
    for r in results {
        let total = r.total().max(1) as f64;
        for class in Class::ALL {
            let Some(c) = &r.classes[class.index()] else { continue };
            let shown =
                if class == Class::Intent && !support_native(r.lock) { "intent (=write)" } else { class.name() };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.1}% | {} | {} | {} | {} | {} | {} / {} | {} |",
                r.lock,
                shown,
                c.threads,
                fmt_rate(r.rate(c)),
                100.0 * c.waits.count as f64 / total,
                fmt_ns(c.waits.quantile(0.5)),
                fmt_ns(c.waits.quantile(0.99)),
                fmt_ns(c.waits.quantile(0.999)),
                fmt_ns(c.waits.max),
                c.max_phases_clean,
                c.max_phases_preempted,
                c.preempted,
                r.verdict(class).map_or("", Verdict::name),
            );
        }
        totals.push(format!("{} {}", r.lock, fmt_rate(r.throughput())));
        if r.violations != 0 {
            let _ = writeln!(out, "| {} | **{} exclusion violations** | | | | | | | | | | |", r.lock, r.violations);
        }
    }
    let _ = writeln!(out, "\nTotal acquisitions per second: {}.", totals.join(", "));
    out
}

/// Whether the named lock has a native intent mode.
fn support_native(name: &str) -> bool {
    struct Find<'a>(&'a str, bool);
    impl LockVisitor for Find<'_> {
        fn visit<L: Comparator>(&mut self) {
            if L::NAME == self.0 {
                self.1 = L::NATIVE_INTENT;
            }
        }
    }
    let mut f = Find(name, false);
    reports::visit_all(&mut f);
    f.1
}

/// Line colours of the locks in the pictures.
fn colour(lock: &str) -> &'static str {
    match lock {
        "phase-lock" => "#d62728",
        "std" => "#1f77b4",
        "parking_lot" => "#2ca02c",
        "group-mutex" => "#9467bd",
        _ => "#ff7f0e",
    }
}

/// The SVG picture of one scenario: per class, the wait-time CDF, one line
/// per lock, on a logarithmic time axis.
fn svg(sc: &Scenario, results: &[RunResult]) -> String {
    let classes: Vec<Class> = Class::ALL.into_iter().filter(|c| sc.threads[c.index()] != 0).collect();
    let (pw, ph, ml, mr, mt, mb) = (430.0, 300.0, 55.0, 15.0, 30.0, 45.0);
    let legend_h = 22.0 * results.len() as f64 + 10.0;
    let width = pw * classes.len() as f64;
    let height = ph + legend_h + 30.0;
    let max_ns =
        results.iter().flat_map(|r| r.classes.iter().flatten()).map(|c| c.waits.max).max().unwrap_or(1).max(10);
    let (lo, hi) = (1.0f64, (max_ns as f64).log10().ceil().max(2.0));
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14" font-weight="bold">{} — wait-time CDF per class</text>"#,
        sc.title
    );
    for (k, class) in classes.iter().enumerate() {
        let x0 = pw * k as f64 + ml;
        let y0 = 30.0 + mt;
        let (w, h) = (pw - ml - mr, ph - mt - mb);
        let xs = |ns: f64| x0 + (ns.max(10.0).log10() - lo) / (hi - lo) * w;
        let ys = |f: f64| y0 + (1.0 - f) * h;
        let _ = writeln!(s, r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#, x0, y0 - 8.0, class.name());
        let _ = writeln!(s, r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>"##);
        let mut e = lo as i32;
        while f64::from(e) <= hi {
            let x = xs(10f64.powi(e));
            let label = fmt_ns(10u64.pow(e as u32));
            let _ = writeln!(s, r##"<line x1="{x}" y1="{y0}" x2="{x}" y2="{}" stroke="#ddd"/>"##, y0 + h);
            let _ = writeln!(
                s,
                r#"<text x="{x}" y="{}" text-anchor="middle" font-size="10">{label}</text>"#,
                y0 + h + 14.0
            );
            e += 1;
        }
        for f in [0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0] {
            let y = ys(f);
            let _ = writeln!(s, r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/>"##, x0 + w);
            let _ =
                writeln!(s, r#"<text x="{}" y="{}" text-anchor="end" font-size="10">{f}</text>"#, x0 - 4.0, y + 3.0);
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="11">wait</text>"#,
            x0 + w / 2.0,
            y0 + h + 30.0
        );
        for r in results {
            let Some(c) = &r.classes[class.index()] else { continue };
            let mut pts = String::new();
            let mut prev = 0.0;
            for (ns, f) in c.waits.cdf() {
                let x = xs(ns as f64);
                let _ = write!(pts, "{:.1},{:.1} {:.1},{:.1} ", x, ys(prev), x, ys(f));
                prev = f;
            }
            let wide = if r.lock == <reports::Ours>::NAME { 2.5 } else { 1.5 };
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{}" stroke-width="{wide}" points="{pts}"/>"#,
                colour(r.lock)
            );
        }
    }
    for (i, r) in results.iter().enumerate() {
        let y = ph + 30.0 + 22.0 * i as f64;
        let label = if r.lock != <reports::Ours>::NAME && !support_native(r.lock) && !sc.plain {
            format!("{} (intent = write lock)", r.lock)
        } else {
            r.lock.to_owned()
        };
        let _ =
            writeln!(s, r#"<line x1="20" y1="{y}" x2="50" y2="{y}" stroke="{}" stroke-width="3"/>"#, colour(r.lock));
        let _ = writeln!(s, r#"<text x="58" y="{}">{label}</text>"#, y + 4.0);
    }
    let _ = writeln!(s, "</svg>");
    s
}

/// One table over all scenarios: per lock, total throughput and, per class,
/// p99 wait · longest wait · max phases (clean/preempted) · verdict.
fn summary(all: &[(&Scenario, Vec<RunResult>)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Summary\n");
    let _ = writeln!(
        out,
        "Per class: p99 wait / longest wait / max phases seen while waiting (not preempted, preempted) / verdict.\n"
    );
    let _ = writeln!(out, "| scenario | lock | acq/s | read | intent | write |");
    let _ = writeln!(out, "|---|---|---:|---|---|---|");
    for (sc, rs) in all {
        for r in rs {
            let cell = |class: Class| {
                r.classes[class.index()].as_ref().map_or("–".to_owned(), |c| {
                    format!(
                        "{} / {} / {}, {} / {}",
                        fmt_ns(c.waits.quantile(0.99)),
                        fmt_ns(c.waits.max),
                        c.max_phases_clean,
                        c.max_phases_preempted,
                        r.verdict(class).map_or("", Verdict::name)
                    )
                })
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                sc.id,
                r.lock,
                fmt_rate(r.throughput()),
                cell(Class::Read),
                cell(Class::Intent),
                cell(Class::Write)
            );
        }
    }
    out
}

/// The better throughput of std and parking_lot in one scenario, and which
/// lock it was (`(0.0, "")` if neither ran).
fn best_stock(rs: &[RunResult]) -> (f64, &'static str) {
    rs.iter()
        .filter(|r| r.lock == reports::StdRw::NAME || r.lock == reports::ParkingLotRw::NAME)
        .map(|r| (r.throughput(), r.lock))
        .fold((0.0, ""), |a, b| if b.0 > a.0 { b } else { a })
}

/// What this run says when its locks are set side by side: the default
/// lock against the stock locks (throughput, the balance of p99 waits, the
/// longest waits), the strict lock's phase counts against the contract's
/// bound, and the harness's exclusion check.
fn comparisons(all: &[(&Scenario, Vec<RunResult>)]) -> String {
    let mut out = String::new();
    let find = |id: &str| all.iter().find(|(sc, _)| sc.id == id);
    let ours = |rs: &'_ [RunResult]| rs.iter().position(|r| r.lock == <reports::Ours>::NAME);
    let _ = writeln!(out, "## Comparisons\n");

    // Two-class throughput and p99 balance.
    if let Some((_, rs)) = find("read-intent-2-2")
        && let Some(o) = ours(rs)
    {
        let o = &rs[o];
        let best = best_stock(rs);
        let ratio = o.throughput() / best.0;
        let p99: Vec<u64> = o.classes.iter().flatten().map(|c| c.waits.quantile(0.99)).collect();
        let (lo, hi) = (p99.iter().copied().min().unwrap_or(0), p99.iter().copied().max().unwrap_or(0));
        let p_ratio = hi as f64 / lo.max(1) as f64;
        let _ = writeln!(
            out,
            "* Two-class read/intent, 2 + 2 threads (`read-intent-2-2`): ours at {:.2}× the throughput of the better \
             stock lock ({}, intent = its write lock); p99 wait of our slower class over our faster: {}/{} = {:.1}×.",
            ratio,
            best.1,
            fmt_ns(hi),
            fmt_ns(lo),
            p_ratio,
        );
    }

    // The default lock's longest wait against the stock lock whose longest
    // wait of any class is smaller, and the throughput beside it.
    for (sc, rs) in all {
        let Some(o) = ours(rs) else { continue };
        let longest = |r: &RunResult| r.worst_wait(|h| h.max).map_or(0, |w| w.0);
        let Some(s) = rs
            .iter()
            .filter(|r| r.lock == reports::StdRw::NAME || r.lock == reports::ParkingLotRw::NAME)
            .min_by_key(|r| longest(r))
        else {
            continue;
        };
        let (mine, theirs) = (longest(&rs[o]), longest(s));
        let _ = writeln!(
            out,
            "* Longest wait of any class, `{}`: ours {} against {}'s {} ({:.2}×), at {:.2}× its throughput.",
            sc.id,
            fmt_ns(mine),
            s.lock,
            fmt_ns(theirs),
            mine as f64 / theirs.max(1) as f64,
            rs[o].throughput() / s.throughput(),
        );
    }

    // Phase counts of the strict lock's shared classes, every scenario.
    let strict = |rs: &'_ [RunResult]| rs.iter().position(|r| r.lock == <reports::Ours<0>>::NAME);
    let mut worst = 0;
    let mut over = 0;
    let mut worst_pre = 0;
    let mut over_pre = 0;
    let mut samples = 0;
    let mut detail = Vec::new();
    let mut detail_pre = Vec::new();
    for (sc, rs) in all {
        let Some(o) = strict(rs) else { continue };
        for class in [Class::Read, Class::Intent] {
            if let Some(c) = &rs[o].classes[class.index()] {
                worst = worst.max(c.max_phases_clean);
                worst_pre = worst_pre.max(c.max_phases_preempted);
                over += c.clean_over(2);
                over_pre += c.preempted_over(2);
                samples += c.waits.count;
                if c.max_phases_clean > 2 {
                    detail.push(format!("{} {} saw {}", sc.id, class.name(), c.max_phases_clean));
                }
                if c.max_phases_preempted > 2 {
                    detail_pre.push(format!(
                        "{} {}: {} of {} preempted samples, largest {}",
                        sc.id,
                        class.name(),
                        c.preempted_over(2),
                        c.preempted,
                        c.max_phases_preempted
                    ));
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "* The strict lock, other phases seen to begin by a waiting read or intent request, every scenario (the \
         contract bounds them at 2 counted from queueing; the harness counts from the call, which can only count \
         more): largest count over samples not preempted {worst} ({over} of {samples} shared-class samples above \
         2{}). Preempted samples, reported apart: largest {worst_pre}, {over_pre} above 2{}.",
        if detail.is_empty() { String::new() } else { format!(": {}", detail.join("; ")) },
        if detail_pre.is_empty() { String::new() } else { format!(" ({})", detail_pre.join("; ")) },
    );

    // Plain rwlock worst-case wait for the class each stock lock treats worst.
    for stock in [reports::StdRw::NAME, reports::ParkingLotRw::NAME] {
        for (sc, rs) in all.iter().filter(|(sc, _)| sc.plain) {
            let (Some(o), Some(s)) = (ours(rs), rs.iter().position(|r| r.lock == stock)) else { continue };
            // The class this lock treats worst here: the largest max wait.
            let Some(class) = Class::ALL
                .into_iter()
                .filter(|c| rs[s].classes[c.index()].is_some())
                .max_by_key(|c| rs[s].classes[c.index()].as_ref().map_or(0, |c| c.waits.max))
            else {
                continue;
            };
            let theirs = rs[s].classes[class.index()].as_ref().map_or(0, |c| c.waits.max);
            let mine = rs[o].classes[class.index()].as_ref().map_or(0, |c| c.waits.max);
            let _ = writeln!(
                out,
                "* Plain `{}`: {stock} treats **{}** worst (longest wait {}, verdict {}); ours, that class: longest \
                 wait {}.",
                sc.id,
                class.name(),
                fmt_ns(theirs),
                rs[s].verdict(class).map_or("", Verdict::name),
                fmt_ns(mine),
            );
        }
    }
    let violations: u64 = all.iter().flat_map(|(_, rs)| rs.iter()).map(|r| r.violations).sum();
    let _ = writeln!(out, "* Exclusion violations seen by the harness, all locks and scenarios: {violations}.");
    out
}

/// The scenarios of the patience sweep, in report order.
const SWEEP: [&str; 3] = ["read-intent-2-2", "plain-read-write-2-2", "oversubscribed-16"];

/// Our locks in the patience sweep: the name each has in the results, and
/// its patience in µs (the names are the harness's own).
const PATIENCES: [(&str, u32); 6] = [
    (<reports::Ours<0>>::NAME, 0),
    (<reports::Ours<10>>::NAME, 10),
    (<reports::Ours<50>>::NAME, 50),
    (<reports::Ours<200>>::NAME, 200),
    (<reports::Ours<1000>>::NAME, 1000),
    (<reports::Ours<4000>>::NAME, 4000),
];

/// The patience of one of our locks of the sweep, by its name, as a label:
/// `strict`, `10 µs`, `1 ms (default)`; `None` for any other lock.
fn patience_label(lock: &str) -> Option<String> {
    let &(_, us) = PATIENCES.iter().find(|(name, _)| *name == lock)?;
    let p = match us {
        0 => "strict".to_owned(),
        us if us >= 1000 && us % 1000 == 0 => format!("{} ms", us / 1000),
        us => format!("{us} µs"),
    };
    Some(if us == DEFAULT_PATIENCE_US { format!("{p} (default)") } else { p })
}

/// The two waits the sweep plots throughput against, each of the worst
/// class: its name in tables and pictures, and how it is read off a class's
/// wait histogram.
const SWEEP_WAITS: [(&str, WaitStat); 2] = [("longest wait", |h| h.max), ("p99.9 wait", |h| h.quantile(0.999))];

/// One number read off a wait histogram.
type WaitStat = fn(&Hist) -> u64;

/// The markdown table of one scenario of the patience sweep.
fn sweep_table(sc: &Scenario, results: &[RunResult]) -> String {
    let mut out = String::new();
    let (best, best_lock) = best_stock(results);
    let _ = writeln!(out, "## {} (`{}`)\n", sc.title, sc.id);
    let _ = writeln!(
        out,
        "| lock / patience | acq/s | longest wait (class) | p99.9 wait (worst class) | throughput / {best_lock} |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for r in results {
        let lock = patience_label(r.lock).map_or_else(|| r.lock.to_owned(), |p| format!("phase-lock, {p}"));
        let waits: Vec<String> = SWEEP_WAITS
            .iter()
            .map(|(_, stat)| {
                r.worst_wait(stat).map_or("–".to_owned(), |(v, c)| format!("{} ({})", fmt_ns(v), c.name()))
            })
            .collect();
        let _ = writeln!(
            out,
            "| {lock} | {} | {} | {} | {:.2}× |",
            fmt_rate(r.throughput()),
            waits[0],
            waits[1],
            r.throughput() / best
        );
        if r.violations != 0 {
            let _ = writeln!(out, "| {} | **{} exclusion violations** | | | |", r.lock, r.violations);
        }
    }
    out
}

/// A rectangle in picture coordinates: left, top, right, bottom.
type Rect = (f64, f64, f64, f64);

/// Whether two rectangles overlap.
fn overlaps(a: Rect, b: Rect) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// Places a 10-px label next to the point `(x, y)`: the first of a few
/// positions around it, nearest first, that stays inside `area` and overlaps
/// nothing in `taken` (else the one that overlaps least). A label set apart
/// from its point gets a thin leader line. Returns the SVG elements and
/// records the label's box in `taken`.
fn place_label(text: &str, x: f64, y: f64, area: Rect, taken: &mut Vec<Rect>) -> String {
    let (w, h) = (5.6 * text.chars().count() as f64, 10.0);
    // (dx, dy) of the text anchor from the point, and the text-anchor:
    // 0 start, 1 middle, 2 end.
    let spots = [
        (8.0, 4.0, 0),
        (-8.0, 4.0, 2),
        (6.0, -7.0, 0),
        (6.0, 15.0, 0),
        (-6.0, -7.0, 2),
        (-6.0, 15.0, 2),
        (0.0, -10.0, 1),
        (0.0, 19.0, 1),
        (12.0, -20.0, 0),
        (12.0, 28.0, 0),
        (-12.0, -20.0, 2),
        (-12.0, 28.0, 2),
        (26.0, 4.0, 0),
        (-26.0, 4.0, 2),
        (18.0, -34.0, 0),
        (18.0, 42.0, 0),
        (-18.0, -34.0, 2),
        (-18.0, 42.0, 2),
    ];
    let boxed = |&(dx, dy, a): &(f64, f64, u8)| {
        let left = x + dx - w * f64::from(a) / 2.0;
        (left, y + dy - h + 1.0, left + w, y + dy + 2.0)
    };
    let cost = |spot: &(f64, f64, u8)| {
        let b = boxed(spot);
        let outside = b.0 < area.0 || b.1 < area.1 || b.2 > area.2 || b.3 > area.3;
        let hit: f64 = taken
            .iter()
            .filter(|t| overlaps(b, **t))
            .map(|t| (b.2.min(t.2) - b.0.max(t.0)) * (b.3.min(t.3) - b.1.max(t.1)))
            .sum();
        hit + if outside { 1e6 } else { 0.0 }
    };
    let spot = spots
        .iter()
        .find(|s| cost(s) == 0.0)
        .unwrap_or_else(|| spots.iter().min_by(|a, b| cost(a).total_cmp(&cost(b))).expect("there are spots"));
    taken.push(boxed(spot));
    let (dx, dy, a) = *spot;
    let mut out = String::new();
    if dx.abs() > 10.0 || dy.abs() > 20.0 {
        // From the marker's edge to the label's near edge, at mid-height.
        let (tx, ty) = (x + dx - dx.signum() * 2.0, y + dy - 4.0);
        let len = (tx - x).hypot(ty - y);
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{tx:.1}" y2="{ty:.1}" stroke="#999" stroke-width="0.8"/>"##,
            x + (tx - x) / len * 6.0,
            y + (ty - y) / len * 6.0
        );
    }
    let anchor = ["start", "middle", "end"][usize::from(a)];
    let _ =
        write!(out, r#"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}" font-size="10">{text}</text>"#, x + dx, y + dy);
    out
}

/// The marker of a point of the Pareto plot: a circle for ours (filled for
/// the default patience), a square for std, a diamond for parking_lot.
fn marker(lock: &str, x: f64, y: f64) -> String {
    let c = colour(lock);
    match lock {
        reports::StdRw::NAME => {
            format!(r#"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="{c}"/>"#, x - 4.5, y - 4.5)
        }
        reports::ParkingLotRw::NAME => format!(
            r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="{c}"/>"#,
            x,
            y - 6.0,
            x + 6.0,
            y,
            x,
            y + 6.0,
            x - 6.0,
            y
        ),
        _ => {
            let c = colour(<reports::Ours>::NAME);
            let fill = if lock == <reports::Ours>::NAME { c } else { "white" };
            format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="4.5" fill="{fill}" stroke="{c}" stroke-width="2"/>"#)
        }
    }
}

/// A "nice" step (1, 2, 2.5 or 5 times a power of ten) that cuts `span`
/// into about `parts` parts.
fn nice_step(span: f64, parts: f64) -> f64 {
    let raw = (span / parts).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * mag).find(|&s| s >= raw).unwrap_or(10.0 * mag)
}

/// The Pareto picture of the patience sweep: per scenario, throughput against
/// the longest wait and against the p99.9 wait (each of the worst class, on a
/// logarithmic axis in ms); ours as one line through its patiences, std and
/// parking_lot as single points.
fn pareto_svg(all: &[(&Scenario, Vec<RunResult>)], set: &Settings) -> String {
    let (width, pw) = (1100.0, 550.0);
    let (ml, mr) = (70.0, 25.0);
    let (top, rh, ph, legend_h) = (48.0, 300.0, 198.0, 62.0);
    let height = top + rh * all.len() as f64 + legend_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="12" y="22" font-size="16" font-weight="bold">phase-lock: throughput against the worst wait as the patience P varies</text>"#
    );
    let _ = writeln!(
        s,
        r##"<text x="12" y="40" font-size="11" fill="#555">{}; commit {}; {} s per point; ~100 ns inside and outside the lock. Up and to the left is better.</text>"##,
        reports::machine(),
        reports::git_commit(),
        set.secs
    );
    for (row, (sc, results)) in all.iter().enumerate() {
        let ry = top + rh * row as f64;
        let _ = writeln!(
            s,
            r#"<text x="12" y="{}" font-size="14" font-weight="bold">{} (<tspan font-family="monospace">{}</tspan>)</text>"#,
            ry + 20.0,
            sc.title,
            sc.id
        );
        let ymax = results.iter().map(RunResult::throughput).fold(0.0, f64::max) / 1e6;
        let ystep = nice_step(ymax * 1.08, 5.0);
        let ytop = ((ymax * 1.08) / ystep).ceil().max(1.0) * ystep;
        // Enough decimals to show every tick exactly (0.25 needs two).
        let ydec = (0..4)
            .find(|&d| {
                let v = ystep * 10f64.powi(d);
                (v - v.round()).abs() < 1e-6
            })
            .unwrap_or(4) as usize;
        for (k, (what, stat)) in SWEEP_WAITS.iter().enumerate() {
            let x0 = pw * k as f64 + ml;
            let y0 = ry + 54.0;
            let (w, h) = (pw - ml - mr, ph);
            // Points: (wait in ns, throughput in M/s, lock).
            let pts: Vec<(f64, f64, &str)> = results
                .iter()
                .filter_map(|r| r.worst_wait(stat).map(|(v, _)| (v.max(1) as f64, r.throughput() / 1e6, r.lock)))
                .collect();
            let (wmin, wmax) = pts.iter().fold((f64::INFINITY, 0.0f64), |(a, b), p| (a.min(p.0), b.max(p.0)));
            let (mut lo, mut hi) = (wmin.max(1.0).log10(), wmax.max(1.0).log10());
            let pad = ((hi - lo) * 0.08).max(0.12);
            (lo, hi) = (lo - pad, hi + pad);
            let xs = |ns: f64| x0 + (ns.log10() - lo) / (hi - lo) * w;
            let ys = |m: f64| y0 + (1.0 - m / ytop) * h;
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" font-size="12" font-weight="bold">throughput vs {what} (worst class)</text>"#,
                x0,
                y0 - 8.0
            );
            // Grid and ticks: y linear from 0, x logarithmic in ms.
            let mut t = 0.0;
            while t <= ytop + ystep / 2.0 {
                let y = ys(t);
                let _ = writeln!(s, r##"<line x1="{x0}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/>"##, x0 + w);
                let _ = writeln!(
                    s,
                    r#"<text x="{}" y="{:.1}" text-anchor="end" font-size="10">{t:.ydec$}</text>"#,
                    x0 - 5.0,
                    y + 3.5
                );
                t += ystep;
            }
            let labelled: &[f64] = match hi - lo {
                span if span <= 1.3 => &[1.0, 2.0, 3.0, 5.0, 7.0],
                span if span <= 2.6 => &[1.0, 2.0, 5.0],
                _ => &[1.0],
            };
            for e in (lo.floor() as i32)..=(hi.ceil() as i32) {
                for m in 1..10 {
                    let ns = f64::from(m) * 10f64.powi(e);
                    let x = xs(ns);
                    if x < x0 - 0.5 || x > x0 + w + 0.5 {
                        continue;
                    }
                    let major = labelled.contains(&f64::from(m));
                    let stroke = if m == 1 {
                        "#ccc"
                    } else if major {
                        "#e4e4e4"
                    } else {
                        "#f2f2f2"
                    };
                    let _ = writeln!(
                        s,
                        r#"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{:.1}" stroke="{stroke}"/>"#,
                        y0 + h
                    );
                    if major {
                        let decimals = (6 - e).max(0) as usize;
                        let _ = writeln!(
                            s,
                            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="10">{:.decimals$}</text>"#,
                            y0 + h + 14.0,
                            ns / 1e6
                        );
                    }
                }
            }
            let _ = writeln!(s, r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>"##);
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{what} of the worst class (ms, log scale)</text>"#,
                x0 + w / 2.0,
                y0 + h + 30.0
            );
            let (lx, ly) = (x0 - 44.0, y0 + h / 2.0);
            let _ = writeln!(
                s,
                r#"<text x="{lx}" y="{ly}" text-anchor="middle" font-size="11" transform="rotate(-90 {lx} {ly})">M acquisitions/s</text>"#
            );
            // Ours as a line through its patiences, then every marker, then labels.
            let line: String = pts
                .iter()
                .filter(|p| patience_label(p.2).is_some())
                .map(|p| format!("{:.1},{:.1} ", xs(p.0), ys(p.1)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{}" stroke-width="1.8" points="{line}"/>"#,
                colour(<reports::Ours>::NAME)
            );
            let mut taken: Vec<Rect> =
                pts.iter().map(|p| (xs(p.0) - 6.0, ys(p.1) - 6.0, xs(p.0) + 6.0, ys(p.1) + 6.0)).collect();
            for p in &pts {
                let _ = writeln!(s, "{}", marker(p.2, xs(p.0), ys(p.1)));
            }
            for p in &pts {
                let label = patience_label(p.2).unwrap_or_else(|| p.2.to_owned());
                let _ = writeln!(s, "{}", place_label(&label, xs(p.0), ys(p.1), (x0, y0, x0 + w, y0 + h), &mut taken));
            }
        }
    }
    // Legend.
    let ly = top + rh * all.len() as f64 + 14.0;
    let ours = colour(<reports::Ours>::NAME);
    let _ = writeln!(s, r#"<line x1="20" y1="{ly}" x2="60" y2="{ly}" stroke="{ours}" stroke-width="1.8"/>"#);
    let _ = writeln!(s, "{}", marker("patience", 28.0, ly));
    let _ = writeln!(s, "{}", marker(<reports::Ours>::NAME, 52.0, ly));
    let _ = writeln!(
        s,
        r#"<text x="68" y="{}">phase-lock at patience P = strict (0), 10 µs, 50 µs, 200 µs, 1 ms (default, filled), 4 ms</text>"#,
        ly + 4.0
    );
    let _ = writeln!(s, "{}", marker(reports::StdRw::NAME, 640.0, ly));
    let _ = writeln!(s, r#"<text x="652" y="{}">std::sync::RwLock</text>"#, ly + 4.0);
    let _ = writeln!(s, "{}", marker(reports::ParkingLotRw::NAME, 800.0, ly));
    let _ = writeln!(s, r#"<text x="812" y="{}">parking_lot::RwLock</text>"#, ly + 4.0);
    let _ = writeln!(
        s,
        r##"<text x="20" y="{}" font-size="11" fill="#555">Waits: from just before the lock call to the start of the critical section, of whichever class waits worst. In two-class scenarios std and parking_lot take their write lock for intent.</text>"##,
        ly + 26.0
    );
    let _ = writeln!(s, "</svg>");
    s
}

/// The patience sweep: runs the sweep's scenarios over
/// `visit_patience_sweep`, prints and writes `docs/results/patience.md`,
/// and writes `docs/results/img/patience-pareto.svg`.
fn sweep(set: &Settings) {
    let mut out = SWEEP_PAGE.header();
    let _ = writeln!(
        out,
        "{} Per lock: acquisitions per second of all classes together; the longest wait and the p99.9 wait of the \
         class that waits worst (in parentheses: which); throughput over the better of std and parking_lot. \
         Two-class scenarios: std and parking_lot take their write lock for intent.\n",
        setup(set)
    );
    let _ = writeln!(out, "![throughput against the longest and the p99.9 wait, per patience](img/{PARETO}.svg)\n");
    let mut all = Vec::new();
    for sc in SWEEP.iter().filter_map(|id| SCENARIOS.iter().find(|sc| sc.id == *id)).filter(|sc| selected(sc)) {
        let results = run_scenario(sc, set, reports::visit_patience_sweep);
        let t = sweep_table(sc, &results);
        println!("\n{t}");
        let _ = writeln!(out, "{t}");
        all.push((sc, results));
    }
    page::write_file(&page::image_dir().join(format!("{PARETO}.svg")), &pareto_svg(&all, set));
    SWEEP_PAGE.write(&out);
}

/// The file name (without `.svg`) of the sweep's picture.
const PARETO: &str = "patience-pareto";

/// The setup sentence of a report, after its header: run length and the
/// work inside and outside the lock.
fn setup(set: &Settings) -> String {
    format!(
        "{} s per lock per scenario; critical section ~100 ns of work ({} units at {:.2} ns/unit), ~100 ns outside. \
         Waits are from just before the lock call to the start of the critical section.",
        set.secs,
        set.inside.units,
        reports::ns_per_unit()
    )
}

/// Whether `PHASE_LOCK_REPORT_ONLY` (a comma-separated list of ids) lets
/// scenario `sc` run; everything runs when it is not set.
fn selected(sc: &Scenario) -> bool {
    std::env::var("PHASE_LOCK_REPORT_ONLY").ok().is_none_or(|o| o.split(',').any(|o| o == sc.id))
}

/// Runs scenario `sc` on every lock that `visit` visits.
fn run_scenario<'a>(sc: &'a Scenario, set: &'a Settings, visit: impl FnOnce(&mut RunAll<'a>)) -> Vec<RunResult> {
    eprintln!("{}", sc.title);
    let mut run = RunAll { sc, set, results: Vec::new() };
    visit(&mut run);
    run.results
}

/// Whether the patience sweep is asked for: `PHASE_LOCK_REPORT_SWEEP` set to
/// anything but `0` or empty, or `--sweep` as the first argument.
fn sweep_mode() -> bool {
    std::env::args().nth(1).as_deref() == Some("--sweep")
        || std::env::var("PHASE_LOCK_REPORT_SWEEP").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn main() {
    let quick = reports::quick();
    let secs = std::env::var("PHASE_LOCK_REPORT_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(if quick {
        0.25
    } else {
        1.5
    });
    let set = Settings { secs, inside: Work::ns(100), outside: Work::ns(100) };
    if sweep_mode() {
        sweep(&set);
        return;
    }
    let mut out = PAGE.header();
    let _ = writeln!(
        out,
        "{} \"max phases\" is the largest number of other phases the harness saw begin while one request waited \
         (the definitions are in the doc comment of `reports/src/bin/fairness.rs`); preempted samples are counted \
         apart. The picture under each table is the wait-time CDF of each class, one line per lock.\n",
        setup(&set)
    );
    let _ = writeln!(out, "## Scenarios\n");
    let mut all = Vec::new();
    for sc in SCENARIOS.iter().filter(|sc| selected(sc)) {
        let results = run_scenario(sc, &set, |run| {
            if sc.plain {
                reports::visit_plain(run);
            } else {
                reports::visit_two_class(run);
            }
        });
        let t = table(sc, &results);
        println!("\n{t}");
        let _ = writeln!(out, "{t}");
        let _ = writeln!(out, "![{}: wait-time CDF per class](img/{}.svg)\n", sc.id, sc.id);
        page::write_file(&page::image_dir().join(format!("{}.svg", sc.id)), &svg(sc, &results));
        all.push((sc, results));
    }
    let m = summary(&all);
    println!("{m}");
    let _ = writeln!(out, "{m}");
    let c = comparisons(&all);
    println!("{c}");
    let _ = writeln!(out, "{c}");
    PAGE.write(&out);
}
