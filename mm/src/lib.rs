//! A userspace model of a process address space, for studying how page
//! tables are locked and freed — and the reference integration of
//! [`PhaseLock`](phase_lock::PhaseLock): the mmap lock split into a VMA lock and a
//! page-table lock.
//!
//! # The model
//!
//! * An [`Mm`] holds VMAs ([`Vma`]: start, end, [`Prot`], anonymous or a
//!   [`File`] at an offset) and an x86-64-shaped page table: 48-bit virtual
//!   addresses, 4 KiB pages, four levels of 512-entry tables (PGD → PUD → PMD
//!   → PTE), entries as atomic 64-bit words (frame number, present, writable,
//!   accessed, dirty; a PMD entry may be a huge 2 MiB leaf). The encoding is
//!   in [`pagetable`].
//! * Frames are numbers from a [`FrameAllocator`], never reused; page-table
//!   pages are real allocations ([`TABLE_BYTES`] each), counted per level.
//! * Split page-table locks (PTLs): each PMD and PTE table has its own lock;
//!   the PGD and PUD levels share one lock per `Mm` (`mm->page_table_lock`).
//! * A [`File`] has a page cache and an rmap (`i_mmap`): the list of
//!   (address space, VMA range, offset) that map it. [`File::punch_hole`]
//!   reaches every address space through it without taking any VMA lock.
//! * Operations: [`Mm::mmap`], [`Mm::munmap`], [`Mm::mremap`], [`Mm::fault`],
//!   [`Mm::madvise_dontneed`], [`File::punch_hole`], [`Mm::mprotect`],
//!   [`Mm::gup`] (fully locked walk), [`Mm::walk_semilocked`] /
//!   [`Mm::semi_locked`] (hmm-style walk), [`Mm::gup_fast`] (lockless
//!   walk), [`Mm::collapse`] and [`Mm::stats`]. Every one returns [`MmResult`]; bad input (unaligned or
//!   empty ranges, non-canonical or kernel-half addresses, faults outside any
//!   VMA, writes to read-only mappings) is an [`MmError`], never a panic.
//!
//! ```
//! use phase_lock_mm::*;
//!
//! let frames = FrameAllocator::new();
//! for strategy in Strategy::ALL {
//!     let mm = Mm::new(strategy, &frames);
//!     mm.mmap(0x4000_0000, 4 << 20, Prot::ReadWrite, Backing::Anon).unwrap();
//!     for page in 0..1024u64 {
//!         mm.fault(0x4000_0000 + page * PAGE_SIZE, true).unwrap();
//!     }
//!     assert_eq!(mm.stats().tables[Level::Pte as usize], 2);
//!     mm.madvise_dontneed(0x4000_0000, 4 << 20).unwrap();
//!     let left = mm.stats().tables[Level::Pte as usize];
//!     assert_eq!(left, if strategy == Strategy::Classic { 2 } else { 0 });
//!     assert_eq!(mm.fault(0x10, false), Err(MmError::NotMapped { addr: 0x10 }));
//! }
//! ```
//!
//! # The strategies
//!
//! [`Strategy`] is chosen at construction; the same operations and tests run
//! on all of them. Classic and Refcount are the 2021 designs the seed thread
//! discussed, Split is its proposal (the reference integration of the phase
//! lock), PerVma is what Linux merged instead (per-VMA locks in 6.4,
//! RCU-freed PTE tables in 6.5–6.14), and SplitPerVma is the proposal at
//! PerVma's grain: a page-table phase lock per VMA, so that a layout change
//! stalls only the faults of the VMAs it changes.
//!
//! | operation              | Classic                  | Refcount                      | Split                                  | PerVma                                       | SplitPerVma                                         |
//! |------------------------|--------------------------|-------------------------------|----------------------------------------|----------------------------------------------|-----------------------------------------------------|
//! | fault                  | mmap R + PTLs            | mmap R + ref + PTLs           | PT intent + PTLs                       | RCU + VMA R + PTLs (else mmap R + RCU + PTLs) | RCU, then its VMA's PT intent + PTLs               |
//! | GUP                    | mmap R + PTLs            | mmap R + ref + PTLs           | PT intent + PTLs                       | mmap R + RCU + PTLs                          | mmap R + every VMA's PT intent + PTLs              |
//! | DONTNEED               | mmap R + PTLs, no free   | mmap R + ref + PTLs, frees    | PT intent + PTLs, frees                | as a fault; frees whole 2 MiB spans (RCU)    | as a fault; frees tables inside the VMA            |
//! | punch-hole (rmap)      | i_mmap R + PTLs, no free | i_mmap R + ref + PTLs, frees  | i_mmap R + PT intent + PTLs, frees     | i_mmap R + RCU + PTLs, no free               | i_mmap R + each VMA's PT intent + PTLs, frees (R9) |
//! | semi-locked walk       | mmap R                   | mmap R + ref                  | PT read                                | mmap R + RCU                                 | mmap R + every VMA's PT read                       |
//! | GUP-fast (lockless)    | RCU                      | RCU                           | RCU                                    | RCU                                          | RCU                                                |
//! | mprotect               | mmap W + PTLs            | mmap W + ref + PTLs           | VMA W + PT write + PTLs                | mmap W + VMA W (each VMA replaced) + PTLs    | mmap W + PT W of the VMAs replaced and new + PTLs  |
//! | collapse (→ huge leaf) | mmap W + PTLs            | mmap W + PTLs                 | PT write + PTLs                        | mmap W + VMA W + PTLs, frees (RCU)           | its VMA's PT W + PTLs, frees                       |
//! | mmap                   | mmap W                   | mmap W                        | VMA W + PT write (to publish)          | mmap W (new VMAs write-locked until it ends) | mmap W + PT W of the VMAs new and replaced         |
//! | munmap (frees tables)  | mmap W + PTLs            | mmap W + PTLs                 | VMA W + PT write + PTLs                | mmap W + VMA W + PTLs, frees (RCU)           | mmap W (removed VMAs' PT W to detach) + PTLs, frees |
//! | mremap (moves entries) | mmap W + i_mmap W + PTLs | mmap W + i_mmap W + ref + PTLs | VMA W + i_mmap W + PT write + PTLs    | mmap W + i_mmap W + VMA W + PTLs             | mmap W + i_mmap W + PT W of the VMAs moved + PTLs  |
//!
//! (`i_mmap W` only for a file mapping. "mmap" is the VMA lock, which under Classic, Refcount and PerVma is the
//! whole mmap lock; "PT" is Split's page-table `PhaseLock`; "ref" is a
//! reference on each PTE table used: an increment and a decrement; "VMA
//! R/W" is PerVma's per-VMA lock; "RCU" a read-side section; "its VMA's
//! PT" is the page-table `PhaseLock` of one VMA under SplitPerVma, found
//! under RCU.)
//!
//! Under Split a change of the VMAs takes *both* locks for write (R7), so a
//! holder of either lock sees stable VMAs, and page-table users take only the
//! page-table lock: a fault costs one shared-lock acquisition, as under
//! Classic. The VMA lock serializes VMA writers and serves VMA-only readers
//! ([`Mm::vmas`], a `/proc/pid/maps`); it is never taken after `i_mmap`.
//!
//! # The lock order
//!
//! One order for the whole module, checked in debug builds (a per-thread
//! record of held lock classes; a violation panics naming both locks):
//!
//! ```text
//! VMA lock → i_mmap → page-table lock → upper-level lock → PMD PTL → PTE PTL → page cache
//! ```
//!
//! The rmap's problem in the seed thread is that `i_mmap` comes *after* the
//! VMA (mmap) lock, so punch-hole, holding `i_mmap`, can never take it. Under
//! Classic the rmap walker makes do with PTLs, and since Classic frees PTE
//! tables only under the mmap lock for write, punch-hole cannot free them.
//! Under Split the page-table lock comes after `i_mmap`, so punch-hole takes
//! it in intent mode like any fault, and frees tables like DONTNEED does.
//!
//! # Freeing page tables safely
//!
//! The race people study: an intent-mode walker (a fault) has read a PMD
//! entry pointing at PTE table T and is about to lock T's PTL, while a
//! concurrent intent-mode zapper empties T and wants to free it; a third
//! thread walks semi-locked. The protocol, in eleven rules:
//!
//! * **R1 (upper levels).** PUD and PMD tables are freed only by `munmap`,
//!   under the VMA lock for write (Split: and the page-table lock for
//!   write). Any holder of the mmap lock (Classic, Refcount), or of Split's
//!   page-table lock in any mode, descends the upper levels without locks;
//!   tables are published with a Release store and read with Acquire loads.
//! * **R2 (unlinking).** A PTE table is unlinked only by a thread holding the
//!   PMD PTL *and* the table's PTL (in lock order), after checking under them
//!   that the PMD entry still points at it and that it is empty (Refcount:
//!   and turning its count from 0 to DEAD). The PMD entry is cleared before
//!   either lock is released. The table is not released: it goes on a
//!   deferred list.
//! * **R3 (entering a table).** Split: a walker that read the PMD entry
//!   without the PMD PTL locks the table's PTL and then *rechecks* the PMD
//!   entry; if it changed, it unlocks and starts over (the kernel's
//!   `pte_offset_map_lock`). Refcount: a reference taken with
//!   increment-unless-DEAD plays the same role.
//! * **R4 (grace periods).** A deferred table is released only when no
//!   thread can hold a pointer to it. Split: by a thread holding the
//!   page-table lock in read or write mode — every thread that could have
//!   read the pointer held the lock in intent mode, read and write mode
//!   exclude intent, so all of them have left, and any later walker reads
//!   the cleared entry. Any semi-locked walk, [`Mm::stats`], `munmap`,
//!   collapse, and a `try_read` after each DONTNEED or punch-hole therefore
//!   end a grace period at no cost to the fast path: the phase change of the
//!   lock *is* the grace period. Classic: under the mmap lock for write.
//!   Refcount: under the mmap lock for write with no rmap walker inside (R6).
//!   PerVma: an RCU grace period (R8). SplitPerVma: the read or write mode
//!   of the one VMA that contains the table's span (R9). An unlinker that
//!   finds [`DEFERRED_CAP`] tables waiting stops trying for a grace period
//!   and waits for one, which bounds the memory deferred.
//! * **R5 (rmap walkers without mm locks).** Under Classic and Refcount,
//!   punch-hole holds only `i_mmap`. `munmap` removes its range from the rmap
//!   under `i_mmap` for write — which waits for every walker that found the
//!   range there — before it frees tables, and it frees only tables that no
//!   VMA overlaps; collapse frees only tables inside one anonymous VMA. So no
//!   rmap walker ever reaches a table that the mmap lock for write frees.
//! * **R6 (Refcount's rmap walkers).** Refcount also unlinks PTE tables under
//!   `i_mmap` alone (a punch-hole's last put), so an rmap walker announces
//!   itself in a per-`Mm` counter (increment, SeqCst fence, then read
//!   entries); the releaser, holding the mmap lock for write, issues a SeqCst
//!   fence and releases only if the counter is zero. By the fences (Dekker),
//!   either the releaser sees the walker, or the walker sees the cleared PMD
//!   entry. This models the RCU read side the 2021 series used.
//! * **R7 (VMAs under Split).** The VMA tree is replaced only while holding
//!   the VMA lock for write *and* the page-table lock for write, so a holder
//!   of the page-table lock in any mode reads it safely. `mmap` lists the new
//!   mapping in the rmap before it publishes the VMA, and `munmap` removes
//!   the VMA (so no fault can populate the range) before it updates the rmap
//!   and zaps: a punch-hole never misses an entry a fault could install.
//!
//! * **R8 (PerVma).** A VMA's read lock is taken only inside an RCU
//!   section on a node found in the RCU-published VMA index, and fails if
//!   the VMA is write-locked or detached; a VMA is write-locked (its readers
//!   drained) under the mmap lock for write before any change to its range
//!   or its entries' permissions, and stays so until that hold ends. Every
//!   walker of PTE tables that holds no mmap write lock runs inside an RCU
//!   section and rechecks the PMD entry under the PTL (R3); every unlinked
//!   table is released by an RCU callback. DONTNEED unlinks only tables
//!   whose whole span it zapped; punch-hole unlinks none. Upper tables are
//!   freed only by `munmap` where no VMA is, so a fault under a VMA lock,
//!   whose VMA is in place, never walks one.
//!
//! * **R9 (SplitPerVma: freeing a table that spans several VMAs).** Each
//!   VMA node of PerVma's index carries a page-table lock.
//!   1. *Holders stay inside their VMA.* A node is write-locked before it is
//!      replaced or detached, and a node created under the mmap write lock
//!      is write-locked until the change is done; so a holder of an
//!      attached node's lock, in any mode, sees its VMA unchanged and walks
//!      only inside it (R1 then keeps its upper tables alive). A node found
//!      under RCU is locked before RCU is left, and dropped if detached.
//!   2. *A table belongs to the VMA that contains its span.* A zapper
//!      holding VMA V's lock in intent mode unlinks (R2) a PTE table only if
//!      its whole span lies inside V, and defers it on V's own list. Only
//!      holders of V's lock can hold a pointer into such a table, since
//!      every other walker stays inside its own VMA (rule 1) and rmap
//!      walkers zap through each VMA's lock (rule 4).
//!   3. *V's read or write mode is the table's grace period.* V's list is
//!      released by a holder of V's lock in read or write mode: a
//!      semi-locked walk, [`Mm::stats`], a `try_read` after a DONTNEED or a
//!      punch-hole, a collapse, or the layout change that write-locks V
//!      before detaching it. Holders of other VMAs' locks never delay it.
//!   4. *A shared table is freed only by `munmap`.* A table whose span is
//!      shared by two VMAs, or by a VMA and a gap another VMA may fill, is
//!      never unlinked under intent. `munmap` unlinks it once no VMA
//!      overlaps its span, after it has detached the VMAs it removed (so
//!      none of their holders remains) and waited for the rmap walkers
//!      (R5), and releases it at once: semi-locked walkers, the only
//!      holders of several VMAs' locks, are excluded by the mmap lock.
//!      An rmap walker zaps each VMA's part of its range under that VMA's
//!      lock in intent mode, and skips a part that no VMA holds (one that a
//!      `munmap` in progress will zap after waiting for it, or that an
//!      `mmap` in progress has not yet published, whose faults will find
//!      the page cache already punched).
//!   5. *Semi-locked walks see no change.* They hold the mmap lock for read
//!      and every VMA's lock in read mode, in address order; threads that
//!      take several nodes do so only under the mmap lock and holding no
//!      node, and no thread holds a node's write lock while it waits for
//!      `i_mmap`, so no cycle of waits forms.
//!
//! * **R10 (lockless walkers: GUP-fast).** The seed thread's third way to
//!   read page tables holds no lock: the kernel's GUP-fast disables
//!   interrupts, which holds off the TLB-flush IPI or the RCU grace period
//!   that table freeing waits for. Here it holds an RCU read-side section.
//!   Under every strategy, and at every level, a table is released only
//!   by an RCU callback queued after its strategy's own grace period
//!   (R4, R8, R9) has passed. So a walker that read a pointer inside its
//!   section reads allocated memory until the section ends; it may read a
//!   table that is being unlinked, never a released one. Under Split
//!   the phase change alone cannot be this walker's grace period, since it
//!   holds no phase: the RCU callback after it is. The cost is one
//!   callback per batch of tables released (per table under PerVma), and
//!   tables stay allocated one grace period longer.
//!
//! * **R11 (`mremap`: the VMAs and the entries change together).**
//!   [`Mm::mremap`] holds what a layout change holds (the VMA lock for
//!   write; Split: the page-table lock for write; PerVma and SplitPerVma:
//!   the write locks of the VMAs it replaces and creates), so no fault,
//!   zap or semi-locked walk of the old or the new range runs beside it.
//!   For a file mapping it also holds `i_mmap` for write from before it
//!   publishes the new VMAs until the rmap lists them, as the kernel holds
//!   the rmap locks across `move_ptes`. Without that, a punch-hole could
//!   zap the new range before an entry arrives there and the old range
//!   after it left, and miss it. Each entry is cleared under the old
//!   table's PTL, then installed under the new table's PTL, one PTL at a
//!   time. Tables the old range no longer needs are freed as `munmap`
//!   frees them (R1, R5, R9.4). A GUP-fast walk may miss an entry in
//!   transit, which a lockless walk may always do.
//!
//! **Why the race is safe (Split).** Let fault F and zapper Z both hold
//! intent, F having read PMD entry `e` → T.
//!
//! 1. If Z unlinks T first, it cleared the entry before releasing T's PTL
//!    (R2). F's lock of T's PTL touches allocated memory: T is deferred, and
//!    R4 cannot release it while F holds intent. F's acquisition of the PTL
//!    follows Z's release, so F's recheck sees the cleared entry (R3) and F
//!    retries, installing a new table: no use after free, and F's PTE lands
//!    in a linked table.
//! 2. If F locks T's PTL first, Z blocks on it in `try_unlink`; F installs
//!    its PTE and unlocks; Z then sees a non-empty table and leaves it. If Z
//!    had already checked emptiness... it cannot have: the check is made
//!    under T's PTL, after F's release.
//! 3. A semi-locked walker W holds the lock for read, so it runs entirely
//!    before or after every intent holder: no entry and no table changes
//!    while W holds it, and two reads inside one hold are identical (the
//!    stress test checks this). W's own entry into read mode is what lets T
//!    be released.
//!
//! Under SplitPerVma the same argument runs per VMA: F and Z hold the lock
//! of the VMA that contains T's span (R9.2), and the read or write mode
//! that releases T is that VMA's. If T's span reaches into a second VMA,
//! F may hold the second VMA's lock instead, which Z's VMA's read mode does
//! not exclude: so Z leaves T linked (R9.4), and loom shows that freeing it
//! anyway lets F lock a released table.
//!
//! Memory orderings are justified where they are chosen.
//!
//! # How the protocol is checked
//!
//! * **Quarantine** (feature `quarantine`, and always under loom):
//!   released tables are poisoned (every entry [`pagetable::POISON_ENTRY`],
//!   the descriptor marked) and kept until their address space drops;
//!   unlinked tables are marked too. Locking or reading a released table, or
//!   *using* (after R3's recheck, or under a read-mode hold) a table that is
//!   merely unlinked, panics. The build also yields now and then between
//!   reading a PMD entry and locking the table, to widen the race window.
//! * **loom** (`loom-tests/tests/mm_free.rs`; tables have 8 entries under
//!   loom): a fault racing a DONTNEED that empties and frees the table it is
//!   about to lock, with a semi-locked walker racing both, on every
//!   strategy; the fault's entry must survive exactly when the zap came
//!   first, no frame may leak, and under Split the walker's two reads must
//!   agree. Removing R3's recheck, or ending a Split grace period in intent
//!   mode, makes it fail. SplitPerVma adds a free across a VMA boundary
//!   (a DONTNEED of one VMA that empties a table a fault in the next VMA is
//!   entering); letting a zapper free a table its VMA does not contain
//!   makes that model fail, and releasing a VMA's tables without its read
//!   mode, or dropping the recheck, fails the fault-and-zap models. A
//!   GUP-fast walk racing a DONTNEED or an `munmap` that frees the tables
//!   it reads, on every strategy, fails as soon as the walk leaves out its
//!   RCU section (R10). An `mremap` of a file mapping racing a punch-hole
//!   of its page fails (the punch-hole misses the entry) as soon as the
//!   move stops holding `i_mmap` for write (R11).
//! * **Stress** (`mm/tests/mm_stress.rs`): 16 threads on every strategy, two
//!   address spaces sharing two files, every operation; then the invariants
//!   ([`Mm::check_invariants`]) and per-thread shadow models. The same two
//!   mutations make it fail in the quarantine build.
//!
//! # Where things are
//!
//! This crate uses phase-lock through its public API only. Its files, in
//! dependency order (no module imports one that imports it back):
//!
//! * `pagetable.rs`, `frames.rs`, `lockorder.rs`, `sync.rs`, `error.rs`
//!   (with the input checks): the parts every other file builds on;
//! * `file.rs` (page cache and rmap; it reaches address spaces through the
//!   `MapsFile` trait), `vma.rs`, `strategy.rs`;
//! * `pervma.rs`: PerVma's VMA index, per-VMA locks and RCU-freed tables
//!   (R8; the RCU itself is crossbeam-epoch, behind `sync.rs`);
//! * `splitvma.rs`: SplitPerVma's per-VMA page-table locks, on that index
//!   (R9);
//! * `space.rs`: [`Mm`], its shared state, and what it reports;
//! * `holds.rs`: the locks each operation holds, per strategy;
//! * `free.rs`: the freeing protocol, R1–R7 above, in one file, with R9's
//!   per-VMA lists and R10's hand-over to RCU (R8 is `pervma.rs`, which
//!   also holds the RCU callbacks that release tables);
//! * `walk.rs`: walks — the semi-locked walk and the per-slot work of
//!   faults, zaps, mprotect and the rmap zap;
//! * `mremap.rs`: `mremap`, which moves entries table to table (R11);
//! * `ops.rs`: the public operations; `check.rs`: the invariant checks.
//!
//! # The PTL
//!
//! Each PTL is a [`RawPhaseLock`](phase_lock::RawPhaseLock) used in write mode:
//! see [`pagetable`] for why.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod check;
mod error;
mod file;
mod frames;
mod free;
mod holds;
mod lockorder;
mod mremap;
mod ops;
pub mod pagetable;
mod pervma;
mod space;
mod splitvma;
mod strategy;
mod sync;
mod vma;
mod walk;

pub use error::{MAX_WALK_PAGES, MmError, MmResult};
pub use file::File;
pub use frames::FrameAllocator;
pub use pagetable::{ENTRIES, Level, PAGE_SIZE, PMD_SIZE, PUD_SIZE, TABLE_BYTES, USER_END};
pub use space::{DEFERRED_CAP, Mapping, Mm, MmStats};
pub use strategy::Strategy;
pub use vma::{Backing, Prot, Vma};
pub use walk::SemiLocked;
