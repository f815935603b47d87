//! [`Mm::check_invariants`](crate::Mm::check_invariants): what must hold of
//! an address space at rest, checked by the tests after every run.

use std::collections::HashSet;

use crate::holds::Mode;
use crate::pagetable::{
    ENTRIES, FILE, HUGE, Level, PAGE_SIZE, PGD_SIZE, PMD_SIZE, PUD_SIZE, TABLE, Table, TablePtr, WRITABLE, pfn,
};
use crate::space::Mm;
use crate::strategy::Strategy;
use crate::sync::Ordering;

impl Mm {
    /// Checks the model's invariants; call it when no operation runs on this
    /// address space or on a file it maps. Returns the anonymous frames
    /// mapped (a huge leaf as its 512 frames) so that callers can check that
    /// no frame is mapped twice across address spaces.
    ///
    /// Checked: every present entry lies in a VMA, with the VMA's
    /// writability and backing (a file entry maps the page-cache frame of
    /// its file page); no anonymous frame is mapped twice; each table's
    /// count of non-none entries is right; linked tables per level match
    /// the counters; allocated − released tables = linked + deferred.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Refcount, &FrameAllocator::new());
    /// mm.mmap(0x10_0000, 2 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// let pfn = mm.fault(0x10_0000, true).unwrap();
    /// assert_eq!(mm.check_invariants(), Ok(vec![pfn]));
    /// ```
    pub fn check_invariants(&self) -> Result<Vec<u64>, String> {
        let m = &*self.inner;
        let vmas = m.vma_write();
        let _pt = m.pt_hold(Mode::Write);
        let mut anon = Vec::new();
        let mut seen = HashSet::new();
        let mut counts = [0u64; 4];
        counts[Level::Pgd as usize] = 1;
        let errs = core::cell::RefCell::new(Vec::<String>::new());
        let fail = |s: String| errs.borrow_mut().push(s);
        // SAFETY: both locks held for write: nothing changes or frees tables.
        let pgd = unsafe { m.pgd.get() };
        let count_present = |t: &Table| t.entries.iter().filter(|e| e.load(Ordering::Relaxed) != 0).count() as u32;
        if count_present(pgd) != pgd.present.load(Ordering::Relaxed) {
            fail("PGD present count wrong".into());
        }
        for gi in 0..ENTRIES {
            let ge = pgd.load(gi, Ordering::Relaxed);
            if ge == 0 {
                continue;
            }
            counts[Level::Pud as usize] += 1;
            // SAFETY: linked table, locks held for write.
            let pud = unsafe { TablePtr::from_entry(ge).get() };
            if count_present(pud) != pud.present.load(Ordering::Relaxed) {
                fail(format!("PUD {gi} present count wrong"));
            }
            for ui in 0..ENTRIES {
                let ue = pud.load(ui, Ordering::Relaxed);
                if ue == 0 {
                    continue;
                }
                counts[Level::Pmd as usize] += 1;
                // SAFETY: as above.
                let pmd = unsafe { TablePtr::from_entry(ue).get() };
                if count_present(pmd) != pmd.present.load(Ordering::Relaxed) {
                    fail(format!("PMD {gi}/{ui} present count wrong"));
                }
                for mi in 0..ENTRIES {
                    let me = pmd.load(mi, Ordering::Relaxed);
                    let span = gi as u64 * PGD_SIZE + ui as u64 * PUD_SIZE + mi as u64 * PMD_SIZE;
                    if me == 0 {
                        continue;
                    }
                    let mut check_leaf = |addr: u64, e: u64, n: u64| {
                        let Some(v) = vmas.find(addr) else {
                            return fail(format!("entry {e:#x} at {addr:#x} outside every VMA"));
                        };
                        if n > 1 && v.end < addr + PMD_SIZE {
                            return fail(format!("huge leaf at {addr:#x} runs past its VMA"));
                        }
                        if (e & WRITABLE != 0) != v.prot.writable() {
                            return fail(format!(
                                "entry {e:#x} at {addr:#x}: writable bit disagrees with {:?}",
                                v.prot
                            ));
                        }
                        match v.file_page(addr) {
                            Some((f, pg)) => {
                                if e & FILE == 0 {
                                    return fail(format!("anonymous entry at {addr:#x} in a file VMA"));
                                }
                                if f.cached(pg) != Some(pfn(e)) {
                                    fail(format!("file entry at {addr:#x} maps a frame not cached for page {pg}"));
                                }
                            }
                            None => {
                                if e & FILE != 0 {
                                    return fail(format!("file entry at {addr:#x} in an anonymous VMA"));
                                }
                                for k in 0..n {
                                    if !seen.insert(pfn(e) + k) {
                                        return fail(format!("frame {} mapped twice", pfn(e) + k));
                                    }
                                    anon.push(pfn(e) + k);
                                }
                            }
                        }
                    };
                    if me & HUGE != 0 {
                        check_leaf(span, me, ENTRIES as u64);
                        continue;
                    }
                    if me & TABLE == 0 {
                        fail(format!("PMD entry {me:#x} at {span:#x} is neither table nor huge"));
                        continue;
                    }
                    counts[Level::Pte as usize] += 1;
                    // SAFETY: as above.
                    let t = unsafe { TablePtr::from_entry(me).get() };
                    if count_present(t) != t.present.load(Ordering::Relaxed) {
                        fail(format!("PTE table at {span:#x}: present count wrong"));
                    }
                    if m.strategy == Strategy::Refcount && t.refs.load(Ordering::Relaxed) != 0 {
                        fail(format!("PTE table at {span:#x}: leaked references"));
                    }
                    for pi in 0..ENTRIES {
                        let pe = t.load(pi, Ordering::Relaxed);
                        if pe != 0 {
                            check_leaf(span + pi as u64 * PAGE_SIZE, pe, 1);
                        }
                    }
                }
            }
        }
        let live: [u64; 4] = core::array::from_fn(|i| m.live[i].load(Ordering::Relaxed));
        if live != counts {
            fail(format!("table counters {live:?} but the tree holds {counts:?}"));
        }
        // RCU callbacks may still be releasing tables (R10): both sides
        // count every table handed to them, released or not, instead.
        let allocated = m.allocs.load(Ordering::Relaxed) - m.releases.load(Ordering::Relaxed);
        let held = counts.iter().sum::<u64>() + m.deferred_len.load(Ordering::Relaxed) + m.pervma.queued();
        if allocated != held {
            fail(format!("{allocated} tables allocated and not released, but {held} linked or deferred"));
        }
        let errs = errs.into_inner();
        match errs.first() {
            Some(e) => Err(format!("{e} ({} problems)", errs.len())),
            None => Ok(anon),
        }
    }
}
