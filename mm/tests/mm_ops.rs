//! Single-threaded tests of every `mm` operation on every strategy, plus a
//! randomized run against a shadow model.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use common::Rng;
use phase_lock_mm::*;

const BASE: u64 = 0x7000_0000;
const MB2: u64 = PMD_SIZE;

fn pte_tables(mm: &Mm) -> u64 {
    mm.stats().tables[Level::Pte as usize]
}

fn each(mut f: impl FnMut(Strategy, &Mm, &std::sync::Arc<FrameAllocator>)) {
    for s in Strategy::ALL {
        let frames = FrameAllocator::new();
        let mm = Mm::new(s, &frames);
        f(s, &mm, &frames);
        mm.check_invariants().unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

#[test]
fn bad_input_is_an_error() {
    each(|_, mm, frames| {
        let rw = Prot::ReadWrite;
        assert_eq!(mm.mmap(BASE, 0, rw, Backing::Anon), Err(MmError::ZeroLength));
        assert_eq!(mm.mmap(BASE + 1, 4096, rw, Backing::Anon), Err(MmError::Unaligned { addr: BASE + 1 }));
        assert_eq!(mm.mmap(BASE, 100, rw, Backing::Anon), Err(MmError::Unaligned { addr: 100 }));
        assert_eq!(mm.mmap(1 << 50, 4096, rw, Backing::Anon), Err(MmError::NonCanonical { addr: 1 << 50 }));
        let kernel = 0xffff_8000_0000_0000;
        assert_eq!(mm.mmap(kernel, 4096, rw, Backing::Anon), Err(MmError::OutOfRange { addr: kernel }));
        assert!(matches!(mm.mmap(USER_END - 4096, 8192, rw, Backing::Anon), Err(MmError::OutOfRange { .. })));
        assert!(matches!(mm.mmap(4096, u64::MAX - 4095, rw, Backing::Anon), Err(MmError::OutOfRange { .. })));
        mm.mmap(BASE, MB2, rw, Backing::Anon).unwrap();
        assert_eq!(mm.mmap(BASE + MB2 - 4096, 8192, rw, Backing::Anon), Err(MmError::Overlap { addr: BASE }));
        assert_eq!(mm.fault(BASE + MB2, false), Err(MmError::NotMapped { addr: BASE + MB2 }));
        assert_eq!(mm.fault(u64::MAX, false), Err(MmError::OutOfRange { addr: u64::MAX }));
        mm.mmap(BASE + 4 * MB2, MB2, Prot::Read, Backing::Anon).unwrap();
        assert_eq!(mm.fault(BASE + 4 * MB2 + 8, true), Err(MmError::ReadOnly { addr: BASE + 4 * MB2 + 8 }));
        assert_eq!(mm.gup(BASE + 4 * MB2, 4096, true), Err(MmError::ReadOnly { addr: BASE + 4 * MB2 }));
        assert!(mm.fault(BASE + 4 * MB2 + 8, false).is_ok());
        assert_eq!(mm.madvise_dontneed(BASE, 2 * MB2), Err(MmError::NotMapped { addr: BASE + MB2 }));
        assert_eq!(mm.mprotect(BASE, 2 * MB2, rw), Err(MmError::NotMapped { addr: BASE + MB2 }));
        assert_eq!(mm.walk_semilocked(BASE + MB2, 4096), Err(MmError::NotMapped { addr: BASE + MB2 }));
        assert_eq!(mm.collapse(BASE + 4096), Err(MmError::Unaligned { addr: BASE + 4096 }));
        let huge = (MAX_WALK_PAGES + 1) * PAGE_SIZE;
        mm.mmap(1 << 40, huge, rw, Backing::Anon).unwrap();
        assert_eq!(mm.gup(1 << 40, huge, false), Err(MmError::TooLarge { len: huge }));
        assert_eq!(mm.walk_semilocked(1 << 40, huge), Err(MmError::TooLarge { len: huge }));
        mm.munmap(1 << 40, huge).unwrap();
        assert_eq!(mm.collapse(BASE), Err(MmError::NotPopulated { addr: BASE }));
        assert_eq!(mm.munmap(BASE, 0), Err(MmError::ZeroLength));
        let f = File::new(frames);
        assert_eq!(f.punch_hole(0, 0), Err(MmError::ZeroLength));
        assert_eq!(f.punch_hole(1, 4096), Err(MmError::Unaligned { addr: 1 }));
        mm.mmap(BASE + 8 * MB2, MB2, rw, Backing::File { file: f.clone(), pgoff: 0 }).unwrap();
        for p in 0..512 {
            mm.fault(BASE + 8 * MB2 + p * 4096, false).unwrap();
        }
        assert_eq!(mm.collapse(BASE + 8 * MB2), Err(MmError::NotAnonymous { addr: BASE + 8 * MB2 }));
        // Nothing above changed what is mapped.
        assert_eq!(mm.stats().mapped_pages, 513);
    });
}

#[test]
fn dontneed_frees_tables_where_the_strategy_can() {
    each(|s, mm, frames| {
        mm.mmap(BASE, 16 * MB2, Prot::ReadWrite, Backing::Anon).unwrap();
        for p in 0..16 * 512 {
            mm.fault(BASE + p * PAGE_SIZE, p % 2 == 0).unwrap();
        }
        let st = mm.stats();
        assert_eq!(st.tables, [16, 1, 1, 1], "{s}");
        assert_eq!(st.mapped_pages, 16 * 512);
        assert_eq!(frames.in_use(), 16 * 512);
        for c in 0..16 {
            mm.madvise_dontneed(BASE + c * MB2, MB2).unwrap();
        }
        let st = mm.stats();
        assert_eq!(st.mapped_pages, 0);
        assert_eq!(frames.in_use(), 0);
        let want = if s.reclaims_on_dontneed() { 0 } else { 16 };
        assert_eq!(st.tables[Level::Pte as usize], want, "{s}");
        assert_eq!(st.deferred_tables, 0, "{s}");
        assert_eq!(st.tables_freed, 16 - want, "{s}");
        // A partial zap leaves the table.
        mm.fault(BASE, true).unwrap();
        mm.fault(BASE + 4096, true).unwrap();
        mm.madvise_dontneed(BASE, 4096).unwrap();
        assert!(pte_tables(mm) >= 1);
        assert_eq!(mm.walk_semilocked(BASE, 8192).unwrap()[0], None);
        // munmap frees every level.
        mm.munmap(BASE, 16 * MB2).unwrap();
        let st = mm.stats();
        assert_eq!(st.tables, [0, 0, 0, 1], "{s}");
        assert_eq!(st.page_table_bytes, TABLE_BYTES);
        assert_eq!(frames.in_use(), 0);
    });
}

#[test]
fn punch_hole_reaches_every_mapping() {
    for s in Strategy::ALL {
        let frames = FrameAllocator::new();
        let f = File::new(&frames);
        let a = Mm::new(s, &frames);
        let b = Mm::new(s, &frames);
        a.mmap(BASE, 4 * MB2, Prot::ReadWrite, Backing::File { file: f.clone(), pgoff: 0 }).unwrap();
        // b maps the file's second half at another address.
        b.mmap(BASE + MB2 * 10, 2 * MB2, Prot::Read, Backing::File { file: f.clone(), pgoff: 1024 }).unwrap();
        assert_eq!(f.mappings(), 2);
        for p in 0..4 * 512 {
            a.fault(BASE + p * PAGE_SIZE, true).unwrap();
        }
        for p in 0..2 * 512 {
            let pfn = b.fault(BASE + MB2 * 10 + p * PAGE_SIZE, false).unwrap();
            assert_eq!(Some(pfn), f.cached(1024 + p), "shared page-cache frame");
        }
        assert_eq!(f.cached_pages(), 2048);
        // Punch the last 2 MiB of the file: one table in a, one in b.
        let cleared = f.punch_hole(3 * MB2, MB2).unwrap();
        assert_eq!(cleared, 1024, "{s}");
        assert_eq!(f.cached_pages(), 1536);
        let (ta, tb) = (pte_tables(&a), pte_tables(&b));
        if s.reclaims_any_empty_table() {
            assert_eq!((ta, tb), (3, 1), "{s}");
        } else {
            assert_eq!((ta, tb), (4, 2), "{s}");
        }
        assert_eq!(a.walk_semilocked(BASE + 3 * MB2, 4096).unwrap(), vec![None]);
        a.check_invariants().unwrap();
        b.check_invariants().unwrap();
        // Refault gets a fresh page.
        let pfn = a.fault(BASE + 3 * MB2, false).unwrap();
        assert_eq!(f.cached(1536), Some(pfn));
        drop(b);
        assert_eq!(f.mappings(), 1);
        a.munmap(BASE, 4 * MB2).unwrap();
        assert_eq!(f.mappings(), 0);
        assert_eq!(f.punch_hole(0, 8 * MB2).unwrap(), 0);
        assert_eq!(frames.in_use(), 0);
    }
}

#[test]
fn mprotect_collapse_gup_walk() {
    each(|s, mm, _| {
        mm.mmap(BASE, 4 * MB2, Prot::ReadWrite, Backing::Anon).unwrap();
        let frames = mm.gup(BASE, MB2, true).unwrap();
        assert_eq!(frames.len(), 512);
        let walked = mm.walk_semilocked(BASE, MB2).unwrap();
        assert_eq!(walked, frames.iter().map(|&f| Some(f)).collect::<Vec<_>>());
        // mprotect the middle: VMAs split, entries lose their writable bit.
        mm.mprotect(BASE + 4096, 8192, Prot::Read).unwrap();
        assert_eq!(mm.vmas().len(), 3);
        assert_eq!(mm.fault(BASE + 4096, true), Err(MmError::ReadOnly { addr: BASE + 4096 }));
        mm.check_invariants().unwrap();
        mm.mprotect(BASE, 4 * MB2, Prot::ReadWrite).unwrap();
        // Collapse into a huge leaf; the PTE table is freed.
        assert_eq!(pte_tables(mm), 1);
        mm.collapse(BASE).unwrap();
        let st = mm.stats();
        assert_eq!((st.tables[Level::Pte as usize], st.huge_mappings, st.mapped_pages), (0, 1, 512), "{s}");
        let huge = mm.walk_semilocked(BASE, MB2).unwrap();
        assert!(huge.windows(2).all(|w| w[1].unwrap() == w[0].unwrap() + 1));
        assert!(FrameAllocator::is_huge_frame(huge[0].unwrap()));
        assert_eq!(mm.gup(BASE + 8192, 4096, true).unwrap(), vec![huge[2].unwrap()]);
        mm.collapse(BASE).unwrap();
        mm.check_invariants().unwrap();
        // A partial DONTNEED splits the leaf back into a table.
        mm.madvise_dontneed(BASE + MB2 - 4096, 4096).unwrap();
        let st = mm.stats();
        assert_eq!((st.tables[Level::Pte as usize], st.huge_mappings, st.mapped_pages), (1, 0, 511), "{s}");
        mm.check_invariants().unwrap();
        // mprotect over a whole huge leaf keeps it huge.
        mm.fault(BASE + MB2 - 4096, true).unwrap();
        mm.collapse(BASE).unwrap();
        mm.mprotect(BASE, MB2, Prot::Read).unwrap();
        assert_eq!(mm.stats().huge_mappings, 1);
        mm.check_invariants().unwrap();
        mm.munmap(BASE + 4096, 4096).unwrap();
        assert_eq!(mm.stats().mapped_pages, 511);
        mm.check_invariants().unwrap();
        // Semi-locked reads inside one hold.
        let g = mm.semi_locked();
        assert_eq!(g.frames(BASE, MB2).unwrap_err(), MmError::NotMapped { addr: BASE + 4096 });
        assert_eq!(g.frames(BASE + 8192, 4096).unwrap(), g.frames(BASE + 8192, 4096).unwrap());
    });
}

/// Random operations against a shadow model (page → mapped frame,
/// writable), compared after every step on the touched range.
#[test]
fn shadow_model() {
    const PAGES: u64 = 4 * 512;
    for s in Strategy::ALL {
        let frames = FrameAllocator::new();
        let mm = Mm::new(s, &frames);
        mm.mmap(BASE, PAGES * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
        let mut shadow: BTreeMap<u64, (u64, bool)> = BTreeMap::new();
        let mut writable = vec![true; PAGES as usize];
        let mut mapped = vec![true; PAGES as usize];
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ s as u64);
        for step in 0..3000 {
            let p = rng.below(PAGES);
            let n = 1 + rng.below(64).min(PAGES - p - 1);
            let addr = BASE + p * PAGE_SIZE;
            match rng.below(10) {
                0..=4 => {
                    let w = rng.below(2) == 0;
                    let r = mm.fault(addr, w);
                    if !mapped[p as usize] {
                        assert_eq!(r, Err(MmError::NotMapped { addr }));
                    } else if w && !writable[p as usize] {
                        assert_eq!(r, Err(MmError::ReadOnly { addr }));
                    } else {
                        let pfn = r.unwrap();
                        let old = shadow.insert(p, (pfn, writable[p as usize]));
                        if let Some((f, _)) = old {
                            assert_eq!(f, pfn, "{s} step {step}: refault changed the frame");
                        }
                    }
                }
                5 | 6 => {
                    let all = (p..p + n).all(|q| mapped[q as usize]);
                    let r = mm.madvise_dontneed(addr, n * PAGE_SIZE);
                    assert_eq!(r.is_ok(), all, "{s} step {step}");
                    if all {
                        for q in p..p + n {
                            shadow.remove(&q);
                        }
                    }
                }
                7 => {
                    let all = (p..p + n).all(|q| mapped[q as usize]);
                    let prot = if rng.below(2) == 0 { Prot::Read } else { Prot::ReadWrite };
                    assert_eq!(mm.mprotect(addr, n * PAGE_SIZE, prot).is_ok(), all, "{s} step {step}");
                    if all {
                        for q in p..p + n {
                            writable[q as usize] = prot.writable();
                            if let Some(e) = shadow.get_mut(&q) {
                                e.1 = prot.writable();
                            }
                        }
                    }
                }
                8 => {
                    let span = p & !511;
                    let r = mm.collapse(BASE + span * PAGE_SIZE);
                    let full = (span..span + 512).all(|q| shadow.contains_key(&q));
                    let one_vma = mm
                        .vmas()
                        .iter()
                        .any(|v| v.start <= BASE + span * PAGE_SIZE && v.end >= BASE + (span + 512) * PAGE_SIZE);
                    if full && one_vma {
                        r.unwrap_or_else(|e| panic!("{s} step {step}: collapse failed: {e}"));
                        let got = mm.walk_semilocked(BASE + span * PAGE_SIZE, PMD_SIZE).unwrap();
                        for (i, f) in got.into_iter().enumerate() {
                            shadow.get_mut(&(span + i as u64)).unwrap().0 = f.unwrap();
                        }
                    } else if r.is_ok() {
                        // Already huge, or not populated.
                        assert!(full, "{s} step {step}: collapsed a non-full table");
                    }
                }
                _ => {
                    if rng.below(4) == 0 {
                        mm.munmap(addr, n * PAGE_SIZE).unwrap();
                        for q in p..p + n {
                            mapped[q as usize] = false;
                            shadow.remove(&q);
                        }
                    } else {
                        // Remap holes.
                        let mut q = p;
                        while q < p + n {
                            if !mapped[q as usize] {
                                let mut e = q;
                                while e < p + n && !mapped[e as usize] {
                                    e += 1;
                                }
                                let prot = Prot::ReadWrite;
                                mm.mmap(BASE + q * PAGE_SIZE, (e - q) * PAGE_SIZE, prot, Backing::Anon).unwrap();
                                for k in q..e {
                                    mapped[k as usize] = true;
                                    writable[k as usize] = true;
                                }
                                q = e;
                            } else {
                                q += 1;
                            }
                        }
                    }
                }
            }
            if step % 100 == 0 || step == 2999 {
                let got: BTreeMap<u64, (u64, bool)> = mm
                    .mappings()
                    .into_iter()
                    .flat_map(|m| {
                        let n = if m.huge() { 512 } else { 1 };
                        (0..n).map(move |k| ((m.addr - BASE) / PAGE_SIZE + k, (m.pfn() + k, m.writable())))
                    })
                    .collect();
                assert_eq!(got, shadow, "{s} step {step}");
                mm.check_invariants().unwrap_or_else(|e| panic!("{s} step {step}: {e}"));
                assert_eq!(frames.in_use(), shadow.len() as u64, "{s} step {step}: frames lost or double-freed");
            }
        }
    }
}

/// `stats()` is a grace period at rest for every strategy: a PTE table that a
/// DONTNEED deferred while another thread held the VMA lock (so that the
/// DONTNEED's own try at a grace period failed, and no later operation
/// released it) is released by the next `stats()` once that thread has left.
/// This was `mm_stress`'s rare "stats() is a grace period" failure: under
/// Refcount, the last table-freeing DONTNEED of a run could lose its
/// try-lock to another thread's fault.
#[test]
fn stats_releases_what_a_busy_dontneed_left_deferred() {
    use std::sync::mpsc;
    let mm = Mm::new(Strategy::Refcount, &FrameAllocator::new());
    mm.mmap(0, PMD_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    mm.fault(0, true).unwrap();
    let (held_tx, held_rx) = mpsc::channel();
    let (leave_tx, leave_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let mm = &mm;
        s.spawn(move || {
            // Holds the VMA lock for read (a semi-locked walker).
            let _walker = mm.semi_locked();
            held_tx.send(()).unwrap();
            leave_rx.recv().unwrap();
        });
        held_rx.recv().unwrap();
        mm.madvise_dontneed(0, PMD_SIZE).unwrap();
        let busy = mm.stats();
        assert_eq!(busy.tables[Level::Pte as usize], 0, "the empty table was unlinked");
        assert_eq!(busy.deferred_tables, 1, "no grace period while a walker holds the VMA lock");
        leave_tx.send(()).unwrap();
    });
    let rest = mm.stats();
    assert_eq!(rest.deferred_tables, 0, "at rest, stats() is a grace period");
    assert_eq!(rest.tables_freed, 1);
    assert_eq!(mm.check_invariants().map(|a| a.len()), Ok(0));
}

#[test]
fn mremap_moves_entries_on_every_strategy() {
    for s in Strategy::ALL {
        let frames = FrameAllocator::new();
        let f = File::new(&frames);
        let mm = Mm::new(s, &frames);
        // Anonymous: two spans' worth, one page in each table, and a huge leaf.
        mm.mmap(BASE, 4 * MB2, Prot::ReadWrite, Backing::Anon).unwrap();
        let a = mm.fault(BASE, true).unwrap();
        let b = mm.fault(BASE + MB2 + 7 * PAGE_SIZE, true).unwrap();
        mm.gup(BASE + 2 * MB2, MB2, true).unwrap();
        mm.collapse(BASE + 2 * MB2).unwrap();
        let huge = mm.mappings().into_iter().find(|m| m.huge()).expect("a huge leaf").pfn();
        let to = BASE + 64 * MB2 + 3 * PAGE_SIZE; // not 2 MiB aligned: the leaf is split
        mm.mremap(BASE, 3 * MB2, to).unwrap();
        assert_eq!(mm.fault(BASE, false), Err(MmError::NotMapped { addr: BASE }), "{s}");
        let got = mm.walk_semilocked(to, 3 * MB2).unwrap();
        assert_eq!(got[0], Some(a), "{s}");
        assert_eq!(got[512 + 7], Some(b), "{s}");
        assert_eq!(got[1024 + 5], Some(huge + 5), "{s}: the huge leaf's frames moved");
        assert_eq!(got.iter().filter(|e| e.is_some()).count(), 2 + 512, "{s}");
        assert_eq!(mm.vmas().len(), 2, "{s}");
        mm.check_invariants().unwrap();
        // The old range's tables are gone but for the span still mapped.
        mm.munmap(to, 3 * MB2).unwrap();
        assert_eq!(mm.stats().tables[Level::Pte as usize], 0, "{s}");
        // A file mapping keeps its page-cache frames at its offsets.
        mm.mmap(BASE, 4 * PAGE_SIZE, Prot::Read, Backing::File { file: f.clone(), pgoff: 10 }).unwrap();
        let p = mm.fault(BASE + 2 * PAGE_SIZE, false).unwrap();
        mm.mremap(BASE + PAGE_SIZE, 3 * PAGE_SIZE, to).unwrap();
        assert_eq!(mm.walk_semilocked(to, 2 * PAGE_SIZE).unwrap(), vec![None, Some(p)], "{s}");
        assert_eq!(f.cached(12), Some(p));
        assert_eq!(mm.fault(to + PAGE_SIZE, false), Ok(p), "{s}: refault finds the moved entry");
        // A punch-hole reaches the moved mapping through the rmap.
        assert_eq!(f.punch_hole(12 * PAGE_SIZE, PAGE_SIZE), Ok(1), "{s}");
        mm.check_invariants().unwrap();
    }
}

#[test]
fn mremap_rejects_bad_input() {
    for s in Strategy::ALL {
        let mm = Mm::new(s, &FrameAllocator::new());
        mm.mmap(BASE, 4 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
        mm.mmap(BASE + 4 * PAGE_SIZE, 4 * PAGE_SIZE, Prot::Read, Backing::Anon).unwrap();
        mm.mmap(BASE + MB2, PAGE_SIZE, Prot::Read, Backing::Anon).unwrap();
        let far = BASE + 16 * MB2;
        assert_eq!(mm.mremap(BASE, 8 * PAGE_SIZE, far), Err(MmError::MultipleVmas { addr: BASE + 4 * PAGE_SIZE }));
        assert_eq!(mm.mremap(BASE + MB2, 2 * PAGE_SIZE, far), Err(MmError::NotMapped { addr: BASE + MB2 + PAGE_SIZE }));
        assert_eq!(mm.mremap(BASE + 2 * MB2, PAGE_SIZE, far), Err(MmError::NotMapped { addr: BASE + 2 * MB2 }));
        assert_eq!(mm.mremap(BASE, PAGE_SIZE, BASE + MB2), Err(MmError::Overlap { addr: BASE + MB2 }));
        assert_eq!(mm.mremap(BASE, 2 * PAGE_SIZE, BASE + PAGE_SIZE), Err(MmError::Overlap { addr: BASE + PAGE_SIZE }));
        assert_eq!(mm.mremap(BASE + 1, PAGE_SIZE, far), Err(MmError::Unaligned { addr: BASE + 1 }));
        assert_eq!(mm.mremap(BASE, 0, far), Err(MmError::ZeroLength));
        assert!(mm.mremap(BASE, PAGE_SIZE, USER_END).is_err());
        assert_eq!(mm.vmas().len(), 3, "{s}: a failed mremap changed the VMAs");
        mm.check_invariants().unwrap();
    }
}
