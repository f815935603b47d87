//! [`Strategy::PerVma`](crate::Strategy::PerVma): the kernel's per-VMA locks
//! (Linux 6.4, `mm/memory.c` `lock_vma_under_rcu`, `include/linux/mmap_lock.h`)
//! and page tables freed after an RCU grace period (6.5–6.14:
//! `pte_free_defer`, `CONFIG_PT_RECLAIM`), modelled on one address space.
//!
//! * **The VMA index.** Beside the VMA tree under the mmap lock, a
//!   copy-on-write index of [`VmaNode`]s published through an atomic
//!   pointer (the maple tree) and read under RCU. Changes happen under the
//!   mmap lock for write; an old index is freed after a grace period.
//! * **A VMA's read lock** (`vma_start_read`): one shared count per VMA,
//!   `refs` (0: detached; 1: attached; 1 + n: n readers; plus [`WRITER`]
//!   while a writer drains them), and the VMA's `lock_seq`. A VMA is
//!   write-locked while its `lock_seq` equals the address space's `seq`
//!   (`mm_lock_seq`): a reader takes a count, then rechecks the sequence
//!   and backs out if the VMA is write-locked.
//! * **Write locks** (`vma_start_write`) are taken only under the mmap lock
//!   for write: add [`WRITER`], wait until the readers have left, set
//!   `lock_seq`, remove [`WRITER`]. Every write lock of the address space is
//!   released at once when the mmap write lock is dropped: `seq` is bumped
//!   (`vma_end_write_all`).
//! * **Page tables** unlinked under this strategy are released by an RCU
//!   callback (`RcuTables`), so a walker inside a read-side section that
//!   read a PMD entry may still lock the table it points at and recheck the
//!   entry (R3). Every other strategy's tables also end here, once their
//!   own grace period has passed, for the sake of lockless walkers (R10):
//!   the RCU and `RcuTables` of this struct serve every strategy.
//!
//! Where the model departs from the kernel: VMA nodes are reference-counted
//! (`Arc`) instead of `SLAB_TYPESAFE_BY_RCU`, so a node found under RCU is
//! the node it was, never a reused one, and the kernel's check that the VMA
//! still covers the address after locking it is implied; a writer waiting
//! for readers yields instead of sleeping on `rcuwait`; a fault keeps its
//! read-side section for its whole walk (the kernel leaves RCU after the
//! lookup and re-enters it in `pte_offset_map`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::lockorder::{Class, Held};
use crate::pagetable::{QUARANTINE, TablePtr};
use crate::strategy::PtLockRaw;
use crate::sync::{AtomicPtr, AtomicU64, Ordering, Rcu, RcuRead, new_lock};
use crate::vma::{Backing, Vma, VmaTree};
use lock_api::RawRwLock;
use phase_lock::PhaseLock;

/// Added to a VMA's `refs` by a writer waiting for its readers to leave;
/// a reader that sees it fails.
const WRITER: u64 = 1 << 32;
/// `refs` of an attached VMA with no reader.
const ATTACHED: u64 = 1;

/// A SplitPerVma node whose `pt` lock [`PerVma::publish`] holds for write.
pub(crate) type WriteLocked = (Arc<VmaNode>, <PtLockRaw as RawRwLock>::ExclusiveGuard);

/// One VMA as the lockless lookup finds it. Its [`Vma`] never changes: a
/// change of the VMA replaces the node.
pub(crate) struct VmaNode {
    pub(crate) vma: Vma,
    /// PerVma: the read count. SplitPerVma: [`ATTACHED`] until the node
    /// leaves the index, changed only under `pt` held for write.
    refs: AtomicU64,
    lock_seq: AtomicU64,
    /// SplitPerVma: this VMA's page-table lock (R9).
    pub(crate) pt: PtLockRaw,
    /// SplitPerVma: PTE tables unlinked by this VMA's zappers, released by
    /// a holder of `pt` in read or write mode (R9).
    pub(crate) deferred: PhaseLock<Vec<TablePtr>>,
}

impl VmaNode {
    /// A node created under the mmap lock for write at sequence `seq`:
    /// attached, and write-locked until that write hold ends (SplitPerVma:
    /// the caller write-locks `pt` before publishing it).
    fn new_locked(vma: Vma, seq: u64) -> Arc<VmaNode> {
        Arc::new(VmaNode {
            vma,
            refs: AtomicU64::new(ATTACHED),
            lock_seq: AtomicU64::new(seq),
            pt: PtLockRaw::new(),
            deferred: new_lock(Vec::new()),
        })
    }

    /// SplitPerVma: whether the node is still in the index. Read under
    /// `pt`, whose acquisition orders it after the write hold that detached
    /// the node.
    pub(crate) fn attached(&self) -> bool {
        // Relaxed: see above.
        self.refs.load(Ordering::Relaxed) == ATTACHED
    }

    /// `vma_start_read`: takes a read count unless the VMA is detached or
    /// write-locked.
    fn try_read(&self, seq: &AtomicU64) -> bool {
        // The cheap early check. Relaxed loads: a stale answer either way is
        // corrected by the recheck below.
        if self.lock_seq.load(Ordering::Relaxed) == seq.load(Ordering::Relaxed) {
            return false;
        }
        let mut c = self.refs.load(Ordering::Relaxed);
        loop {
            if c == 0 || c >= WRITER {
                return false;
            }
            // Acquire: synchronizes with the Release removal of [`WRITER`]
            // by the last writer, so its `lock_seq` store is visible to the
            // recheck. Relaxed on failure: we retry.
            match self.refs.compare_exchange_weak(c, c + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => c = now,
            }
        }
        // Acquire on `seq`: pairs with the Release bump that ended the last
        // write hold, so the changes made under it are visible.
        if self.lock_seq.load(Ordering::Relaxed) == seq.load(Ordering::Acquire) {
            self.end_read();
            return false;
        }
        true
    }

    /// `vma_end_read`.
    fn end_read(&self) {
        // Release: the reader's accesses happen before a writer's Acquire
        // observation that the readers have left.
        self.refs.fetch_sub(1, Ordering::Release);
    }

    /// `vma_start_write` at sequence `seq`; the caller holds the mmap lock
    /// for write.
    fn write_lock(&self, seq: u64) {
        // Relaxed: only holders of the mmap write lock store `lock_seq`.
        if self.lock_seq.load(Ordering::Relaxed) == seq {
            return;
        }
        // Acquire (here and in the wait): the leaving readers' accesses
        // happen before ours.
        self.refs.fetch_add(WRITER, Ordering::Acquire);
        wait_until(|| self.refs.load(Ordering::Acquire) == WRITER + ATTACHED);
        self.lock_seq.store(seq, Ordering::Relaxed);
        // Release: publishes `lock_seq` to the next reader's Acquire CAS.
        self.refs.fetch_sub(WRITER, Ordering::Release);
    }

    /// `vma_mark_detached`: the node leaves the index; the caller holds its
    /// write lock. Waits for readers that are backing out.
    fn detach(&self) {
        wait_until(|| self.refs.compare_exchange(ATTACHED, 0, Ordering::Acquire, Ordering::Relaxed).is_ok());
    }
}

/// Spins, then yields, until `done()`.
fn wait_until(done: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !done() {
        if spins < 64 {
            crate::sync::spin_loop();
            spins += 1;
        } else {
            #[cfg(not(phase_lock_loom))]
            std::thread::yield_now();
            #[cfg(phase_lock_loom)]
            crate::sync::spin_loop();
        }
    }
}

/// Whether two VMAs are the same mapping.
fn same(a: &Vma, b: &Vma) -> bool {
    a.start == b.start
        && a.end == b.end
        && a.prot == b.prot
        && match (&a.backing, &b.backing) {
            (Backing::Anon, Backing::Anon) => true,
            (Backing::File { file: f, pgoff: p }, Backing::File { file: g, pgoff: q }) => Arc::ptr_eq(f, g) && p == q,
            _ => false,
        }
}

/// The RCU-published VMA index.
#[derive(Default)]
pub(crate) struct VmaIndex {
    pub(crate) nodes: BTreeMap<u64, Arc<VmaNode>>,
}

impl VmaIndex {
    #[inline]
    pub(crate) fn find(&self, addr: u64) -> Option<&Arc<VmaNode>> {
        self.nodes.range(..=addr).next_back().map(|(_, n)| n).filter(|n| addr < n.vma.end)
    }
}

/// A VMA read-locked by [`PerVma::lock_vma`]; unlocks when dropped.
pub(crate) struct VmaRead<'r> {
    node: &'r VmaNode,
}

impl VmaRead<'_> {
    pub(crate) fn node(&self) -> &VmaNode {
        self.node
    }
}

impl Drop for VmaRead<'_> {
    fn drop(&mut self) {
        self.node.end_read();
    }
}

/// Page tables waiting for, and released by, RCU callbacks (every
/// strategy's: R10). Shared with the callbacks, which may run after the
/// address space is gone.
struct RcuTables {
    /// Handed to [`PerVma::free_table`] and [`PerVma::free_tables`]:
    /// changes only inside operations,
    /// so that at rest `queued` is exact while callbacks still run.
    queued: AtomicU64,
    /// Released by a callback (never more than `queued`).
    released: AtomicU64,
    /// Quarantine builds: released tables, poisoned, kept until this drops.
    quarantine: PhaseLock<Vec<TablePtr>>,
}

impl RcuTables {
    /// The callback's work: the grace period has ended.
    fn release(&self, ptr: TablePtr) {
        if QUARANTINE {
            #[cfg(any(feature = "quarantine", phase_lock_loom))]
            // SAFETY: a grace period has passed since the table was unlinked:
            // no walker holds its pointer (R4 under PerVma).
            unsafe {
                ptr.poison()
            };
            let _h = Held::take(Class::Deferred);
            self.quarantine.write().push(ptr);
        } else {
            // SAFETY: as above; released once (one callback per unlink).
            unsafe { ptr.dealloc() };
        }
        // Relaxed: statistics.
        self.released.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for RcuTables {
    fn drop(&mut self) {
        for p in core::mem::take(self.quarantine.get_mut()) {
            // SAFETY: `&mut self`: the last callback has run; each table is
            // in the list once.
            unsafe { p.dealloc() };
        }
    }
}

/// A raw pointer moved into an RCU callback.
struct SendPtr<T>(*mut T);
// SAFETY: the pointee (a `VmaIndex`: `Arc`s of `Send + Sync` nodes) is only
// dropped by the callback, after every reader has left.
unsafe impl<T: Send> Send for SendPtr<T> {}

/// The per-VMA state of one address space.
pub(crate) struct PerVma {
    /// `mm_lock_seq`: bumped when the mmap write lock is released, which
    /// releases every VMA write lock taken under it.
    seq: AtomicU64,
    /// The current index, read under `rcu`.
    pub(crate) index: AtomicPtr<VmaIndex>,
    pub(crate) rcu: Rcu,
    tables: Arc<RcuTables>,
}

impl PerVma {
    pub(crate) fn new() -> PerVma {
        PerVma {
            seq: AtomicU64::new(0),
            index: AtomicPtr::new(Box::into_raw(Box::<VmaIndex>::default())),
            rcu: Rcu::new(),
            tables: Arc::new(RcuTables {
                queued: AtomicU64::new(0),
                released: AtomicU64::new(0),
                quarantine: new_lock(Vec::new()),
            }),
        }
    }

    /// `lock_vma_under_rcu`: the VMA containing `addr`, read-locked, or
    /// `None` (no VMA there, or one write-locked or detached: the caller
    /// falls back to the mmap lock).
    pub(crate) fn lock_vma<'r>(&self, _rcu: &'r RcuRead<'_>, addr: u64) -> Option<VmaRead<'r>> {
        // Acquire: pairs with `publish`'s Release swap, so the nodes of the
        // index are initialized.
        let index = self.index.load(Ordering::Acquire);
        // SAFETY: an index is freed only by an RCU callback queued after it
        // was replaced; `_rcu` is a section that began before that callback
        // could run, and outlives the returned borrow.
        let index: &'r VmaIndex = unsafe { &*index };
        let node = index.find(addr)?;
        // Not `then_some`: a `VmaRead` built eagerly would unlock on drop.
        if node.try_read(&self.seq) { Some(VmaRead { node }) } else { None }
    }

    /// Publishes the index of `next`, the VMA tree about to be installed:
    /// unchanged VMAs keep their nodes (and their readers); every replaced
    /// or removed node is write-locked (its readers drained) and detached;
    /// new nodes are write-locked until the write hold ends. The caller
    /// holds the mmap lock for write.
    ///
    /// SplitPerVma (`split`): the write locks are the nodes' `pt` locks,
    /// returned held, replaced nodes first (address order), then new ones;
    /// the caller releases the replaced nodes' deferred tables under them.
    pub(crate) fn publish(&self, next: &VmaTree, split: bool) -> Vec<WriteLocked> {
        // Relaxed: `seq` changes only under the mmap write lock, held.
        let seq = self.seq.load(Ordering::Relaxed);
        // SAFETY: only holders of the mmap write lock replace the index.
        let old = unsafe { &*self.index.load(Ordering::Relaxed) };
        let mut held = Vec::new();
        let mut created = Vec::new();
        let mut nodes = BTreeMap::new();
        for v in next.iter() {
            let node = match old.nodes.get(&v.start) {
                Some(n) if same(&n.vma, v) => n.clone(),
                _ => {
                    let n = VmaNode::new_locked(v.clone(), seq);
                    if split {
                        // Unpublished: uncontended.
                        created.push((n.clone(), n.pt.lock_exclusive()));
                    }
                    n
                }
            };
            nodes.insert(v.start, node);
        }
        for (start, n) in &old.nodes {
            if !nodes.get(start).is_some_and(|m| Arc::ptr_eq(m, n)) {
                if split {
                    held.push((n.clone(), n.pt.lock_exclusive()));
                } else {
                    n.write_lock(seq);
                }
                n.detach();
            }
        }
        let new = Box::into_raw(Box::new(VmaIndex { nodes }));
        // Release: publishes the new nodes to `lock_vma`'s Acquire load.
        let prev = SendPtr(self.index.swap(new, Ordering::AcqRel));
        self.rcu.call(Box::new(move || {
            let prev = prev;
            // SAFETY: replaced above, so unreachable to new readers; the
            // grace period has waited out the old ones.
            drop(unsafe { Box::from_raw(prev.0) });
        }));
        held.extend(created);
        held
    }

    /// Write-locks the VMA containing `addr`, if any; the caller holds the
    /// mmap lock for write.
    pub(crate) fn write_lock_at(&self, addr: u64) {
        // SAFETY: only holders of the mmap write lock replace the index.
        let index = unsafe { &*self.index.load(Ordering::Relaxed) };
        if let Some(n) = index.find(addr) {
            // Relaxed: see `publish`.
            n.write_lock(self.seq.load(Ordering::Relaxed));
        }
    }

    /// `vma_end_write_all`, as the mmap write lock is released.
    pub(crate) fn end_write_all(&self) {
        // Release: the write hold's changes happen before a reader whose
        // recheck sees the new sequence.
        self.seq.fetch_add(1, Ordering::Release);
    }

    /// Releases the unlinked table `ptr` after a grace period
    /// (`pte_free_defer`).
    pub(crate) fn free_table(&self, ptr: TablePtr) {
        // Relaxed: statistics.
        self.tables.queued.fetch_add(1, Ordering::Relaxed);
        let tables = self.tables.clone();
        self.rcu.call(Box::new(move || tables.release(ptr)));
    }

    /// Releases unlinked tables after a grace period, with one callback:
    /// the other strategies' tables, once their own grace period (R4) has
    /// passed, so that lockless walkers (GUP-fast), which hold no lock,
    /// never find them released.
    pub(crate) fn free_tables(&self, list: Vec<TablePtr>) {
        if list.is_empty() {
            return;
        }
        // Relaxed: statistics.
        self.tables.queued.fetch_add(list.len() as u64, Ordering::Relaxed);
        let tables = self.tables.clone();
        self.rcu.call(Box::new(move || {
            for ptr in list {
                tables.release(ptr);
            }
        }));
    }

    /// Runs the callbacks whose grace periods can end now, without waiting
    /// for a reader: a couple of attempts, cheap enough after every
    /// DONTNEED.
    pub(crate) fn expedite(&self) {
        self.rcu.expedite(2, || self.pending() != 0);
    }

    /// As [`expedite`](PerVma::expedite), trying harder (up to 4096
    /// attempts, yielding between them): at rest, the few attempts a
    /// grace period needs, unless some thread of the process stays inside
    /// a read-side section (crossbeam's collector is global) — a thread
    /// preempted there on a busy machine, for instance.
    pub(crate) fn settle(&self) {
        self.rcu.expedite(4096, || self.pending() != 0);
    }

    /// Tables handed to [`free_table`](PerVma::free_table) so far.
    pub(crate) fn queued(&self) -> u64 {
        // Relaxed: statistics.
        self.tables.queued.load(Ordering::Relaxed)
    }

    /// Tables unlinked and not yet released.
    pub(crate) fn pending(&self) -> u64 {
        // Relaxed: statistics. `released` first: it never passes `queued`,
        // which only grows.
        let released = self.released();
        self.queued() - released
    }

    /// Tables released by callbacks.
    pub(crate) fn released(&self) -> u64 {
        self.tables.released.load(Ordering::Relaxed)
    }

    /// Released tables kept in quarantine.
    pub(crate) fn quarantined(&self) -> u64 {
        let _h = Held::take(Class::Deferred);
        self.tables.quarantine.read().len() as u64
    }
}

impl Drop for PerVma {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader; the current index was never handed
        // to a callback.
        drop(unsafe { Box::from_raw(self.index.load(Ordering::Relaxed)) });
    }
}

impl Drop for VmaNode {
    fn drop(&mut self) {
        // Only a node of the last index can still hold tables (a replaced
        // node's are released under its write lock, before it is detached),
        // and it drops with its address space: nothing can reach them.
        for p in core::mem::take(self.deferred.get_mut()) {
            // SAFETY: unlinked, unreachable, in no other list.
            unsafe { p.dealloc() };
        }
    }
}

#[cfg(all(test, not(phase_lock_loom)))]
pub(crate) mod tests {
    use crate::*;

    pub(crate) const A: u64 = 0x4000_0000;
    pub(crate) const B: u64 = 0x8000_0000;

    /// An address space of `strategy` with two 2 MiB VMAs, at `A` and `B`
    /// (also used by `splitvma.rs`'s tests).
    pub(crate) fn two_vmas_of(strategy: Strategy) -> Mm {
        let mm = Mm::new(strategy, &FrameAllocator::new());
        mm.mmap(A, PMD_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
        mm.mmap(B, PMD_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
        mm
    }

    fn two_vmas() -> Mm {
        two_vmas_of(Strategy::PerVma)
    }

    /// Whether a fault at `addr` could take its VMA's read lock now.
    fn lockable(mm: &Mm, addr: u64) -> bool {
        let p = &mm.inner.pervma;
        let rcu = p.rcu.read();
        p.lock_vma(&rcu, addr).is_some()
    }

    #[test]
    fn a_write_locked_vma_refuses_readers_until_the_mmap_write_lock_drops() {
        let mm = two_vmas();
        assert!(lockable(&mm, A) && lockable(&mm, B));
        let w = mm.inner.vma_write();
        // The mmap write lock alone locks no VMA: faults go on beside it.
        assert!(lockable(&mm, A) && lockable(&mm, B));
        mm.inner.pervma.write_lock_at(A);
        assert!(!lockable(&mm, A), "a write-locked VMA let a reader in");
        assert!(lockable(&mm, B), "locking one VMA locked another");
        // A fault in the other VMA completes under the mmap write lock.
        std::thread::scope(|s| s.spawn(|| mm.fault(B, true).unwrap()).join().unwrap());
        drop(w);
        assert!(lockable(&mm, A), "dropping the mmap write lock left a VMA write-locked");
    }

    #[test]
    fn vmas_created_or_replaced_are_locked_then_released_together() {
        let mm = two_vmas();
        mm.mprotect(A, PAGE_SIZE, Prot::Read).unwrap(); // splits A in two new nodes
        assert!(lockable(&mm, A) && lockable(&mm, A + PAGE_SIZE) && lockable(&mm, B));
        mm.munmap(A, PMD_SIZE).unwrap();
        assert!(!lockable(&mm, A), "an unmapped range still had a VMA");
        assert_eq!(mm.fault(A, false), Err(MmError::NotMapped { addr: A }));
        assert!(lockable(&mm, B));
    }

    #[test]
    fn a_writer_waits_for_the_readers_of_the_vma_it_locks() {
        let mm = two_vmas();
        let p = &mm.inner.pervma;
        let locked = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let rcu = p.rcu.read();
            let reader = p.lock_vma(&rcu, A).expect("unlocked");
            let writer = s.spawn(|| {
                let _w = mm.inner.vma_write();
                p.write_lock_at(A);
                locked.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            // Give the writer time to reach the wait: it must still be there.
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(!locked.load(std::sync::atomic::Ordering::SeqCst), "the writer did not wait for the reader");
            drop(reader);
            writer.join().unwrap();
        });
        assert!(locked.into_inner());
    }

    #[test]
    fn dontneed_of_whole_spans_frees_through_rcu_and_partial_zaps_free_nothing() {
        let mm = two_vmas();
        for p in (0..512).step_by(64) {
            mm.fault(A + p * PAGE_SIZE, true).unwrap();
            mm.fault(B + p * PAGE_SIZE, true).unwrap();
        }
        // Everything but the first page: the table stays, though empty.
        mm.madvise_dontneed(A, PAGE_SIZE).unwrap();
        mm.madvise_dontneed(A + PAGE_SIZE, PMD_SIZE - PAGE_SIZE).unwrap();
        assert_eq!(mm.stats().tables[Level::Pte as usize], 2);
        mm.madvise_dontneed(B, PMD_SIZE).unwrap();
        let st = mm.stats();
        assert_eq!(st.tables[Level::Pte as usize], 1);
        assert_eq!(st.tables_freed, 1);
        mm.check_invariants().unwrap();
    }
}
