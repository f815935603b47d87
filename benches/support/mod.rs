//! The comparison harness shared by the benchmarks (`benches/`) and the
//! fairness report (`examples/fairness.rs`).
//!
//! Everything that is one idea lives here once:
//!
//! * [`Comparator`], the one trait every lock is measured through, and its
//!   adapters: [`Ours`] (`PhaseLock`), [`StdRw`] (`std::sync::RwLock`),
//!   [`ParkingLotRw`] (`parking_lot::RwLock` 0.13), [`Sharded`]
//!   (`crossbeam_utils::sync::ShardedLock`) and [`GroupMutex`], a textbook
//!   group-mutual-exclusion lock built from `std::sync::Mutex` + `Condvar`;
//! * the lock sets ([`visit_two_class`], [`visit_plain`], [`visit_all`]);
//! * the critical-section [`work`] and its calibration ([`Work`]);
//! * the operation [`Mix`]es and the per-thread random source ([`Rng`]);
//! * the thread driver with a barrier start ([`run_threads`]);
//! * where reports are written ([`report_dir`]), the quick-mode knob
//!   ([`quick`]) and the [`median`] of repeated runs;
//! * the benchmark sample recorder ([`record`], [`estimate_ns`]) that lets the
//!   benchmarks print ratio tables after criterion has run.
//!
//! Stock rwlocks have no intent mode. Where a workload has an intent class,
//! the stock adapters give it the **write** lock: what a user would pick
//! today. That is correct (intent holders never overlap readers) but the
//! intent class loses its concurrency. [`Comparator::NATIVE_INTENT`] says
//! which adapters do this.

// Each includer (a benchmark or the example) uses only part of the harness.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Barrier, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use phase_lock::{DEFAULT_PATIENCE_US, PatientLock, RwLockIntentExt};

/// The class of a request: which mode it asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Many holders at once; excludes intent and write.
    Read = 0,
    /// Many holders at once; excludes read and write.
    Intent = 1,
    /// One holder; excludes everything.
    Write = 2,
}

impl Class {
    /// The three classes, in round-robin order.
    pub const ALL: [Class; 3] = [Class::Read, Class::Intent, Class::Write];

    /// A short lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Intent => "intent",
            Class::Write => "write",
        }
    }

    /// The index of the class in [`Class::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// One lock under comparison.
///
/// `with` runs `f` holding the lock in the mode `class` asks for and releases
/// it afterwards. The method is generic (not object-safe) on purpose: every
/// lock is monomorphised and inlined into the measured loop, so no adapter
/// pays for a virtual call that the others do not.
pub trait Comparator: Send + Sync + Sized + 'static {
    /// The name printed in tables and plots, and used in benchmark ids
    /// (letters, digits, `-` and `_` only).
    const NAME: &'static str;
    /// `true` if intent requests get a mode of their own; `false` if the
    /// adapter gives them the write lock (a stock rwlock).
    const NATIVE_INTENT: bool;
    /// A new, unlocked lock.
    fn new() -> Self;
    /// Runs `f` holding the lock for `class`.
    fn with<R>(&self, class: Class, f: impl FnOnce() -> R) -> R;
}

/// This crate's lock with a patience of `P` µs and the biased shared path
/// on or off, `PatientLock<(), P, B>`: read, intent and write natively.
/// `Ours` is `PhaseLock<()>` (the default patience, biased), `Ours<0>` is
/// `StrictPhaseLock<()>`, `Ours<DEFAULT_PATIENCE_US, false>` is
/// `UnbiasedPhaseLock<()>`.
pub struct Ours<const P: u32 = DEFAULT_PATIENCE_US, const B: bool = true>(PatientLock<(), P, B>);

/// `UnbiasedPhaseLock<()>`.
pub type OursUnbiased = Ours<DEFAULT_PATIENCE_US, false>;

impl<const P: u32, const B: bool> Comparator for Ours<P, B> {
    const NAME: &'static str = match P {
        _ if !B => "phase-lock-unbiased",
        DEFAULT_PATIENCE_US => "phase-lock",
        0 => "phase-lock-strict",
        10 => "patience-10us",
        50 => "patience-50us",
        200 => "patience-200us",
        4000 => "patience-4ms",
        _ => "phase-lock-other-patience",
    };
    const NATIVE_INTENT: bool = true;

    fn new() -> Self {
        Ours(PatientLock::new(()))
    }

    #[inline]
    fn with<R>(&self, class: Class, f: impl FnOnce() -> R) -> R {
        match class {
            Class::Read => {
                let _g = self.0.read();
                f()
            }
            Class::Intent => {
                let _g = self.0.intent();
                f()
            }
            Class::Write => {
                let _g = self.0.write();
                f()
            }
        }
    }
}

/// `std::sync::RwLock<()>`; intent requests take the write lock.
pub struct StdRw(std::sync::RwLock<()>);

impl Comparator for StdRw {
    const NAME: &'static str = "std";
    const NATIVE_INTENT: bool = false;

    fn new() -> Self {
        StdRw(std::sync::RwLock::new(()))
    }

    #[inline]
    fn with<R>(&self, class: Class, f: impl FnOnce() -> R) -> R {
        match class {
            Class::Read => {
                let _g = self.0.read().unwrap_or_else(PoisonError::into_inner);
                f()
            }
            Class::Intent | Class::Write => {
                let _g = self.0.write().unwrap_or_else(PoisonError::into_inner);
                f()
            }
        }
    }
}

/// `parking_lot::RwLock<()>` (0.13); intent requests take the write lock.
pub struct ParkingLotRw(parking_lot::RwLock<()>);

impl Comparator for ParkingLotRw {
    const NAME: &'static str = "parking_lot";
    const NATIVE_INTENT: bool = false;

    fn new() -> Self {
        ParkingLotRw(parking_lot::RwLock::new(()))
    }

    #[inline]
    fn with<R>(&self, class: Class, f: impl FnOnce() -> R) -> R {
        match class {
            Class::Read => {
                let _g = self.0.read();
                f()
            }
            Class::Intent | Class::Write => {
                let _g = self.0.write();
                f()
            }
        }
    }
}

/// `crossbeam_utils::sync::ShardedLock<()>`; intent requests take the write
/// lock. Compared on plain read/write workloads only.
pub struct Sharded(crossbeam_utils::sync::ShardedLock<()>);

impl Comparator for Sharded {
    const NAME: &'static str = "ShardedLock";
    const NATIVE_INTENT: bool = false;

    fn new() -> Self {
        Sharded(crossbeam_utils::sync::ShardedLock::new(()))
    }

    #[inline]
    fn with<R>(&self, class: Class, f: impl FnOnce() -> R) -> R {
        match class {
            Class::Read => {
                let _g = self.0.read().unwrap_or_else(PoisonError::into_inner);
                f()
            }
            Class::Intent | Class::Write => {
                let _g = self.0.write().unwrap_or_else(PoisonError::into_inner);
                f()
            }
        }
    }
}

/// The textbook hand-rolled group-mutual-exclusion lock: a `Mutex` over
/// per-class holder and waiter counts plus a turn variable, and one
/// `Condvar` that every waiter sleeps on.
///
/// * A request enters an empty lock if it is its class's turn or the class
///   whose turn it is has nobody waiting.
/// * A read or intent request joins holders of its own class only while no
///   other class waits (so a flood cannot starve the others).
/// * The last holder to leave passes the turn to the next class, in the order
///   read → intent → write, that has a waiter, and wakes everybody
///   (`notify_all`): the herd re-checks and the turn's class goes in.
pub struct GroupMutex {
    state: Mutex<GroupState>,
    changed: Condvar,
}

/// The state protected by [`GroupMutex`]'s mutex.
struct GroupState {
    /// The class of the current holders (meaningful while `holders > 0`).
    active: Class,
    /// How many requests hold the lock.
    holders: u32,
    /// Waiting requests per class.
    waiting: [u32; 3],
    /// The class that goes first when the lock empties.
    turn: Class,
}

impl GroupState {
    /// Whether a request of `class` may enter now.
    fn may_enter(&self, class: Class) -> bool {
        if self.holders == 0 {
            return self.turn == class || self.waiting[self.turn.index()] == 0;
        }
        let others_wait = Class::ALL.iter().any(|&c| c != class && self.waiting[c.index()] != 0);
        class != Class::Write && self.active == class && !others_wait
    }
}

impl GroupMutex {
    fn lock_state(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enter(&self, class: Class) {
        let mut s = self.lock_state();
        if !s.may_enter(class) {
            s.waiting[class.index()] += 1;
            while !s.may_enter(class) {
                s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            s.waiting[class.index()] -= 1;
        }
        s.active = class;
        s.holders += 1;
    }

    fn leave(&self, class: Class) {
        let mut s = self.lock_state();
        s.holders -= 1;
        if s.holders == 0 && s.waiting.iter().any(|&w| w != 0) {
            let next = (1..=3).map(|d| Class::ALL[(class.index() + d) % 3]).find(|c| s.waiting[c.index()] != 0);
            s.turn = next.unwrap_or(class);
            drop(s);
            self.changed.notify_all();
        }
    }
}

impl Comparator for GroupMutex {
    const NAME: &'static str = "group-mutex";
    const NATIVE_INTENT: bool = true;

    fn new() -> Self {
        GroupMutex {
            state: Mutex::new(GroupState { active: Class::Read, holders: 0, waiting: [0; 3], turn: Class::Read }),
            changed: Condvar::new(),
        }
    }

    #[inline]
    fn with<R>(&self, class: Class, f: impl FnOnce() -> R) -> R {
        /// Leaves the group lock even if `f` panics.
        struct Leave<'a>(&'a GroupMutex, Class);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.leave(self.1);
            }
        }
        self.enter(class);
        let _leave = Leave(self, class);
        f()
    }
}

/// Something that is run once per lock of a lock set, with the lock's type.
pub trait LockVisitor {
    /// Called once per lock type of the set.
    fn visit<L: Comparator>(&mut self);
}

/// The two-class comparison: ours against what a user would pick today for a
/// workload with an intent class (std and parking_lot with intent = write,
/// and the hand-rolled group lock).
pub fn visit_two_class(v: &mut impl LockVisitor) {
    v.visit::<Ours>();
    v.visit::<Ours<0>>();
    v.visit::<StdRw>();
    v.visit::<ParkingLotRw>();
    v.visit::<GroupMutex>();
}

/// The plain rwlock comparison (read and write only): ours as a
/// `lock_api::RwLock` against std, parking_lot and `ShardedLock`.
pub fn visit_plain(v: &mut impl LockVisitor) {
    v.visit::<Ours>();
    v.visit::<Ours<0>>();
    v.visit::<StdRw>();
    v.visit::<ParkingLotRw>();
    v.visit::<Sharded>();
}

/// The patience sweep: ours at every patience of the Pareto plot (0, 10 µs,
/// 50 µs, 200 µs, 1 ms, 4 ms), and std and parking_lot as single points.
pub fn visit_patience_sweep(v: &mut impl LockVisitor) {
    v.visit::<Ours<0>>();
    v.visit::<Ours<10>>();
    v.visit::<Ours<50>>();
    v.visit::<Ours<200>>();
    v.visit::<Ours<1000>>();
    v.visit::<Ours<4000>>();
    v.visit::<StdRw>();
    v.visit::<ParkingLotRw>();
}

/// Every lock once.
pub fn visit_all(v: &mut impl LockVisitor) {
    v.visit::<Ours>();
    v.visit::<Ours<0>>();
    v.visit::<StdRw>();
    v.visit::<ParkingLotRw>();
    v.visit::<Sharded>();
    v.visit::<GroupMutex>();
}

/// Real work: `units` rounds of a xorshift generator, a dependent chain the
/// compiler can neither fold nor vectorise. About one nanosecond a unit;
/// [`Work::ns`] calibrates it.
#[inline]
pub fn work(units: u32) -> u64 {
    let mut x = black_box(0x9E37_79B9_7F4A_7C15u64);
    for _ in 0..black_box(units) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}

/// An amount of [`work`], chosen by its duration on this machine.
#[derive(Clone, Copy, Debug)]
pub struct Work {
    /// The nominal duration, for labels.
    pub nominal_ns: u32,
    /// Work units that take about `nominal_ns` here.
    pub units: u32,
}

impl Work {
    /// Work that takes about `ns` nanoseconds on this machine (0: none).
    pub fn ns(ns: u32) -> Work {
        let per_unit = ns_per_unit();
        Work { nominal_ns: ns, units: (f64::from(ns) / per_unit).round() as u32 }
    }

    /// Does the work.
    #[inline]
    pub fn run(self) -> u64 {
        if self.units == 0 { 0 } else { work(self.units) }
    }

    /// A label: `0ns`, `100ns`, `1us`.
    pub fn label(self) -> String {
        match self.nominal_ns {
            n if n >= 1000 && n % 1000 == 0 => format!("{}us", n / 1000),
            n => format!("{n}ns"),
        }
    }
}

/// Nanoseconds per unit of [`work`], measured once per process (the fastest
/// of several runs of 100 000 units, so that a preemption does not inflate
/// it).
pub fn ns_per_unit() -> f64 {
    static CAL: OnceLock<f64> = OnceLock::new();
    *CAL.get_or_init(|| {
        const UNITS: u32 = 100_000;
        (0..15)
            .map(|_| {
                let t = Instant::now();
                work(UNITS);
                t.elapsed().as_secs_f64() * 1e9 / f64::from(UNITS)
            })
            .fold(f64::INFINITY, f64::min)
    })
}

/// A small, fast per-thread random source (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number in `0..100`.
    #[inline]
    pub fn percent(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % 100) as u32
    }
}

/// A workload mix: the percentage of read, intent and write requests. Each
/// request draws its class independently.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    /// A short label, used in benchmark ids.
    pub name: &'static str,
    /// Percent of read, intent and write requests (sums to 100).
    pub pct: [u32; 3],
}

impl Mix {
    /// Draws the class of the next request.
    #[inline]
    pub fn pick(&self, rng: &mut Rng) -> Class {
        if self.pct[0] == 100 {
            return Class::Read;
        }
        if self.pct[1] == 100 {
            return Class::Intent;
        }
        let p = rng.percent();
        if p < self.pct[0] {
            Class::Read
        } else if p < self.pct[0] + self.pct[1] {
            Class::Intent
        } else {
            Class::Write
        }
    }

    /// Whether the mix has intent requests (then the two-class lock set runs
    /// it; otherwise the plain rwlock set).
    pub fn has_intent(&self) -> bool {
        self.pct[1] != 0
    }
}

/// The mixes the `contended` benchmark runs. Labels are read/intent/write
/// percentages.
pub const MIXES: [Mix; 6] = [
    Mix { name: "read-only", pct: [100, 0, 0] },
    Mix { name: "rw-90-0-10", pct: [90, 0, 10] },
    Mix { name: "intent-only", pct: [0, 100, 0] },
    Mix { name: "ri-50-50-0", pct: [50, 50, 0] },
    Mix { name: "riw-45-45-10", pct: [45, 45, 10] },
    Mix { name: "ri-90-10-0", pct: [90, 10, 0] },
];

/// Runs `body(i)` on `threads` new threads, `i` in `0..threads`, all
/// released together by a barrier, and `main` on the calling thread once
/// they are released. Returns the time from the first thread's start to the
/// last thread's end, and what each thread returned, in order.
///
/// Each thread reads the clock itself, right after the barrier and right
/// after `body`: on an oversubscribed machine the calling thread may not run
/// again for milliseconds after the release, so a clock read there could
/// start after the work is done.
pub fn run_threads<T: Send>(
    threads: usize,
    body: impl Fn(usize) -> T + Sync,
    main: impl FnOnce(),
) -> (Duration, Vec<T>) {
    let barrier = Barrier::new(threads + 1);
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (body, barrier) = (&body, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let out = body(i);
                    (start, Instant::now(), out)
                })
            })
            .collect();
        barrier.wait();
        main();
        let mut span: Option<(Instant, Instant)> = None;
        let mut outs = Vec::with_capacity(threads);
        for h in handles {
            let (start, end, out) = h.join().expect("a worker panicked");
            span = Some(span.map_or((start, end), |(s, e)| (s.min(start), e.max(end))));
            outs.push(out);
        }
        (span.map_or(Duration::ZERO, |(s, e)| e - s), outs)
    })
}

/// One contended benchmark thread: `ops` requests drawn from `mix`, each
/// holding the lock for `inside` and then doing `outside` before the next.
#[inline]
pub fn contended_ops<L: Comparator>(lock: &L, mix: &Mix, inside: Work, outside: Work, ops: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    for _ in 0..ops {
        let class = mix.pick(&mut rng);
        lock.with(class, || inside.run());
        outside.run();
    }
}

/// The median of `v` (not empty): the middle value after sorting, the upper
/// one of the two middles for an even count.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `true` when quick mode is asked for: the environment variable
/// `PHASE_LOCK_BENCH_QUICK` is set to anything but `0` or empty. Benchmarks
/// and the report then run a reduced matrix for a CI smoke run.
pub fn quick() -> bool {
    std::env::var("PHASE_LOCK_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Where reports and pictures go: `target/phase-lock-report/` under the
/// workspace root, whatever `CARGO_TARGET_DIR` says. Created if missing.
pub fn report_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join("phase-lock-report");
    std::fs::create_dir_all(&dir).expect("cannot create target/phase-lock-report");
    dir
}

/// Samples (iterations, elapsed) per benchmark id, in call order.
static SAMPLES: Mutex<BTreeMap<String, Vec<(u64, Duration)>>> = Mutex::new(BTreeMap::new());

/// Records one `iter_custom` call of benchmark `id`.
pub fn record(id: &str, iters: u64, elapsed: Duration) {
    SAMPLES.lock().unwrap_or_else(PoisonError::into_inner).entry(id.to_owned()).or_default().push((iters, elapsed));
}

/// Nanoseconds per iteration of benchmark `id`: total time over total
/// iterations of its last `samples` calls (criterion's measurement samples,
/// which follow its warm-up calls). `None` if the benchmark did not run.
pub fn estimate_ns(id: &str, samples: usize) -> Option<f64> {
    let map = SAMPLES.lock().unwrap_or_else(PoisonError::into_inner);
    let v = map.get(id)?;
    let tail = &v[v.len().saturating_sub(samples)..];
    let iters: u64 = tail.iter().map(|s| s.0).sum();
    let time: Duration = tail.iter().map(|s| s.1).sum();
    (iters != 0).then(|| time.as_secs_f64() * 1e9 / iters as f64)
}

/// The commit the working tree is at, for report headers (`unknown` outside
/// git), with `+dirty` appended when the lock's sources (`src/`, `Cargo.toml`)
/// differ from it: the numbers then describe the working tree. When measuring
/// an exported tree (`git archive`), which has no `.git`, set
/// `PHASE_LOCK_COMMIT` to the commit it was exported from.
pub fn git_commit() -> String {
    if let Ok(c) = std::env::var("PHASE_LOCK_COMMIT") {
        return c;
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        None => "unknown".to_owned(),
        Some(head) => match git(&["--no-optional-locks", "status", "--porcelain", "--", "src", "Cargo.toml"]) {
            Some(s) if !s.is_empty() => format!("{head}+dirty"),
            _ => head,
        },
    }
}

/// A one-line description of this machine: CPU model and core count.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores available")
}
