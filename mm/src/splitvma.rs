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
//!   node is found in the index and try-locked; if that fails, the node is
//!   pinned by an `Arc` (a shared count, on this slow path only), RCU is
//!   left, and the lock is taken blocking: nobody waits inside a read-side
//!   section. Once held, a node that is still attached stays allocated and
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

/// A node as a hold refers to it: borrowed (its lock, held, keeps it
/// allocated) or pinned by an `Arc` (taken before a blocking acquisition).
enum NodeRef<'m> {
    Borrowed(&'m VmaNode),
    Pinned(Arc<VmaNode>),
}

/// A lock mode held, with the raw lock's per-acquisition state.
enum Held {
    Read(SharedHold),
    Intent(SharedHold),
    Write(<PtLockRaw as RawRwLock>::ExclusiveGuard),
}

/// One VMA's page-table lock, held; released when dropped.
pub(crate) struct NodeHold<'m> {
    node: NodeRef<'m>,
    held: Option<Held>,
}

impl<'m> NodeHold<'m> {
    /// A hold of `node` for write, taken by [`PerVma::publish`].
    pub(crate) fn written(node: Arc<VmaNode>, guard: <PtLockRaw as RawRwLock>::ExclusiveGuard) -> NodeHold<'m> {
        NodeHold { node: NodeRef::Pinned(node), held: Some(Held::Write(guard)) }
    }

    /// The node held.
    pub(crate) fn node(&self) -> &VmaNode {
        match &self.node {
            NodeRef::Borrowed(n) => n,
            NodeRef::Pinned(n) => n,
        }
    }

    fn try_lock(node: NodeRef<'m>, mode: Mode) -> Result<NodeHold<'m>, NodeRef<'m>> {
        let n = match &node {
            NodeRef::Borrowed(n) => *n,
            NodeRef::Pinned(n) => &**n,
        };
        let held = match mode {
            Mode::Read => n.pt.try_lock_shared().map(Held::Read),
            Mode::Intent => n.pt.try_lock_intent().map(Held::Intent),
            Mode::Write => n.pt.try_lock_exclusive().map(Held::Write),
        };
        match held {
            Some(h) => Ok(NodeHold { node, held: Some(h) }),
            None => Err(node),
        }
    }

    fn lock(node: NodeRef<'m>, mode: Mode) -> NodeHold<'m> {
        let n = match &node {
            NodeRef::Borrowed(n) => *n,
            NodeRef::Pinned(n) => &**n,
        };
        let held = match mode {
            Mode::Read => Held::Read(n.pt.lock_shared()),
            Mode::Intent => Held::Intent(n.pt.lock_intent()),
            Mode::Write => Held::Write(n.pt.lock_exclusive()),
        };
        NodeHold { node, held: Some(held) }
    }
}

impl Drop for NodeHold<'_> {
    fn drop(&mut self) {
        let held = self.held.take();
        let pt = &self.node().pt;
        // SAFETY: each is this hold's own acquisition of `pt`, released once
        // (taken out of the `Option`).
        match held {
            Some(Held::Read(h)) => unsafe { pt.unlock_shared(h) },
            Some(Held::Intent(h)) => unsafe { pt.unlock_intent(h) },
            Some(Held::Write(g)) => unsafe { pt.unlock_exclusive(g) },
            None => {}
        }
    }
}

impl PerVma {
    /// SplitPerVma's `lock_vma_under_rcu`: the VMA containing `addr`, its
    /// page-table lock held in `mode` (blocking, never inside RCU), or
    /// `Err(next)` when no VMA contains `addr`, `next` being the start of
    /// the first VMA above it (`u64::MAX` if none).
    pub(crate) fn lock_node(&self, addr: u64, mode: Mode) -> Result<NodeHold<'_>, u64> {
        loop {
            let rcu = self.rcu.read();
            // Acquire: pairs with `publish`'s Release swap (initialized nodes).
            let index = self.index.load(Ordering::Acquire);
            // SAFETY: an index is freed by an RCU callback queued after it
            // was replaced; `rcu` began before that and outlives this borrow.
            let index: &VmaIndex = unsafe { &*index };
            let Some(node) = index.find(addr) else {
                let next = index.nodes.range(addr..).next().map_or(u64::MAX, |(&s, _)| s);
                return Err(next);
            };
            // SAFETY: the lifetime is extended only for a hold: a node whose
            // lock is held stays allocated until the hold ends, since a layout
            // change write-locks it (waiting for us) before it detaches it,
            // and frees it only by an RCU callback queued after that; a node
            // found detached is released below while `rcu` still pins it.
            let borrowed: &VmaNode = unsafe { &*(&**node as *const VmaNode) };
            let hold = match NodeHold::try_lock(NodeRef::Borrowed(borrowed), mode) {
                Ok(h) => h,
                Err(_) => {
                    let pinned = node.clone();
                    drop(rcu);
                    let h = NodeHold::lock(NodeRef::Pinned(pinned), mode);
                    if h.node().attached() {
                        return Ok(h);
                    }
                    continue;
                }
            };
            if hold.node().attached() {
                return Ok(hold);
            }
            // Replaced since we found it: look again once the change is out.
            drop(hold);
            drop(rcu);
        }
    }

    /// Every VMA's page-table lock in `mode`, in address order. The caller
    /// holds the mmap lock (so the index is not replaced) and no node.
    pub(crate) fn lock_all(&self, mode: Mode) -> Vec<NodeHold<'_>> {
        // SAFETY: the caller's mmap lock: the index is replaced only under
        // the mmap lock for write.
        let index = unsafe { self.current() };
        // SAFETY: as in `lock_node`, a held node outlives its hold, which may
        // outlast the caller's mmap lock.
        index
            .nodes
            .values()
            .map(|n| NodeHold::lock(NodeRef::Borrowed(unsafe { &*(&**n as *const VmaNode) }), mode))
            .collect()
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
