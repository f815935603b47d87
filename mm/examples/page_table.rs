//! The page-table workloads of `phase_lock_mm` on every strategy, in one
//! table. Run with
//! `cargo run --release -p phase-lock-mm --example page_table`.
//!
//! * fault storm: 1, 2, 4, 8 threads fault 512 MiB of anonymous memory, each
//!   thread in its own PTE tables (disjoint) or interleaved page by page in
//!   the same tables (shared); nine rounds of the three strategies back to
//!   back (rotating order), reporting the median throughput and the median
//!   of the per-round ratios, so that drifts of machine load cancel.
//! * zap churn: touch 1 GiB, DONTNEED it in 2 MiB chunks (page-table memory
//!   at peak and after), then two threads fault + DONTNEED 2 MiB chunks.
//! * semi-locked walks during faults: two threads fault + DONTNEED while a
//!   third walks 2 MiB ranges twice inside one hold and counts differences.
//! * rmap punch-holes during faults: two address spaces map one file; one
//!   thread each faults it while a third punches 2 MiB holes.
//! * VMA churn during faults: two threads fault + DONTNEED in one VMA while
//!   a third loops mmap + mprotect + munmap of a small VMA elsewhere in the
//!   same address space.
//! * fault storm, VMA per thread: as the disjoint storm, each thread in its
//!   own VMA.
//! * GUP-fast beside zaps: two threads fault + DONTNEED while a third walks
//!   one random page at a time with no lock (`Mm::gup_fast`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use phase_lock_mm::*;

const BASE: u64 = 0x10_0000_0000;
const GIB: u64 = 1 << 30;
const PAGES_1G: u64 = GIB / PAGE_SIZE;
/// Strategies, in `Strategy::ALL`'s order.
const N: usize = Strategy::ALL.len();
/// Column indices.
const CLASSIC: usize = 0;
const REFCOUNT: usize = 1;
const SPLIT: usize = 2;
const PER_VMA: usize = 3;
const SPLIT_PER_VMA: usize = 4;
/// One round of a fault storm: (wall, CPU-time) throughput per strategy.
type Round = [(f64, f64); N];

/// Rounds per fault-storm configuration.
const ROUNDS: usize = 9;

fn mops(ops: u64, d: Duration) -> f64 {
    ops as f64 / d.as_secs_f64() / 1e6
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// How a fault storm's threads share the address space.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One VMA, each thread in its own PTE tables.
    Disjoint,
    /// One VMA, threads interleaved page by page in the same tables.
    Shared,
    /// One VMA per thread.
    VmaPerThread,
}

/// Faults 512 MiB with `threads` threads (`realistic`: every fault also
/// clears a 4 KiB page, `FrameAllocator::zeroing`); returns (Mfaults per second of
/// wall time, Mfaults per second of CPU time used by the faulting threads).
fn fault_storm(s: Strategy, threads: u64, layout: Layout, realistic: bool) -> (f64, f64) {
    let frames = if realistic { FrameAllocator::zeroing() } else { FrameAllocator::new() };
    let mm = Mm::new(s, &frames);
    let per = PAGES_1G / 2 / threads;
    let shared = layout == Layout::Shared;
    if layout == Layout::VmaPerThread {
        // One VMA per thread, a page apart so that they do not merge.
        for t in 0..threads {
            mm.mmap(BASE + t * (per + 1) * PAGE_SIZE, per * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
        }
    } else {
        mm.mmap(BASE, GIB / 2, Prot::ReadWrite, Backing::Anon).unwrap();
    }
    let stride = if layout == Layout::VmaPerThread { per + 1 } else { per };
    let start = Instant::now();
    let cpu: Duration = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let mm = &mm;
                sc.spawn(move || {
                    let c0 = thread_cpu();
                    for i in 0..per {
                        let page = if shared { i * threads + t } else { t * stride + i };
                        mm.fault(BASE + page * PAGE_SIZE, true).unwrap();
                    }
                    thread_cpu() - c0
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let d = start.elapsed();
    let r = (mops(per * threads, d), mops(per * threads, cpu));
    drop(mm);
    r
}

/// Nanoseconds per fault of a page already mapped, one thread, best of
/// three passes over 20,000 pages: the locks' and the lookup's cost alone,
/// with no table or frame allocated.
fn refault_ns(s: Strategy) -> f64 {
    let mm = Mm::new(s, &FrameAllocator::new());
    let pages = 20_000u64;
    mm.mmap(BASE, pages * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    let pass = || {
        let t = Instant::now();
        for p in 0..pages {
            mm.fault(BASE + p * PAGE_SIZE, true).unwrap();
        }
        t.elapsed().as_nanos() as f64 / pages as f64
    };
    pass();
    (0..3).map(|_| pass()).fold(f64::INFINITY, f64::min)
}

struct Churn {
    peak_kb: u64,
    after_kb: u64,
    dontneed_ops: f64,
    churn_ops: f64,
    /// The most page-table memory unlinked and not yet released at once,
    /// over the whole run (faults + DONTNEED).
    peak_deferred_kb: u64,
}

fn zap_churn(s: Strategy) -> Churn {
    let frames = FrameAllocator::new();
    let mm = Mm::new(s, &frames);
    mm.mmap(BASE, GIB, Prot::ReadWrite, Backing::Anon).unwrap();
    for p in 0..PAGES_1G {
        mm.fault(BASE + p * PAGE_SIZE, true).unwrap();
    }
    let peak_kb = mm.stats().page_table_bytes / 1024;
    let start = Instant::now();
    for c in 0..GIB / PMD_SIZE {
        mm.madvise_dontneed(BASE + c * PMD_SIZE, PMD_SIZE).unwrap();
    }
    let dontneed_ops = mops(GIB / PMD_SIZE, start.elapsed());
    let after_kb = mm.stats().page_table_bytes / 1024;
    // Two threads: fault a chunk, DONTNEED it, next chunk.
    let rounds = 64u64;
    let start = Instant::now();
    std::thread::scope(|sc| {
        for t in 0..2u64 {
            let mm = &mm;
            sc.spawn(move || {
                for r in 0..rounds {
                    let chunk = BASE + ((r * 2 + t) % 512) * PMD_SIZE;
                    for p in (0..512).step_by(8) {
                        mm.fault(chunk + p * PAGE_SIZE, true).unwrap();
                    }
                    mm.madvise_dontneed(chunk, PMD_SIZE).unwrap();
                }
            });
        }
    });
    let churn_ops = mops(2 * rounds, start.elapsed()) * 1e3;
    let peak_deferred_kb = mm.stats().peak_deferred_tables * TABLE_BYTES / 1024;
    Churn { peak_kb, after_kb, dontneed_ops: dontneed_ops * 1e3, churn_ops, peak_deferred_kb }
}

/// One of two threads that fault every page of a 2 MiB chunk of the
/// 128 MiB at `BASE` and DONTNEED it, chunk after chunk (thread `t` takes
/// every other one), until `stop`, counting faults. Returns the CPU time
/// it used.
fn fault_and_dontneed(mm: &Mm, t: u64, stop: &AtomicBool, faults: &AtomicU64) -> Duration {
    let c0 = thread_cpu();
    let mut r = t;
    while !stop.load(Ordering::Relaxed) {
        let chunk = BASE + (r % 64) * PMD_SIZE;
        for p in 0..512 {
            mm.fault(chunk + p * PAGE_SIZE, true).unwrap();
        }
        mm.madvise_dontneed(chunk, PMD_SIZE).unwrap();
        faults.fetch_add(512, Ordering::Relaxed);
        r += 2;
    }
    thread_cpu() - c0
}

/// What ran beside the two faulting threads of [`beside_faults`].
struct Beside {
    /// How long it ran.
    wall: Duration,
    /// Faults the two threads made.
    faults: u64,
    /// CPU time of the two faulting threads.
    fault_cpu: Duration,
    /// CPU time of the calling thread, which ran `step`.
    step_cpu: Duration,
}

impl Beside {
    fn faults_per_s(&self) -> f64 {
        mops(self.faults, self.wall)
    }
}

/// Maps 128 MiB at `BASE`, then runs `step` on this thread for 1.5 s while
/// two threads fault + DONTNEED 2 MiB chunks of it (`fault_and_dontneed`).
fn beside_faults(mm: &Mm, mut step: impl FnMut()) -> Beside {
    mm.mmap(BASE, 64 * PMD_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    let stop = AtomicBool::new(false);
    let faults = AtomicU64::new(0);
    let start = Instant::now();
    let (fault_cpu, step_cpu) = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..2u64)
            .map(|t| {
                let (stop, faults) = (&stop, &faults);
                sc.spawn(move || fault_and_dontneed(mm, t, stop, faults))
            })
            .collect();
        let c0 = thread_cpu();
        while start.elapsed() < Duration::from_millis(1500) {
            step();
        }
        let step_cpu = thread_cpu() - c0;
        stop.store(true, Ordering::Relaxed);
        (hs.into_iter().map(|h| h.join().unwrap()).sum::<Duration>(), step_cpu)
    });
    Beside { wall: start.elapsed(), faults: faults.load(Ordering::Relaxed), fault_cpu, step_cpu }
}

/// Returns (faults Mops/s, walks k/s, walks that saw a change, walks, the
/// most page-table kB deferred at once).
fn walks_during_faults(s: Strategy) -> (f64, f64, u64, u64, u64) {
    let frames = FrameAllocator::new();
    let mm = Mm::new(s, &frames);
    let (mut walks, mut changed) = (0u64, 0u64);
    let mut x = 1u64;
    let run = beside_faults(&mm, || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let chunk = BASE + ((x >> 33) % 64) * PMD_SIZE;
        let g = mm.semi_locked();
        let a = g.frames(chunk, PMD_SIZE).unwrap();
        std::thread::yield_now();
        let b = g.frames(chunk, PMD_SIZE).unwrap();
        drop(g);
        walks += 1;
        changed += u64::from(a != b);
    });
    let peak_deferred_kb = mm.stats().peak_deferred_tables * TABLE_BYTES / 1024;
    (run.faults_per_s(), walks as f64 / run.wall.as_secs_f64() / 1e3, changed, walks, peak_deferred_kb)
}

/// Lockless GUP-fast walks of one page, M/s, while two threads fault +
/// DONTNEED 2 MiB chunks of the same 128 MiB (freeing their tables where
/// the strategy does).
fn gup_fast_beside_zaps(s: Strategy) -> f64 {
    let frames = FrameAllocator::new();
    let mm = Mm::new(s, &frames);
    let mut walks = 0u64;
    let mut x = 1u64;
    let run = beside_faults(&mm, || {
        for _ in 0..256 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let page = (x >> 33) % (64 * 512);
            std::hint::black_box(mm.gup_fast(BASE + page * PAGE_SIZE, PAGE_SIZE, true).unwrap());
        }
        walks += 256;
    });
    mops(walks, run.wall)
}

/// What `faults_beside_vma_churn` measures.
#[derive(Clone, Copy)]
struct VmaChurn {
    /// Faults, M/s.
    faults: f64,
    /// Churn rounds (mmap + fault + mprotect + munmap), k/s.
    churns: f64,
    /// Faults per CPU-second of the two faulting threads, M.
    faults_per_cpu: f64,
    /// The churning thread's CPU time over the wall time.
    churn_cpu_share: f64,
}

/// Two threads fault + DONTNEED 2 MiB chunks of one VMA while a third maps,
/// write-protects half of and unmaps a 64 KiB VMA elsewhere in the same
/// address space.
fn faults_beside_vma_churn(s: Strategy) -> VmaChurn {
    let frames = FrameAllocator::new();
    let mm = Mm::new(s, &frames);
    let far = BASE + 4 * GIB;
    let mut churns = 0u64;
    let run = beside_faults(&mm, || {
        mm.mmap(far, 16 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
        mm.fault(far, true).unwrap();
        mm.mprotect(far, 8 * PAGE_SIZE, Prot::Read).unwrap();
        mm.munmap(far, 16 * PAGE_SIZE).unwrap();
        churns += 1;
    });
    VmaChurn {
        faults: run.faults_per_s(),
        churns: churns as f64 / run.wall.as_secs_f64() / 1e3,
        faults_per_cpu: mops(run.faults, run.fault_cpu),
        churn_cpu_share: run.step_cpu.as_secs_f64() / run.wall.as_secs_f64(),
    }
}

/// Returns (faults Mops/s, punches k/s, page-table kB at the end).
fn punch_during_faults(s: Strategy) -> (f64, f64, u64) {
    let frames = FrameAllocator::new();
    let file = File::new(&frames);
    let mms = [Mm::new(s, &frames), Mm::new(s, &frames)];
    let len = 64 * PMD_SIZE;
    for mm in &mms {
        mm.mmap(BASE, len, Prot::ReadWrite, Backing::File { file: file.clone(), pgoff: 0 }).unwrap();
    }
    let stop = AtomicBool::new(false);
    let faults = AtomicU64::new(0);
    let mut punches = 0u64;
    let start = Instant::now();
    std::thread::scope(|sc| {
        for mm in &mms {
            let (stop, faults) = (&stop, &faults);
            sc.spawn(move || {
                let mut r = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let chunk = BASE + (r % 64) * PMD_SIZE;
                    for p in (0..512).step_by(4) {
                        mm.fault(chunk + p * PAGE_SIZE, false).unwrap();
                    }
                    faults.fetch_add(128, Ordering::Relaxed);
                    r += 1;
                }
            });
        }
        let mut x = 7u64;
        while start.elapsed() < Duration::from_millis(1500) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            file.punch_hole(((x >> 33) % 64) * PMD_SIZE, PMD_SIZE).unwrap();
            punches += 1;
        }
        stop.store(true, Ordering::Relaxed);
    });
    let d = start.elapsed();
    file.punch_hole(0, len).unwrap();
    let kb = mms.iter().map(|m| m.stats().page_table_bytes).sum::<u64>() / 1024;
    (mops(faults.load(Ordering::Relaxed), d), punches as f64 / d.as_secs_f64() / 1e3, kb)
}

/// The ratio columns (numerator, denominator): split ÷ classic, ÷
/// refcount, ÷ per-vma; split-per-vma ÷ per-vma, ÷ split.
const RATIOS: [(&str, usize, usize); R] = [
    ("s/c", SPLIT, CLASSIC),
    ("s/r", SPLIT, REFCOUNT),
    ("s/pv", SPLIT, PER_VMA),
    ("sv/pv", SPLIT_PER_VMA, PER_VMA),
    ("sv/s", SPLIT_PER_VMA, SPLIT),
];
const R: usize = 5;
/// Index of sv/pv in `RATIOS`.
const SV_PV: usize = 3;

fn row(name: &str, v: [f64; N], prec: usize) {
    row_r(name, v, RATIOS.map(|(_, n, d)| v[n] / v[d]), prec);
}

fn row_r(name: &str, v: [f64; N], r: [f64; R], prec: usize) {
    let mut line = format!("| {name:<50} |");
    for x in v {
        line += &format!(" {x:>9.prec$} |");
    }
    for x in r {
        line += &format!(" {x:>8.2} |");
    }
    println!("{line}");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A fault storm's rows (M/s, M/CPU-s): medians over `ROUNDS` rounds of
/// every strategy back to back in rotating order, so that the per-round
/// ratios cancel slow drifts of machine load. Returns the M/CPU-s medians,
/// the median split ÷ classic ratio of M/s, and the M/CPU-s ratio columns.
fn storm_rows(threads: u64, layout: Layout, label: &str, realistic: bool) -> ([f64; N], f64, [f64; R]) {
    let rounds: Vec<Round> = (0..ROUNDS)
        .map(|r| {
            let mut v = [(0f64, 0f64); N];
            for k in 0..N {
                let i = (r + k) % N;
                v[i] = fault_storm(Strategy::ALL[i], threads, layout, realistic);
            }
            v
        })
        .collect();
    let mut per_cpu = ([0f64; N], [0f64; R]);
    for (unit, pick) in [("M/s", 0), ("M/CPU-s", 1)] {
        let g = |x: &Round, i: usize| if pick == 0 { x[i].0 } else { x[i].1 };
        let v: [f64; N] = core::array::from_fn(|i| median(rounds.iter().map(|x| g(x, i)).collect()));
        let r = RATIOS.map(|(_, n, d)| median(rounds.iter().map(|x| g(x, n) / g(x, d)).collect()));
        row_r(&format!("fault storm, {label}, {threads} thr ({unit})"), v, r, 2);
        if pick == 1 {
            per_cpu = (v, r);
        }
    }
    (per_cpu.0, median(rounds.iter().map(|x| x[SPLIT].0 / x[CLASSIC].0).collect()), per_cpu.1)
}

fn main() {
    let t0 = Instant::now();
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string();
    let load0 = load();
    println!(
        "phase_lock_mm page-table workloads ({} CPUs)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut head = format!("| {:<50} |", "workload");
    let mut rule = format!("|{:-<52}|", "");
    for s in Strategy::ALL {
        head += &format!(" {:>9} |", s.name());
        rule += &format!("{:-<11}|", "");
    }
    for (name, _, _) in RATIOS {
        head += &format!(" {name:>8} |");
        rule += &format!("{:-<10}|", "");
    }
    println!("{head}\n{rule}");
    // Disjoint storms at 1 and 2 threads, for the goal lines: (threads,
    // per-CPU-second medians, M/s split ÷ classic, per-CPU-second ratios).
    let mut disjoint: Vec<(u64, [f64; N], f64, [f64; R])> = Vec::new();
    for (layout, label) in [(Layout::Disjoint, "disjoint"), (Layout::Shared, "shared")] {
        for threads in [1u64, 2, 4, 8] {
            let (per_cpu, ratio, ratios) = storm_rows(threads, layout, label, false);
            if layout == Layout::Disjoint {
                disjoint.push((threads, per_cpu, ratio, ratios));
            }
        }
    }
    let per_thread_vma = storm_rows(2, Layout::VmaPerThread, "VMA per thread", false).0;
    let churn: Vec<Churn> = Strategy::ALL.into_iter().map(zap_churn).collect();
    row("DONTNEED 2 MiB chunks (k/s)", core::array::from_fn(|i| churn[i].dontneed_ops), 1);
    row("zap churn: fault+DONTNEED 2 MiB, 2 thr (k/s)", core::array::from_fn(|i| churn[i].churn_ops), 1);
    let walks: Vec<_> = Strategy::ALL.into_iter().map(walks_during_faults).collect();
    row("faults beside semi-locked walks (M/s)", core::array::from_fn(|i| walks[i].0), 2);
    row("semi-locked walks of 2 MiB x2 (k/s)", core::array::from_fn(|i| walks[i].1), 1);
    let punch: Vec<_> = Strategy::ALL.into_iter().map(punch_during_faults).collect();
    row("faults beside rmap punch-holes (M/s)", core::array::from_fn(|i| punch[i].0), 2);
    row("rmap punch-holes of 2 MiB (k/s)", core::array::from_fn(|i| punch[i].1), 1);
    let gup_fast: Vec<_> = Strategy::ALL.into_iter().map(gup_fast_beside_zaps).collect();
    row("GUP-fast walks beside zaps (M/s)", core::array::from_fn(|i| gup_fast[i]), 2);
    let vma_churn: Vec<_> = Strategy::ALL.into_iter().map(faults_beside_vma_churn).collect();
    row("faults beside VMA churn (M/s)", core::array::from_fn(|i| vma_churn[i].faults), 2);
    row("VMA churn beside faults (k/s)", core::array::from_fn(|i| vma_churn[i].churns), 2);
    println!();
    let mut head2 = format!("| {:<50} |", "page tables and walks");
    let mut rule2 = format!("|{:-<52}|", "");
    for s in Strategy::ALL {
        head2 += &format!(" {:>9} |", s.name());
        rule2 += &format!("{:-<11}|", "");
    }
    println!("{head2}\n{rule2}");
    let line = |name: &str, f: &dyn Fn(usize) -> String| {
        let mut l = format!("| {name:<50} |");
        for i in 0..N {
            l += &format!(" {:>9} |", f(i));
        }
        println!("{l}");
    };
    line("page tables after touching 1 GiB (kB)", &|i| churn[i].peak_kb.to_string());
    line("... after DONTNEED in 2 MiB chunks (kB)", &|i| churn[i].after_kb.to_string());
    line("... after / peak", &|i| format!("{:.2}%", 100.0 * churn[i].after_kb as f64 / churn[i].peak_kb as f64));
    line("page tables after punching the file (kB)", &|i| punch[i].2.to_string());
    line("peak deferred page tables, faults + DONTNEED (kB)", &|i| churn[i].peak_deferred_kb.to_string());
    line("... same, 1.5 s beside a semi-locked walker (kB)", &|i| walks[i].4.to_string());
    line("semi-locked walks that saw a change", &|i| format!("{}/{}", walks[i].2, walks[i].3));
    // The goal lines (met / missed), as the fairness report prints them.
    let storm = |t: u64| disjoint.iter().find(|d| d.0 == t).copied().expect("a disjoint storm row");
    let (one, two) = (storm(1), storm(2));
    let goal = |met: bool, text: String| println!("- **{}** {text}", if met { "met" } else { "missed" });
    println!("\ngoals:");
    // Split on 1 and 2 threads back to back in each round (alternating
    // which goes first), so that the machine's drift between the table's
    // 1-thread and 2-thread rows cancels out of the ratio.
    let scaling = median(
        (0..ROUNDS)
            .map(|r| {
                let (a, b) = if r % 2 == 0 {
                    let a = fault_storm(Strategy::Split, 1, Layout::Disjoint, false).1;
                    (a, fault_storm(Strategy::Split, 2, Layout::Disjoint, false).1)
                } else {
                    let b = fault_storm(Strategy::Split, 2, Layout::Disjoint, false).1;
                    (fault_storm(Strategy::Split, 1, Layout::Disjoint, false).1, b)
                };
                b / a
            })
            .collect(),
    );
    goal(
        scaling >= 0.8,
        format!(
            "split, disjoint storm, 2 thr ≥ 0.8× its 1-thr faults per CPU-second: {scaling:.2}× (median of {ROUNDS} paired rounds; the table's rows: {:.2} / {:.2})",
            two.1[SPLIT], one.1[SPLIT]
        ),
    );
    goal(two.2 >= 1.5, format!("split, disjoint storm, 2 thr ≥ 1.5× classic's: {:.2}×", two.2));
    goal(one.2 >= 0.95, format!("split ≥ 0.95× classic at 1 thr: {:.2}×", one.2));
    goal(
        walks[SPLIT].0 >= 0.8 * walks[CLASSIC].0,
        format!(
            "split faults beside a semi-locked walker ≥ 0.8× classic's: {:.2} / {:.2} M/s",
            walks[SPLIT].0, walks[CLASSIC].0
        ),
    );
    goal(walks[SPLIT].1 >= 2.0, format!("split semi-locked walks beside faults ≥ 2 k/s: {:.1} k/s", walks[SPLIT].1));
    goal(walks[SPLIT].2 == 0, format!("split walks that saw a change: {} of {}", walks[SPLIT].2, walks[SPLIT].3));
    goal(
        walks[SPLIT_PER_VMA].2 == 0,
        format!("split-per-vma walks that saw a change: {} of {}", walks[SPLIT_PER_VMA].2, walks[SPLIT_PER_VMA].3),
    );
    // Faults and layout changes side by side: both rows count.
    let pair = |i: usize| (vma_churn[i].faults, vma_churn[i].churns);
    let (sv, pv, sp) = (pair(SPLIT_PER_VMA), pair(PER_VMA), pair(SPLIT));
    goal(
        sv.0 >= 0.9 * pv.0 && sv.1 >= 0.9 * pv.1,
        format!("split-per-vma ≥ 0.9× per-vma beside VMA churn: faults {:.2}×, churn {:.2}×", sv.0 / pv.0, sv.1 / pv.1),
    );
    goal(
        (sv.0 >= 2.0 * sp.0 && sv.1 >= sp.1) || (sv.1 >= 2.0 * sp.1 && sv.0 >= sp.0),
        format!(
            "split-per-vma ≥ 2× split on one VMA-churn row, ≥ 1× on the other: faults {:.2}×, churn {:.2}×",
            sv.0 / sp.0,
            sv.1 / sp.1
        ),
    );
    goal(
        two.3[SV_PV] >= 1.2,
        format!("split-per-vma, disjoint storm, 2 thr ≥ 1.2× per-vma per CPU-second: {:.2}×", two.3[SV_PV]),
    );
    goal(
        one.3[SV_PV] >= 0.95,
        format!("split-per-vma, disjoint storm, 1 thr ≥ 0.95× per-vma per CPU-second: {:.2}×", one.3[SV_PV]),
    );
    // DEFERRED_CAP's bound, with two zapping threads (each DONTNEED unlinks
    // at most one table, so at most two are on their way per stage).
    let bound_kb = 2 * (DEFERRED_CAP + 2) * TABLE_BYTES / 1024;
    for (i, s) in Strategy::ALL.into_iter().enumerate() {
        let peak = churn[i].peak_deferred_kb.max(walks[i].4);
        goal(
            peak <= bound_kb,
            format!("{s} peak deferred page tables ≤ {bound_kb} kB (2 × (DEFERRED_CAP + 2) tables): {peak} kB"),
        );
    }
    for (i, s) in [(SPLIT, "split"), (PER_VMA, "per-vma"), (SPLIT_PER_VMA, "split-per-vma")] {
        let left = churn[i].after_kb as f64 / churn[i].peak_kb as f64;
        goal(left <= 0.01, format!("{s} page tables after DONTNEED ≤ 1 % of peak: {:.2} %", 100.0 * left));
    }
    println!(
        "\nreported: per-vma semi-locked walks that saw a change: {} of {}; disjoint storm, 2 thr, per-vma ÷ VMA per thread (the shared count's cost): {:.2}×",
        walks[PER_VMA].2,
        walks[PER_VMA].3,
        two.1[PER_VMA] / per_thread_vma[PER_VMA]
    );
    let mut refault = String::from("reported, refault of a mapped page, 1 thread (ns):");
    for s in Strategy::ALL {
        refault += &format!(" {s} {:.1};", refault_ns(s));
    }
    println!("{}", refault.trim_end_matches(';'));
    // Beside VMA churn, three threads share two CPUs: a churner that never
    // waits takes its share from the faulters.
    let mut cpu = String::from(
        "reported, beside VMA churn: faults per faulting-thread CPU-second (M) / the churner's CPU share:",
    );
    for (i, s) in Strategy::ALL.into_iter().enumerate() {
        cpu += &format!(" {s} {:.2} / {:.0} %;", vma_churn[i].faults_per_cpu, 100.0 * vma_churn[i].churn_cpu_share);
    }
    println!("{}", cpu.trim_end_matches(';'));
    // The realistic mode: every anonymous fault also clears 4 KiB, as the
    // kernel's does, so that the locks' share of a fault is nearer the
    // kernel's (where a fault also pays the trap and the page allocator).
    println!("\nrealistic faults (each fault clears a 4 KiB page: FrameAllocator::zeroing)\n\n{head}\n{rule}");
    let mut real_one = [0f64; N];
    for threads in [1u64, 2, 8] {
        let v = storm_rows(threads, Layout::Disjoint, "disjoint", true).0;
        if threads == 1 {
            real_one = v;
        }
    }
    storm_rows(2, Layout::VmaPerThread, "VMA per thread", true);
    let overhead = |v: [f64; N]| 100.0 * (v[REFCOUNT] / v[CLASSIC] - 1.0);
    println!(
        "\nrefcount's cost at 1 thread (M/CPU-s against classic's): {:+.1} % in today's mode, {:+.1} % with the page cleared \
         (Qi Zheng measured -0.64 % at 1 thread, -1.17 % at 8, on the kernel); a realistic fault here takes {:.0} ns (classic, 1 thread)",
        overhead(one.1),
        overhead(real_one),
        1e3 / real_one[CLASSIC]
    );
    println!(
        "\nload average before: {load0}; after: {}\n(s/c, s/r, s/pv: split ÷ classic, refcount, per-vma; sv/pv, sv/s: split-per-vma ÷ per-vma, split (fault storms: median of per-round ratios); total {:.1} s)",
        load(),
        t0.elapsed().as_secs_f64()
    );
}
