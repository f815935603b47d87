//! The public operations of an [`Mm`](crate::Mm): input checks, then each
//! operation's locks (from `holds.rs`) and walks (`walk.rs`).

use std::sync::Arc;

use crate::error::{check_addr, check_range, check_walk};
use crate::file::{File, RmapEntry};
use crate::holds::{Mode, PtHold, VmaHold};
use crate::lockorder::{Class, Held};
use crate::pagetable::DEAD;
use crate::pagetable::{
    ACCESSED, DIRTY, ENTRIES, HUGE, Level, PAGE_SIZE, PMD_SIZE, TABLE_BYTES, TablePtr, WRITABLE, index, leaf, pfn,
};
use crate::pervma::VmaNode;
use crate::space::{Mapping, Mm, MmInner, MmStats};
use crate::strategy::Strategy;
use crate::sync::Ordering;
use crate::vma::{Backing, Prot, Vma, VmaTree};
use crate::walk::{SemiLocked, huge_frames};
use crate::{MmError, MmResult};

impl Mm {
    /// Maps `[addr, addr + len)` (fixed address, no replace): `prot` access
    /// to anonymous memory or to a file from page `pgoff` on.
    ///
    /// Takes the VMA lock for write (and the file's `i_mmap` for write).
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0x10_0000, 4 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// assert_eq!(mm.vmas().len(), 1);
    /// let overlap = mm.mmap(0x10_0000 + PAGE_SIZE, PAGE_SIZE, Prot::Read, Backing::Anon);
    /// assert!(matches!(overlap, Err(MmError::Overlap { .. })));
    /// ```
    pub fn mmap(&self, addr: u64, len: u64, prot: Prot, backing: Backing) -> MmResult<()> {
        let end = check_range(addr, len)?;
        if let Backing::File { pgoff, .. } = &backing {
            pgoff.checked_add(len / PAGE_SIZE).ok_or(MmError::OutOfRange { addr })?;
        }
        let m = &*self.inner;
        let mut vmas = m.vma_write();
        if let Some(v) = vmas.first_overlap(addr, end) {
            return Err(MmError::Overlap { addr: v.start });
        }
        let file = match &backing {
            Backing::File { file, .. } => Some(file.clone()),
            Backing::Anon => None,
        };
        let mut next = (*vmas).clone();
        next.insert(Vma { start: addr, end, prot, backing });
        next.merge_around(addr, end);
        // R7: the rmap lists the mapping before a fault can populate it.
        if let Some(f) = file {
            m.sync_rmap(&next, &f);
        }
        let _pt = m.commit_vmas(&mut vmas, next);
        Ok(())
    }

    /// Unmaps `[addr, addr + len)`: removes the VMAs (splitting those that
    /// straddle the ends), zaps the entries and frees every page table that
    /// no remaining VMA needs, at every level. Unmapping a hole is not an
    /// error.
    ///
    /// Takes the VMA lock for write (`i_mmap` for write while updating the
    /// rmap), and under Split the page-table lock for write (SplitPerVma:
    /// the write locks of the VMAs it removes or splits, while it detaches
    /// them).
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Classic, &FrameAllocator::new());
    /// mm.mmap(0x10_0000, 3 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// mm.munmap(0x10_0000 + PAGE_SIZE, PAGE_SIZE).unwrap(); // punches a hole: two VMAs left
    /// assert_eq!(mm.vmas().len(), 2);
    /// mm.munmap(0x10_0000, 3 * PAGE_SIZE).unwrap();
    /// assert!(mm.vmas().is_empty());
    /// assert_eq!(mm.stats().tables, [0, 0, 0, 1]); // every table below the PGD freed
    /// ```
    pub fn munmap(&self, addr: u64, len: u64) -> MmResult<()> {
        let end = check_range(addr, len)?;
        let m = &*self.inner;
        let mut vmas = m.vma_write();
        let mut next = (*vmas).clone();
        let removed = next.remove_range(addr, end);
        if removed.is_empty() {
            return Ok(());
        }
        // R7: from here on no fault can populate the range.
        drop(m.commit_vmas(&mut vmas, next));
        let mut files: Vec<Arc<File>> = Vec::new();
        for v in &removed {
            if let Some(f) = v.file()
                && !files.iter().any(|g| Arc::ptr_eq(f, g))
            {
                files.push(f.clone());
            }
        }
        // R5: once the rmap no longer lists the range, and `i_mmap` for write
        // has waited out every walker that found it there, no rmap walker
        // can reach the range's tables.
        for f in &files {
            m.sync_rmap(&vmas, f);
        }
        let _pt = m.unmap_hold();
        // SAFETY: the VMA lock for write (and the page-table lock for write
        // under Split) keeps every upper table alive: only this function
        // frees them.
        unsafe {
            m.for_each_pmd(addr, end, |pmd, idx, lo, hi| {
                m.zap_slot(pmd, idx, lo, hi, false, None);
            });
            m.free_tables(addr, end, &vmas);
        }
        // SAFETY: the VMA lock for write excludes every user of the tables
        // except rmap walkers (Classic: R5 keeps them away from the freed
        // tables; Refcount: checked by `reclaim_refcount`); under Split the
        // page-table lock for write excludes everyone (R4).
        unsafe { m.reclaim_held_write() };
        Ok(())
    }

    /// Handles a page fault at `addr` (any alignment): allocates missing
    /// page-table levels and maps the page. Returns the frame number.
    ///
    /// Takes the mmap lock for read (Classic, Refcount), the page-table
    /// lock in intent mode (Split, which reads the VMAs through it: R7), the
    /// VMA's read lock inside an RCU section (PerVma, falling back to the
    /// mmap lock for read), or the VMA's page-table lock in intent mode,
    /// found under RCU (SplitPerVma); the PMD PTL to install a PTE table;
    /// the PTE PTL to install the entry (under Refcount after taking a
    /// reference).
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0x10_0000, PAGE_SIZE, Prot::Read, Backing::Anon).unwrap();
    /// let pfn = mm.fault(0x10_0123, false).unwrap(); // any address in the page
    /// assert_eq!(mm.fault(0x10_0000, false), Ok(pfn)); // already mapped: same frame
    /// assert_eq!(mm.fault(0x10_0000, true), Err(MmError::ReadOnly { addr: 0x10_0000 }));
    /// ```
    pub fn fault(&self, addr: u64, write: bool) -> MmResult<u64> {
        check_addr(addr)?;
        let m = &*self.inner;
        let fast = m.under_vma_lock(addr, |n| {
            let v = &n.vma;
            if write && !v.prot.writable() {
                return Err(MmError::ReadOnly { addr });
            }
            Ok(m.fault_locked(v, addr & !(PAGE_SIZE - 1), write))
        });
        if let Some(r) = fast {
            return r;
        }
        let (vmas, _pt) = m.pt_user(Mode::Intent);
        let v = vmas.find(addr).ok_or(MmError::NotMapped { addr })?;
        if write && !v.prot.writable() {
            return Err(MmError::ReadOnly { addr });
        }
        Ok(m.fault_locked(v, addr & !(PAGE_SIZE - 1), write))
    }

    /// `madvise(MADV_DONTNEED)`: zaps `[addr, addr + len)`, and frees PTE
    /// tables that become empty where the strategy can (Refcount, Split;
    /// PerVma: tables whose whole 2 MiB span it zapped; SplitPerVma:
    /// tables whose span lies inside one VMA). Every page of the range must
    /// be mapped.
    ///
    /// Holds what a fault holds; under PerVma and SplitPerVma, the VMA's
    /// lock when the range lies inside one VMA, else the mmap lock for read
    /// (SplitPerVma: and every VMA's page-table lock in intent mode).
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0x10_0000, 2 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// mm.fault(0x10_0000, true).unwrap();
    /// mm.madvise_dontneed(0x10_0000, 2 * PAGE_SIZE).unwrap();
    /// assert_eq!(mm.stats().mapped_pages, 0);
    /// assert_eq!(mm.stats().tables[Level::Pte as usize], 0); // Split frees the empty table
    /// ```
    pub fn madvise_dontneed(&self, addr: u64, len: u64) -> MmResult<u64> {
        let end = check_range(addr, len)?;
        let m = &*self.inner;
        // `held`: SplitPerVma's VMA whose lock is held (R9), else `None`.
        let zap = |held: Option<&VmaNode>| {
            let mut n = 0;
            // SAFETY: R1: the mmap lock for read (Split: intent; PerVma: a
            // VMA's read lock, with the RCU section; SplitPerVma: the VMA's
            // lock) keeps upper tables alive: they are freed only under the
            // write lock, and only where no VMA is.
            unsafe {
                m.for_each_pmd(addr, end, |pmd, idx, lo, hi| {
                    let owner = match held {
                        Some(node) => Some(node),
                        // SAFETY: under SplitPerVma the fallback below holds
                        // the mmap lock for read and every VMA's lock.
                        None if m.strategy == Strategy::SplitPerVma => m.pervma.find_locked(lo),
                        None => None,
                    };
                    n += m.zap_slot(pmd, idx, lo, hi, true, owner)
                })
            };
            n
        };
        // PerVma, SplitPerVma: a range inside one VMA is zapped under that
        // VMA's lock.
        let zapped = m
            .under_vma_lock(addr, |node| {
                let held = (m.strategy == Strategy::SplitPerVma).then_some(node);
                (end <= node.vma.end).then(|| zap(held))
            })
            .flatten();
        let n = match zapped {
            Some(n) => n,
            None => {
                let (vmas, _pt) = m.pt_user(Mode::Intent);
                vmas.check_covered(addr, end).map_err(|a| MmError::NotMapped { addr: a })?;
                zap(None)
            }
        };
        m.maybe_reclaim();
        Ok(n)
    }

    /// Changes the permissions of `[addr, addr + len)`, splitting VMAs at the
    /// ends, and updates the present entries' writable bits. Every page of
    /// the range must be mapped.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0x10_0000, 2 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// mm.mprotect(0x10_0000, PAGE_SIZE, Prot::Read).unwrap(); // splits the VMA
    /// assert_eq!(mm.vmas().len(), 2);
    /// assert!(mm.fault(0x10_0000, true).is_err());
    /// assert!(mm.fault(0x10_0000 + PAGE_SIZE, true).is_ok());
    /// ```
    pub fn mprotect(&self, addr: u64, len: u64, prot: Prot) -> MmResult<()> {
        let end = check_range(addr, len)?;
        let m = &*self.inner;
        let mut vmas = m.vma_write();
        vmas.check_covered(addr, end).map_err(|a| MmError::NotMapped { addr: a })?;
        let mut next = (*vmas).clone();
        next.split_at(addr);
        next.split_at(end);
        let mut files: Vec<Arc<File>> = Vec::new();
        for v in next.range_mut(addr, end) {
            v.prot = prot;
            if let Some(f) = v.file()
                && !files.iter().any(|g| Arc::ptr_eq(f, g))
            {
                files.push(f.clone());
            }
        }
        next.merge_around(addr, end);
        // The rmap's ranges do not change, only how they are split.
        for f in &files {
            m.sync_rmap(&next, f);
        }
        {
            // R7: Split changes the VMAs and their entries in one write hold.
            let _pt = m.commit_vmas(&mut vmas, next);
            // SAFETY: VMA lock for write keeps upper tables alive.
            unsafe { m.for_each_pmd(addr, end, |pmd, idx, lo, hi| m.protect_slot(pmd, idx, lo, hi, prot.writable())) };
        }
        if m.strategy == Strategy::Refcount {
            // SAFETY: the VMA lock is held for write.
            unsafe { m.reclaim_held_write() };
        }
        Ok(())
    }

    /// A GUP-style fully locked walk: the frames of `[addr, addr + len)`,
    /// faulting in missing pages (and, for `write`, requiring writable
    /// mappings), each read under its PTL.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0x10_0000, 3 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// let frames = mm.gup(0x10_0000, 3 * PAGE_SIZE, true).unwrap(); // faults the pages in
    /// assert_eq!(frames.len(), 3);
    /// assert_eq!(mm.stats().mapped_pages, 3);
    /// ```
    pub fn gup(&self, addr: u64, len: u64, write: bool) -> MmResult<Vec<u64>> {
        let end = check_walk(addr, len)?;
        let m = &*self.inner;
        let (vmas, _pt) = m.pt_user(Mode::Intent);
        let mut at = addr;
        while at < end {
            let v = vmas.find(at).ok_or(MmError::NotMapped { addr: at })?;
            if write && !v.prot.writable() {
                return Err(MmError::ReadOnly { addr: at });
            }
            at = v.end;
        }
        let mut out = Vec::with_capacity((len / PAGE_SIZE) as usize);
        let mut a = addr;
        while a < end {
            let v = vmas.find(a).ok_or(MmError::NotMapped { addr: a })?;
            out.push(m.fault_locked(v, a, write));
            a += PAGE_SIZE;
        }
        Ok(out)
    }

    /// A GUP-fast walk (`get_user_pages_fast`): the frames of
    /// `[addr, addr + len)` read with no lock at all, `None` where nothing
    /// is mapped (for `write`, also where the entry is not writable). It
    /// never faults and consults no VMA, only the entries; a caller that
    /// needs every page falls back to [`gup`](Mm::gup) for the `None`s, as
    /// the kernel's callers do.
    ///
    /// It holds only an RCU read-side section, which every strategy's
    /// table freeing waits for (R10): so it may read a table that is being
    /// unlinked, never one that was released. A frame it returns was
    /// mapped at that address at some moment of the walk.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0x10_0000, 2 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// let pfn = mm.fault(0x10_0000, true).unwrap();
    /// assert_eq!(mm.gup_fast(0x10_0000, 2 * PAGE_SIZE, true), Ok(vec![Some(pfn), None]));
    /// mm.mprotect(0x10_0000, 2 * PAGE_SIZE, Prot::Read).unwrap();
    /// assert_eq!(mm.gup_fast(0x10_0000, PAGE_SIZE, true), Ok(vec![None])); // read-only now
    /// assert_eq!(mm.gup_fast(0x10_0000, PAGE_SIZE, false), Ok(vec![Some(pfn)]));
    /// ```
    pub fn gup_fast(&self, addr: u64, len: u64, write: bool) -> MmResult<Vec<Option<u64>>> {
        let end = check_walk(addr, len)?;
        let m = &*self.inner;
        let mut out = vec![None; (len / PAGE_SIZE) as usize];
        let slot = |a: u64| ((a - addr) / PAGE_SIZE) as usize;
        let usable = |e: u64| !write || e & WRITABLE != 0;
        let _rcu = m.pervma.rcu.read();
        // SAFETY: R10: every table, at every level and under every
        // strategy, is released by an RCU callback queued after it was
        // unlinked, so one reached through entries read inside `_rcu` stays
        // allocated until `_rcu` ends.
        unsafe {
            m.for_each_pmd(addr, end, |pmd, idx, lo, hi| {
                let span = lo & !(PMD_SIZE - 1);
                // Acquire: see the contents of a table a fault published.
                let e = pmd.load(idx, Ordering::Acquire);
                if e & HUGE != 0 {
                    if usable(e) {
                        huge_frames(e, span, lo, hi, |a, f| out[slot(a)] = Some(f));
                    }
                } else if e != 0 {
                    let t = TablePtr::from_entry(e).get();
                    let mut a = lo;
                    while a < hi {
                        // Relaxed: an entry names a frame, publishing no
                        // memory of ours.
                        let pe = t.load(index(a, Level::Pte), Ordering::Relaxed);
                        if pe != 0 && usable(pe) {
                            out[slot(a)] = Some(pfn(pe));
                        }
                        a += PAGE_SIZE;
                    }
                }
            })
        };
        Ok(out)
    }

    /// An hmm-style semi-locked walk: the mapped frames of
    /// `[addr, addr + len)` (`None` where nothing is mapped), read without
    /// PTLs. Every page of the range must be in a VMA.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0x10_0000, 2 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// let pfn = mm.fault(0x10_0000, true).unwrap();
    /// assert_eq!(mm.walk_semilocked(0x10_0000, 2 * PAGE_SIZE), Ok(vec![Some(pfn), None]));
    /// ```
    pub fn walk_semilocked(&self, addr: u64, len: u64) -> MmResult<Vec<Option<u64>>> {
        self.semi_locked().frames(addr, len)
    }

    /// Holds the locks of a semi-locked walker (Classic, Refcount: the mmap
    /// lock for read; Split: the page-table lock for read; PerVma: the mmap
    /// lock for read and an RCU section; SplitPerVma: the mmap lock for read
    /// and every VMA's page-table lock for read) until the returned guard
    /// drops, so that several walks can run under one hold. Under Split and
    /// SplitPerVma they see identical tables.
    ///
    /// Do not call other operations of this `Mm` while holding it.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0x10_0000, PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// mm.fault(0x10_0000, true).unwrap();
    /// let walker = mm.semi_locked();
    /// let first = walker.frames(0x10_0000, PAGE_SIZE).unwrap();
    /// let again = walker.frames(0x10_0000, PAGE_SIZE).unwrap(); // same hold: same tables
    /// assert_eq!(first, again);
    /// ```
    pub fn semi_locked(&self) -> SemiLocked<'_> {
        let m = &*self.inner;
        let (vmas, pt) = m.pt_user(Mode::Read);
        match &pt {
            // SAFETY: R4: the page-table lock is held for read.
            PtHold::Read(_) => unsafe { m.reclaim_locked() },
            PtHold::Nodes(_, held) => {
                for h in held {
                    // SAFETY: R9: each VMA's lock is held for read.
                    unsafe { m.reclaim_node(h.node()) };
                }
            }
            _ => {}
        }
        SemiLocked { m, vmas, _pt: pt }
    }

    /// Collapses the full PTE table covering the 2 MiB span at `addr` (2 MiB
    /// aligned, inside one anonymous VMA) into a huge PMD leaf, and frees
    /// the table. A span that is already huge is left alone.
    ///
    /// A non-leaf → leaf change: Classic and Refcount take the mmap lock for
    /// write (PerVma: and the VMA's write lock); Split the page-table lock
    /// for write; SplitPerVma the VMA's page-table lock for write, and no
    /// other lock.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0, PMD_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// assert_eq!(mm.collapse(0), Err(MmError::NotPopulated { addr: 0 }));
    /// mm.gup(0, PMD_SIZE, true).unwrap();
    /// mm.collapse(0).unwrap();
    /// assert_eq!(mm.stats().huge_mappings, 1);
    /// assert_eq!(mm.stats().tables[Level::Pte as usize], 0);
    /// ```
    pub fn collapse(&self, addr: u64) -> MmResult<()> {
        check_addr(addr)?;
        if !addr.is_multiple_of(PMD_SIZE) {
            return Err(MmError::Unaligned { addr });
        }
        let m = &*self.inner;
        if m.strategy == Strategy::SplitPerVma {
            // The VMA's lock for write (R9): its VMA stays in place, and no
            // other thread can reach the table, which is released at once.
            let _h = Held::take(Class::PageTable);
            let hold = m.pervma.lock_node(addr, Mode::Write).map_err(|_| MmError::NotMapped { addr })?;
            let node = hold.node();
            m.collapse_locked(&node.vma, addr, Some(node))?;
            // SAFETY: R9: held for write.
            unsafe { m.reclaim_node(node) };
            return Ok(());
        }
        let (vmas, _pt) = if m.strategy == Strategy::Split {
            m.pt_user(Mode::Write)
        } else {
            let g = m.vma_write();
            if m.strategy == Strategy::PerVma {
                // `vma_start_write`, as khugepaged does, before the RCU
                // section (the wait for the VMA's readers is not a reader).
                m.pervma.write_lock_at(addr);
            }
            (VmaHold::Write(g), m.pt_hold(Mode::Write))
        };
        let v = vmas.find(addr).ok_or(MmError::NotMapped { addr })?;
        m.collapse_locked(v, addr, None)?;
        // SAFETY: Classic/Refcount hold the VMA lock for write; Split holds
        // the page-table lock for write.
        unsafe { m.reclaim_held_write() };
        Ok(())
    }

    /// Page-table statistics. Deferred tables are released first wherever
    /// a grace period can be had without waiting (as after a DONTNEED: the
    /// VMA lock for write under Classic and Refcount, with no rmap walker
    /// inside for Refcount; the page-table lock for read under Split, and
    /// every VMA's under SplitPerVma, which `stats` holds while it counts),
    /// then the RCU callbacks that release them (R10), for which it retries
    /// a few thousand times, yielding. So at rest, with no other thread in
    /// the address space, `deferred_tables` is 0 for every strategy, unless
    /// another thread of the process stays inside a crossbeam-epoch section
    /// all that while, as the collector is global.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// assert_eq!(mm.stats().mapped_pages, 0);
    /// mm.mmap(0x10_0000, PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// mm.fault(0x10_0000, true).unwrap();
    /// assert_eq!(mm.stats().mapped_pages, 1);
    /// ```
    pub fn stats(&self) -> MmStats {
        if self.inner.strategy != Strategy::PerVma {
            self.inner.maybe_reclaim();
        }
        let sl = self.semi_locked();
        let m = sl.m;
        let mut mapped = 0;
        let mut huge = 0;
        sl.for_each_span(|_, _, pte_table| match pte_table {
            None => {
                huge += 1;
                mapped += ENTRIES as u64;
            }
            Some(t) => mapped += u64::from(t.present.load(Ordering::Relaxed)),
        });
        drop(sl);
        // Outside every section of ours: the RCU callbacks that release
        // tables (R10), with more attempts than a DONTNEED's.
        m.pervma.settle();
        let tables = core::array::from_fn(|i| m.live[i].load(Ordering::Relaxed));
        let deferred = m.deferred_len.load(Ordering::Relaxed) + m.pervma.pending();
        MmStats {
            tables,
            deferred_tables: deferred,
            peak_deferred_tables: m.peak_deferred.load(Ordering::Relaxed),
            page_table_bytes: (tables.iter().sum::<u64>() + deferred) * TABLE_BYTES,
            mapped_pages: mapped,
            huge_mappings: huge,
            tables_freed: m.pervma.released(),
            quarantined_tables: m.pervma.quarantined(),
        }
    }

    /// Every leaf entry, in address order (a semi-locked walk of every
    /// VMA's spans; [`check_invariants`](Mm::check_invariants) looks for
    /// entries outside VMAs).
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0x10_0000, 4 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// mm.fault(0x10_0000 + 2 * PAGE_SIZE, true).unwrap();
    /// mm.fault(0x10_0000, true).unwrap();
    /// let addrs: Vec<u64> = mm.mappings().iter().map(|m| m.addr).collect();
    /// assert_eq!(addrs, [0x10_0000, 0x10_0000 + 2 * PAGE_SIZE]); // address order
    /// ```
    pub fn mappings(&self) -> Vec<Mapping> {
        let sl = self.semi_locked();
        let mut out = Vec::new();
        sl.for_each_span(|span, e, pte_table| match pte_table {
            None => out.push(Mapping { addr: span, entry: e }),
            Some(t) => {
                for i in 0..ENTRIES {
                    let pe = t.load(i, Ordering::Relaxed);
                    if pe != 0 {
                        out.push(Mapping { addr: span + i as u64 * PAGE_SIZE, entry: pe });
                    }
                }
            }
        });
        out
    }

    /// The VMAs, in address order.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0x20_0000, PAGE_SIZE, Prot::Read, Backing::Anon).unwrap();
    /// mm.mmap(0x10_0000, PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// let starts: Vec<u64> = mm.vmas().iter().map(|v| v.start).collect();
    /// assert_eq!(starts, [0x10_0000, 0x20_0000]);
    /// ```
    pub fn vmas(&self) -> Vec<Vma> {
        let (_h, vmas) = self.inner.vma_read();
        vmas.iter().cloned().collect()
    }
}

impl MmInner {
    /// Rebuilds this address space's entries in `file`'s rmap from the VMA
    /// tree. Called under the VMA lock for write.
    pub(crate) fn sync_rmap(&self, vmas: &VmaTree, file: &Arc<File>) {
        file.set_rmap(self.id(), self.rmap_entries(vmas, file));
    }

    /// This address space's rmap entries for `file`, from the VMA tree.
    pub(crate) fn rmap_entries(&self, vmas: &VmaTree, file: &Arc<File>) -> Vec<RmapEntry> {
        vmas.iter()
            .filter_map(|v| match &v.backing {
                Backing::File { file: f, pgoff } if Arc::ptr_eq(f, file) => {
                    Some(RmapEntry { mm: self.me.clone(), mm_id: self.id(), start: v.start, end: v.end, pgoff: *pgoff })
                }
                _ => None,
            })
            .collect()
    }
}

impl MmInner {
    /// Collapse's work in `v`, the VMA containing `addr` (2 MiB aligned),
    /// under the locks `Mm::collapse` chose; the freed table is deferred
    /// onto `owner`'s list (SplitPerVma) or the address space's.
    fn collapse_locked(&self, v: &Vma, addr: u64, owner: Option<&VmaNode>) -> MmResult<()> {
        if v.end < addr + PMD_SIZE {
            return Err(MmError::NotPopulated { addr });
        }
        if v.file().is_some() {
            return Err(MmError::NotAnonymous { addr });
        }
        let writable = v.prot.writable();
        // SAFETY: the VMA lock (Split: the page-table lock; SplitPerVma: the
        // VMA's lock) keeps upper tables alive.
        let pmd = unsafe { self.lookup_pmd(addr, false) }.ok_or(MmError::NotPopulated { addr })?;
        let idx = index(addr, Level::Pmd);
        let g = pmd.lock(Class::PmdPtl);
        let e = pmd.load(idx, Ordering::Relaxed);
        if e == 0 {
            return Err(MmError::NotPopulated { addr });
        }
        if e & HUGE != 0 {
            return Ok(());
        }
        let ptr = TablePtr::from_entry(e);
        // SAFETY: linked (we read its entry under the PMD PTL, which every
        // unlinker holds).
        let t = unsafe { ptr.get() };
        let tg = t.lock(Class::PtePtl);
        if t.present.load(Ordering::Relaxed) != ENTRIES as u32 {
            return Err(MmError::NotPopulated { addr });
        }
        // Acquire: every earlier user's accesses happen before the release.
        if self.strategy == Strategy::Refcount
            && t.refs.compare_exchange(0, DEAD, Ordering::Acquire, Ordering::Relaxed).is_err()
        {
            return Err(MmError::Busy { addr });
        }
        let mut dirty = 0;
        for slot in &t.entries {
            dirty |= slot.load(Ordering::Relaxed) & DIRTY;
            slot.store(0, Ordering::Relaxed);
        }
        t.present.store(0, Ordering::Relaxed);
        self.frames.free(ENTRIES as u64);
        let huge = self.frames.alloc_huge();
        let w = if writable { WRITABLE } else { 0 };
        // Release: pairs with walkers' Acquire loads of PMD entries.
        pmd.entries[idx].store(leaf(huge, HUGE | ACCESSED | dirty | w), Ordering::Release);
        self.live[Level::Pte as usize].fetch_sub(1, Ordering::Relaxed);
        drop(tg);
        drop(g);
        self.defer(ptr, owner);
        Ok(())
    }
}
