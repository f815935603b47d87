//! The x86-64-shaped page table: geometry, entry encoding, table pages and
//! their split locks (PTLs).
//!
//! Four levels of 512-entry tables (PGD → PUD → PMD → PTE), 4 KiB pages,
//! 48-bit virtual addresses. Every entry is an atomic 64-bit word:
//!
//! | bits   | leaf entry (PTE, or huge PMD)       | non-leaf entry            |
//! |--------|-------------------------------------|---------------------------|
//! | 0      | [`PRESENT`]                         | [`PRESENT`]               |
//! | 1      | [`WRITABLE`]                        | 0                         |
//! | 5      | [`ACCESSED`]                        | 0                         |
//! | 6      | [`DIRTY`]                           | 0                         |
//! | 7      | [`HUGE`] (PMD leaves only)          | 0                         |
//! | 9      | [`FILE`] (software: page-cache page)| 0                         |
//! | 10     | 0                                   | [`TABLE`] (software)      |
//! | 12..57 | frame number                        | child table address / 64  |
//!
//! Zero is "none". A table page is a real allocation: the 4 KiB of entries
//! plus, beside them, the descriptor fields the kernel keeps in
//! `struct ptdesc` (the PTL, the Refcount strategy's count, the number of
//! non-none entries).
//!
//! # The PTL
//!
//! Each PMD and PTE table's split lock is a [`RawPhaseLock`] used in write
//! mode only: 16 bytes, an uncontended lock is one compare-and-swap and an
//! unlock one `fetch_sub` (the same as a spin lock), a contended one spins
//! briefly and then parks on a futex. The stress test runs 16 threads on 2
//! cores, where a pure spin lock would burn whole time slices waiting for a
//! preempted holder; and under loom the lock is model-checked with the rest.
//!
//! ```
//! use phase_lock_mm::pagetable::*;
//!
//! // Geometry: 512 entries a table, each level 512 times the one below.
//! assert_eq!(ENTRIES as u64 * PAGE_SIZE, PMD_SIZE);
//! assert_eq!(ENTRIES as u64 * PMD_SIZE, PUD_SIZE);
//! assert_eq!(ENTRIES as u64 * PUD_SIZE, PGD_SIZE);
//! assert_eq!(USER_END, 256 * PGD_SIZE); // the user half of 48 bits
//! assert!(TABLE_BYTES >= ENTRIES as u64 * 8); // entries plus descriptor
//! // Entry bits: no two flags share a bit, and none is in the frame number.
//! let flags = [PRESENT, WRITABLE, ACCESSED, DIRTY, HUGE, FILE, TABLE];
//! assert_eq!(flags.iter().fold(0, |a, f| a | f).count_ones(), 7);
//! assert_eq!(pfn(leaf(9, DIRTY | ACCESSED)), 9);
//! assert_eq!(POISON_ENTRY & (HUGE | TABLE), HUGE | TABLE); // no live entry is both
//! let _ = QUARANTINE; // true with feature `quarantine`
//! ```

use core::mem::MaybeUninit;
use core::ptr::NonNull;

use lock_api::{GuardSend, RawRwLock};

use crate::lockorder::{Class, Held};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use phase_lock::RawPhaseLock;

/// Bytes per page.
pub const PAGE_SIZE: u64 = 4096;
/// Entries per table.
///
/// 512 — except under loom, where tables have 8 entries (with the same
/// address shifts) so that a model execution does not build thousands of
/// model-checked atomics; there only addresses whose index at every level is
/// below 8 are valid (others are [`MmError::OutOfRange`](crate::MmError)).
pub const ENTRIES: usize = if cfg!(phase_lock_loom) { 8 } else { 512 };
/// Bytes mapped by one PMD entry (one PTE table, or one huge leaf): 2 MiB.
pub const PMD_SIZE: u64 = 1 << 21;
/// Bytes mapped by one PUD entry (one PMD table): 1 GiB.
pub const PUD_SIZE: u64 = 1 << 30;
/// Bytes mapped by one PGD entry (one PUD table): 512 GiB.
pub const PGD_SIZE: u64 = 1 << 39;
/// The end of the user half of the 48-bit address space.
pub const USER_END: u64 = 1 << 47;

/// Entry bit: the entry maps something.
pub const PRESENT: u64 = 1 << 0;
/// Entry bit: writes are allowed.
pub const WRITABLE: u64 = 1 << 1;
/// Entry bit: accessed since mapped.
pub const ACCESSED: u64 = 1 << 5;
/// Entry bit: written since mapped.
pub const DIRTY: u64 = 1 << 6;
/// Entry bit: a PMD entry that maps a 2 MiB frame itself.
pub const HUGE: u64 = 1 << 7;
/// Entry bit (software): the frame belongs to a file's page cache.
pub const FILE: u64 = 1 << 9;
/// Entry bit (software): a non-leaf entry pointing at a table.
pub const TABLE: u64 = 1 << 10;
const ADDR_SHIFT: u32 = 12;
const ADDR_MASK: u64 = ((1 << 57) - 1) & !((1 << ADDR_SHIFT) - 1);

/// The level of a table.
///
/// ```
/// use phase_lock_mm::pagetable::*;
/// assert_eq!(Level::Pte as usize, 0); // the order of `MmStats::tables`
/// assert_eq!(index(PMD_SIZE, Level::Pmd), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// A page-table page of PTEs (each maps 4 KiB).
    Pte = 0,
    /// A PMD table (each entry maps 2 MiB).
    Pmd = 1,
    /// A PUD table (each entry maps 1 GiB).
    Pud = 2,
    /// The PGD, the root (each entry maps 512 GiB).
    Pgd = 3,
}

/// The index of `addr` in a table of `level`.
///
/// ```
/// use phase_lock_mm::pagetable::*;
/// let addr = 3 * PUD_SIZE + 2 * PMD_SIZE + 5 * PAGE_SIZE + 0x123;
/// assert_eq!(index(addr, Level::Pte), 5);
/// assert_eq!(index(addr, Level::Pmd), 2);
/// assert_eq!(index(addr, Level::Pud), 3);
/// assert_eq!(index(addr, Level::Pgd), 0);
/// ```
#[inline]
pub fn index(addr: u64, level: Level) -> usize {
    ((addr >> (12 + 9 * level as u32)) & 511) as usize
}

/// The frame number of a leaf entry.
///
/// ```
/// use phase_lock_mm::pagetable::*;
/// let entry = leaf(42, WRITABLE | DIRTY);
/// assert_eq!(pfn(entry), 42);
/// ```
#[inline]
pub fn pfn(entry: u64) -> u64 {
    (entry & ADDR_MASK) >> ADDR_SHIFT
}

/// A leaf entry for `pfn` with `flags`.
///
/// ```
/// use phase_lock_mm::pagetable::*;
/// let entry = leaf(7, WRITABLE);
/// assert_eq!(entry & (PRESENT | WRITABLE | HUGE), PRESENT | WRITABLE); // always present
/// assert_eq!(pfn(entry), 7);
/// ```
#[inline]
pub fn leaf(pfn: u64, flags: u64) -> u64 {
    (pfn << ADDR_SHIFT) | flags | PRESENT
}

/// A value no live entry can hold (in quarantine builds freed tables are
/// filled with it): present, both leaf and table, huge, and a frame number of
/// all ones.
pub const POISON_ENTRY: u64 = u64::MAX;

/// A table page with its descriptor.
#[repr(C, align(64))]
pub(crate) struct Table {
    /// The 512 entries.
    pub(crate) entries: [AtomicU64; ENTRIES],
    /// The split lock (PMD and PTE tables; upper levels use the Mm's lock).
    pub(crate) ptl: RawPhaseLock,
    /// Refcount strategy: users of this PTE table, or [`DEAD`] once it is
    /// unlinked.
    pub(crate) refs: AtomicU64,
    /// Non-none entries. Changed only under the lock that covers the
    /// entries (the PTL, or the upper lock for PGD/PUD).
    pub(crate) present: AtomicU32,
    /// `ALIVE` while linked; in quarantine builds `UNLINKED` once unlinked
    /// (deferred) and `POISONED` once released.
    magic: AtomicU64,
}

/// The `refs` value of an unlinked PTE table: no new reference may be taken.
pub(crate) const DEAD: u64 = 1 << 63;
const ALIVE: u64 = 0x7ab1_e0a1_17e0_0001;
#[cfg(any(feature = "quarantine", phase_lock_loom))]
const POISONED: u64 = 0xdead_7ab1_e000_dead;
#[cfg(any(feature = "quarantine", phase_lock_loom))]
const UNLINKED: u64 = 0x7ab1_e0a1_17e0_0002;

/// Bytes one table page occupies (entries and descriptor).
pub const TABLE_BYTES: u64 = core::mem::size_of::<Table>() as u64;

/// A pointer to a table that may cross threads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TablePtr(pub(crate) NonNull<Table>);

// SAFETY: a table is shared memory whose fields are atomics or a lock; which
// thread may dereference the pointer is governed by the reclamation protocol
// (mm/mod.rs), not by the thread that holds the pointer value.
unsafe impl Send for TablePtr {}
// SAFETY: as for `Send`.
unsafe impl Sync for TablePtr {}

impl TablePtr {
    /// Allocates an empty, unlinked, unlocked table.
    pub(crate) fn alloc() -> TablePtr {
        #[cfg(not(phase_lock_loom))]
        {
            let mut b: Box<MaybeUninit<Table>> = Box::new_zeroed();
            let p = b.as_mut_ptr();
            // SAFETY: `p` points to a zeroed allocation of a `Table`. All-zero
            // bytes are valid for the atomics (`AtomicU64`/`AtomicU32` have
            // the in-memory representation of `u64`/`u32`); the lock is not
            // assumed zero-valid and is written explicitly, as is the magic.
            unsafe {
                core::ptr::addr_of_mut!((*p).ptl).write(RawPhaseLock::new());
                core::ptr::addr_of_mut!((*p).magic).write(AtomicU64::new(ALIVE));
            }
            // SAFETY: every field is now initialized.
            let b = unsafe { b.assume_init() };
            TablePtr(NonNull::from(Box::leak(b)))
        }
        #[cfg(phase_lock_loom)]
        {
            let _ = MaybeUninit::<u8>::uninit;
            let b = Box::new(Table {
                entries: core::array::from_fn(|_| AtomicU64::new(0)),
                ptl: RawPhaseLock::new(),
                refs: AtomicU64::new(0),
                present: AtomicU32::new(0),
                magic: AtomicU64::new(ALIVE),
            });
            TablePtr(NonNull::from(Box::leak(b)))
        }
    }

    /// Decodes a non-leaf entry.
    #[inline]
    pub(crate) fn from_entry(entry: u64) -> TablePtr {
        debug_assert!(entry & TABLE != 0 && entry & PRESENT != 0, "not a table entry: {entry:#x}");
        check_entry(entry);
        let addr = ((entry & ADDR_MASK) >> ADDR_SHIFT) << 6;
        // SAFETY: table entries are only ever built by `entry()` from a
        // non-null table address.
        TablePtr(unsafe { NonNull::new_unchecked(addr as *mut Table) })
    }

    /// The non-leaf entry that points at this table.
    #[inline]
    pub(crate) fn entry(self) -> u64 {
        let addr = self.0.as_ptr() as u64;
        debug_assert!(addr & 63 == 0 && addr < 1 << 51);
        ((addr >> 6) << ADDR_SHIFT) | TABLE | PRESENT
    }

    /// The table.
    ///
    /// # Safety
    ///
    /// The table has not been released, and will not be while the returned
    /// reference lives: the caller holds whatever the reclamation protocol
    /// requires for the strategy (see the crate docs).
    #[inline]
    pub(crate) unsafe fn get<'a>(self) -> &'a Table {
        // SAFETY: the caller's contract.
        let t = unsafe { &*self.0.as_ptr() };
        // (Under loom, stale uses are caught where the table is locked or its
        // entries read; one load fewer per step keeps the model small.)
        if !cfg!(phase_lock_loom) {
            t.check_alive();
        }
        t
    }

    /// Poisons a table instead of releasing it (quarantine builds): every
    /// entry becomes [`POISON_ENTRY`] and the descriptor is marked, so that a
    /// later access through a stale pointer panics.
    ///
    /// # Safety
    ///
    /// As for `dealloc`, except that the memory stays allocated.
    #[cfg(any(feature = "quarantine", phase_lock_loom))]
    pub(crate) unsafe fn poison(self) {
        // SAFETY: still allocated (the caller's contract).
        let t = unsafe { &*self.0.as_ptr() };
        for e in &t.entries {
            // Relaxed: poison is detected by value, not by ordering; any
            // later access through a stale pointer is itself the bug.
            e.store(POISON_ENTRY, Ordering::Relaxed);
        }
        t.refs.store(DEAD | 1, Ordering::Relaxed);
        t.present.store(u32::MAX, Ordering::Relaxed);
        t.magic.store(POISONED, Ordering::Relaxed);
    }

    /// Releases the table's memory.
    ///
    /// # Safety
    ///
    /// The table is unreachable: no entry points at it, and no thread can
    /// still hold a pointer to it obtained from one (the protocol's grace
    /// period has passed), or it was never published. Called once.
    pub(crate) unsafe fn dealloc(self) {
        // SAFETY: allocated by `alloc` through a `Box`, released once
        // (caller's contract).
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// Whether released tables are quarantined (poisoned and kept until their
/// address space drops) instead of freed: the `quarantine` feature, and
/// always under loom.
pub const QUARANTINE: bool = cfg!(any(feature = "quarantine", phase_lock_loom));

/// Panics if `entry` is the poison pattern (quarantine builds only).
#[inline]
pub(crate) fn check_entry(entry: u64) {
    if QUARANTINE && entry == POISON_ENTRY {
        stale_access("read a poisoned entry");
    }
}

/// Quarantine builds (outside loom): now and then gives up the CPU at a
/// point where the protocol has a window (between reading a PMD entry and
/// locking the table), so that the stress test hits the races it exists for.
#[inline]
pub(crate) fn perturb() {
    #[cfg(all(feature = "quarantine", not(phase_lock_loom)))]
    {
        use core::cell::Cell;
        thread_local!(static N: Cell<u32> = const { Cell::new(0) });
        if N.with(|n| {
            n.set(n.get().wrapping_add(1));
            n.get() % 4 == 0
        }) {
            std::thread::yield_now();
        }
    }
}

#[cold]
#[inline(never)]
fn stale_access(what: &str) -> ! {
    panic!("quarantine: {what} through a stale page-table pointer: the freeing protocol was broken");
}

impl Table {
    /// Panics if this table was released (quarantine builds only).
    #[inline]
    pub(crate) fn check_alive(&self) {
        // Relaxed: detection by value.
        #[cfg(any(feature = "quarantine", phase_lock_loom))]
        if self.magic.load(Ordering::Relaxed) == POISONED {
            stale_access("touched a released table");
        }
    }

    /// Panics if this table was unlinked (quarantine builds only). Called
    /// where the protocol promises a linked table: after R3's recheck (or a
    /// Refcount reference), and in every read-mode walk. A table that is
    /// merely unlinked may still be locked and inspected by a walker that
    /// read its pointer earlier (R3), but never used.
    #[inline]
    pub(crate) fn check_linked(&self) {
        // Relaxed: the PTL (or the lock mode) orders the unlinker's store
        // before this load whenever the protocol is followed.
        #[cfg(any(feature = "quarantine", phase_lock_loom))]
        if self.magic.load(Ordering::Relaxed) != ALIVE {
            stale_access("used an unlinked table");
        }
    }

    /// Marks the table unlinked (quarantine builds only).
    #[inline]
    pub(crate) fn mark_unlinked(&self) {
        // Relaxed: see `check_linked`.
        #[cfg(any(feature = "quarantine", phase_lock_loom))]
        self.magic.store(UNLINKED, Ordering::Relaxed);
    }

    /// Loads entry `i`, checking for poison.
    #[inline]
    pub(crate) fn load(&self, i: usize, order: Ordering) -> u64 {
        let e = self.entries[i].load(order);
        check_entry(e);
        e
    }

    /// Takes this table's PTL, recording `class` in the lock order.
    #[inline]
    pub(crate) fn lock(&self, class: Class) -> PtlGuard<'_> {
        let held = Held::take(class);
        self.ptl.lock_exclusive();
        self.check_alive();
        PtlGuard { lock: &self.ptl, _held: held }
    }
}

/// A held PTL (or the Mm's upper-level lock).
#[must_use]
pub(crate) struct PtlGuard<'a> {
    lock: &'a RawPhaseLock,
    _held: Held,
}

impl<'a> PtlGuard<'a> {
    /// Takes `lock` in write mode as a lock of `class`.
    pub(crate) fn new(lock: &'a RawPhaseLock, class: Class) -> Self {
        let held = Held::take(class);
        lock.lock_exclusive();
        PtlGuard { lock, _held: held }
    }
}

impl Drop for PtlGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this guard holds the lock in write mode.
        unsafe { self.lock.unlock_exclusive(GuardSend::new()) };
    }
}

/// The first multiple of `size` above `a`.
pub(crate) fn next_boundary(a: u64, size: u64) -> u64 {
    (a | (size - 1)) + 1
}
