//! [`Mm::mremap`]: a mapping moved to another address with its entries
//! moved table to table (the kernel's `move_vma` and `move_ptes`), the
//! seed thread's other hard case: it changes the VMAs and the page tables
//! together.
//!
//! What it holds, per strategy (rule R11 of the crate docs): the VMA lock
//! for write; `i_mmap` for write, for a file mapping, across the whole
//! move (the kernel's rmap locks), so that no punch-hole can find an entry
//! between its old and its new address; and what a layout change holds
//! besides (Split: the page-table lock for write; PerVma: the write locks
//! of the VMAs replaced and created; SplitPerVma: those VMAs' page-table
//! locks for write). Then each entry is moved under the old table's PTL
//! and then the new one's, and the old range's tables that no VMA needs
//! are freed, as `munmap` frees them.

use std::sync::Arc;

use crate::error::check_range;
use crate::free::Pmd;
use crate::lockorder::Class;
use crate::pagetable::{Level, PAGE_SIZE, index};
use crate::space::{Mm, MmInner};
use crate::sync::Ordering;
use crate::vma::{Backing, Vma};
use crate::{MmError, MmResult};

impl Mm {
    /// Moves the mapping of `[old, old + len)` to `[new, new + len)`: the
    /// range must lie inside one VMA and the new range must be free (no
    /// replacing, unlike `MREMAP_FIXED`); the two may not overlap. Present
    /// entries move with their frames (nothing is refaulted); page tables
    /// the old range no longer needs are freed.
    ///
    /// Takes the VMA lock for write, `i_mmap` for write for a file mapping,
    /// what a layout change takes besides (rule R11), and the PTLs of the
    /// old and the new tables, one after the other.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::SplitPerVma, &FrameAllocator::new());
    /// mm.mmap(0x10_0000, 2 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// let pfn = mm.fault(0x10_0000, true).unwrap();
    /// mm.mremap(0x10_0000, 2 * PAGE_SIZE, 0x4000_0000).unwrap();
    /// assert_eq!(mm.fault(0x10_0000, false), Err(MmError::NotMapped { addr: 0x10_0000 }));
    /// assert_eq!(mm.walk_semilocked(0x4000_0000, 2 * PAGE_SIZE), Ok(vec![Some(pfn), None])); // moved, not refaulted
    /// assert_eq!(mm.stats().mapped_pages, 1);
    /// ```
    pub fn mremap(&self, old: u64, len: u64, new: u64) -> MmResult<()> {
        let old_end = check_range(old, len)?;
        let new_end = check_range(new, len)?;
        if old < new_end && new < old_end {
            return Err(MmError::Overlap { addr: old.max(new) });
        }
        let m = &*self.inner;
        let mut vmas = m.vma_write();
        let v = vmas.find(old).ok_or(MmError::NotMapped { addr: old })?.clone();
        if v.end < old_end {
            return Err(match vmas.find(v.end) {
                Some(_) => MmError::MultipleVmas { addr: v.end },
                None => MmError::NotMapped { addr: v.end },
            });
        }
        if let Some(o) = vmas.first_overlap(new, new_end) {
            return Err(MmError::Overlap { addr: o.start });
        }
        let backing = match &v.backing {
            Backing::Anon => Backing::Anon,
            Backing::File { file, pgoff } => {
                Backing::File { file: file.clone(), pgoff: pgoff + (old - v.start) / PAGE_SIZE }
            }
        };
        let mut next = (*vmas).clone();
        next.remove_range(old, old_end);
        next.insert(Vma { start: new, end: new_end, prot: v.prot, backing });
        next.merge_around(new, new_end);
        // R11: `i_mmap` for write across the move, before the page-table
        // lock (lock order).
        let file: Option<Arc<crate::File>> = v.file().cloned();
        let mut rmap = file.as_ref().map(|f| f.lock_rmap());
        let pt = m.commit_vmas(&mut vmas, next);
        let mut a = 0;
        while a < len {
            // SAFETY: R1/R11: the VMA lock for write (with `pt`) keeps the
            // upper tables of both ranges alive; we free none until the
            // move is done.
            unsafe { m.move_entry(old + a, new + a) };
            a += PAGE_SIZE;
        }
        // SAFETY: as in `munmap`: only tables no VMA overlaps any more.
        unsafe { m.free_tables(old, old_end, &vmas) };
        if let (Some(f), Some(g)) = (&file, &mut rmap) {
            g.set(m.id(), m.rmap_entries(&vmas, f));
        }
        // SAFETY: the write lock that fits the strategy is held (Split:
        // `pt`; SplitPerVma: the VMA lock, as in `munmap`: R9.4).
        unsafe { m.reclaim_held_write() };
        drop(pt);
        drop(rmap);
        Ok(())
    }
}

impl MmInner {
    /// Moves the entry at `from` (if any) to `to`, whose slot is none:
    /// cleared under the old table's PTL, installed under the new one's (a
    /// huge leaf at `from` is split first).
    ///
    /// # Safety
    ///
    /// `mremap`'s locks (R11): nothing else can change either entry, and
    /// the upper tables of both stay alive.
    unsafe fn move_entry(&self, from: u64, to: u64) {
        // SAFETY: the caller's contract.
        let Some(pmd) = (unsafe { self.lookup_pmd(from, false) }) else { return };
        let idx = index(from, Level::Pmd);
        let e = loop {
            match self.map_pte(pmd, idx, false, true) {
                Pmd::None => return,
                Pmd::Huge(h) => self.split_huge(pmd, idx, h),
                Pmd::Pte(p) => {
                    let i = index(from, Level::Pte);
                    // Relaxed: under the PTL.
                    let e = p.t.load(i, Ordering::Relaxed);
                    if e == 0 {
                        return;
                    }
                    p.t.entries[i].store(0, Ordering::Relaxed);
                    p.t.present.store(p.t.present.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
                    break e;
                }
            }
        };
        // SAFETY: the caller's contract.
        let pmd = unsafe { self.lookup_pmd(to, true) }.expect("allocating lookup");
        let idx = index(to, Level::Pmd);
        loop {
            match self.map_pte(pmd, idx, true, true) {
                Pmd::None => continue,
                // The new range was empty, and no collapse can have made a
                // leaf of a span it shares (its VMA is write-locked).
                Pmd::Huge(h) => self.split_huge(pmd, idx, h),
                Pmd::Pte(p) => {
                    let i = index(to, Level::Pte);
                    debug_assert_eq!(p.t.load(i, Ordering::Relaxed), 0, "mremap onto a present entry");
                    p.t.entries[i].store(e, Ordering::Relaxed);
                    p.t.present.store(p.t.present.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    /// Splits the huge leaf `h` at `pmd[idx]` if it is still there.
    fn split_huge(&self, pmd: &crate::pagetable::Table, idx: usize, h: u64) {
        let _g = pmd.lock(Class::PmdPtl);
        if pmd.load(idx, Ordering::Relaxed) == h {
            self.split_huge_locked(pmd, idx, h);
        }
    }
}
