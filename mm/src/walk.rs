//! Walks under the page-table locks: the semi-locked walk ([`SemiLocked`]),
//! and the per-slot work of faults, zaps, mprotect and the rmap zap.

use crate::error::check_walk;
use crate::file::MapsFile;
use crate::free::Pmd;
use crate::holds::{Mode, PtHold, VmaHold};
use crate::lockorder::{Class, Held};
use crate::pagetable::next_boundary;
use crate::pagetable::{
    ACCESSED, DIRTY, ENTRIES, FILE, HUGE, Level, PAGE_SIZE, PGD_SIZE, PMD_SIZE, PUD_SIZE, PtlGuard, Table, TablePtr,
    WRITABLE, index, leaf, pfn,
};
use crate::pervma::VmaNode;
use crate::space::MmInner;
use crate::strategy::Strategy;
use crate::sync::{Ordering, fence};
use crate::vma::Vma;
use crate::{MmError, MmResult};

/// The locks of a semi-locked walker, held; see [`Mm::semi_locked`](crate::Mm::semi_locked).
///
/// ```
/// use phase_lock_mm::*;
/// let mm = Mm::new(Strategy::Classic, &FrameAllocator::new());
/// mm.mmap(0x10_0000, PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
/// let walker: SemiLocked<'_> = mm.semi_locked();
/// assert_eq!(walker.frames(0x10_0000, PAGE_SIZE), Ok(vec![None]));
/// drop(walker); // release before any other operation on `mm`
/// mm.fault(0x10_0000, true).unwrap();
/// ```
pub struct SemiLocked<'a> {
    pub(crate) m: &'a MmInner,
    // Declared before `_pt`: dropped first (it may borrow through it).
    pub(crate) vmas: VmaHold<'a>,
    pub(crate) _pt: PtHold<'a>,
}

impl SemiLocked<'_> {
    /// Calls `f(span, pmd_entry, pte_table)` once for each 2 MiB span that a
    /// VMA covers and whose PMD entry is not none, in address order:
    /// `pte_table` is the PTE table the entry points at, or `None` for a
    /// huge leaf. Two VMAs may share a span; it is visited once.
    pub(crate) fn for_each_span(&self, mut f: impl FnMut(u64, u64, Option<&Table>)) {
        let mut seen = None;
        for v in self.vmas.iter() {
            // SAFETY: the semi-locked hold keeps every linked table alive
            // (Classic: only the write lock frees; Refcount: release needs
            // the write lock; Split: read excludes every unlinker; PerVma:
            // the RCU section; SplitPerVma: every VMA's lock in read mode,
            // and the mmap lock for read: R9). Entries exist only inside
            // VMAs.
            unsafe {
                self.m.for_each_pmd(v.start, v.end, |pmd, idx, lo, _| {
                    let span = lo & !(PMD_SIZE - 1);
                    if seen.replace(span) == Some(span) {
                        return;
                    }
                    let e = pmd.load(idx, Ordering::Acquire);
                    if e & HUGE != 0 {
                        f(span, e, None);
                    } else if e != 0 {
                        f(span, e, Some(TablePtr::from_entry(e).get()));
                    }
                })
            };
        }
    }

    /// The mapped frames of `[addr, addr + len)` (`None` where nothing is
    /// mapped), read without PTLs (Refcount: holding a reference on each PTE
    /// table while reading it). Every page must be in a VMA.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Refcount, &FrameAllocator::new());
    /// mm.mmap(0x10_0000, PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// let pfn = mm.fault(0x10_0000, true).unwrap();
    /// let walker = mm.semi_locked();
    /// assert_eq!(walker.frames(0x10_0000, PAGE_SIZE), Ok(vec![Some(pfn)]));
    /// assert!(walker.frames(0x40_0000, PAGE_SIZE).is_err()); // not in a VMA
    /// ```
    pub fn frames(&self, addr: u64, len: u64) -> MmResult<Vec<Option<u64>>> {
        let end = check_walk(addr, len)?;
        self.vmas.check_covered(addr, end).map_err(|a| MmError::NotMapped { addr: a })?;
        let m = self.m;
        let mut out = vec![None; (len / PAGE_SIZE) as usize];
        let slot = |a: u64| ((a - addr) / PAGE_SIZE) as usize;
        // SAFETY: the semi-locked hold keeps linked upper tables alive (they
        // are freed only under the write lock), and PTE tables: Classic frees
        // them only under the write lock; Split's read mode (SplitPerVma's,
        // on every VMA) excludes every unlinker; Refcount pins each table
        // before reading it; PerVma's RCU section outlasts every table it
        // can reach.
        unsafe {
            m.for_each_pmd(addr, end, |pmd, idx, lo, hi| {
                let span = lo & !(PMD_SIZE - 1);
                let read = |t: &Table, out: &mut Vec<Option<u64>>| {
                    if matches!(m.strategy, Strategy::Split | Strategy::SplitPerVma | Strategy::Refcount) {
                        // Split, SplitPerVma: read mode excludes unlinkers;
                        // Refcount: pinned. (PerVma: a table unlinked beside us stays
                        // allocated for our RCU section, and may be read.)
                        t.check_linked();
                    }
                    let mut a = lo;
                    while a < hi {
                        let pe = t.load(index(a, Level::Pte), Ordering::Relaxed);
                        out[slot(a)] = (pe != 0).then(|| pfn(pe));
                        a += PAGE_SIZE;
                    }
                };
                if m.strategy == Strategy::Refcount {
                    match m.map_pte(pmd, idx, false, false) {
                        Pmd::None => {}
                        Pmd::Huge(e) => huge_frames(e, span, lo, hi, |a, f| out[slot(a)] = Some(f)),
                        Pmd::Pte(p) => read(p.t, &mut out),
                    }
                    return;
                }
                // Acquire: see the contents of a table published by a
                // concurrent fault (Classic).
                let e = pmd.load(idx, Ordering::Acquire);
                if e & HUGE != 0 {
                    huge_frames(e, span, lo, hi, |a, f| out[slot(a)] = Some(f));
                } else if e != 0 {
                    read(TablePtr::from_entry(e).get(), &mut out);
                }
            })
        };
        Ok(out)
    }
}

pub(crate) fn huge_frames(e: u64, span: u64, lo: u64, hi: u64, mut f: impl FnMut(u64, u64)) {
    let mut a = lo;
    while a < hi {
        f(a, pfn(e) + (a - span) / PAGE_SIZE);
        a += PAGE_SIZE;
    }
}

impl MmInner {
    /// Calls `f(pmd, idx, lo, hi)` for each 2 MiB span intersecting
    /// `[start, end)` whose PMD table exists, `[lo, hi)` being the
    /// intersection.
    ///
    /// # Safety
    ///
    /// As for `lookup_pmd`.
    pub(crate) unsafe fn for_each_pmd(&self, start: u64, end: u64, mut f: impl FnMut(&Table, usize, u64, u64)) {
        // SAFETY: as for `lookup_pmd`.
        let pgd = unsafe { self.pgd.get() };
        let mut a = start;
        while a < end {
            let pgd_end = end.min(next_boundary(a, PGD_SIZE));
            // SAFETY: caller's contract.
            let Some(pud) = (unsafe { self.child(pgd, index(a, Level::Pgd), false, Level::Pud) }) else {
                a = pgd_end;
                continue;
            };
            while a < pgd_end {
                let pud_end = pgd_end.min(next_boundary(a, PUD_SIZE));
                // SAFETY: caller's contract.
                let Some(pmd) = (unsafe { self.child(pud, index(a, Level::Pud), false, Level::Pmd) }) else {
                    a = pud_end;
                    continue;
                };
                while a < pud_end {
                    let hi = pud_end.min(next_boundary(a, PMD_SIZE));
                    f(pmd, index(a, Level::Pmd), a, hi);
                    a = hi;
                }
            }
        }
    }

    /// The PMD table covering `addr`.
    ///
    /// # Safety
    ///
    /// The caller holds what keeps upper tables alive (R1).
    pub(crate) unsafe fn lookup_pmd(&self, addr: u64, alloc: bool) -> Option<&Table> {
        // SAFETY: the PGD lives as long as the Mm; children per the caller.
        unsafe {
            let pgd = self.pgd.get();
            let pud = self.child(pgd, index(addr, Level::Pgd), alloc, Level::Pud)?;
            self.child(pud, index(addr, Level::Pud), alloc, Level::Pmd)
        }
    }

    /// The child table at `parent[i]`, allocating it (under the upper lock)
    /// if missing and `alloc`.
    ///
    /// # Safety
    ///
    /// `parent` is alive and the caller holds what keeps its children alive.
    pub(crate) unsafe fn child<'a>(
        &'a self,
        parent: &'a Table,
        i: usize,
        alloc: bool,
        level: Level,
    ) -> Option<&'a Table> {
        // Acquire: pairs with the Release store that linked the child, so its
        // initialized contents are visible.
        let e = parent.load(i, Ordering::Acquire);
        if e != 0 {
            // SAFETY: linked; the caller keeps it alive.
            return Some(unsafe { TablePtr::from_entry(e).get() });
        }
        if !alloc {
            return None;
        }
        let new = self.alloc_table();
        let g = PtlGuard::new(&self.upper, Class::Upper);
        // Relaxed: the upper lock orders every change of this entry.
        let e = parent.load(i, Ordering::Relaxed);
        if e != 0 {
            drop(g);
            self.release_unpublished(new);
            // SAFETY: linked; the caller keeps it alive.
            return Some(unsafe { TablePtr::from_entry(e).get() });
        }
        // Release: publishes the zeroed table to lock-free readers.
        parent.entries[i].store(new.entry(), Ordering::Release);
        parent.present.fetch_add(1, Ordering::Relaxed);
        self.live[level as usize].fetch_add(1, Ordering::Relaxed);
        // SAFETY: just linked by us; the caller keeps it alive.
        Some(unsafe { new.get() })
    }

    /// Faults `addr` (page aligned) in `v`, whose permissions the caller
    /// checked, holding the VMA lock for read (Split: plus intent).
    pub(crate) fn fault_locked(&self, v: &Vma, addr: u64, write: bool) -> u64 {
        // SAFETY: R1: the VMA lock (Split: the page-table lock) keeps upper
        // tables alive.
        let pmd = unsafe { self.lookup_pmd(addr, true) }.expect("allocating lookup");
        let idx = index(addr, Level::Pmd);
        let dirty = if write { DIRTY } else { 0 };
        loop {
            match self.map_pte(pmd, idx, true, true) {
                Pmd::None => continue,
                Pmd::Huge(e) => {
                    let _g = pmd.lock(Class::PmdPtl);
                    if pmd.load(idx, Ordering::Relaxed) != e {
                        continue;
                    }
                    if e | ACCESSED | dirty != e {
                        pmd.entries[idx].store(e | ACCESSED | dirty, Ordering::Release);
                    }
                    return pfn(e) + index(addr, Level::Pte) as u64;
                }
                Pmd::Pte(p) => {
                    let i = index(addr, Level::Pte);
                    // Relaxed: under the PTL.
                    let pe = p.t.load(i, Ordering::Relaxed);
                    if pe != 0 {
                        if pe | ACCESSED | dirty != pe {
                            p.t.entries[i].store(pe | ACCESSED | dirty, Ordering::Relaxed);
                        }
                        return pfn(pe);
                    }
                    let (frame, file) = match v.file_page(addr) {
                        Some((f, pg)) => (f.page(pg), FILE),
                        None => (self.frames.alloc(), 0),
                    };
                    let w = if v.prot.writable() { WRITABLE } else { 0 };
                    p.t.entries[i].store(leaf(frame, file | ACCESSED | dirty | w), Ordering::Relaxed);
                    // A load and a store, not an RMW: the PTL serializes
                    // every change of `present`.
                    p.t.present.store(p.t.present.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                    return frame;
                }
            }
        }
    }

    /// Splits the huge leaf `e` at `pmd[idx]` into a full PTE table. The
    /// caller holds the PMD PTL. A leaf → non-leaf change: allowed to
    /// walkers that hold only intent (Split) or the mmap lock for read.
    pub(crate) fn split_huge_locked(&self, pmd: &Table, idx: usize, e: u64) {
        let new = self.alloc_table();
        // SAFETY: ours until linked.
        let t = unsafe { new.get() };
        let flags = e & (WRITABLE | ACCESSED | DIRTY);
        for (i, slot) in t.entries.iter().enumerate() {
            // Relaxed: published by the Release store below.
            slot.store(leaf(pfn(e) + i as u64, flags), Ordering::Relaxed);
        }
        t.present.store(ENTRIES as u32, Ordering::Relaxed);
        // Release: publishes the filled table.
        pmd.entries[idx].store(new.entry(), Ordering::Release);
        self.live[Level::Pte as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Zaps `[lo, hi)` within the span of `pmd[idx]`; with `free_empty`
    /// under Split (PerVma: when `[lo, hi)` is the whole span;
    /// SplitPerVma: when the span lies inside `owner`'s VMA, whose lock the
    /// caller holds in intent mode: R9), unlinks the PTE table if that
    /// empties it (Refcount unlinks on the last put anyway). Returns
    /// entries cleared (a huge leaf counts 512).
    pub(crate) fn zap_slot(
        &self,
        pmd: &Table,
        idx: usize,
        lo: u64,
        hi: u64,
        free_empty: bool,
        owner: Option<&VmaNode>,
    ) -> u64 {
        let span = lo & !(PMD_SIZE - 1);
        loop {
            match self.map_pte(pmd, idx, false, true) {
                Pmd::None => return 0,
                Pmd::Huge(e) => {
                    let _g = pmd.lock(Class::PmdPtl);
                    if pmd.load(idx, Ordering::Relaxed) != e {
                        continue;
                    }
                    if lo == span && hi == span + PMD_SIZE {
                        pmd.entries[idx].store(0, Ordering::Release);
                        pmd.present.fetch_sub(1, Ordering::Relaxed);
                        self.frames.free(ENTRIES as u64);
                        return ENTRIES as u64;
                    }
                    self.split_huge_locked(pmd, idx, e);
                }
                Pmd::Pte(p) => {
                    let mut n = 0u32;
                    let mut anon = 0u64;
                    for i in index(lo, Level::Pte)..=index(hi - 1, Level::Pte) {
                        // Relaxed: under the PTL.
                        let pe = p.t.load(i, Ordering::Relaxed);
                        if pe != 0 {
                            p.t.entries[i].store(0, Ordering::Relaxed);
                            n += 1;
                            if pe & FILE == 0 {
                                anon += 1;
                            }
                        }
                    }
                    self.frames.free(anon);
                    // Under the PTL, which serializes every change of `present`.
                    let left = p.t.present.load(Ordering::Relaxed) - n;
                    p.t.present.store(left, Ordering::Relaxed);
                    let ptr = p.ptr;
                    drop(p);
                    // PerVma frees only tables all of whose entries were in
                    // the range (CONFIG_PT_RECLAIM: ranges of at least PMD
                    // size; under loom a table has fewer entries).
                    let table_end = span + ENTRIES as u64 * PAGE_SIZE;
                    let whole = lo == span && hi >= table_end;
                    let reclaims = match self.strategy {
                        Strategy::Split => true,
                        Strategy::PerVma => whole,
                        // R9: a table shared with another VMA (or with a
                        // gap another VMA may fill) is left to munmap.
                        Strategy::SplitPerVma => owner.is_some_and(|n| n.vma.start <= span && table_end <= n.vma.end),
                        Strategy::Classic | Strategy::Refcount => false,
                    };
                    if free_empty && left == 0 && reclaims {
                        self.try_unlink(pmd, idx, ptr, owner);
                    }
                    return u64::from(n);
                }
            }
        }
    }

    /// Sets or clears the writable bit of present entries in `[lo, hi)`.
    pub(crate) fn protect_slot(&self, pmd: &Table, idx: usize, lo: u64, hi: u64, writable: bool) {
        let span = lo & !(PMD_SIZE - 1);
        let fix = |e: u64| if writable { e | WRITABLE } else { e & !WRITABLE };
        loop {
            match self.map_pte(pmd, idx, false, true) {
                Pmd::None => return,
                Pmd::Huge(e) => {
                    let _g = pmd.lock(Class::PmdPtl);
                    if pmd.load(idx, Ordering::Relaxed) != e {
                        continue;
                    }
                    if lo == span && hi == span + PMD_SIZE {
                        pmd.entries[idx].store(fix(e), Ordering::Release);
                        return;
                    }
                    self.split_huge_locked(pmd, idx, e);
                }
                Pmd::Pte(p) => {
                    for i in index(lo, Level::Pte)..=index(hi - 1, Level::Pte) {
                        let pe = p.t.load(i, Ordering::Relaxed);
                        if pe != 0 {
                            p.t.entries[i].store(fix(pe), Ordering::Relaxed);
                        }
                    }
                    return;
                }
            }
        }
    }

    /// Punch-hole's per-mapping zap, called under `i_mmap` for read and no
    /// VMA lock. Returns entries cleared.
    pub(crate) fn rmap_zap(&self, start: u64, end: u64) -> u64 {
        let mut n = 0;
        match self.strategy {
            Strategy::Classic => {
                // SAFETY: R5: tables covering a range listed in the rmap are
                // freed only after munmap removed it from the rmap, which
                // waits for our `i_mmap` hold.
                unsafe {
                    self.for_each_pmd(start, end, |pmd, idx, lo, hi| n += self.zap_slot(pmd, idx, lo, hi, false, None))
                };
            }
            Strategy::Refcount => {
                // R6: announce ourselves before reading any entry. Relaxed
                // increment + SeqCst fence: Dekker with `reclaim_refcount`.
                self.rmap_walkers.fetch_add(1, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                // SAFETY: R5 for upper tables; PTE tables are pinned by
                // `map_pte`, and unlinked ones are not released while we are
                // counted (R6).
                unsafe {
                    self.for_each_pmd(start, end, |pmd, idx, lo, hi| n += self.zap_slot(pmd, idx, lo, hi, true, None))
                };
                // Release: our accesses happen before a reclaimer that sees
                // the count drop.
                self.rmap_walkers.fetch_sub(1, Ordering::Release);
            }
            Strategy::Split | Strategy::PerVma => {
                // Split: intent mode. PerVma: an RCU section, as tables that
                // a DONTNEED under a per-VMA lock unlinks may be in our path;
                // and, as the kernel's `unmap_mapping_range`, no table freed.
                let _pt = self.pt_hold(Mode::Intent);
                let free_empty = self.strategy == Strategy::Split;
                // SAFETY: Split: R1/R4: intent mode keeps every table we can
                // reach alive. PerVma: R5 for upper tables; PTE tables are
                // released only after our RCU section, and R3's recheck runs
                // under the PTL.
                unsafe {
                    self.for_each_pmd(start, end, |pmd, idx, lo, hi| {
                        n += self.zap_slot(pmd, idx, lo, hi, free_empty, None)
                    })
                };
            }
            Strategy::SplitPerVma => {
                // Piece by piece: each VMA's part under its lock in intent
                // mode, freeing tables inside it (R9).
                let mut a = start;
                while a < end {
                    let _h = Held::take(Class::PageTable);
                    match self.pervma.lock_node(a, Mode::Intent) {
                        Ok(hold) => {
                            let node = hold.node();
                            let b = end.min(node.vma.end);
                            // SAFETY: R1: the VMA is in place while we hold its
                            // lock, so are the upper tables covering it; its
                            // PTE tables are unlinked under its intent mode
                            // and released only in read or write mode (R9).
                            unsafe {
                                self.for_each_pmd(a, b, |pmd, idx, lo, hi| {
                                    n += self.zap_slot(pmd, idx, lo, hi, true, Some(node))
                                })
                            };
                            a = b;
                        }
                        Err(next) => {
                            // No VMA holds `[a, next)`: either a `munmap`
                            // removed it and zaps it once it has waited for
                            // our `i_mmap` hold, or an `mmap` has listed it in
                            // the rmap and not yet published it, and its
                            // faults will read the page cache we emptied.
                            // Walking it with no VMA's lock would race that
                            // new VMA's zappers, which may free its tables.
                            let b = end.min(next);
                            a = b;
                        }
                    }
                }
            }
        }
        n
    }
}

impl MapsFile for MmInner {
    fn rmap_zap(&self, start: u64, end: u64) -> u64 {
        MmInner::rmap_zap(self, start, end)
    }

    fn maybe_reclaim(&self) {
        MmInner::maybe_reclaim(self)
    }
}
