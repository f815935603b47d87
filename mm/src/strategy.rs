//! The three locking designs.

/// How an [`Mm`](crate::Mm) locks its VMAs and page tables. Chosen at
/// construction; every operation runs unchanged on all three.
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
}

impl Strategy {
    /// All three, in the order the tables print them.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// assert_eq!(Strategy::ALL.map(Strategy::name), ["classic", "refcount", "split"]);
    /// ```
    pub const ALL: [Strategy; 3] = [Strategy::Classic, Strategy::Refcount, Strategy::Split];

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
        }
    }

    /// Whether DONTNEED and punch-hole free empty PTE tables.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// for strategy in Strategy::ALL {
    ///     let mm = Mm::new(strategy, &FrameAllocator::new());
    ///     mm.mmap(0x10_0000, PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    ///     mm.fault(0x10_0000, true).unwrap();
    ///     mm.madvise_dontneed(0x10_0000, PAGE_SIZE).unwrap();
    ///     let pte_tables = mm.stats().tables[Level::Pte as usize];
    ///     assert_eq!(pte_tables == 0, strategy.frees_on_zap());
    /// }
    /// ```
    pub fn frees_on_zap(self) -> bool {
        self != Strategy::Classic
    }
}

impl core::fmt::Display for Strategy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
