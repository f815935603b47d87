//! loom model of `mm`'s page-table freeing protocol: a fault racing a
//! DONTNEED that empties and frees the PTE table the fault is about to lock,
//! and a semi-locked walker racing both, on every strategy.
//!
//! Under loom, `mm`'s tables have 8 entries (same address shifts), and `mm`
//! quarantines released tables (poisoned, kept until the
//! address space drops), and every use of a table the protocol promises to be
//! linked checks that it is: a stale pointer panics.
//!
//! Run: `RUSTFLAGS="--cfg phase_lock_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=/tmp/target-mm-loom
//! cargo test -p loom-tests --release --test mm_free`
#![cfg(phase_lock_loom)]

use std::sync::Arc;

use loom::thread;
use phase_lock_mm::*;

const BASE: u64 = 0x4000_0000;

/// A loom builder with the bound from `LOOM_MAX_PREEMPTIONS` (2 if unset).
/// The checks after the joins walk whole tables (a load per entry); they
/// run single-threaded, so they add branches but no interleavings.
fn builder() -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.max_branches = 100_000;
    builder
}

/// Fault at `BASE + 4 KiB` ‖ DONTNEED of the first two pages, which empties
/// the table and so frees it where the strategy can ‖ a semi-locked walk of
/// the same two pages (the main thread). The table starts with one entry, at
/// `BASE`.
fn fault_zap_walk(strategy: Strategy, walker: bool, bound: Option<usize>) {
    let mut builder = builder();
    if bound.is_some() {
        builder.preemption_bound = bound;
    }
    builder.check(move || {
        let frames = FrameAllocator::new();
        let mm = Arc::new(Mm::new(strategy, &frames));
        mm.mmap(BASE, 8 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
        mm.fault(BASE, true).unwrap();

        let f = mm.clone();
        let faulter = thread::spawn(move || f.fault(BASE + PAGE_SIZE, true).unwrap());
        // PerVma reclaims only a table whose every entry the zap covers
        // (all 8 under loom).
        let zap_pages = if strategy == Strategy::PerVma { 8 } else { 2 };
        let z = mm.clone();
        let zapper = thread::spawn(move || z.madvise_dontneed(BASE, zap_pages * PAGE_SIZE).unwrap());
        if walker {
            let g = mm.semi_locked();
            let a = g.frames(BASE, 2 * PAGE_SIZE).unwrap();
            let b = g.frames(BASE, 2 * PAGE_SIZE).unwrap();
            if strategy.semi_locked_walks_are_stable() {
                assert_eq!(a, b, "a read-mode hold saw the tables change");
            }
        }
        let pfn = faulter.join().unwrap();
        let zapped = zapper.join().unwrap();

        // The fault's entry survives exactly when the zap came first.
        let now = mm.walk_semilocked(BASE, 2 * PAGE_SIZE).unwrap();
        assert_eq!(now[0], None, "the zap covers the first page");
        match now[1] {
            Some(p) => {
                assert_eq!(p, pfn);
                assert_eq!(zapped, 1, "the zap ran first, so it saw only the first page");
            }
            None => assert_eq!(zapped, 2, "the fault ran first, so the zap cleared its entry too"),
        }
        mm.check_invariants().unwrap();
        let st = mm.stats();
        let mapped = st.mapped_pages;
        if strategy.reclaims_any_empty_table() || strategy == Strategy::PerVma {
            // An empty table never survives; a live entry is in a linked table.
            assert_eq!(st.tables[Level::Pte as usize], mapped);
        } else {
            assert_eq!(st.tables[Level::Pte as usize], 1);
        }
        assert_eq!(frames.in_use(), mapped, "a frame leaked or was freed twice");
    });
}

/// The walker racing a fault followed by a zap (two threads), so that it
/// sees the table before, between and after them.
fn walk_vs_fault_then_zap(strategy: Strategy) {
    let builder = builder();
    builder.check(move || {
        let frames = FrameAllocator::new();
        let mm = Arc::new(Mm::new(strategy, &frames));
        mm.mmap(BASE, 8 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
        mm.fault(BASE, true).unwrap();
        let m = mm.clone();
        let writer = thread::spawn(move || {
            m.fault(BASE + PAGE_SIZE, true).unwrap();
            m.madvise_dontneed(BASE, 2 * PAGE_SIZE).unwrap();
        });
        let g = mm.semi_locked();
        let a = g.frames(BASE, 2 * PAGE_SIZE).unwrap();
        let b = g.frames(BASE, 2 * PAGE_SIZE).unwrap();
        drop(g);
        if strategy == Strategy::Split {
            assert_eq!(a, b, "a read-mode hold saw the tables change");
        }
        writer.join().unwrap();
        assert_eq!(mm.walk_semilocked(BASE, 2 * PAGE_SIZE).unwrap(), vec![None, None]);
        mm.check_invariants().unwrap();
        let st = mm.stats();
        assert_eq!(st.mapped_pages, 0);
        let want = if strategy.reclaims_any_empty_table() { 0 } else { 1 };
        assert_eq!(st.tables[Level::Pte as usize], want);
        assert_eq!(frames.in_use(), 0);
    });
}

/// Split: fault ‖ zap ‖ walker. Three threads; preemption bound 1 keeps it
/// under a minute (the two-thread models below run with the bound from
/// `LOOM_MAX_PREEMPTIONS`, 2 by default).
#[test]
fn split_fault_zap_walk() {
    fault_zap_walk(Strategy::Split, true, Some(1));
}

/// Split: fault ‖ zap that frees the table.
#[test]
fn split_fault_zap() {
    fault_zap_walk(Strategy::Split, false, None);
}

/// Split: walker ‖ (fault; zap).
#[test]
fn split_walk_vs_fault_then_zap() {
    walk_vs_fault_then_zap(Strategy::Split);
}

/// Refcount: fault ‖ zap that frees the table on its last put.
#[test]
fn refcount_fault_zap() {
    fault_zap_walk(Strategy::Refcount, false, None);
}

/// Refcount: walker (pinning) ‖ (fault; zap).
#[test]
fn refcount_walk_vs_fault_then_zap() {
    walk_vs_fault_then_zap(Strategy::Refcount);
}

/// Classic: fault ‖ zap ‖ walker (nothing is freed).
#[test]
fn classic_fault_zap_walk() {
    fault_zap_walk(Strategy::Classic, true, None);
}

/// Refcount: fault ‖ zap ‖ walker (pinning).
#[test]
fn refcount_fault_zap_walk() {
    fault_zap_walk(Strategy::Refcount, true, None);
}

/// PerVma: fault ‖ a DONTNEED of the whole table, which frees it through
/// RCU (both under the VMA's read lock). The zap clears eight entries, each
/// a loom atomic: preemption bound 1 keeps it to seconds (at 2 it ran for
/// more than three minutes).
#[test]
fn per_vma_fault_zap() {
    fault_zap_walk(Strategy::PerVma, false, Some(1));
}

/// PerVma: fault ‖ reclaiming zap ‖ walker (mmap lock for read and RCU:
/// it may see the table change, never a released one).
#[test]
fn per_vma_fault_zap_walk() {
    fault_zap_walk(Strategy::PerVma, true, Some(1));
}

/// PerVma: walker ‖ (fault; zap).
#[test]
fn per_vma_walk_vs_fault_then_zap() {
    walk_vs_fault_then_zap(Strategy::PerVma);
}

/// PerVma: a fault under the VMA's read lock ‖ an `mprotect` of the VMA to
/// read-only, which write-locks it (draining the fault) before it clears
/// the writable bits. However they interleave, the entry's writable bit
/// agrees with the VMA's permission afterwards (`check_invariants`): a
/// fault that ran past the write lock would leave a writable entry in a
/// read-only VMA.
#[test]
fn per_vma_fault_vs_mprotect() {
    let builder = builder();
    builder.check(|| {
        let frames = FrameAllocator::new();
        let mm = Arc::new(Mm::new(Strategy::PerVma, &frames));
        mm.mmap(BASE, 8 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
        mm.fault(BASE, true).unwrap(); // the table exists
        let f = mm.clone();
        let faulter = thread::spawn(move || f.fault(BASE + PAGE_SIZE, true));
        mm.mprotect(BASE, 8 * PAGE_SIZE, Prot::Read).unwrap();
        match faulter.join().unwrap() {
            Ok(_) | Err(MmError::ReadOnly { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
        mm.check_invariants().unwrap();
        assert!(mm.mappings().iter().all(|m| !m.writable()), "a writable entry in a read-only VMA");
    });
}

/// SplitPerVma: fault ‖ zap that frees the table (both in intent mode on
/// the VMA's own lock; the table's span lies inside the VMA, so the zapper
/// may free it, and releases it once it gets the lock in read mode: R9).
#[test]
fn split_per_vma_fault_zap() {
    fault_zap_walk(Strategy::SplitPerVma, false, None);
}

/// SplitPerVma: fault ‖ zap ‖ walker (the VMA's lock in read mode: it sees
/// no change).
#[test]
fn split_per_vma_fault_zap_walk() {
    fault_zap_walk(Strategy::SplitPerVma, true, Some(1));
}

/// SplitPerVma: walker ‖ (fault; zap).
#[test]
fn split_per_vma_walk_vs_fault_then_zap() {
    walk_vs_fault_then_zap(Strategy::SplitPerVma);
}

/// SplitPerVma, a table shared by two VMAs: X = the span's first half
/// (read-write), Y = its second half (read-only, so the two do not merge).
/// A DONTNEED of all of X, which empties the table whenever it runs before
/// Y's fault, ‖ a fault in Y, each under its own VMA's lock in intent mode,
/// with a semi-locked walk of both (the main thread). The zapper must leave
/// the table alone (its span is not inside X): Y's fault may already have
/// read the PMD entry, and X's read mode, which the zapper gets right after,
/// is no grace period for Y's holders. Freeing it anyway lets the fault lock
/// a released table (quarantine panics).
#[test]
fn split_per_vma_free_across_vma_boundary() {
    let builder = builder();
    builder.check(|| {
        let frames = FrameAllocator::new();
        let mm = Arc::new(Mm::new(Strategy::SplitPerVma, &frames));
        let y = BASE + 4 * PAGE_SIZE;
        mm.mmap(BASE, 4 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
        mm.mmap(y, 4 * PAGE_SIZE, Prot::Read, Backing::Anon).unwrap();
        assert_eq!(mm.vmas().len(), 2);
        mm.fault(BASE, true).unwrap(); // the shared table exists
        let f = mm.clone();
        let faulter = thread::spawn(move || f.fault(y, false).unwrap());
        let z = mm.clone();
        let zapper = thread::spawn(move || z.madvise_dontneed(BASE, 4 * PAGE_SIZE).unwrap());
        let g = mm.semi_locked();
        let a = g.frames(BASE, 8 * PAGE_SIZE).unwrap();
        let b = g.frames(BASE, 8 * PAGE_SIZE).unwrap();
        assert_eq!(a, b, "a read-mode hold saw the tables change");
        drop(g);
        let pfn = faulter.join().unwrap();
        assert_eq!(zapper.join().unwrap(), 1, "the zap clears X's one entry");
        let now = mm.walk_semilocked(BASE, 8 * PAGE_SIZE).unwrap();
        assert_eq!(now[4], Some(pfn), "Y's entry survives: the zap does not cover it");
        assert!(now.iter().enumerate().all(|(i, e)| i == 4 || e.is_none()));
        mm.check_invariants().unwrap();
        let st = mm.stats();
        assert_eq!(st.tables[Level::Pte as usize], 1, "one table, shared, never freed");
        assert_eq!(st.tables_freed, 0);
        assert_eq!(frames.in_use(), 1, "a frame leaked or was freed twice");
    });
}

/// GUP-fast (no lock, an RCU section) ‖ a DONTNEED that empties and frees
/// the table it reads (where the strategy frees), or an `munmap` that frees
/// the PTE, PMD and PUD tables. Each frame GUP-fast returns is the page's
/// frame or `None`; it must never read a released table (quarantine), which
/// every strategy's RCU-deferred release (R10) prevents. Both run on
/// spawned threads: with GUP-fast on the model's main thread instead, loom
/// explored 17 interleavings (Split, against 55) and missed a walk left
/// without its RCU section.
fn gup_fast_vs_free(strategy: Strategy, unmap: bool) {
    let builder = builder();
    builder.check(move || {
        let frames = FrameAllocator::new();
        let mm = Arc::new(Mm::new(strategy, &frames));
        mm.mmap(BASE, 8 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
        let p0 = mm.fault(BASE, true).unwrap();
        let z = mm.clone();
        let freer = thread::spawn(move || {
            if unmap {
                z.munmap(BASE, 8 * PAGE_SIZE).unwrap();
            } else {
                z.madvise_dontneed(BASE, 8 * PAGE_SIZE).unwrap();
            }
        });
        let g = mm.clone();
        let walker = thread::spawn(move || g.gup_fast(BASE, PAGE_SIZE, true).unwrap());
        freer.join().unwrap();
        let got = walker.join().unwrap();
        assert!(got == [Some(p0)] || got == [None], "GUP-fast read {got:?}");
        assert_eq!(mm.gup_fast(BASE, PAGE_SIZE, false).unwrap(), [None]);
        mm.check_invariants().unwrap();
        let st = mm.stats();
        assert_eq!(st.deferred_tables, 0, "a table was never released");
        if unmap {
            assert_eq!(st.tables, [0, 0, 0, 1]);
        } else if strategy.reclaims_on_dontneed() {
            assert_eq!(st.tables[Level::Pte as usize], 0);
        }
        assert_eq!(frames.in_use(), 0);
    });
}

/// Split: GUP-fast ‖ a DONTNEED that frees the table. GUP-fast holds no
/// phase, so the phase change is not its grace period: RCU is (R10).
#[test]
fn split_gup_fast_vs_zap() {
    gup_fast_vs_free(Strategy::Split, false);
}

/// Split: GUP-fast ‖ munmap, which frees tables at every level.
#[test]
fn split_gup_fast_vs_munmap() {
    gup_fast_vs_free(Strategy::Split, true);
}

/// Classic: GUP-fast ‖ munmap (the only freeing Classic does).
#[test]
fn classic_gup_fast_vs_munmap() {
    gup_fast_vs_free(Strategy::Classic, true);
}

/// Refcount: GUP-fast (which takes no reference) ‖ a DONTNEED whose last
/// put frees the table.
#[test]
fn refcount_gup_fast_vs_zap() {
    gup_fast_vs_free(Strategy::Refcount, false);
}

/// PerVma: GUP-fast ‖ a reclaiming DONTNEED.
#[test]
fn per_vma_gup_fast_vs_zap() {
    gup_fast_vs_free(Strategy::PerVma, false);
}

/// SplitPerVma: GUP-fast ‖ a DONTNEED that frees the table onto its VMA's
/// list.
#[test]
fn split_per_vma_gup_fast_vs_zap() {
    gup_fast_vs_free(Strategy::SplitPerVma, false);
}

/// `mremap` of a file mapping ‖ a punch-hole of its one mapped page. The
/// move holds `i_mmap` for write throughout (R11), so the punch-hole's
/// rmap walk finds the entry at its old address or at its new one, never
/// in between: afterwards no entry maps a page the cache dropped
/// (`check_invariants`), and the page, if still mapped, is the cache's.
fn mremap_vs_punch(strategy: Strategy) {
    let builder = builder();
    builder.check(move || {
        let frames = FrameAllocator::new();
        let file = File::new(&frames);
        let mm = Arc::new(Mm::new(strategy, &frames));
        let to = BASE + PMD_SIZE; // another table (under loom a table has 8 entries)
        mm.mmap(BASE, 2 * PAGE_SIZE, Prot::Read, Backing::File { file: file.clone(), pgoff: 0 }).unwrap();
        mm.fault(BASE, false).unwrap();
        let m = mm.clone();
        let mover = thread::spawn(move || m.mremap(BASE, 2 * PAGE_SIZE, to).unwrap());
        let f = file.clone();
        let puncher = thread::spawn(move || f.punch_hole(0, PAGE_SIZE).unwrap());
        mover.join().unwrap();
        let cleared = puncher.join().unwrap();
        assert_eq!(cleared, 1, "the punch-hole missed the entry");
        mm.check_invariants().unwrap();
        assert_eq!(mm.walk_semilocked(to, 2 * PAGE_SIZE).unwrap(), vec![None, None]);
        assert_eq!(mm.stats().deferred_tables, 0);
    });
}

/// Split: mremap ‖ punch-hole (the move under the page-table lock for
/// write, the rmap walk in intent mode).
#[test]
fn split_mremap_vs_punch() {
    mremap_vs_punch(Strategy::Split);
}

/// SplitPerVma: mremap (the moved VMA's lock for write) ‖ punch-hole (the
/// VMA's lock in intent mode, found under RCU).
#[test]
fn split_per_vma_mremap_vs_punch() {
    mremap_vs_punch(Strategy::SplitPerVma);
}

/// Classic: mremap ‖ punch-hole (PTLs only, under `i_mmap`).
#[test]
fn classic_mremap_vs_punch() {
    mremap_vs_punch(Strategy::Classic);
}
