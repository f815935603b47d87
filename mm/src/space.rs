//! [`Mm`]: an address space, its operations, and the three strategies'
//! locking. The freeing protocol these functions implement is described and
//! argued in the module docs of `mm`; comments here point at its rules
//! (R1–R6).

use std::collections::HashSet;
use std::sync::{Arc, Weak};

use crate::file::{File, RmapEntry};
use crate::frames::FrameAllocator;
use crate::lockorder::{Class, Held};
use crate::pagetable::DEAD;
use crate::pagetable::{
    ACCESSED, DIRTY, ENTRIES, FILE, HUGE, Level, PAGE_SIZE, PGD_SIZE, PMD_SIZE, PUD_SIZE, PtlGuard, TABLE, TABLE_BYTES,
    Table, TablePtr, USER_END, WRITABLE, index, leaf, pfn,
};
use crate::strategy::Strategy;
use crate::vma::{Backing, Prot, Vma, VmaTree};
use crate::{MmError, MmResult};
use crate::sync::{AtomicU64, Ordering, fence};
use phase_lock::{IntentGuard, PhaseLock, RawPhaseLock, ReadGuard, RwLockIntentExt, WriteGuard};

/// A simulated process address space: VMAs and a 4-level page table, locked
/// by one of the three [`Strategy`]s.
///
/// All operations take `&self` and may run from many threads at once.
///
/// ```
/// use phase_lock_mm::*;
/// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
/// mm.mmap(0x1000_0000, 2 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
/// std::thread::scope(|s| {
///     s.spawn(|| mm.fault(0x1000_0000, true).unwrap());
///     s.spawn(|| mm.fault(0x1000_0000 + PAGE_SIZE, true).unwrap());
/// });
/// assert_eq!(mm.stats().mapped_pages, 2);
/// ```
pub struct Mm {
    inner: Arc<MmInner>,
}

/// The shared state of an [`Mm`].
pub(crate) struct MmInner {
    me: Weak<MmInner>,
    strategy: Strategy,
    frames: Arc<FrameAllocator>,
    /// The VMA lock; under Classic and Refcount, the whole mmap lock.
    vmas: PhaseLock<VmaTree>,
    /// Split only: the page-table lock.
    pt: PhaseLock<()>,
    /// `mm->page_table_lock`: installs and removes PGD and PUD entries.
    upper: RawPhaseLock,
    pgd: TablePtr,
    /// Linked tables per level (indexed by `Level as usize`).
    live: [AtomicU64; 4],
    /// Tables allocated / released (including never-published ones).
    allocs: AtomicU64,
    releases: AtomicU64,
    /// Released tables that had been linked (the "tables freed" statistic).
    freed: AtomicU64,
    /// Unlinked tables waiting for a grace period (R4).
    deferred: PhaseLock<Vec<TablePtr>>,
    deferred_len: AtomicU64,
    /// Refcount only: rmap walkers inside this address space (R6).
    rmap_walkers: AtomicU64,
    /// Quarantine builds: released tables, poisoned, kept until drop.
    quarantine: PhaseLock<Vec<TablePtr>>,
}

fn new_lock<T>(v: T) -> PhaseLock<T> {
    lock_api::RwLock::from_raw(RawPhaseLock::new(), v)
}

/// Page-table statistics of an [`Mm`].
///
/// ```
/// use phase_lock_mm::*;
/// let mm = Mm::new(Strategy::Refcount, &FrameAllocator::new());
/// mm.mmap(0x20_0000, PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
/// mm.fault(0x20_0000, false).unwrap();
/// let stats: MmStats = mm.stats();
/// assert_eq!(stats.mapped_pages, 1);
/// assert_eq!(stats.tables, [1, 1, 1, 1]); // one table per level: PTE, PMD, PUD, PGD
/// assert_eq!(stats.page_table_bytes, 4 * TABLE_BYTES);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmStats {
    /// Linked tables per level, indexed by [`Level`] (`[pte, pmd, pud, pgd]`).
    pub tables: [u64; 4],
    /// Tables unlinked but not yet released (waiting for a grace period).
    pub deferred_tables: u64,
    /// Bytes held by page tables: linked plus deferred tables.
    pub page_table_bytes: u64,
    /// 4 KiB pages mapped (a huge leaf counts 512).
    pub mapped_pages: u64,
    /// Huge (2 MiB) leaves.
    pub huge_mappings: u64,
    /// Tables that were linked and have been released.
    pub tables_freed: u64,
    /// Of those, tables held poisoned in quarantine (quarantine builds).
    pub quarantined_tables: u64,
}

/// One leaf mapping, as [`Mm::mappings`] lists it.
///
/// ```
/// use phase_lock_mm::*;
/// let mm = Mm::new(Strategy::Classic, &FrameAllocator::new());
/// mm.mmap(0x20_0000, PAGE_SIZE, Prot::Read, Backing::Anon).unwrap();
/// let pfn = mm.fault(0x20_0000, false).unwrap();
/// let [m]: [Mapping; 1] = mm.mappings().try_into().unwrap();
/// assert_eq!((m.addr, m.pfn()), (0x20_0000, pfn));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The virtual address (2 MiB aligned for a huge leaf).
    pub addr: u64,
    /// The raw entry.
    pub entry: u64,
}

impl Mapping {
    /// The frame number.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0x20_0000, PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// let pfn = mm.fault(0x20_0000, true).unwrap();
    /// assert_eq!(mm.mappings()[0].pfn(), pfn);
    /// ```
    pub fn pfn(&self) -> u64 {
        pfn(self.entry)
    }
    /// Whether this is a huge (2 MiB) leaf.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0, PMD_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// mm.gup(0, PMD_SIZE, true).unwrap(); // fill the PTE table…
    /// mm.collapse(0).unwrap(); // …and collapse it into one 2 MiB leaf
    /// let maps = mm.mappings();
    /// assert!(maps.len() == 1 && maps[0].huge());
    /// ```
    pub fn huge(&self) -> bool {
        self.entry & HUGE != 0
    }
    /// Whether writes are allowed.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0x20_0000, PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// mm.fault(0x20_0000, true).unwrap();
    /// assert!(mm.mappings()[0].writable());
    /// mm.mprotect(0x20_0000, PAGE_SIZE, Prot::Read).unwrap();
    /// assert!(!mm.mappings()[0].writable());
    /// ```
    pub fn writable(&self) -> bool {
        self.entry & WRITABLE != 0
    }
    /// Whether the frame belongs to a file's page cache.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let frames = FrameAllocator::new();
    /// let (mm, file) = (Mm::new(Strategy::Split, &frames), File::new(&frames));
    /// mm.mmap(0x20_0000, PAGE_SIZE, Prot::Read, Backing::File { file, pgoff: 0 }).unwrap();
    /// mm.fault(0x20_0000, false).unwrap();
    /// assert!(mm.mappings()[0].file());
    /// ```
    pub fn file(&self) -> bool {
        self.entry & FILE != 0
    }
}

/// Validates `[start, start + len)`; returns the end.
fn check_range(start: u64, len: u64) -> MmResult<u64> {
    if len == 0 {
        return Err(MmError::ZeroLength);
    }
    check_addr(start)?;
    if !start.is_multiple_of(PAGE_SIZE) {
        return Err(MmError::Unaligned { addr: start });
    }
    if !len.is_multiple_of(PAGE_SIZE) {
        return Err(MmError::Unaligned { addr: len });
    }
    let end = match start.checked_add(len) {
        Some(end) if end <= USER_END => end,
        _ => return Err(MmError::OutOfRange { addr: start.saturating_add(len) }),
    };
    #[cfg(loom)]
    {
        // The loom geometry (see `ENTRIES`): small ranges of valid addresses.
        if len > 64 * PAGE_SIZE {
            return Err(MmError::OutOfRange { addr: end });
        }
        let mut a = start;
        while a < end {
            check_addr(a)?;
            a += PAGE_SIZE;
        }
    }
    Ok(end)
}

/// The most pages one GUP or semi-locked walk returns (4 GiB worth).
///
/// ```
/// use phase_lock_mm::*;
/// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
/// let too_long = (MAX_WALK_PAGES + 1) * PAGE_SIZE;
/// assert!(matches!(mm.gup(0, too_long, false), Err(MmError::TooLarge { .. })));
/// ```
pub const MAX_WALK_PAGES: u64 = 1 << 20;

/// Validates the range of a walk that returns one item per page.
fn check_walk(start: u64, len: u64) -> MmResult<u64> {
    let end = check_range(start, len)?;
    if len / PAGE_SIZE > MAX_WALK_PAGES {
        return Err(MmError::TooLarge { len });
    }
    Ok(end)
}

/// Validates one address: canonical and in the user half.
fn check_addr(addr: u64) -> MmResult<()> {
    let top = addr >> 47;
    if top != 0 && top != (1 << 17) - 1 {
        return Err(MmError::NonCanonical { addr });
    }
    if addr >= USER_END {
        return Err(MmError::OutOfRange { addr });
    }
    if cfg!(loom) && [Level::Pte, Level::Pmd, Level::Pud, Level::Pgd].iter().any(|&l| index(addr, l) >= ENTRIES) {
        return Err(MmError::OutOfRange { addr });
    }
    Ok(())
}

/// The first multiple of `size` above `a`.
fn next_boundary(a: u64, size: u64) -> u64 {
    (a | (size - 1)) + 1
}

/// What a PMD entry turned out to hold.
enum Pmd<'a> {
    None,
    Huge(u64),
    Pte(PteMap<'a>),
}

/// A mapped PTE table: optionally locked, and pinned under Refcount.
struct PteMap<'a> {
    mm: &'a MmInner,
    pmd: &'a Table,
    idx: usize,
    ptr: TablePtr,
    t: &'a Table,
    guard: Option<PtlGuard<'a>>,
    pinned: bool,
}

impl Drop for PteMap<'_> {
    fn drop(&mut self) {
        // Unlock before the put: a put may unlink, which takes the PMD PTL
        // first (lock order).
        drop(self.guard.take());
        if self.pinned {
            self.mm.put(self.pmd, self.idx, self.ptr);
        }
    }
}

/// The Split page-table lock as held by an operation.
enum PtHold<'a> {
    None,
    Read(#[allow(dead_code)] (Held, ReadGuard<'a, ()>)),
    Intent(#[allow(dead_code)] (Held, IntentGuard<'a, ()>)),
    Write(#[allow(dead_code)] (Held, WriteGuard<'a, ()>)),
}

/// The VMAs as an operation sees them.
enum VmaHold<'a> {
    /// Through the VMA lock for read.
    Read(#[allow(dead_code)] Held, ReadGuard<'a, VmaTree>),
    /// Through the VMA lock for write.
    Write(#[allow(dead_code)] Held, WriteGuard<'a, VmaTree>),
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

impl Mm {
    /// An empty address space using `strategy`, whose anonymous pages come
    /// from `frames`.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let frames = FrameAllocator::new();
    /// let a = Mm::new(Strategy::Classic, &frames);
    /// let b = Mm::new(Strategy::Split, &frames); // two address spaces, one machine's frames
    /// assert_ne!(a.id(), b.id());
    /// assert_eq!(a.stats().tables, [0, 0, 0, 1]); // just the PGD
    /// ```
    pub fn new(strategy: Strategy, frames: &Arc<FrameAllocator>) -> Mm {
        let pgd = TablePtr::alloc();
        let inner = Arc::new_cyclic(|me| MmInner {
            me: me.clone(),
            strategy,
            frames: frames.clone(),
            vmas: new_lock(VmaTree::default()),
            pt: new_lock(()),
            upper: RawPhaseLock::new(),
            pgd,
            live: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(1)],
            allocs: AtomicU64::new(1),
            releases: AtomicU64::new(0),
            freed: AtomicU64::new(0),
            deferred: new_lock(Vec::new()),
            deferred_len: AtomicU64::new(0),
            rmap_walkers: AtomicU64::new(0),
            quarantine: new_lock(Vec::new()),
        });
        Mm { inner }
    }

    /// The locking design.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Refcount, &FrameAllocator::new());
    /// assert_eq!(mm.strategy(), Strategy::Refcount);
    /// ```
    pub fn strategy(&self) -> Strategy {
        self.inner.strategy
    }

    /// A number that identifies this address space while it lives.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let frames = FrameAllocator::new();
    /// let (a, b) = (Mm::new(Strategy::Split, &frames), Mm::new(Strategy::Split, &frames));
    /// assert_eq!(a.id(), a.id());
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> u64 {
        self.inner.id()
    }

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
        let (_h, mut vmas) = m.vma_write();
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
    /// rmap), and under Split the page-table lock for write.
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
        let (_h, mut vmas) = m.vma_write();
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
        let _pt = m.pt_hold(Mode::Write);
        // SAFETY: the VMA lock for write (and the page-table lock for write
        // under Split) keeps every upper table alive: only this function
        // frees them.
        unsafe {
            m.for_each_pmd(addr, end, |pmd, idx, lo, hi| {
                m.zap_slot(pmd, idx, lo, hi, false);
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
    /// Takes the mmap lock for read (Classic, Refcount) or the page-table
    /// lock in intent mode (Split, which reads the VMAs through it: R7); the
    /// PMD PTL to install a PTE table; the PTE PTL to install the entry
    /// (under Refcount after taking a reference).
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
        let (vmas, _pt) = m.pt_user(Mode::Intent);
        let v = vmas.find(addr).ok_or(MmError::NotMapped { addr })?;
        if write && !v.prot.writable() {
            return Err(MmError::ReadOnly { addr });
        }
        Ok(m.fault_locked(v, addr & !(PAGE_SIZE - 1), write))
    }

    /// `madvise(MADV_DONTNEED)`: zaps `[addr, addr + len)`, and frees PTE
    /// tables that become empty where the strategy can (Refcount, Split).
    /// Every page of the range must be mapped.
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
        let n = {
            let (vmas, _pt) = m.pt_user(Mode::Intent);
            vmas.check_covered(addr, end).map_err(|a| MmError::NotMapped { addr: a })?;
            let mut n = 0;
            // SAFETY: R1: the mmap lock for read (Split: intent) keeps upper
            // tables alive: they are freed only under the write lock.
            unsafe { m.for_each_pmd(addr, end, |pmd, idx, lo, hi| n += m.zap_slot(pmd, idx, lo, hi, true)) };
            n
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
        let (_h, mut vmas) = m.vma_write();
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
    /// lock for read; Split: the page-table lock for read)
    /// until the returned guard drops, so that several walks can run under
    /// one hold. Under Split they see identical tables.
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
        if m.strategy == Strategy::Split {
            // SAFETY: R4: the page-table lock is held for read.
            unsafe { m.reclaim_locked() };
        }
        SemiLocked { m, vmas, _pt: pt }
    }

    /// Collapses the full PTE table covering the 2 MiB span at `addr` (2 MiB
    /// aligned, inside one anonymous VMA) into a huge PMD leaf, and frees
    /// the table. A span that is already huge is left alone.
    ///
    /// A non-leaf → leaf change: Classic and Refcount take the mmap lock for
    /// write; Split the page-table lock for write.
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
        let (vmas, _pt) = if m.strategy == Strategy::Split {
            m.pt_user(Mode::Write)
        } else {
            let (h, g) = m.vma_write();
            (VmaHold::Write(h, g), PtHold::None)
        };
        let v = vmas.find(addr).ok_or(MmError::NotMapped { addr })?;
        if v.end < addr + PMD_SIZE {
            return Err(MmError::NotPopulated { addr });
        }
        if v.file().is_some() {
            return Err(MmError::NotAnonymous { addr });
        }
        let writable = v.prot.writable();
        // SAFETY: the VMA lock (and Split's page-table lock) keeps upper
        // tables alive.
        let pmd = unsafe { m.lookup_pmd(addr, false) }.ok_or(MmError::NotPopulated { addr })?;
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
        if m.strategy == Strategy::Refcount
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
        m.frames.free(ENTRIES as u64);
        let huge = m.frames.alloc_huge();
        let w = if writable { WRITABLE } else { 0 };
        // Release: pairs with walkers' Acquire loads of PMD entries.
        pmd.entries[idx].store(leaf(huge, HUGE | ACCESSED | dirty | w), Ordering::Release);
        m.live[Level::Pte as usize].fetch_sub(1, Ordering::Relaxed);
        drop(tg);
        drop(g);
        m.defer(ptr);
        // SAFETY: Classic/Refcount hold the VMA lock for write; Split holds
        // the page-table lock for write.
        unsafe { m.reclaim_held_write() };
        Ok(())
    }

    /// Page-table statistics. Under Split this is also a grace period
    /// (it holds the page-table lock for read), so deferred tables are
    /// released first.
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
        let tables = core::array::from_fn(|i| m.live[i].load(Ordering::Relaxed));
        let deferred = m.deferred_len.load(Ordering::Relaxed);
        MmStats {
            tables,
            deferred_tables: deferred,
            page_table_bytes: (tables.iter().sum::<u64>() + deferred) * TABLE_BYTES,
            mapped_pages: mapped,
            huge_mappings: huge,
            tables_freed: m.freed.load(Ordering::Relaxed),
            quarantined_tables: {
                let _h = Held::take(Class::Deferred);
                m.quarantine.read().len() as u64
            },
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
        let (_h, vmas) = m.vma_write();
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
        let allocated = m.allocs.load(Ordering::Relaxed) - m.releases.load(Ordering::Relaxed);
        let held = counts.iter().sum::<u64>() + m.deferred_len.load(Ordering::Relaxed);
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

impl core::fmt::Debug for Mm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mm").field("strategy", &self.inner.strategy).finish_non_exhaustive()
    }
}

/// The locks of a semi-locked walker, held; see [`Mm::semi_locked`].
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
    m: &'a MmInner,
    // Declared before `_pt`: dropped first (it may borrow through it).
    vmas: VmaHold<'a>,
    _pt: PtHold<'a>,
}

impl SemiLocked<'_> {
    /// Calls `f(span, pmd_entry, pte_table)` once for each 2 MiB span that a
    /// VMA covers and whose PMD entry is not none, in address order:
    /// `pte_table` is the PTE table the entry points at, or `None` for a
    /// huge leaf. Two VMAs may share a span; it is visited once.
    fn for_each_span(&self, mut f: impl FnMut(u64, u64, Option<&Table>)) {
        let mut seen = None;
        for v in self.vmas.iter() {
            // SAFETY: the semi-locked hold keeps every linked table alive
            // (Classic: only the write lock frees; Refcount: release needs
            // the write lock; Split: read excludes every unlinker). Entries
            // exist only inside VMAs.
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
        // them only under the write lock; Split's read mode excludes every
        // unlinker; Refcount pins each table before reading it.
        unsafe {
            m.for_each_pmd(addr, end, |pmd, idx, lo, hi| {
                let span = lo & !(PMD_SIZE - 1);
                let read = |t: &Table, out: &mut Vec<Option<u64>>| {
                    if m.strategy != Strategy::Classic {
                        // Split: read mode excludes unlinkers; Refcount: pinned.
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

fn huge_frames(e: u64, span: u64, lo: u64, hi: u64, mut f: impl FnMut(u64, u64)) {
    let mut a = lo;
    while a < hi {
        f(a, pfn(e) + (a - span) / PAGE_SIZE);
        a += PAGE_SIZE;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Read,
    Intent,
    Write,
}

impl MmInner {
    pub(crate) fn id(&self) -> u64 {
        self as *const MmInner as u64
    }

    fn vma_read(&self) -> (Held, ReadGuard<'_, VmaTree>) {
        let h = Held::take(Class::Vma);
        (h, self.vmas.read())
    }

    fn vma_write(&self) -> (Held, WriteGuard<'_, VmaTree>) {
        let h = Held::take(Class::Vma);
        (h, self.vmas.write())
    }

    /// What a page-table user holds to see stable VMAs and tables: the mmap
    /// lock for read (Classic, Refcount), or the page-table lock in `mode`,
    /// through which Split reads the VMAs (R7).
    fn pt_user(&self, mode: Mode) -> (VmaHold<'_>, PtHold<'_>) {
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
    fn commit_vmas<'a>(&'a self, vmas: &mut WriteGuard<'a, VmaTree>, next: VmaTree) -> PtHold<'a> {
        let pt = self.pt_hold(Mode::Write);
        **vmas = next;
        pt
    }

    /// Split's page-table lock in `mode`; nothing under the others.
    fn pt_hold(&self, mode: Mode) -> PtHold<'_> {
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

    /// Rebuilds this address space's entries in `file`'s rmap from the VMA
    /// tree. Called under the VMA lock for write.
    fn sync_rmap(&self, vmas: &VmaTree, file: &Arc<File>) {
        let entries = vmas
            .iter()
            .filter_map(|v| match &v.backing {
                Backing::File { file: f, pgoff } if Arc::ptr_eq(f, file) => {
                    Some(RmapEntry { mm: self.me.clone(), mm_id: self.id(), start: v.start, end: v.end, pgoff: *pgoff })
                }
                _ => None,
            })
            .collect();
        file.set_rmap(self.id(), entries);
    }

    fn alloc_table(&self) -> TablePtr {
        // Relaxed: statistics.
        self.allocs.fetch_add(1, Ordering::Relaxed);
        TablePtr::alloc()
    }

    /// Releases a table that was never linked.
    fn release_unpublished(&self, t: TablePtr) {
        self.releases.fetch_add(1, Ordering::Relaxed);
        // SAFETY: never published, so no other thread has its address.
        unsafe { t.dealloc() };
    }

    /// The child table at `parent[i]`, allocating it (under the upper lock)
    /// if missing and `alloc`.
    ///
    /// # Safety
    ///
    /// `parent` is alive and the caller holds what keeps its children alive.
    unsafe fn child<'a>(&'a self, parent: &'a Table, i: usize, alloc: bool, level: Level) -> Option<&'a Table> {
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

    /// The PMD table covering `addr`.
    ///
    /// # Safety
    ///
    /// The caller holds what keeps upper tables alive (R1).
    unsafe fn lookup_pmd(&self, addr: u64, alloc: bool) -> Option<&Table> {
        // SAFETY: the PGD lives as long as the Mm; children per the caller.
        unsafe {
            let pgd = self.pgd.get();
            let pud = self.child(pgd, index(addr, Level::Pgd), alloc, Level::Pud)?;
            self.child(pud, index(addr, Level::Pud), alloc, Level::Pmd)
        }
    }

    /// Calls `f(pmd, idx, lo, hi)` for each 2 MiB span intersecting
    /// `[start, end)` whose PMD table exists, `[lo, hi)` being the
    /// intersection.
    ///
    /// # Safety
    ///
    /// As for `lookup_pmd`.
    unsafe fn for_each_pmd(&self, start: u64, end: u64, mut f: impl FnMut(&Table, usize, u64, u64)) {
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

    /// Maps the PTE table of `pmd[idx]`: the heart of the protocol (R2, R3).
    ///
    /// With `alloc`, installs a table if the entry is none. With `lock`,
    /// returns with the table's PTL held and (Split) the PMD entry rechecked
    /// after locking. Under Refcount, returns with a reference held.
    fn map_pte<'a>(&'a self, pmd: &'a Table, idx: usize, alloc: bool, lock: bool) -> Pmd<'a> {
        loop {
            // Acquire: pairs with the Release store that linked the table.
            let mut e = pmd.load(idx, Ordering::Acquire);
            let mut pinned = false;
            if e == 0 {
                if !alloc {
                    return Pmd::None;
                }
                let new = self.alloc_table();
                if self.strategy == Strategy::Refcount {
                    // SAFETY: ours alone until linked.
                    // Relaxed: published by the Release store below.
                    unsafe { new.get() }.refs.store(1, Ordering::Relaxed);
                }
                let g = pmd.lock(Class::PmdPtl);
                if pmd.load(idx, Ordering::Relaxed) != 0 {
                    drop(g);
                    self.release_unpublished(new);
                    continue;
                }
                // Release: publishes the initialized table.
                pmd.entries[idx].store(new.entry(), Ordering::Release);
                pmd.present.fetch_add(1, Ordering::Relaxed);
                self.live[Level::Pte as usize].fetch_add(1, Ordering::Relaxed);
                drop(g);
                e = new.entry();
                pinned = self.strategy == Strategy::Refcount;
            }
            if e & HUGE != 0 {
                return Pmd::Huge(e);
            }
            let ptr = TablePtr::from_entry(e);
            // SAFETY: R2/R4: the table may be unlinked from now on (Split,
            // Refcount) but is released only after a grace period that our
            // hold (intent/read mode, or the mmap lock plus the rmap-walker
            // count) prevents; Classic never unlinks under our hold.
            let t = unsafe { ptr.get() };
            if self.strategy == Strategy::Refcount && !pinned {
                if !t.try_get() {
                    // Unlinked (DEAD): the entry is being cleared; reload.
                    crate::sync::spin_loop();
                    continue;
                }
                pinned = true;
            }
            crate::pagetable::perturb();
            let guard = lock.then(|| t.lock(Class::PtePtl));
            // R3: Split rechecks the entry under the PTL. Relaxed: an
            // unlinker clears the entry before it releases this PTL, and our
            // acquisition of the PTL is ordered after that release.
            if self.strategy == Strategy::Split && lock && pmd.load(idx, Ordering::Relaxed) != e {
                drop(guard);
                continue;
            }
            if lock || pinned {
                t.check_linked();
            }
            return Pmd::Pte(PteMap { mm: self, pmd, idx, ptr, t, guard, pinned });
        }
    }

    /// Refcount: drops a reference; the last reference to an empty table
    /// unlinks it.
    fn put(&self, pmd: &Table, idx: usize, ptr: TablePtr) {
        // SAFETY: we held a reference until now; the table is released only
        // after a grace period our hold prevents.
        let t = unsafe { ptr.get() };
        // AcqRel: Release so our accesses happen before an unlinker's Acquire
        // CAS; Acquire so a zero we see comes with the `present` count of the
        // user who emptied the table.
        let prev = t.refs.fetch_sub(1, Ordering::AcqRel);
        if prev == 1 && t.present.load(Ordering::Relaxed) == 0 {
            self.try_unlink(pmd, idx, ptr);
        }
    }

    /// Unlinks the PTE table `ptr` from `pmd[idx]` if it is still linked
    /// there, empty, and (Refcount) unreferenced; defers its release (R2).
    fn try_unlink(&self, pmd: &Table, idx: usize, ptr: TablePtr) -> bool {
        let g = pmd.lock(Class::PmdPtl);
        if pmd.load(idx, Ordering::Relaxed) != ptr.entry() {
            return false;
        }
        // SAFETY: linked, and we hold its PMD PTL: nobody else can unlink it.
        let t = unsafe { ptr.get() };
        let tg = t.lock(Class::PtePtl);
        if t.present.load(Ordering::Relaxed) != 0 {
            return false;
        }
        // Acquire: every user's accesses (their Release puts) happen before
        // the release of the table.
        if self.strategy == Strategy::Refcount
            && t.refs.compare_exchange(0, DEAD, Ordering::Acquire, Ordering::Relaxed).is_err()
        {
            return false;
        }
        // Release: uniform with other PMD entry stores; nothing is published.
        pmd.entries[idx].store(0, Ordering::Release);
        pmd.present.fetch_sub(1, Ordering::Relaxed);
        self.live[Level::Pte as usize].fetch_sub(1, Ordering::Relaxed);
        drop(tg);
        drop(g);
        self.defer(ptr);
        true
    }

    /// Queues an unlinked table for release after a grace period.
    fn defer(&self, ptr: TablePtr) {
        // SAFETY: unlinked by the caller, not yet released.
        unsafe { ptr.get() }.mark_unlinked();
        let _h = Held::take(Class::Deferred);
        self.deferred.write().push(ptr);
        // Relaxed: a hint; the list itself is under its lock.
        self.deferred_len.fetch_add(1, Ordering::Relaxed);
    }

    /// Releases every deferred table.
    ///
    /// # Safety
    ///
    /// A grace period (R4): no thread holds a pointer to a deferred table
    /// obtained from an entry, nor can obtain one.
    unsafe fn reclaim_locked(&self) {
        // Relaxed: a hint.
        if self.deferred_len.load(Ordering::Relaxed) == 0 {
            return;
        }
        let list = {
            let _h = Held::take(Class::Deferred);
            core::mem::take(&mut *self.deferred.write())
        };
        let n = list.len() as u64;
        self.deferred_len.fetch_sub(n, Ordering::Relaxed);
        if crate::pagetable::QUARANTINE {
            #[cfg(any(feature = "quarantine", loom))]
            for &p in &list {
                // SAFETY: the caller's grace period.
                unsafe { p.poison() };
            }
            let _h = Held::take(Class::Deferred);
            self.quarantine.write().extend(list);
        } else {
            for p in list {
                // SAFETY: the caller's grace period.
                unsafe { p.dealloc() };
            }
        }
        self.releases.fetch_add(n, Ordering::Relaxed);
        self.freed.fetch_add(n, Ordering::Relaxed);
    }

    /// Releases deferred tables while the caller holds the write lock that
    /// fits the strategy (VMA lock for Classic and Refcount, page-table lock
    /// for Split).
    ///
    /// # Safety
    ///
    /// That lock is held for write.
    unsafe fn reclaim_held_write(&self) {
        match self.strategy {
            // SAFETY: R4 (Split: write excludes every walker; Classic: R5).
            Strategy::Classic | Strategy::Split => unsafe { self.reclaim_locked() },
            Strategy::Refcount => self.reclaim_refcount(),
        }
    }

    /// Refcount's grace period: the mmap lock for write (the caller holds
    /// it) and no rmap walker inside (R6).
    fn reclaim_refcount(&self) {
        if self.deferred_len.load(Ordering::Relaxed) == 0 {
            return;
        }
        // SeqCst fence: Dekker with `rmap_zap` (R6).
        fence(Ordering::SeqCst);
        // Acquire: walkers that left did so with a Release decrement.
        if self.rmap_walkers.load(Ordering::Acquire) != 0 {
            return;
        }
        // SAFETY: R6: mmap-read users are excluded by the write lock, and no
        // rmap walker is inside or can find an unlinked table.
        unsafe { self.reclaim_locked() };
    }

    /// Releases deferred tables if a grace period can be had without
    /// waiting. Called holding no lock.
    pub(crate) fn maybe_reclaim(&self) {
        if self.deferred_len.load(Ordering::Relaxed) == 0 {
            return;
        }
        match self.strategy {
            Strategy::Split => {
                let _h = Held::take(Class::PageTable);
                if let Some(_g) = self.pt.try_read() {
                    // SAFETY: R4: read mode excludes every intent holder.
                    unsafe { self.reclaim_locked() };
                }
            }
            Strategy::Refcount | Strategy::Classic => {
                let _h = Held::take(Class::Vma);
                if let Some(_g) = self.vmas.try_write() {
                    // SAFETY: the VMA lock is held for write.
                    unsafe { self.reclaim_held_write() };
                }
            }
        }
    }

    /// Faults `addr` (page aligned) in `v`, whose permissions the caller
    /// checked, holding the VMA lock for read (Split: plus intent).
    fn fault_locked(&self, v: &Vma, addr: u64, write: bool) -> u64 {
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
    fn split_huge_locked(&self, pmd: &Table, idx: usize, e: u64) {
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
    /// under Split, unlinks the PTE table if that empties it (Refcount
    /// unlinks on the last put anyway). Returns entries cleared (a huge leaf
    /// counts 512).
    fn zap_slot(&self, pmd: &Table, idx: usize, lo: u64, hi: u64, free_empty: bool) -> u64 {
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
                    if free_empty && left == 0 && self.strategy == Strategy::Split {
                        self.try_unlink(pmd, idx, ptr);
                    }
                    return u64::from(n);
                }
            }
        }
    }

    /// Sets or clears the writable bit of present entries in `[lo, hi)`.
    fn protect_slot(&self, pmd: &Table, idx: usize, lo: u64, hi: u64, writable: bool) {
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

    /// munmap's table freeing: unlinks every table in `[start, end)`'s
    /// spans that no VMA overlaps any more (they are empty: the range was
    /// zapped and nothing outside VMAs is ever mapped).
    ///
    /// # Safety
    ///
    /// The VMA lock for write (Split: and the page-table lock for write).
    unsafe fn free_tables(&self, start: u64, end: u64, vmas: &VmaTree) {
        // SAFETY: the caller's locks.
        let pgd = unsafe { self.pgd.get() };
        let mut a = start & !(PGD_SIZE - 1);
        while a < end {
            let gspan = a;
            a = next_boundary(a, PGD_SIZE);
            let gi = index(gspan, Level::Pgd);
            // SAFETY: the caller's locks.
            let Some(pud) = (unsafe { self.child(pgd, gi, false, Level::Pud) }) else { continue };
            let mut b = start.max(gspan) & !(PUD_SIZE - 1);
            while b < end.min(a) {
                let uspan = b;
                b = next_boundary(b, PUD_SIZE);
                let ui = index(uspan, Level::Pud);
                // SAFETY: the caller's locks.
                let Some(pmd) = (unsafe { self.child(pud, ui, false, Level::Pmd) }) else { continue };
                let mut c = start.max(uspan) & !(PMD_SIZE - 1);
                while c < end.min(b) {
                    let mspan = c;
                    c = next_boundary(c, PMD_SIZE);
                    if vmas.overlaps(mspan, c) {
                        continue;
                    }
                    let mi = index(mspan, Level::Pmd);
                    let e = pmd.load(mi, Ordering::Acquire);
                    if e != 0 && e & HUGE == 0 {
                        self.try_unlink(pmd, mi, TablePtr::from_entry(e));
                    }
                }
                if !vmas.overlaps(uspan, b) && pmd.present.load(Ordering::Relaxed) == 0 {
                    self.unlink_upper(pud, ui, Level::Pmd);
                }
            }
            if !vmas.overlaps(gspan, a) && pud.present.load(Ordering::Relaxed) == 0 {
                self.unlink_upper(pgd, gi, Level::Pud);
            }
        }
    }

    /// Unlinks the empty table at `parent[i]` (a PUD or PMD table) under the
    /// upper lock and defers it.
    fn unlink_upper(&self, parent: &Table, i: usize, level: Level) {
        let g = PtlGuard::new(&self.upper, Class::Upper);
        let e = parent.load(i, Ordering::Relaxed);
        if e == 0 {
            return;
        }
        let ptr = TablePtr::from_entry(e);
        // SAFETY: linked, and only we unlink upper tables (write lock held).
        if unsafe { ptr.get() }.present.load(Ordering::Relaxed) != 0 {
            return;
        }
        parent.entries[i].store(0, Ordering::Release);
        parent.present.fetch_sub(1, Ordering::Relaxed);
        self.live[level as usize].fetch_sub(1, Ordering::Relaxed);
        drop(g);
        self.defer(ptr);
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
                    self.for_each_pmd(start, end, |pmd, idx, lo, hi| n += self.zap_slot(pmd, idx, lo, hi, false))
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
                unsafe { self.for_each_pmd(start, end, |pmd, idx, lo, hi| n += self.zap_slot(pmd, idx, lo, hi, true)) };
                // Release: our accesses happen before a reclaimer that sees
                // the count drop.
                self.rmap_walkers.fetch_sub(1, Ordering::Release);
            }
            Strategy::Split => {
                let _pt = self.pt_hold(Mode::Intent);
                // SAFETY: R1/R4: intent mode keeps every table we can reach
                // alive.
                unsafe { self.for_each_pmd(start, end, |pmd, idx, lo, hi| n += self.zap_slot(pmd, idx, lo, hi, true)) };
            }
        }
        n
    }
}

impl Table {
    /// Refcount: takes a reference unless the table is unlinked.
    fn try_get(&self) -> bool {
        let mut c = self.refs.load(Ordering::Relaxed);
        loop {
            if c & DEAD != 0 {
                return false;
            }
            // Acquire: pairs with the Release of earlier puts (not needed for
            // the entries, which the PTL orders, but keeps the count's
            // history simple). Relaxed on failure: we retry.
            match self.refs.compare_exchange_weak(c, c + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
    }
}

impl Drop for MmInner {
    fn drop(&mut self) {
        // `&mut self`: no other thread can reach this address space.
        fn free(t: TablePtr, level: Level, frames: &FrameAllocator) -> u64 {
            // SAFETY: exclusive access at drop; each table is freed once,
            // after its children.
            let table = unsafe { t.get() };
            let mut n = 1;
            for slot in &table.entries {
                let e = slot.load(Ordering::Relaxed);
                if e == 0 {
                    continue;
                }
                if level == Level::Pte || e & HUGE != 0 {
                    if e & FILE == 0 {
                        frames.free(if e & HUGE != 0 { ENTRIES as u64 } else { 1 });
                    }
                    continue;
                }
                let child = match level {
                    Level::Pgd => Level::Pud,
                    Level::Pud => Level::Pmd,
                    _ => Level::Pte,
                };
                n += free(TablePtr::from_entry(e), child, frames);
            }
            // SAFETY: unreachable now.
            unsafe { t.dealloc() };
            n
        }
        free(self.pgd, Level::Pgd, &self.frames);
        let deferred = core::mem::take(self.deferred.get_mut());
        for p in deferred.into_iter().chain(core::mem::take(self.quarantine.get_mut())) {
            // SAFETY: unreachable, no other thread; each table is in one list
            // once.
            unsafe { p.dealloc() };
        }
    }
}
