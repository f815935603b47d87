//! [`Mm`]: an address space, its shared state ([`MmInner`]) and what it
//! reports ([`MmStats`], [`Mapping`]). The operations are in `ops.rs`, the
//! lock holds of each strategy in `holds.rs`, the freeing protocol in
//! `free.rs`, the walks under the page-table locks in `walk.rs` and the
//! invariant checks in `check.rs`.

use std::sync::{Arc, Weak};

use crate::frames::FrameAllocator;
use crate::pagetable::{FILE, HUGE, TablePtr, WRITABLE, pfn};
use crate::pervma::PerVma;
use crate::strategy::{PtLockRaw, Strategy};
use crate::sync::{AtomicU64, new_lock};
use crate::vma::VmaTree;
use phase_lock::{PhaseLock, RawPhaseLock};

/// A simulated process address space: VMAs and a 4-level page table, locked
/// by one of the [`Strategy`]s.
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
    pub(crate) inner: Arc<MmInner>,
}

/// The shared state of an [`Mm`].
pub(crate) struct MmInner {
    pub(crate) me: Weak<MmInner>,
    pub(crate) strategy: Strategy,
    pub(crate) frames: Arc<FrameAllocator>,
    /// The VMA lock; under Classic and Refcount, the whole mmap lock.
    pub(crate) vmas: lock_api::RwLock<VmaLockRaw, VmaTree>,
    /// Split only: the page-table lock.
    pub(crate) pt: lock_api::RwLock<PtLockRaw, ()>,
    /// `mm->page_table_lock`: installs and removes PGD and PUD entries.
    pub(crate) upper: RawPhaseLock,
    pub(crate) pgd: TablePtr,
    /// Linked tables per level (indexed by `Level as usize`).
    pub(crate) live: [AtomicU64; 4],
    /// Tables allocated / released unpublished (the rest are released by
    /// RCU callbacks, counted by `pervma`).
    pub(crate) allocs: AtomicU64,
    pub(crate) releases: AtomicU64,
    /// Unlinked tables waiting for a grace period (R4).
    pub(crate) deferred: PhaseLock<Vec<TablePtr>>,
    pub(crate) deferred_len: AtomicU64,
    /// The most tables deferred at once (PerVma: waiting for RCU).
    pub(crate) peak_deferred: AtomicU64,
    /// Refcount only: rmap walkers inside this address space (R6).
    pub(crate) rmap_walkers: AtomicU64,
    /// The address space's RCU, through which every strategy's unlinked
    /// tables are finally released (R10); under PerVma and SplitPerVma
    /// also the VMA index and the per-VMA locks.
    pub(crate) pervma: PerVma,
}

/// A read hold of the page-table lock (semi-locked walkers).
pub(crate) type PtReadGuard<'a> = lock_api::RwLockReadGuard<'a, PtLockRaw, ()>;
/// An intent hold of the page-table lock (PTL users).
pub(crate) type PtIntentGuard<'a> = phase_lock::RwLockIntentGuard<'a, PtLockRaw, ()>;
/// A write hold of the page-table lock (changes of the tables' shape).
pub(crate) type PtWriteGuard<'a> = lock_api::RwLockWriteGuard<'a, PtLockRaw, ()>;

/// The VMA lock's raw lock: the default lock *without* the biased shared
/// path. Under Classic and Refcount it is the whole mmap lock, which in the
/// kernel is an rwsem whose readers share one count: biased readers would
/// credit the designs Split replaces with a scaling the kernel's mmap lock
/// does not have. Split's faults and walks never take it (R7 lets them see
/// the VMAs through the page-table lock), so Split is unaffected.
pub(crate) type VmaLockRaw = phase_lock::RawUnbiasedPhaseLock;
/// A read hold of the VMA lock.
pub(crate) type VmaReadGuard<'a> = lock_api::RwLockReadGuard<'a, VmaLockRaw, VmaTree>;
/// A write hold of the VMA lock.
pub(crate) type VmaWriteGuard<'a> = lock_api::RwLockWriteGuard<'a, VmaLockRaw, VmaTree>;

/// Tables that may wait in one stage of freeing before an operation that
/// unlinks more waits for that stage to end instead of trying for it: the
/// strategy's own grace period (R4, R9), then the RCU callback (R10).
///
/// So [`MmStats::peak_deferred_tables`] stays at most `2 × DEFERRED_CAP`
/// plus the tables that operations still on their way to that check have
/// unlinked (DONTNEED and punch-hole unlink at most one table per 2 MiB
/// they zap), as long as no thread of the process stays inside an RCU
/// read-side section (crossbeam's collector is global).
///
/// ```
/// use phase_lock_mm::*;
/// assert_eq!(DEFERRED_CAP * TABLE_BYTES / 1024, 520); // kB of tables per stage
/// ```
pub const DEFERRED_CAP: u64 = 128;

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
    /// Linked tables per level, indexed by [`Level`](crate::Level) (`[pte, pmd, pud, pgd]`).
    pub tables: [u64; 4],
    /// Tables unlinked but not yet released (waiting for a grace period).
    pub deferred_tables: u64,
    /// The most tables that were unlinked and not yet released at once,
    /// since the address space was created: what a grace period costs in
    /// memory under the workload that ran. Bounded: see [`DEFERRED_CAP`].
    pub peak_deferred_tables: u64,
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
            vmas: lock_api::RwLock::from_raw(VmaLockRaw::new(), VmaTree::default()),
            pt: lock_api::RwLock::from_raw(PtLockRaw::new(), ()),
            upper: RawPhaseLock::new(),
            pgd,
            live: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(1)],
            allocs: AtomicU64::new(1),
            releases: AtomicU64::new(0),
            deferred: new_lock(Vec::new()),
            deferred_len: AtomicU64::new(0),
            peak_deferred: AtomicU64::new(0),
            rmap_walkers: AtomicU64::new(0),
            pervma: PerVma::new(),
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
}

impl core::fmt::Debug for Mm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mm").field("strategy", &self.inner.strategy).finish_non_exhaustive()
    }
}

impl MmInner {
    pub(crate) fn id(&self) -> u64 {
        self as *const MmInner as u64
    }
}
