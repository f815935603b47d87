//! [`Strategy::SplitPerVma`](crate::Strategy::SplitPerVma): the seed's
//! page-table phase lock at the grain of one VMA (rule R9 of the crate
//! docs), on PerVma's RCU-published VMA index (`pervma.rs`).
//!
//! * **A lock per VMA.** Each [`VmaNode`] carries a page-table lock
//!   (`VmaNode::pt`, the same biased patient lock as Split's). Faults,
//!   zaps and rmap punch-holes hold their VMA's lock in intent mode,
//!   semi-locked walkers every VMA's lock in read mode, and layout changes
//!   the write locks of the VMAs they replace or create.
//! * **Finding and pinning a node** ([`PerVma::lock_node`]). Under RCU the
//!   node is found in the index and try-locked, polling a few times; if
//!   that fails, the node is pinned by an `Arc` (a shared count, on this
//!   slow path only), RCU is left, and the lock is taken blocking: nobody
//!   waits inside a read-side section. Once held, a node that is still attached stays allocated and
//!   its VMA unchanged for as long as the hold lasts, because a layout
//!   change write-locks a node (waiting for its holders) before it detaches
//!   it, and frees it only through an RCU callback queued after that. So a
//!   fault leaves RCU as soon as it holds its VMA's lock.
//! * **Many nodes at once** ([`PerVma::lock_all`]) are taken in address
//!   order, only under the mmap lock, by threads that hold no node; a
//!   thread holding one node never waits for another node or for the mmap
//!   lock, and no node's write lock is held while waiting for `i_mmap`.
//!   So no cycle of waits can form.

use std::sync::Arc;

use crate::pervma::{PerVma, VmaIndex, VmaNode};
use crate::strategy::{Mode, PtLockRaw};
use crate::sync::Ordering;
use phase_lock::{RawIntent, RawRwLock, SharedHold};

/// Try-locks of a node inside RCU before [`PerVma::lock_node`] pins it and
/// waits outside (a few microseconds of polling; one under loom, where each
/// poll is one more branch to explore).
const NODE_POLLS: u32 = if cfg!(phase_lock_loom) { 1 } else { 64 };

/// A lock mode held, with the raw lock's per-acquisition state.
enum Held {
    Read(SharedHold),
    Intent(SharedHold),
    Write(<PtLockRaw as RawRwLock>::ExclusiveGuard),
}

/// One VMA's page-table lock, held; released when dropped.
pub(crate) struct NodeHold<'m> {
    /// The node: kept allocated by the hold itself (see the module docs),
    /// or by `_pin`.
    node: &'m VmaNode,
    /// Taken before a blocking acquisition outside RCU.
    _pin: Option<Arc<VmaNode>>,
    held: Option<Held>,
}

impl<'m> NodeHold<'m> {
    /// A hold of `node` for write, taken by [`PerVma::publish`].
    pub(crate) fn written(node: Arc<VmaNode>, guard: <PtLockRaw as RawRwLock>::ExclusiveGuard) -> NodeHold<'m> {
        // SAFETY: `pin` keeps the node allocated for as long as the hold.
        let n: &'m VmaNode = unsafe { &*Arc::as_ptr(&node) };
        NodeHold { node: n, _pin: Some(node), held: Some(Held::Write(guard)) }
    }

    /// The node held.
    #[inline]
    pub(crate) fn node(&self) -> &VmaNode {
        self.node
    }

    /// Tries to take `node`'s lock in `mode`.
    #[inline]
    fn try_lock(node: &'m VmaNode, mode: Mode) -> Option<NodeHold<'m>> {
        let held = match mode {
            Mode::Read => Held::Read(node.pt.try_lock_shared()?),
            Mode::Intent => Held::Intent(node.pt.try_lock_intent()?),
            Mode::Write => Held::Write(node.pt.try_lock_exclusive()?),
        };
        Some(NodeHold { node, _pin: None, held: Some(held) })
    }

    /// Takes `node`'s lock in `mode`, waiting; `pin`, if any, keeps the
    /// node allocated meanwhile.
    fn lock(node: &'m VmaNode, pin: Option<Arc<VmaNode>>, mode: Mode) -> NodeHold<'m> {
        let held = match mode {
            Mode::Read => Held::Read(node.pt.lock_shared()),
            Mode::Intent => Held::Intent(node.pt.lock_intent()),
            Mode::Write => Held::Write(node.pt.lock_exclusive()),
        };
        NodeHold { node, _pin: pin, held: Some(held) }
    }
}

impl Drop for NodeHold<'_> {
    #[inline]
    fn drop(&mut self) {
        let pt = &self.node.pt;
        // SAFETY: each is this hold's own acquisition of `pt`, released once
        // (taken out of the `Option`), before `_pin` drops.
        match self.held.take() {
            Some(Held::Read(h)) => unsafe { pt.unlock_shared(h) },
            Some(Held::Intent(h)) => unsafe { pt.unlock_intent(h) },
            Some(Held::Write(g)) => unsafe { pt.unlock_exclusive(g) },
            None => {}
        }
    }
}

impl PerVma {
    /// SplitPerVma's `lock_vma_under_rcu`: the VMA containing `addr`, its
    /// page-table lock held in `mode` (never waiting inside RCU), or
    /// `Err(next)` when no VMA contains `addr`, `next` being the start of
    /// the first VMA above it (`u64::MAX` if none).
    #[inline]
    pub(crate) fn lock_node(&self, addr: u64, mode: Mode) -> Result<NodeHold<'_>, u64> {
        // The fast path: one try-lock of the node found under RCU.
        {
            let rcu = self.rcu.read();
            // SAFETY: inside `rcu`.
            if let Some(node) = unsafe { self.current() }.find(addr) {
                // SAFETY: see `extend`.
                let node = unsafe { extend(node) };
                // A detached node's hold is released before `rcu` ends.
                if let Some(h) = NodeHold::try_lock(node, mode)
                    && node.attached()
                {
                    return Ok(h);
                }
            }
            drop(rcu);
        }
        self.lock_node_slow(addr, mode)
    }

    /// [`lock_node`](PerVma::lock_node) after its one try failed: polls
    /// inside RCU, then pins the node and waits outside; looks again
    /// whenever the node it locked had been replaced meanwhile.
    #[cold]
    fn lock_node_slow(&self, addr: u64, mode: Mode) -> Result<NodeHold<'_>, u64> {
        loop {
            let rcu = self.rcu.read();
            // SAFETY: inside `rcu`.
            let index = unsafe { self.current() };
            let Some(arc) = index.find(addr) else {
                return Err(index.nodes.range(addr..).next().map_or(u64::MAX, |(&s, _)| s));
            };
            // SAFETY: see `extend`.
            let node = unsafe { extend(arc) };
            // A short hold (a walker's, a reclaim's read) is the common
            // obstacle: poll for it inside RCU, without waiting there.
            let polled = (0..NODE_POLLS).find_map(|_| {
                let h = NodeHold::try_lock(node, mode);
                if h.is_none() {
                    crate::sync::spin_loop();
                }
                h
            });
            let hold = match polled {
                Some(h) => h,
                None => {
                    // Pinned by the `Arc`, the node outlives RCU: wait there.
                    let pin = arc.clone();
                    drop(rcu);
                    NodeHold::lock(node, Some(pin), mode)
                }
            };
            if node.attached() {
                return Ok(hold);
            }
            // Replaced since we found it: look again once the change is out
            // (the hold is released first, while RCU or the `Arc` still pins
            // the node).
            drop(hold);
        }
    }

    /// Every VMA's page-table lock in `mode`, in address order. The caller
    /// holds the mmap lock (so the index is not replaced) and no node.
    pub(crate) fn lock_all(&self, mode: Mode) -> Vec<NodeHold<'_>> {
        // SAFETY: the caller's mmap lock: the index is replaced only under
        // the mmap lock for write.
        let index = unsafe { self.current() };
        // SAFETY: see `extend`; the hold may outlast the caller's mmap lock.
        index.nodes.values().map(|n| NodeHold::lock(unsafe { extend(n) }, None, mode)).collect()
    }

    /// The node containing `addr` in the current index.
    ///
    /// # Safety
    ///
    /// The caller holds the mmap lock, for as long as the borrow lasts.
    pub(crate) unsafe fn find_locked(&self, addr: u64) -> Option<&VmaNode> {
        // SAFETY: the caller's contract.
        unsafe { self.current() }.find(addr).map(|n| &**n)
    }

    /// The current index.
    ///
    /// # Safety
    ///
    /// The caller holds the mmap lock (or an RCU section), for as long as
    /// the borrow lasts.
    pub(crate) unsafe fn current(&self) -> &VmaIndex {
        // Acquire: as in `lock_node` (under the mmap lock it is also ordered
        // by the lock).
        // SAFETY: the caller's contract.
        unsafe { &*self.index.load(Ordering::Acquire) }
    }
}

/// A node found in an index, borrowed for as long as a hold of its lock
/// will last.
///
/// # Safety
///
/// The caller takes the node's lock before the borrow it came from ends
/// (an RCU section, or the mmap lock), and uses the result only while it
/// holds that lock or that borrow: a node whose lock is held stays
/// allocated, because a layout change write-locks a node (waiting for its
/// holders) before it detaches it, and frees it only through an RCU
/// callback queued after that. A node found detached under its lock is
/// released before that borrow ends (or while an `Arc` pins it).
unsafe fn extend<'m>(node: &Arc<VmaNode>) -> &'m VmaNode {
    // SAFETY: the caller's contract.
    unsafe { &*Arc::as_ptr(node) }
}

#[cfg(all(test, not(phase_lock_loom)))]
mod tests {
    use crate::pervma::tests::{A, B, two_vmas_of};
    use crate::strategy::Mode;
    use crate::*;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    fn two_vmas() -> Mm {
        two_vmas_of(Strategy::SplitPerVma)
    }

    #[test]
    fn a_write_locked_vma_stalls_its_own_faults_and_no_others() {
        let mm = two_vmas();
        let faulted = AtomicBool::new(false);
        std::thread::scope(|s| {
            // A layout change of A in progress: the mmap lock for write and
            // A's lock for write.
            let w = mm.inner.vma_write();
            let a = mm.inner.pervma.lock_node(A, Mode::Write).unwrap();
            s.spawn(|| mm.fault(B, true).unwrap()).join().unwrap();
            let fa = s.spawn(|| {
                mm.fault(A, true).unwrap();
                faulted.store(true, SeqCst);
            });
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(!faulted.load(SeqCst), "a fault ran inside a write-locked VMA");
            drop(a);
            drop(w);
            fa.join().unwrap();
        });
        assert!(faulted.into_inner());
        mm.check_invariants().unwrap();
    }

    #[test]
    fn a_table_shared_by_two_vmas_is_freed_only_by_munmap() {
        let mm = Mm::new(Strategy::SplitPerVma, &FrameAllocator::new());
        let half = PMD_SIZE / 2;
        mm.mmap(A, half, Prot::ReadWrite, Backing::Anon).unwrap();
        mm.mmap(A + half, half, Prot::Read, Backing::Anon).unwrap();
        assert_eq!(mm.vmas().len(), 2);
        mm.fault(A, true).unwrap();
        mm.fault(A + half, false).unwrap();
        mm.madvise_dontneed(A, half).unwrap();
        mm.madvise_dontneed(A + half, half).unwrap();
        let pte = |mm: &Mm| mm.stats().tables[Level::Pte as usize];
        assert_eq!(pte(&mm), 1, "a zapper freed a table another VMA shares");
        mm.munmap(A, half).unwrap();
        assert_eq!(pte(&mm), 1, "munmap freed a table a VMA still overlaps");
        mm.munmap(A + half, half).unwrap();
        assert_eq!(pte(&mm), 0);
        assert_eq!(mm.stats().tables_freed, 3, "the PTE, PMD and PUD tables");
        mm.check_invariants().unwrap();
    }

    #[test]
    fn a_table_inside_one_vma_waits_for_that_vmas_read_mode_only() {
        let mm = two_vmas();
        mm.fault(A, true).unwrap();
        mm.fault(B, true).unwrap();
        let deferred = || mm.inner.deferred_len.load(SeqCst);
        std::thread::scope(|s| {
            // A holder of B's lock (a fault in B, say) does not keep A's
            // emptied table from being released…
            let b = mm.inner.pervma.lock_node(B, Mode::Intent).unwrap();
            s.spawn(|| mm.madvise_dontneed(A, PAGE_SIZE).unwrap()).join().unwrap();
            assert_eq!(deferred(), 0, "A's table waited for a holder of B");
            // …but a holder of A's lock keeps A's next emptied table.
            mm.fault(A, true).unwrap();
            let a = mm.inner.pervma.lock_node(A, Mode::Intent).unwrap();
            s.spawn(|| mm.madvise_dontneed(A, PAGE_SIZE).unwrap()).join().unwrap();
            assert_eq!(deferred(), 1, "A's table was released while A's lock was held in intent mode");
            drop(a);
            drop(b);
        });
        let st = mm.stats(); // takes every VMA's lock for read: releases it
        assert_eq!((st.tables[Level::Pte as usize], st.deferred_tables, st.tables_freed), (1, 0, 2));
        mm.check_invariants().unwrap();
    }
}
