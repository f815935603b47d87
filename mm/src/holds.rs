//! The locks each operation holds, per strategy (the table in the crate
//! docs, "The strategies"): the VMA lock, under Split the page-table
//! `PhaseLock` in the modes each operation needs, under PerVma the RCU
//! read-side section every page-table walk runs in, and under SplitPerVma
//! the per-VMA page-table locks (one VMA's, through `under_vma_lock`, where
//! an operation can use one; else every VMA's, under the mmap lock).

use crate::lockorder::{Class, Held};
use crate::pervma::VmaNode;
use crate::space::{MmInner, PtIntentGuard, PtReadGuard, PtWriteGuard, VmaReadGuard, VmaWriteGuard};
use crate::splitvma::NodeHold;
pub(crate) use crate::strategy::Mode;
use crate::strategy::Strategy;
use crate::sync::RcuRead;
use crate::vma::VmaTree;
use phase_lock::RwLockIntentExt;

/// The Split page-table lock as held by an operation.
pub(crate) enum PtHold<'a> {
    None,
    Read(#[allow(dead_code)] (Held, PtReadGuard<'a>)),
    Intent(#[allow(dead_code)] (Held, PtIntentGuard<'a>)),
    Write(#[allow(dead_code)] (Held, PtWriteGuard<'a>)),
    /// PerVma: an RCU read-side section, in which unlinked tables stay
    /// allocated.
    Rcu(#[allow(dead_code)] RcuRead<'a>),
    /// SplitPerVma: VMAs' page-table locks, in address order.
    Nodes(#[allow(dead_code)] Held, Vec<NodeHold<'a>>),
}

/// The VMA lock held for write (under Classic, Refcount and PerVma, the
/// mmap lock). Dropping it under PerVma releases every per-VMA write lock
/// taken under it (`vma_end_write_all`) before the lock itself.
pub(crate) struct MmapWrite<'a> {
    m: &'a MmInner,
    // Dropped after `drop` has run: the sequence is bumped under the lock.
    guard: VmaWriteGuard<'a>,
    _h: Held,
}

impl core::ops::Deref for MmapWrite<'_> {
    type Target = VmaTree;
    fn deref(&self) -> &VmaTree {
        &self.guard
    }
}

impl Drop for MmapWrite<'_> {
    fn drop(&mut self) {
        if self.m.strategy == Strategy::PerVma {
            self.m.pervma.end_write_all();
        }
    }
}

/// The VMAs as an operation sees them.
pub(crate) enum VmaHold<'a> {
    /// Through the VMA lock for read.
    Read(#[allow(dead_code)] Held, VmaReadGuard<'a>),
    /// Through the VMA lock for write.
    Write(MmapWrite<'a>),
    /// Split: through the page-table lock, held in any mode (R7).
    ViaPt(&'a VmaTree),
}

impl core::ops::Deref for VmaHold<'_> {
    type Target = VmaTree;
    fn deref(&self) -> &VmaTree {
        match self {
            VmaHold::Read(_, g) => g,
            VmaHold::Write(g) => g,
            VmaHold::ViaPt(t) => t,
        }
    }
}

impl MmInner {
    pub(crate) fn vma_read(&self) -> (Held, VmaReadGuard<'_>) {
        let h = Held::take(Class::Vma);
        (h, self.vmas.read())
    }

    pub(crate) fn vma_write(&self) -> MmapWrite<'_> {
        let _h = Held::take(Class::Vma);
        MmapWrite { m: self, guard: self.vmas.write(), _h }
    }

    /// What a page-table user holds to see stable VMAs and tables: the mmap
    /// lock for read (Classic, Refcount; PerVma: and an RCU section;
    /// SplitPerVma: and every VMA's lock in `mode`), or the page-table lock
    /// in `mode`, through which Split reads the VMAs (R7).
    pub(crate) fn pt_user(&self, mode: Mode) -> (VmaHold<'_>, PtHold<'_>) {
        if self.strategy != Strategy::Split {
            let (h, g) = self.vma_read();
            return (VmaHold::Read(h, g), self.pt_hold(mode));
        }
        let pt = self.pt_hold(mode);
        // SAFETY: R7: under Split the tree is changed only by
        // `commit_vmas`, which holds the page-table lock for write; we hold
        // it in `mode`, which excludes write, for as long as the returned
        // reference lives (the caller keeps the pair together, the view
        // dropped first).
        let tree = unsafe { &*self.vmas.data_ptr() };
        (VmaHold::ViaPt(tree), pt)
    }

    /// Installs `next` as the VMA tree; the caller holds the VMA lock for
    /// write. Split also takes the page-table lock for write (R7) and
    /// returns it held; PerVma publishes the VMA index, write-locking every
    /// VMA it replaces or removes, and returns an RCU section; SplitPerVma
    /// publishes it too and returns held the page-table locks of the VMAs
    /// replaced, removed and created (only those: R9), having released the
    /// tables the replaced ones deferred.
    pub(crate) fn commit_vmas<'a>(&'a self, vmas: &mut MmapWrite<'a>, next: VmaTree) -> PtHold<'a> {
        let pt = match self.strategy {
            Strategy::SplitPerVma => {
                let h = Held::take(Class::PageTable);
                let held: Vec<NodeHold<'a>> =
                    self.pervma.publish(&next, true).into_iter().map(|(n, g)| NodeHold::written(n, g)).collect();
                for n in &held {
                    // SAFETY: R9: held for write.
                    unsafe { self.reclaim_node(n.node()) };
                }
                PtHold::Nodes(h, held)
            }
            Strategy::PerVma => {
                self.pervma.publish(&next, false);
                self.pt_hold(Mode::Write)
            }
            _ => self.pt_hold(Mode::Write),
        };
        *vmas.guard = next;
        pt
    }

    /// PerVma: runs `f` on the node of the VMA containing `addr` under its
    /// read lock, found under RCU (`lock_vma_under_rcu`; the RCU section
    /// lasts as long as `f`); `None` when the VMA is absent, write-locked or
    /// detached: the caller falls back to the mmap lock, having left the
    /// section (as the kernel does before sleeping). SplitPerVma: under the
    /// VMA's page-table lock in intent mode (blocking, outside RCU); `None`
    /// only when no VMA contains `addr`. `None` under the other strategies.
    pub(crate) fn under_vma_lock<R>(&self, addr: u64, f: impl FnOnce(&VmaNode) -> R) -> Option<R> {
        match self.strategy {
            Strategy::PerVma => {
                let rcu = self.pervma.rcu.read();
                let vma = self.pervma.lock_vma(&rcu, addr)?;
                let _h = Held::take(Class::Vma);
                Some(f(vma.node()))
            }
            Strategy::SplitPerVma => {
                let _h = Held::take(Class::PageTable);
                let hold = self.pervma.lock_node(addr, Mode::Intent).ok()?;
                Some(f(hold.node()))
            }
            _ => None,
        }
    }

    /// What `munmap` holds while it zaps and frees, after publishing: Split's
    /// page-table lock for write; PerVma's RCU section; nothing under
    /// SplitPerVma, where the removed VMAs are detached, so no fault, zap or
    /// walker of a VMA can reach the range any more (R9).
    pub(crate) fn unmap_hold(&self) -> PtHold<'_> {
        if self.strategy == Strategy::SplitPerVma { PtHold::None } else { self.pt_hold(Mode::Write) }
    }

    /// Split's page-table lock in `mode`; PerVma's RCU section; under
    /// SplitPerVma every VMA's lock in `mode` (the caller holds the mmap
    /// lock); nothing under the others.
    pub(crate) fn pt_hold(&self, mode: Mode) -> PtHold<'_> {
        match self.strategy {
            Strategy::Classic | Strategy::Refcount => return PtHold::None,
            Strategy::PerVma => return PtHold::Rcu(self.pervma.rcu.read()),
            Strategy::SplitPerVma => {
                let h = Held::take(Class::PageTable);
                return PtHold::Nodes(h, self.pervma.lock_all(mode));
            }
            Strategy::Split => {}
        }
        let h = Held::take(Class::PageTable);
        match mode {
            Mode::Read => PtHold::Read((h, self.pt.read())),
            Mode::Intent => PtHold::Intent((h, self.pt.intent())),
            Mode::Write => PtHold::Write((h, self.pt.write())),
        }
    }
}
