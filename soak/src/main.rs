//! The soak: every lock of the crate and the page-table model, run for
//! minutes, with exclusion, progress and invariant checks.
//!
//! ```sh
//! cargo run --release -p phase-lock-soak                 # 10 minutes
//! cargo run --release -p phase-lock-soak -- --minutes 60
//! cargo run --release -p phase-lock-soak -- --seconds 20 --seed 7
//! ```
//!
//! It runs in rounds of up to 10 s. In each round:
//!
//! * **Locks**: the default lock, the strict lock, patient locks of 10 µs,
//!   200 µs and 4 ms, and the default lock without bias, four threads each,
//!   making random acquisitions of every kind (blocking, try, timed,
//!   downgrades: `phase_lock_soak::mixed_op`), handing write, intent and
//!   read guards to another thread that drops them, and panicking inside
//!   guards (caught; the lock must stay usable). A seventh lock is rebuilt
//!   in place, at the same address, between acquisitions.
//! * **Page tables**: one address space per strategy, two threads each
//!   running every operation (faults, DONTNEED, mprotect, munmap and mmap,
//!   mremap away and back, GUP, GUP-fast, semi-locked walks, collapse, file
//!   faults and punch-holes).
//!
//! Checked: no lock ever lets in a holder it excludes (a checker beside
//! it), no write is lost, every lock is free at the end of the round; every
//! thread completes an operation at least every 30 s (else the soak stops
//! and names it); semi-locked walks see no change under the strategies that
//! promise it; and at the end of each round every address space passes
//! `Mm::check_invariants` with no table left deferred. Any failure panics,
//! so the process exits non-zero; the summary is printed at the end.

use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use phase_lock::{DEFAULT_PATIENCE_US, PatientLock, PhaseLock, RwLockIntentExt};
use phase_lock_mm::{Backing, File, FrameAllocator, Mm, MmError, PAGE_SIZE, Prot, Strategy};
use phase_lock_soak::{Holders, OPS, Rng, mixed_op, work};

/// The longest round: every round ends with the checks that need rest.
const ROUND: Duration = Duration::from_secs(10);
/// The longest a thread may go without completing an operation.
const STALL: Duration = Duration::from_secs(30);
/// Threads per lock.
const WORKERS: usize = 4;
/// The payload of the panics the soak causes on purpose.
const PLANNED: &str = "soak: a planned panic inside a guard";

struct Config {
    duration: Duration,
    seed: u64,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut cfg = Config { duration: Duration::from_secs(600), seed: 1 };
    while let Some(flag) = args.next() {
        let mut value = |what: &str| -> Result<u64, String> {
            let v = args.next().ok_or_else(|| format!("{flag} needs {what}"))?;
            v.parse().map_err(|_| format!("{flag}: `{v}` is not {what}"))
        };
        match flag.as_str() {
            "--minutes" => cfg.duration = Duration::from_secs(value("a number of minutes")?.saturating_mul(60)),
            "--seconds" => cfg.duration = Duration::from_secs(value("a number of seconds")?),
            "--seed" => cfg.seed = value("a number")?,
            "--help" | "-h" => return Err(String::new()),
            _ => return Err(format!("unknown argument `{flag}`")),
        }
    }
    if cfg.duration.is_zero() {
        return Err("the soak needs a duration of at least one second".into());
    }
    Ok(cfg)
}

/// What one lock's threads did.
struct LockTally {
    ops: [AtomicU64; OPS],
    acquired: AtomicU64,
    sent: AtomicU64,
    panics: AtomicU64,
    rebuilds: AtomicU64,
    /// The fewest steps one worker made in one round.
    min_per_thread: AtomicU64,
}

impl Default for LockTally {
    fn default() -> Self {
        LockTally {
            ops: Default::default(),
            acquired: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            rebuilds: AtomicU64::new(0),
            min_per_thread: AtomicU64::new(u64::MAX),
        }
    }
}

/// A guard whose holder count the checker drops just before the guard
/// releases the lock (so that the next holder never sees a stale count).
struct Tracked<'a, G> {
    guard: Option<G>,
    count: &'a AtomicI64,
}

impl<G> Drop for Tracked<'_, G> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, SeqCst);
        drop(self.guard.take());
    }
}

/// A guard on its way to the thread that drops it.
type Sent<'a> = Box<dyn Send + 'a>;

/// A lock under soak with its checker and its count of writes.
struct Subject<const P: u32, const B: bool> {
    name: &'static str,
    lock: PatientLock<u64, P, B>,
    holders: Holders,
    writes: AtomicU64,
    tally: LockTally,
}

impl<const P: u32, const B: bool> Subject<P, B> {
    fn new(name: &'static str) -> Self {
        Subject {
            name,
            lock: PatientLock::new(0),
            holders: Holders::default(),
            writes: AtomicU64::new(0),
            tally: LockTally::default(),
        }
    }

    /// One step of a worker: mostly `mixed_op`; now and then a guard handed
    /// to the dropper, or a panic inside a guard.
    fn step<'a>(&'a self, rng: &mut Rng, to_dropper: &mpsc::Sender<Sent<'a>>) {
        let h = &self.holders;
        match rng.below(24) {
            0 => {
                let mut g = self.lock.write();
                h.enter(&h.write, "write, sent away");
                *g += 1;
                self.writes.fetch_add(1, SeqCst);
                to_dropper.send(Box::new(Tracked { guard: Some(g), count: &h.write })).expect("the dropper lives");
                self.tally.sent.fetch_add(1, Relaxed);
            }
            1 => {
                let g = self.lock.intent();
                h.enter(&h.intent, "intent, sent away");
                to_dropper.send(Box::new(Tracked { guard: Some(g), count: &h.intent })).expect("the dropper lives");
                self.tally.sent.fetch_add(1, Relaxed);
            }
            2 => {
                let g = self.lock.read();
                h.enter(&h.read, "read, sent away");
                to_dropper.send(Box::new(Tracked { guard: Some(g), count: &h.read })).expect("the dropper lives");
                self.tally.sent.fetch_add(1, Relaxed);
            }
            3 => {
                let kind = rng.below(3);
                let r = panic::catch_unwind(AssertUnwindSafe(|| match kind {
                    0 => {
                        let mut g = self.lock.write();
                        h.enter(&h.write, "write, then a panic");
                        *g += 1;
                        self.writes.fetch_add(1, SeqCst);
                        let _t = Tracked { guard: Some(g), count: &h.write };
                        panic::panic_any(PLANNED);
                    }
                    1 => {
                        let g = self.lock.intent();
                        h.enter(&h.intent, "intent, then a panic");
                        let _t = Tracked { guard: Some(g), count: &h.intent };
                        panic::panic_any(PLANNED);
                    }
                    _ => {
                        let g = self.lock.read();
                        h.enter(&h.read, "read, then a panic");
                        let _t = Tracked { guard: Some(g), count: &h.read };
                        panic::panic_any(PLANNED);
                    }
                }));
                assert!(r.is_err(), "the planned panic did not happen");
                self.tally.panics.fetch_add(1, Relaxed);
            }
            _ => {
                let (op, got) = mixed_op(&self.lock, h, &self.writes, rng);
                self.tally.ops[op].fetch_add(1, Relaxed);
                self.tally.acquired.fetch_add(u64::from(got), Relaxed);
            }
        }
    }

    /// The checks at rest, after a round.
    fn check(&self) {
        assert!(!self.lock.is_locked(), "{}: still held after the round", self.name);
        assert_eq!(*self.lock.read(), self.writes.load(SeqCst), "{}: a write was lost", self.name);
        assert!(self.lock.try_write().is_some(), "{}: a waiting flag outlived its waiters", self.name);
    }
}

/// The default lock, rebuilt in place (dropped and constructed again at
/// the same address) between acquisitions, under a gate that the workers
/// hold for read while they use it.
struct Rebuilt {
    gate: std::sync::RwLock<()>,
    lock: UnsafeCell<PhaseLock<u64>>,
    holders: Holders,
    writes: AtomicU64,
    tally: LockTally,
}

// SAFETY: `lock` is used shared only under `gate` for read, and replaced
// only under `gate` for write; `PhaseLock<u64>` is `Sync`.
unsafe impl Sync for Rebuilt {}

impl Rebuilt {
    fn step(&self, rng: &mut Rng) {
        let _g = self.gate.read().expect("no panic holds the gate");
        // SAFETY: the gate is held for read: nobody replaces the lock.
        let lock = unsafe { &*self.lock.get() };
        let (op, got) = mixed_op(lock, &self.holders, &self.writes, rng);
        self.tally.ops[op].fetch_add(1, Relaxed);
        self.tally.acquired.fetch_add(u64::from(got), Relaxed);
    }

    fn rebuild(&self) {
        let _g = self.gate.write().expect("no panic holds the gate");
        // SAFETY: the gate is held for write: no other reference exists.
        let lock = unsafe { &mut *self.lock.get() };
        assert!(!lock.is_locked(), "rebuilt: held while nobody uses it");
        let value = *lock.get_mut();
        *lock = PhaseLock::new(value);
        self.tally.rebuilds.fetch_add(1, Relaxed);
    }

    fn check(&self) {
        let _g = self.gate.write().expect("no panic holds the gate");
        // SAFETY: the gate is held for write.
        let lock = unsafe { &mut *self.lock.get() };
        assert!(!lock.is_locked(), "rebuilt: still held after the round");
        assert_eq!(*lock.get_mut(), self.writes.load(SeqCst), "rebuilt: a write was lost across rebuilds");
    }
}

/// Progress counters of every thread of a round, watched for stalls.
struct Progress {
    names: Vec<String>,
    done: Vec<AtomicU64>,
}

impl Progress {
    fn new(names: Vec<String>) -> Self {
        let done = names.iter().map(|_| AtomicU64::new(0)).collect();
        Progress { names, done }
    }

    /// Watches until `stop`: panics naming the first thread that completed
    /// nothing for [`STALL`].
    fn watch(&self, stop: &AtomicBool) {
        let mut last: Vec<(u64, Instant)> = self.done.iter().map(|d| (d.load(Relaxed), Instant::now())).collect();
        while !stop.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
            for (i, d) in self.done.iter().enumerate() {
                let now = d.load(Relaxed);
                if now != last[i].0 {
                    last[i] = (now, Instant::now());
                } else if last[i].1.elapsed() > STALL && !stop.load(SeqCst) {
                    panic!("no progress: `{}` completed nothing for {STALL:?} (after {now} operations)", self.names[i]);
                }
            }
        }
    }
}

/// One page-table thread's private region (8 MiB mapped, 8 MiB spare for
/// moves), and the file region both threads of an address space share.
const REGION: u64 = 0x10_0000_0000;
const REGION_PAGES: u64 = 2048;
const FILE_AT: u64 = 0x20_0000_0000;
const FILE_PAGES: u64 = 1024;

/// The errors an operation may meet in the soak's random mix.
fn expected(e: MmError) -> bool {
    matches!(
        e,
        MmError::NotMapped { .. }
            | MmError::ReadOnly { .. }
            | MmError::MultipleVmas { .. }
            | MmError::NotPopulated { .. }
            | MmError::Busy { .. }
            | MmError::Overlap { .. }
    )
}

fn ok_or_expected<T>(r: Result<T, MmError>, what: &str) {
    if let Err(e) = r {
        assert!(expected(e), "{what}: unexpected {e}");
    }
}

/// One random page-table operation by thread `t` of `mm`.
fn mm_step(mm: &Mm, file: &std::sync::Arc<File>, t: u64, rng: &mut Rng) {
    let base = REGION + t * 4 * REGION_PAGES * PAGE_SIZE;
    let p = rng.below(REGION_PAGES - 1);
    let n = 1 + rng.below(64).min(REGION_PAGES - p - 1);
    let (addr, len) = (base + p * PAGE_SIZE, n * PAGE_SIZE);
    match rng.below(14) {
        0..=3 => ok_or_expected(mm.fault(addr, rng.below(2) == 0), "fault"),
        4 => ok_or_expected(mm.madvise_dontneed(addr, len), "DONTNEED"),
        5 => {
            let prot = if rng.below(3) == 0 { Prot::Read } else { Prot::ReadWrite };
            ok_or_expected(mm.mprotect(addr, len, prot), "mprotect");
        }
        6 => {
            mm.munmap(addr, len).expect("munmap");
            mm.mmap(addr, len, Prot::ReadWrite, Backing::Anon).expect("mmap where munmap made room");
        }
        7 => {
            let spare = base + (REGION_PAGES + p) * PAGE_SIZE;
            match mm.mremap(addr, len, spare) {
                Ok(()) => mm.mremap(spare, len, addr).expect("mremap back"),
                Err(e) => assert!(expected(e), "mremap: unexpected {e}"),
            }
        }
        8 => ok_or_expected(mm.gup(addr, len, false), "GUP"),
        9 => drop(mm.gup_fast(addr, len, rng.below(2) == 0).expect("GUP-fast of a valid range")),
        10 => {
            let g = mm.semi_locked();
            let a = g.frames(FILE_AT, FILE_PAGES * PAGE_SIZE).expect("the file region is mapped");
            let b = g.frames(FILE_AT, FILE_PAGES * PAGE_SIZE).expect("the file region is mapped");
            assert!(
                a == b || !mm.strategy().semi_locked_walks_are_stable(),
                "{}: a semi-locked walk saw a change",
                mm.strategy()
            );
        }
        11 => ok_or_expected(mm.collapse(base + (p & !511) * PAGE_SIZE), "collapse"),
        12 => {
            let q = rng.below(FILE_PAGES);
            ok_or_expected(mm.fault(FILE_AT + q * PAGE_SIZE, false), "file fault");
        }
        _ => {
            let q = rng.below(FILE_PAGES - 16);
            file.punch_hole(q * PAGE_SIZE, (1 + rng.below(16)) * PAGE_SIZE).expect("punch-hole");
        }
    }
}

/// The page-table model's address spaces, kept across rounds.
struct Spaces {
    frames: std::sync::Arc<FrameAllocator>,
    file: std::sync::Arc<File>,
    mms: Vec<Mm>,
    ops: Vec<AtomicU64>,
}

impl Spaces {
    fn new() -> Self {
        let frames = FrameAllocator::new();
        let file = File::new(&frames);
        let mms: Vec<Mm> = Strategy::ALL
            .into_iter()
            .map(|s| {
                let mm = Mm::new(s, &frames);
                for t in 0..2 {
                    let base = REGION + t * 4 * REGION_PAGES * PAGE_SIZE;
                    mm.mmap(base, REGION_PAGES * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).expect("fresh region");
                }
                let backing = Backing::File { file: file.clone(), pgoff: 0 };
                mm.mmap(FILE_AT, FILE_PAGES * PAGE_SIZE, Prot::Read, backing).expect("fresh region");
                mm
            })
            .collect();
        let ops = mms.iter().map(|_| AtomicU64::new(0)).collect();
        Spaces { frames, file, mms, ops }
    }

    fn check(&self) {
        for mm in &self.mms {
            if let Err(e) = mm.check_invariants() {
                panic!("{}: the page-table invariants failed: {e}", mm.strategy());
            }
            let st = mm.stats();
            assert_eq!(st.deferred_tables, 0, "{}: tables still deferred at rest", mm.strategy());
            // DEFERRED_CAP's bound, with room for the tables that the
            // twelve threads that may unlink in one address space (its two,
            // and the punch-holes of all ten) have on their way.
            let bound = 2 * (phase_lock_mm::DEFERRED_CAP + 12 * 2);
            assert!(
                st.peak_deferred_tables <= bound,
                "{}: {} tables deferred at once",
                mm.strategy(),
                st.peak_deferred_tables
            );
        }
    }
}

fn main() {
    let cfg = match parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("soak: {msg}");
            }
            eprintln!("usage: soak [--minutes N | --seconds N] [--seed S]   (default: 10 minutes, seed 1)");
            std::process::exit(2);
        }
    };
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&PLANNED) {
            default_hook(info);
        }
    }));

    let default = Subject::<DEFAULT_PATIENCE_US, true>::new("default (1 ms)");
    let strict = Subject::<0, true>::new("strict");
    let p10 = Subject::<10, true>::new("patience 10 µs");
    let p200 = Subject::<200, true>::new("patience 200 µs");
    let p4000 = Subject::<4000, true>::new("patience 4 ms");
    let unbiased = Subject::<DEFAULT_PATIENCE_US, false>::new("unbiased");
    let rebuilt = Rebuilt {
        gate: std::sync::RwLock::new(()),
        lock: UnsafeCell::new(PhaseLock::new(0)),
        holders: Holders::default(),
        writes: AtomicU64::new(0),
        tally: LockTally::default(),
    };
    let spaces = Spaces::new();

    let start = Instant::now();
    let mut rounds = 0u64;
    let mut seed = cfg.seed;
    while start.elapsed() < cfg.duration {
        let this_round = ROUND.min(cfg.duration.saturating_sub(start.elapsed()));
        rounds += 1;
        run_round(this_round, &mut seed, [&default, &strict, &p10, &p200, &p4000], &unbiased, &rebuilt, &spaces);
        for s in [&default as &dyn Checked, &strict, &p10, &p200, &p4000, &unbiased] {
            s.check_now();
        }
        rebuilt.check();
        spaces.check();
    }

    println!(
        "soak: {rounds} rounds in {:.0} s (seed {}), every check passed\n",
        start.elapsed().as_secs_f64(),
        cfg.seed
    );
    println!(
        "| lock | acquisitions tried | got | guards sent away | panics inside guards | rebuilds | fewest per thread in a round |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let tallies: [(&str, &LockTally); 7] = [
        (default.name, &default.tally),
        (strict.name, &strict.tally),
        (p10.name, &p10.tally),
        (p200.name, &p200.tally),
        (p4000.name, &p4000.tally),
        (unbiased.name, &unbiased.tally),
        ("rebuilt in place", &rebuilt.tally),
    ];
    for (name, t) in tallies {
        let tried: u64 = t.ops.iter().map(|o| o.load(Relaxed)).sum();
        println!(
            "| {name} | {tried} | {} | {} | {} | {} | {} |",
            t.acquired.load(Relaxed),
            t.sent.load(Relaxed),
            t.panics.load(Relaxed),
            t.rebuilds.load(Relaxed),
            t.min_per_thread.load(Relaxed)
        );
    }
    println!("\n| strategy | page-table operations | invariant checks passed |");
    println!("|---|---:|---:|");
    for (mm, ops) in spaces.mms.iter().zip(&spaces.ops) {
        println!("| {} | {} | {rounds} |", mm.strategy(), ops.load(Relaxed));
    }
    println!("\nframes in use at the end: {}", spaces.frames.in_use());
}

/// A subject's at-rest checks, whatever its lock's parameters.
trait Checked: Sync {
    fn check_now(&self);
}

impl<const P: u32, const B: bool> Checked for Subject<P, B> {
    fn check_now(&self) {
        self.check();
    }
}

/// A subject's step, whatever its lock's parameters.
trait Stepped: Sync {
    fn name(&self) -> &'static str;
    fn tally(&self) -> &LockTally;
    fn step_with<'a>(&'a self, rng: &mut Rng, to_dropper: &mpsc::Sender<Sent<'a>>);
}

impl<const P: u32, const B: bool> Stepped for Subject<P, B> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn tally(&self) -> &LockTally {
        &self.tally
    }
    fn step_with<'a>(&'a self, rng: &mut Rng, to_dropper: &mpsc::Sender<Sent<'a>>) {
        self.step(rng, to_dropper);
    }
}

/// One round: every thread runs until `length` has passed, under the
/// progress watch; then all are joined.
fn run_round(
    length: Duration,
    seed: &mut u64,
    subjects: [&dyn Stepped; 5],
    unbiased: &dyn Stepped,
    rebuilt: &Rebuilt,
    spaces: &Spaces,
) {
    let stop = AtomicBool::new(false);
    let locks: Vec<&dyn Stepped> = subjects.into_iter().chain([unbiased]).collect();
    let mut names = Vec::new();
    for s in &locks {
        for w in 0..WORKERS {
            names.push(format!("{} worker {w}", s.name()));
        }
    }
    for w in 0..WORKERS {
        names.push(format!("rebuilt worker {w}"));
    }
    for mm in &spaces.mms {
        for t in 0..2 {
            names.push(format!("{} thread {t}", mm.strategy()));
        }
    }
    let progress = Progress::new(names);
    let started = Instant::now();
    std::thread::scope(|sc| {
        let mut slot = 0;
        let mut per_thread = Vec::new();
        for s in &locks {
            let (tx, rx) = mpsc::channel::<Sent<'_>>();
            sc.spawn(move || {
                for g in rx {
                    work(20);
                    drop(g);
                }
            });
            for _ in 0..WORKERS {
                *seed += 1;
                let (mut rng, tx, stop, done) = (Rng::new(*seed), tx.clone(), &stop, &progress.done[slot]);
                let s = *s;
                per_thread.push((
                    s,
                    sc.spawn(move || {
                        while !stop.load(Relaxed) {
                            s.step_with(&mut rng, &tx);
                            done.fetch_add(1, Relaxed);
                        }
                        done.load(Relaxed)
                    }),
                ));
                slot += 1;
            }
        }
        let mut rebuilt_workers = Vec::new();
        for _ in 0..WORKERS {
            *seed += 1;
            let (mut rng, stop, done) = (Rng::new(*seed), &stop, &progress.done[slot]);
            rebuilt_workers.push(sc.spawn(move || {
                while !stop.load(Relaxed) {
                    rebuilt.step(&mut rng);
                    done.fetch_add(1, Relaxed);
                }
                done.load(Relaxed)
            }));
            slot += 1;
        }
        sc.spawn(|| {
            while !stop.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(2));
                rebuilt.rebuild();
            }
        });
        for (i, mm) in spaces.mms.iter().enumerate() {
            for t in 0..2u64 {
                *seed += 1;
                let (mut rng, stop, done, ops) = (Rng::new(*seed), &stop, &progress.done[slot], &spaces.ops[i]);
                let file = &spaces.file;
                sc.spawn(move || {
                    while !stop.load(Relaxed) {
                        mm_step(mm, file, t, &mut rng);
                        done.fetch_add(1, Relaxed);
                        ops.fetch_add(1, Relaxed);
                    }
                });
                slot += 1;
            }
        }
        let watcher = sc.spawn(|| progress.watch(&stop));
        while started.elapsed() < length && !watcher.is_finished() {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, SeqCst);
        for (s, h) in per_thread {
            let n = h.join().expect("a lock worker panicked");
            s.tally().min_per_thread.fetch_min(n, Relaxed);
        }
        for h in rebuilt_workers {
            let n = h.join().expect("a worker of the rebuilt lock panicked");
            rebuilt.tally.min_per_thread.fetch_min(n, Relaxed);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> impl Iterator<Item = String> {
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn the_command_line_is_parsed_and_bad_input_is_an_error() {
        let c = parse(args(&[])).unwrap();
        assert_eq!((c.duration, c.seed), (Duration::from_secs(600), 1));
        let c = parse(args(&["--minutes", "2", "--seed", "9"])).unwrap();
        assert_eq!((c.duration, c.seed), (Duration::from_secs(120), 9));
        assert_eq!(parse(args(&["--seconds", "20"])).unwrap().duration, Duration::from_secs(20));
        assert!(parse(args(&["--minutes"])).is_err());
        assert!(parse(args(&["--minutes", "ten"])).is_err());
        assert!(parse(args(&["--seconds", "0"])).is_err());
        assert!(parse(args(&["--fast"])).is_err());
    }
}
