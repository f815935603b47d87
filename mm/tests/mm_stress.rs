//! Multi-threaded stress test of `mm`: every operation on every strategy,
//! oversubscribed (16 threads), two address spaces sharing two files. Run it
//! with `--features quarantine` (as `cargo test --all-features` does) so
//! that released page tables are poisoned and kept: any access through a
//! stale pointer then panics.
//!
//! Afterwards it checks: every present entry lies in a VMA with matching
//! permissions and backing; each thread's private region matches its shadow
//! model exactly (no entry lost, none extra); no anonymous frame is mapped
//! twice and no frame leaked; the page-table accounting matches the tables
//! allocated. During the run, under Split, two reads of a range inside one
//! read-mode hold must be identical.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::Rng;
use phase_lock_mm::*;

const THREADS: usize = 16;
const ITERS: usize = 3000;
/// Per-thread private anonymous regions: 8 MiB at `PRIV + tid * 16 MiB`.
const PRIV: u64 = 0x10_0000_0000;
const PRIV_PAGES: u64 = 4 * 512;
/// Shared file regions (both address spaces map both files here).
const FILE0: u64 = 0x20_0000_0000;
const FILE1: u64 = 0x20_4000_0000;
const FILE_PAGES: u64 = 8 * 512;
/// A shared anonymous region of 4 PTE tables that every thread of an
/// address space faults and zaps whole, so that faults race zaps that free
/// the table they are about to lock.
const HOT: u64 = 0x30_0000_0000;
const HOT_SPANS: u64 = 4;
/// Far regions, 1 GiB apart, in their own PGD slot: mapped, touched and
/// unmapped whole, so munmap frees PMD and PUD tables while others walk.
const FAR: u64 = 0x100_0000_0000;
/// Give up (and say why) after this long without finishing.
const WATCHDOG: Duration = Duration::from_secs(150);

/// A thread's model of its private region.
struct Shadow {
    base: u64,
    mapped: Vec<bool>,
    writable: Vec<bool>,
    frames: BTreeMap<u64, u64>,
}

impl Shadow {
    fn all_mapped(&self, p: u64, n: u64) -> bool {
        (p..p + n).all(|q| self.mapped[q as usize])
    }
}

fn private_op(mm: &Mm, sh: &mut Shadow, rng: &mut Rng) {
    let p = rng.below(PRIV_PAGES);
    let n = 1 + rng.below(96).min(PRIV_PAGES - p - 1);
    let addr = sh.base + p * PAGE_SIZE;
    match rng.below(14) {
        0..=4 => {
            let w = rng.below(2) == 0;
            let r = mm.fault(addr, w);
            if !sh.mapped[p as usize] {
                assert_eq!(r, Err(MmError::NotMapped { addr }));
            } else if w && !sh.writable[p as usize] {
                assert_eq!(r, Err(MmError::ReadOnly { addr }));
            } else {
                let pfn = r.unwrap();
                if let Some(old) = sh.frames.insert(p, pfn) {
                    assert_eq!(old, pfn, "a refault changed the frame");
                }
            }
        }
        5 | 6 => {
            let ok = sh.all_mapped(p, n);
            assert_eq!(mm.madvise_dontneed(addr, n * PAGE_SIZE).is_ok(), ok);
            if ok {
                for q in p..p + n {
                    sh.frames.remove(&q);
                }
            }
        }
        7 => {
            let ok = sh.all_mapped(p, n);
            let prot = if rng.below(3) == 0 { Prot::Read } else { Prot::ReadWrite };
            assert_eq!(mm.mprotect(addr, n * PAGE_SIZE, prot).is_ok(), ok);
            if ok {
                for q in p..p + n {
                    sh.writable[q as usize] = prot.writable();
                }
            }
        }
        8 => {
            // Fill a span and collapse it.
            let span = p & !511;
            let sa = sh.base + span * PAGE_SIZE;
            if sh.all_mapped(span, 512) && (span..span + 512).all(|q| sh.writable[q as usize]) {
                let got = mm.gup(sa, PMD_SIZE, true).unwrap();
                for (i, f) in got.iter().enumerate() {
                    sh.frames.insert(span + i as u64, *f);
                }
                match mm.collapse(sa) {
                    Ok(()) => {
                        let got = mm.walk_semilocked(sa, PMD_SIZE).unwrap();
                        for (i, f) in got.into_iter().enumerate() {
                            sh.frames.insert(span + i as u64, f.expect("collapsed span fully mapped"));
                        }
                    }
                    // A span split over several VMAs (mprotect) cannot collapse.
                    Err(MmError::NotPopulated { .. }) => {}
                    Err(e) => panic!("collapse: {e}"),
                }
            }
        }
        9 => {
            let ok = sh.all_mapped(p, n);
            let r = mm.gup(addr, n * PAGE_SIZE, false);
            assert_eq!(r.is_ok(), ok);
            if let Ok(fr) = r {
                for (i, f) in fr.into_iter().enumerate() {
                    if let Some(old) = sh.frames.insert(p + i as u64, f) {
                        assert_eq!(old, f);
                    }
                }
            }
        }
        13 => {
            // Move a piece to the spare half of the thread's slot and back:
            // the entries travel with their frames.
            let spare = sh.base + (PRIV_PAGES + p) * PAGE_SIZE;
            match mm.mremap(addr, n * PAGE_SIZE, spare) {
                Ok(()) => {
                    assert!(sh.all_mapped(p, n), "mremap of a range with holes");
                    let got = mm.walk_semilocked(spare, n * PAGE_SIZE).unwrap();
                    for (i, f) in got.into_iter().enumerate() {
                        let q = p + i as u64;
                        assert_eq!(f, sh.frames.get(&q).copied(), "mremap moved page {q} wrongly");
                    }
                    mm.mremap(spare, n * PAGE_SIZE, addr).unwrap();
                }
                Err(MmError::MultipleVmas { .. }) => {}
                Err(MmError::NotMapped { .. }) => assert!(!sh.all_mapped(p, n)),
                Err(e) => panic!("mremap: {e}"),
            }
        }
        12 => {
            // Lockless: in a region no other thread touches, it sees exactly
            // the shadow's frames (the writable ones, for a write).
            let w = rng.below(2) == 0;
            let got = mm.gup_fast(addr, n * PAGE_SIZE, w).unwrap();
            for (i, f) in got.into_iter().enumerate() {
                let q = p + i as u64;
                let want = sh.frames.get(&q).copied().filter(|_| !w || sh.writable[q as usize]);
                assert_eq!(f, want, "GUP-fast at page {q} of the private region");
            }
        }
        10 => {
            mm.munmap(addr, n * PAGE_SIZE).unwrap();
            for q in p..p + n {
                sh.mapped[q as usize] = false;
                sh.frames.remove(&q);
            }
        }
        _ => {
            // Map the holes back.
            let mut q = p;
            while q < p + n {
                if sh.mapped[q as usize] {
                    q += 1;
                    continue;
                }
                let mut e = q;
                while e < p + n && !sh.mapped[e as usize] {
                    e += 1;
                }
                mm.mmap(sh.base + q * PAGE_SIZE, (e - q) * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
                for k in q..e {
                    sh.mapped[k as usize] = true;
                    sh.writable[k as usize] = true;
                }
                q = e;
            }
        }
    }
}

fn shared_op(mm: &Mm, files: &[Arc<File>; 2], far: u64, rng: &mut Rng, changes: &AtomicU64) {
    if rng.below(3) == 0 {
        let span = HOT + rng.below(HOT_SPANS) * PMD_SIZE;
        match rng.below(5) {
            0 => {
                mm.madvise_dontneed(span, PMD_SIZE).unwrap();
            }
            1 => {
                let g = mm.semi_locked();
                let a = g.frames(span, PMD_SIZE).unwrap();
                std::thread::yield_now();
                if a != g.frames(span, PMD_SIZE).unwrap() {
                    assert!(
                        !mm.strategy().semi_locked_walks_are_stable(),
                        "a semi-locked walk saw a change under {}",
                        mm.strategy()
                    );
                    changes.fetch_add(1, Ordering::Relaxed);
                }
            }
            2 => {
                // Lockless, beside zaps that free the tables it reads, and
                // beside munmaps of far regions, which free PMD and PUD
                // tables (quarantine: it must never read a released one).
                mm.gup_fast(span, PMD_SIZE, false).unwrap();
                let other = FAR + rng.below(THREADS as u64) * PUD_SIZE;
                mm.gup_fast(other, 512 * PAGE_SIZE, true).unwrap();
            }
            _ => {
                for _ in 0..4 {
                    mm.fault(span + rng.below(512) * PAGE_SIZE, true).unwrap();
                }
            }
        }
        return;
    }
    let which = rng.below(2) as usize;
    let base = [FILE0, FILE1][which];
    let p = rng.below(FILE_PAGES);
    let n = 1 + rng.below(256).min(FILE_PAGES - p - 1);
    let addr = base + p * PAGE_SIZE;
    match rng.below(8) {
        0..=2 => {
            for k in 0..n.min(32) {
                mm.fault(addr + k * PAGE_SIZE, rng.below(2) == 0).unwrap();
            }
        }
        3 => {
            mm.madvise_dontneed(addr, n * PAGE_SIZE).unwrap();
        }
        4 => {
            files[which].punch_hole(p * PAGE_SIZE, n * PAGE_SIZE).unwrap();
        }
        5 => {
            let g = mm.semi_locked();
            let a = g.frames(addr, n * PAGE_SIZE).unwrap();
            std::thread::yield_now();
            let b = g.frames(addr, n * PAGE_SIZE).unwrap();
            if a != b {
                assert!(
                    !mm.strategy().semi_locked_walks_are_stable(),
                    "a semi-locked walk saw a change under {}",
                    mm.strategy()
                );
                changes.fetch_add(1, Ordering::Relaxed);
            }
        }
        6 => {
            mm.gup(addr, n.min(64) * PAGE_SIZE, true).unwrap();
        }
        _ => {
            // A far region: map, touch, unmap whole (frees PTE, PMD, maybe PUD tables).
            mm.mmap(far, PMD_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
            for k in 0..8 {
                mm.fault(far + k * 64 * PAGE_SIZE, true).unwrap();
            }
            mm.munmap(far, PMD_SIZE).unwrap();
            // A file mapping moved while other threads punch the file and
            // fault it elsewhere: the rmap must find every entry, before or
            // after the move (quarantine catches a stale table).
            let f = &files[which];
            let pg = rng.below(FILE_PAGES - 64);
            mm.mmap(far, 64 * PAGE_SIZE, Prot::Read, Backing::File { file: f.clone(), pgoff: pg }).unwrap();
            for k in 0..8 {
                mm.fault(far + k * 8 * PAGE_SIZE, false).unwrap();
            }
            let to = far + PMD_SIZE + rng.below(512) * PAGE_SIZE;
            mm.mremap(far, 64 * PAGE_SIZE, to).unwrap();
            mm.munmap(to, 64 * PAGE_SIZE).unwrap();
        }
    }
}

fn run(strategy: Strategy, progress: &[AtomicU64]) -> u64 {
    let frames = FrameAllocator::new();
    let files = [File::new(&frames), File::new(&frames)];
    let mms = [Mm::new(strategy, &frames), Mm::new(strategy, &frames)];
    for mm in &mms {
        for (f, base) in files.iter().zip([FILE0, FILE1]) {
            let b = Backing::File { file: f.clone(), pgoff: 0 };
            mm.mmap(base, FILE_PAGES * PAGE_SIZE, Prot::ReadWrite, b).unwrap();
        }
        mm.mmap(HOT, HOT_SPANS * PMD_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    }
    let changes = AtomicU64::new(0);
    let barrier = Barrier::new(THREADS);
    let shadows: Vec<Shadow> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|tid| {
                let (mms, files, changes, barrier) = (&mms, &files, &changes, &barrier);
                let progress = &progress[tid];
                s.spawn(move || {
                    let mm = &mms[tid % 2];
                    let base = PRIV + tid as u64 * 16 * (1 << 20);
                    mm.mmap(base, PRIV_PAGES * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
                    let mut sh = Shadow {
                        base,
                        mapped: vec![true; PRIV_PAGES as usize],
                        writable: vec![true; PRIV_PAGES as usize],
                        frames: BTreeMap::new(),
                    };
                    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d ^ ((tid as u64 + 1) * 0x9e37_79b9));
                    let far = FAR + tid as u64 * PUD_SIZE;
                    barrier.wait();
                    for _ in 0..ITERS {
                        if rng.below(2) == 0 {
                            private_op(mm, &mut sh, &mut rng);
                        } else {
                            shared_op(mm, files, far, &mut rng, changes);
                        }
                        progress.fetch_add(1, Ordering::Relaxed);
                    }
                    sh
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("stress thread panicked")).collect()
    });

    // Invariants.
    let mut anon_total = 0;
    let mut all_anon = std::collections::HashSet::new();
    for mm in &mms {
        let anon = mm.check_invariants().unwrap_or_else(|e| panic!("{strategy}: {e}"));
        anon_total += anon.len();
        for f in anon {
            assert!(all_anon.insert(f), "{strategy}: frame {f} mapped in two address spaces");
        }
        let st = mm.stats();
        assert_eq!(st.deferred_tables, 0, "{strategy}: stats() is a grace period for every strategy at rest");
        // The far regions are gone: their PUD table too.
        assert!(mm.mappings().iter().all(|m| m.addr < FAR), "{strategy}");
        if phase_lock_mm::pagetable::QUARANTINE {
            assert_eq!(st.quarantined_tables, st.tables_freed, "{strategy}");
        }
        eprintln!("mm_stress: {strategy}: {} tables freed", st.tables_freed);
    }
    for (tid, sh) in shadows.iter().enumerate() {
        let mm = &mms[tid % 2];
        let end = sh.base + PRIV_PAGES * PAGE_SIZE;
        let got: BTreeMap<u64, u64> = mm
            .mappings()
            .into_iter()
            .filter(|m| m.addr >= sh.base && m.addr < end)
            .flat_map(|m| {
                let n = if m.huge() { 512 } else { 1 };
                let base = sh.base;
                (0..n).map(move |k| ((m.addr - base) / PAGE_SIZE + k, m.pfn() + k))
            })
            .collect();
        assert_eq!(got, sh.frames, "{strategy}: thread {tid}'s region differs from its shadow");
    }
    let cached: u64 = files.iter().map(|f| f.cached_pages() as u64).sum();
    assert_eq!(frames.in_use(), anon_total as u64 + cached, "{strategy}: frames leaked or freed twice");
    drop(mms);
    assert_eq!(frames.in_use(), cached, "{strategy}: dropping the address spaces freed the wrong frames");
    changes.load(Ordering::Relaxed)
}

#[test]
fn stress_every_strategy() {
    let done = Arc::new(AtomicBool::new(false));
    let progress: Arc<Vec<AtomicU64>> = Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
    let current = Arc::new(AtomicU64::new(0));
    let watchdog = {
        let (done, progress, current) = (done.clone(), progress.clone(), current.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) {
                if start.elapsed() > WATCHDOG {
                    let p: Vec<u64> = progress.iter().map(|c| c.load(Ordering::Relaxed)).collect();
                    let s = Strategy::ALL[current.load(Ordering::Relaxed) as usize];
                    eprintln!(
                        "mm_stress watchdog: not finished after {WATCHDOG:?} (strategy {s}); \
                         operations done per thread: {p:?} — a thread that stopped advancing is stuck (deadlock?)"
                    );
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    for (i, s) in Strategy::ALL.into_iter().enumerate() {
        current.store(i as u64, Ordering::Relaxed);
        for c in progress.iter() {
            c.store(0, Ordering::Relaxed);
        }
        let t = Instant::now();
        let changes = run(s, &progress);
        eprintln!("mm_stress: {s}: {:?}, semi-locked walks that saw a change: {changes}", t.elapsed());
        if s.semi_locked_walks_are_stable() {
            assert_eq!(changes, 0);
        }
    }
    done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
}
