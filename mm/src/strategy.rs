//! The locking designs.

/// How an [`Mm`](crate::Mm) locks its VMAs and page tables. Chosen at
/// construction; every operation runs unchanged on all of them.
///
/// ```
/// use phase_lock_mm::*;
/// for strategy in Strategy::ALL {
///     let mm = Mm::new(strategy, &FrameAllocator::new());
///     mm.mmap(0x10_0000, PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
///     mm.fault(0x10_0000, true).unwrap(); // the same operations on every design
///     assert_eq!(mm.strategy(), strategy);
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Today's kernel before the split: one mmap rwlock covers VMAs and page
    /// tables. Faults, zaps, GUP walks and `mprotect`'s entry updates take it
    /// for read plus PTLs (`mprotect`, `mmap`, `munmap` and collapse for
    /// write); semi-locked walks take it for read and no PTLs; rmap
    /// punch-holes take PTLs only. Empty PTE tables are freed only under the
    /// write lock (`munmap`), so DONTNEED and punch-hole leave them
    /// allocated.
    Classic,
    /// Qi Zheng's 2021 series: Classic's locks plus a reference count per
    /// PTE table, taken and dropped by every user of the table (two atomics
    /// on every PTE map). The last reference to an empty table unlinks it;
    /// DONTNEED and punch-hole therefore free tables.
    Refcount,
    /// The seed thread's proposal: a VMA rwlock plus a page-table
    /// [`PhaseLock`](phase_lock::PhaseLock). Faults, zaps, GUP walks and rmap
    /// punch-holes take the page-table lock in intent mode plus PTLs;
    /// semi-locked walks take it in read mode and no PTLs, so nothing changes
    /// or frees a table under them; collapse (non-leaf → leaf), `munmap`
    /// and every change of the VMAs take it for write (VMA changes take the
    /// VMA lock too, so page-table users read the VMAs through the
    /// page-table lock alone). DONTNEED and punch-hole free empty PTE
    /// tables.
    Split,
    /// What Linux merged instead (per-VMA locks, 6.4; RCU-freed PTE tables,
    /// 6.5–6.14; DONTNEED under the per-VMA lock, 2025): Classic's mmap
    /// lock, plus a read lock per VMA (one shared count) that faults take
    /// after finding the VMA under RCU, falling back to the mmap lock when
    /// the VMA is write-locked. VMA changes take the mmap lock for write and
    /// write-lock each VMA they replace; all are released together when the
    /// mmap write lock is. Page-table walkers run inside an RCU read-side
    /// section and recheck the PMD entry under the PTL (R3); PTE tables are
    /// released after a grace period. DONTNEED frees empty PTE tables whose
    /// whole 2 MiB span it zapped (`CONFIG_PT_RECLAIM`); punch-hole frees
    /// none. Semi-locked walks take the mmap lock for read, which does not
    /// exclude faults: they may see entries change.
    PerVma,
    /// The seed's split at a finer grain: PerVma's RCU-published VMA index,
    /// with a page-table [`PhaseLock`](phase_lock::PhaseLock) *per VMA* in
    /// place of the per-VMA read lock. Faults, zaps and rmap punch-holes
    /// take their VMA's lock in intent mode (found under RCU, which they
    /// leave once it is held); semi-locked walks take the mmap lock for
    /// read and every VMA's lock in read mode, so they see no change; a
    /// layout change takes the mmap lock for write and the write locks of
    /// the VMAs it replaces and creates, and no other VMA's. An empty PTE
    /// table whose 2 MiB span lies inside one VMA is freed by that VMA's
    /// zappers and released when its lock is next held in read or write
    /// mode; a table shared by several VMAs is freed only by `munmap`, once
    /// no VMA overlaps it (R9).
    SplitPerVma,
}

impl Strategy {
    /// Every strategy, in the order the tables print them.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// assert_eq!(
    ///     Strategy::ALL.map(Strategy::name),
    ///     ["classic", "refcount", "split", "per-vma", "split-per-vma"]
    /// );
    /// ```
    pub const ALL: [Strategy; 5] =
        [Strategy::Classic, Strategy::Refcount, Strategy::Split, Strategy::PerVma, Strategy::SplitPerVma];

    /// A short name.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// assert_eq!(Strategy::Split.name(), "split");
    /// assert_eq!(Strategy::Split.to_string(), "split");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Classic => "classic",
            Strategy::Refcount => "refcount",
            Strategy::Split => "split",
            Strategy::PerVma => "per-vma",
            Strategy::SplitPerVma => "split-per-vma",
        }
    }

    /// Whether a DONTNEED that zaps a whole 2 MiB span frees its empty PTE
    /// table (every strategy but Classic).
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// for strategy in Strategy::ALL {
    ///     let mm = Mm::new(strategy, &FrameAllocator::new());
    ///     mm.mmap(0, PMD_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    ///     mm.fault(0, true).unwrap();
    ///     mm.madvise_dontneed(0, PMD_SIZE).unwrap();
    ///     let pte_tables = mm.stats().tables[Level::Pte as usize];
    ///     assert_eq!(pte_tables == 0, strategy.reclaims_on_dontneed());
    /// }
    /// ```
    pub fn reclaims_on_dontneed(self) -> bool {
        self != Strategy::Classic
    }

    /// Whether a DONTNEED or a punch-hole that empties a PTE table whose
    /// 2 MiB span lies inside one VMA frees it, however little it zapped
    /// (Refcount: the last reference; Split, SplitPerVma: the zapper, in
    /// intent mode). Classic never does; PerVma only through
    /// [`reclaims_on_dontneed`](Strategy::reclaims_on_dontneed). Under
    /// SplitPerVma a table whose span reaches outside its VMA is freed only
    /// by `munmap` (R9).
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// for strategy in Strategy::ALL {
    ///     let mm = Mm::new(strategy, &FrameAllocator::new());
    ///     mm.mmap(0, PMD_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    ///     mm.fault(0, true).unwrap();
    ///     mm.madvise_dontneed(0, PAGE_SIZE).unwrap();
    ///     let pte_tables = mm.stats().tables[Level::Pte as usize];
    ///     assert_eq!(pte_tables == 0, strategy.reclaims_any_empty_table());
    /// }
    /// ```
    pub fn reclaims_any_empty_table(self) -> bool {
        matches!(self, Strategy::Refcount | Strategy::Split | Strategy::SplitPerVma)
    }

    /// Whether a semi-locked walk excludes every change of the tables, so
    /// that two reads inside one hold always agree (Split, SplitPerVma).
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// assert!(Strategy::Split.semi_locked_walks_are_stable());
    /// assert!(Strategy::SplitPerVma.semi_locked_walks_are_stable());
    /// assert!(!Strategy::PerVma.semi_locked_walks_are_stable()); // faults run beside the mmap read lock
    /// ```
    pub fn semi_locked_walks_are_stable(self) -> bool {
        matches!(self, Strategy::Split | Strategy::SplitPerVma)
    }

    /// Whether a walker that read a PMD entry without its PTL rechecks it
    /// after locking the PTE table (R3): the strategies that unlink tables
    /// under shared holds without a reference count.
    pub(crate) fn rechecks_pmd(self) -> bool {
        matches!(self, Strategy::Split | Strategy::PerVma | Strategy::SplitPerVma)
    }
}

impl core::fmt::Display for Strategy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The patience of Split's page-table lock (and of SplitPerVma's per-VMA
/// locks), in microseconds.
///
/// Chosen from faults against a looping semi-locked walker (the
/// `page_table` example, two runs per value on 2 CPUs; Split's faults beside
/// the walker in M/s, and its walks in k/s):
///
/// | patience | faults | walks |
/// |---------:|-------:|------:|
/// | 0 (strict) | 2.2–3.9 | 10–11 |
/// | 200 µs | 17.5–19.1 | 51–55 |
/// | 1 ms (the lock's default) | 15.2–24.3 | 19–21 |
/// | 4 ms | 15.2–23.2 | 24–39 |
///
/// A strict lock hands off at every change between walkers and faults and
/// starves both; 200 µs gives the walker its turn two to three times as
/// often as the default, at the same fault throughput (within this
/// machine's noise). The fault storms do not mix kinds, so the patience
/// does not show there.
pub(crate) const PT_PATIENCE_US: u32 = 200;

/// The raw lock of Split's page-table lock and of each of SplitPerVma's
/// VMAs (biased: faults take intent through the slot table).
pub(crate) type PtLockRaw = phase_lock::RawPatientLock<PT_PATIENCE_US>;

/// The mode in which an operation holds a page-table lock (Split's, or a
/// VMA's under SplitPerVma).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Semi-locked walkers.
    Read,
    /// PTL users: faults, zaps, GUP, rmap punch-holes.
    Intent,
    /// Changes of the tables' shape or of the VMAs.
    Write,
}
