//! The locks each operation holds, per strategy (the table in the crate
//! docs, "The three strategies"): the VMA lock, and under Split the
//! page-table `PhaseLock`, in the modes each operation needs.

use crate::lockorder::{Class, Held};
use crate::space::{MmInner, PtIntentGuard, PtReadGuard, PtWriteGuard, VmaReadGuard, VmaWriteGuard};
use crate::strategy::Strategy;
use crate::vma::VmaTree;
use phase_lock::RwLockIntentExt;

/// The Split page-table lock as held by an operation.
pub(crate) enum PtHold<'a> {
    None,
    Read(#[allow(dead_code)] (Held, PtReadGuard<'a>)),
    Intent(#[allow(dead_code)] (Held, PtIntentGuard<'a>)),
    Write(#[allow(dead_code)] (Held, PtWriteGuard<'a>)),
}

/// The VMAs as an operation sees them.
pub(crate) enum VmaHold<'a> {
    /// Through the VMA lock for read.
    Read(#[allow(dead_code)] Held, VmaReadGuard<'a>),
    /// Through the VMA lock for write.
    Write(#[allow(dead_code)] Held, VmaWriteGuard<'a>),
    /// Split: through the page-table lock, held in any mode (R7).
    ViaPt(&'a VmaTree),
}

impl core::ops::Deref for VmaHold<'_> {
    type Target = VmaTree;
    fn deref(&self) -> &VmaTree {
        match self {
            VmaHold::Read(_, g) => g,
            VmaHold::Write(_, g) => g,
            VmaHold::ViaPt(t) => t,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Read,
    Intent,
    Write,
}

impl MmInner {
    pub(crate) fn vma_read(&self) -> (Held, VmaReadGuard<'_>) {
        let h = Held::take(Class::Vma);
        (h, self.vmas.read())
    }

    pub(crate) fn vma_write(&self) -> (Held, VmaWriteGuard<'_>) {
        let h = Held::take(Class::Vma);
        (h, self.vmas.write())
    }

    /// What a page-table user holds to see stable VMAs and tables: the mmap
    /// lock for read (Classic, Refcount), or the page-table lock in `mode`,
    /// through which Split reads the VMAs (R7).
    pub(crate) fn pt_user(&self, mode: Mode) -> (VmaHold<'_>, PtHold<'_>) {
        if self.strategy != Strategy::Split {
            let (h, g) = self.vma_read();
            return (VmaHold::Read(h, g), PtHold::None);
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
    /// returns it held.
    pub(crate) fn commit_vmas<'a>(&'a self, vmas: &mut VmaWriteGuard<'a>, next: VmaTree) -> PtHold<'a> {
        let pt = self.pt_hold(Mode::Write);
        **vmas = next;
        pt
    }

    /// Split's page-table lock in `mode`; nothing under the others.
    pub(crate) fn pt_hold(&self, mode: Mode) -> PtHold<'_> {
        if self.strategy != Strategy::Split {
            return PtHold::None;
        }
        let h = Held::take(Class::PageTable);
        match mode {
            Mode::Read => PtHold::Read((h, self.pt.read())),
            Mode::Intent => PtHold::Intent((h, self.pt.intent())),
            Mode::Write => PtHold::Write((h, self.pt.write())),
        }
    }
}
