//! The wait queue: who waits, in what order, and who belongs to the current
//! strict batch.
//!
//! Waiters live on their own stacks. The queue keeps them in six FIFO lists,
//! two per kind:
//!
//! * **fresh** waiters have not been woken since they queued;
//! * **spent** waiters were woken once by a patient lock to try again (see
//!   `fairness.rs`). Such a wake-up moves them to the end of their kind's
//!   spent list without unlinking them, so the queue keeps their age and the
//!   strict rules can still hand them the lock; a patient lock never wakes
//!   them again to *try*. Every spent waiter queued before every fresh waiter
//!   of its kind, so "spent, then fresh" is queue order (writers rely on it).
//!
//! A waiter woken to try again has a wake-up *in flight* (`pending`) until it
//! takes the queue lock and sees it. A handoff that picks such a waiter
//! unlinks it and marks it `granted` instead of waking it a second time: the
//! wake-up in flight will bring it to the queue lock, where it finds the lock
//! already its own. So a waiter never has two wakers, and never returns
//! while one is still on its way.
//!
//! The lists' heads, tails and counts — the *books* — live in one linked
//! waiter, the **anchor**, which the lock's queue word points to. When the
//! anchor leaves the queue its books move to a waiter that stays. So the
//! lock is still two words, there is no allocation, and every operation is
//! O(1) except taking waiters out for a wake-up, which is O(waiters taken):
//! a handoff never walks the waiters it does not admit.
//!
//! **The strict batch.** Each waiter gets a sequence number when it is
//! linked (`next_seq` in the books). When a patient lock turns strict, every
//! waiter linked at that moment is a *member* of the batch (`seq <
//! strict_until`); the lock stays strict while any member is still queued.
//! Within a list members are a prefix (sequence numbers grow along a fresh
//! list; waiters move to a spent list only while the lock is patient, when
//! nobody is a member), so the books count members per list and a take knows
//! how many it removes without walking.
//!
//! Everything here runs under the lock's `QUEUE_LOCKED` bit: the functions
//! are `unsafe` with that as their contract.

use core::ptr;
use std::time::Instant;

use crate::park::{Parker, Wake};
use crate::state::{Kind, waiting_bits};
use crate::sync::{AtomicPtr, Ordering, QCell};

/// `Links::list` of a waiter that is not in the queue.
const UNLINKED: u8 = u8::MAX;
/// Two lists per kind.
const LISTS: usize = 6;

/// Which of a kind's two lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pool {
    /// Not woken since it queued.
    Fresh,
    /// Woken once to try again, and queued again.
    Spent,
}

/// The list that holds waiters of `kind` in `pool`.
const fn list_of(kind: Kind, pool: Pool) -> usize {
    match pool {
        Pool::Fresh => kind.index(),
        Pool::Spent => 3 + kind.index(),
    }
}

/// A queued (or about to be queued) request.
///
/// It lives on the waiting thread's stack. It is linked into the queue and
/// unlinked again only under the queue lock, and the waiting thread does not
/// return before it is unlinked and, if somebody else unlinked it, woken.
pub(crate) struct Waiter {
    /// The mode requested.
    pub(crate) kind: Kind,
    /// The waiting thread's wake-up channel.
    pub(crate) parker: Parker,
    /// Under the queue lock.
    links: QCell<Links>,
    /// Under the queue lock; meaningful only while this waiter is the anchor.
    books: QCell<Books>,
    /// The next waiter of the chain being woken. Written under the queue
    /// lock by the thread that builds the chain, read by the same thread
    /// after it releases the queue lock (the waiter itself never touches it,
    /// so the read races with nothing the waiter does meanwhile).
    wake_next: AtomicPtr<Waiter>,
}

#[derive(Clone, Copy)]
struct Links {
    /// Older neighbour in the same list (null at the head).
    prev: *const Waiter,
    /// Newer neighbour in the same list (null at the tail); after a take, the
    /// next waiter of the chain to wake.
    next: *const Waiter,
    /// Index of the list this waiter is on, or `UNLINKED`.
    list: u8,
    /// Sequence number, from the books' `next_seq` when linked.
    seq: u64,
    /// When this request's patience runs out (`None`: a strict lock, or
    /// already spent).
    patience: Option<Instant>,
    /// A wake-up to try again is in flight (or landed and not yet seen).
    pending: bool,
    /// Unlinked by a handoff while `pending`: the lock is this waiter's.
    granted: bool,
}

#[derive(Clone, Copy)]
struct Books {
    head: [*const Waiter; LISTS],
    tail: [*const Waiter; LISTS],
    count: [u32; LISTS],
    /// Members of the strict batch in each list (a prefix of the list).
    members: [u32; LISTS],
    next_seq: u64,
    /// Waiters with a smaller sequence number are members of the batch.
    strict_until: u64,
}

const UNLINKED_LINKS: Links = Links {
    prev: ptr::null(),
    next: ptr::null(),
    list: UNLINKED,
    seq: 0,
    patience: None,
    pending: false,
    granted: false,
};

const EMPTY_BOOKS: Books = Books {
    head: [ptr::null(); LISTS],
    tail: [ptr::null(); LISTS],
    count: [0; LISTS],
    members: [0; LISTS],
    next_seq: 0,
    strict_until: 0,
};

/// Waiters to wake, oldest first, chained through their `wake_next` fields;
/// woken with [`Chain::wake_all`] after the queue lock is released.
#[must_use]
pub(crate) struct Chain {
    head: *const Waiter,
    tail: *const Waiter,
}

/// The queue as a handoff decision sees it ([`WaitQueue::summary`]).
#[derive(Clone, Copy, Default)]
pub(crate) struct Summary {
    /// Waiters of each kind.
    pub(crate) counts: [u64; 3],
    /// The waiting bits of the kinds with waiters.
    pub(crate) queued: u64,
    /// The waiting bits of the kinds with fresh waiters.
    pub(crate) fresh: u64,
    /// Members of the strict batch still queued.
    pub(crate) batch: u64,
}

/// What a take will remove: a kind's two lists (spent first) and how many
/// from each. Computed without changing anything, so that the caller can publish
/// the new state word first.
#[derive(Clone, Copy, Default)]
pub(crate) struct Take {
    parts: [(usize, u32); 2],
    /// Waiters taken in all.
    pub(crate) n: u64,
    /// How many of them are members of the strict batch.
    pub(crate) members: u64,
}

impl Waiter {
    /// A new, unlinked waiter of `kind` for the current thread.
    pub(crate) fn new(kind: Kind) -> Self {
        Waiter {
            kind,
            parker: Parker::new(),
            links: QCell::new(UNLINKED_LINKS),
            books: QCell::new(EMPTY_BOOKS),
            wake_next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// # Safety
    ///
    /// Queue lock held; `w` is alive.
    unsafe fn links(w: *const Waiter) -> Links {
        // SAFETY: caller's contract; `Links` is copied out.
        unsafe { (*w).links.with_mut(|l| *l) }
    }

    /// # Safety
    ///
    /// As for [`Waiter::links`].
    unsafe fn edit(w: *const Waiter, f: impl FnOnce(&mut Links)) {
        // SAFETY: caller's contract.
        unsafe { (*w).links.with_mut(f) }
    }

    /// Whether this waiter is in the queue.
    ///
    /// # Safety
    ///
    /// Queue lock held.
    pub(crate) unsafe fn is_linked(&self) -> bool {
        // SAFETY: caller's contract.
        unsafe { Waiter::links(self).list != UNLINKED }
    }

    /// Called by the waiter itself, woken by something other than an
    /// admission: where it stands. `retry_landed`: the wake-up that woke it
    /// was a retry (so none is in flight any more). Forgets `granted` (the
    /// waiter now acts on it).
    ///
    /// # Safety
    ///
    /// Queue lock held.
    pub(crate) unsafe fn standing(&self, retry_landed: bool) -> Standing {
        // SAFETY: caller's contract.
        unsafe {
            self.links.with_mut(|l| {
                if retry_landed {
                    l.pending = false;
                }
                let retry_in_flight = l.pending;
                if l.granted || l.list == UNLINKED {
                    // Unlinked by a handoff. Unless it marked us `granted`, it
                    // woke us with an admission, which has not landed yet.
                    let wake_owed = !l.granted || retry_in_flight;
                    l.granted = false;
                    Standing::Owner { wake_owed }
                } else {
                    Standing::Queued { retry_in_flight }
                }
            })
        }
    }
}

/// Where a woken waiter stands ([`Waiter::standing`]).
pub(crate) enum Standing {
    /// Still queued. `retry_in_flight`: a wake-up to try again is on its way
    /// (it must land before the waiter may return).
    Queued { retry_in_flight: bool },
    /// A handoff unlinked the waiter: the lock is its own. `wake_owed`: a
    /// wake-up (the admission, or a retry the handoff found in flight) is
    /// still on its way and must land before the waiter may return.
    Owner { wake_owed: bool },
}

/// The queue word of a lock: the anchor waiter, or null when nobody waits.
pub(crate) struct WaitQueue {
    anchor: AtomicPtr<Waiter>,
}

impl WaitQueue {
    /// An empty queue.
    #[cfg(not(phase_lock_loom))]
    pub(crate) const fn new() -> Self {
        WaitQueue { anchor: crate::sync::const_ptr() }
    }

    /// An empty queue.
    #[cfg(phase_lock_loom)]
    pub(crate) fn new() -> Self {
        WaitQueue { anchor: AtomicPtr::new(ptr::null_mut()) }
    }

    // Relaxed loads and stores of the anchor (here and below): it is read and
    // written only under the queue lock, whose acquire and release order it.

    /// Runs `f` on the books, in place in the anchor. If `f` unlinked the
    /// anchor, the books then move to a waiter that is still linked (the
    /// only copy of them), or the queue word is cleared if nobody is left.
    /// On an empty queue `f` sees empty books and its changes are dropped
    /// (`push` handles the first waiter).
    ///
    /// # Safety
    ///
    /// Queue lock held; `f` keeps the books describing the linked waiters,
    /// and does not reach the anchor's books itself.
    unsafe fn with_books<R>(&self, f: impl FnOnce(&mut Books) -> R) -> R {
        let a = self.anchor.load(Ordering::Relaxed) as *const Waiter;
        if a.is_null() {
            return f(&mut EMPTY_BOOKS.clone());
        }
        // SAFETY: the anchor is linked, hence alive until it is woken, which
        // happens only after the queue lock is released (caller holds it).
        unsafe {
            let r = (*a).books.with_mut(f);
            if !(*a).is_linked() {
                let b = (*a).books.with_mut(|b| *b);
                let next = b.head.iter().copied().find(|h| !h.is_null()).unwrap_or(ptr::null());
                self.anchor.store(next.cast_mut(), Ordering::Relaxed);
                if !next.is_null() {
                    (*next).books.with_mut(|nb| *nb = b);
                }
            }
            r
        }
    }

    /// What a handoff decision needs, read in one look at the books: the
    /// number of waiters of each kind, the waiting bits of all waiters and of
    /// fresh ones, and how many members of the strict batch are queued.
    ///
    /// # Safety
    ///
    /// Queue lock held.
    pub(crate) unsafe fn summary(&self) -> Summary {
        // SAFETY: caller's contract.
        unsafe {
            self.with_books(|b| {
                let fresh = Kind::ALL.map(|k| u64::from(b.count[list_of(k, Pool::Fresh)]));
                let counts = Kind::ALL.map(|k| fresh[k.index()] + u64::from(b.count[list_of(k, Pool::Spent)]));
                Summary {
                    counts,
                    queued: waiting_bits(counts),
                    fresh: waiting_bits(fresh),
                    batch: b.members.iter().map(|&m| u64::from(m)).sum(),
                }
            })
        }
    }

    /// Test hook: number of waiters of each kind.
    ///
    /// # Safety
    ///
    /// Queue lock held.
    #[cfg(all(test, not(phase_lock_model)))]
    pub(crate) unsafe fn counts(&self) -> [u64; 3] {
        // SAFETY: caller's contract.
        unsafe {
            self.with_books(|b| {
                Kind::ALL.map(|k| u64::from(b.count[list_of(k, Pool::Fresh)] + b.count[list_of(k, Pool::Spent)]))
            })
        }
    }

    /// How many members of the strict batch are still queued (0: the lock
    /// is patient).
    ///
    /// # Safety
    ///
    /// Queue lock held.
    pub(crate) unsafe fn batch_left(&self) -> u64 {
        // SAFETY: caller's contract.
        unsafe { self.with_books(|b| b.members.iter().map(|&m| u64::from(m)).sum()) }
    }

    /// `w`'s patience has run out: unless it already belongs to the strict
    /// batch, every waiter queued now becomes a member (this starts the batch,
    /// or extends a running one).
    ///
    /// # Safety
    ///
    /// Queue lock held; `w` is linked.
    pub(crate) unsafe fn expire(&self, w: &Waiter) {
        // SAFETY: caller's contract.
        unsafe {
            let seq = Waiter::links(w).seq;
            self.with_books(|b| {
                let member = b.members.iter().any(|&m| m != 0) && seq < b.strict_until;
                if !member {
                    start_batch(b);
                }
            });
        }
    }

    /// If no strict batch is running and the oldest waiter of some list has
    /// waited out its patience by `now`, starts a batch for it (as
    /// [`WaitQueue::expire`]) and returns `true`. Looks at the six list heads
    /// only: along a list, patience deadlines grow (spent lists hold older
    /// requests than fresh ones).
    ///
    /// # Safety
    ///
    /// Queue lock held.
    pub(crate) unsafe fn expire_overdue(&self, now: Instant) -> bool {
        // SAFETY: caller's contract; list heads are linked, hence alive.
        unsafe {
            let overdue = self.with_books(|b| {
                b.members.iter().all(|&m| m == 0)
                    && b.head.iter().any(|&h| !h.is_null() && Waiter::links(h).patience.is_some_and(|p| p <= now))
            });
            if overdue {
                self.with_books(start_batch);
            }
            overdue
        }
    }

    /// Links `w` as the newest fresh waiter of its kind. `patience` is when
    /// the request's patience runs out.
    ///
    /// # Safety
    ///
    /// Queue lock held; `w` is alive and unlinked, and stays alive until it
    /// is unlinked.
    pub(crate) unsafe fn push(&self, w: &Waiter, patience: Option<Instant>) {
        // SAFETY: caller's contract; every linked waiter is alive.
        unsafe {
            if self.anchor.load(Ordering::Relaxed).is_null() {
                // The first waiter anchors fresh books.
                w.books.with_mut(|b| *b = EMPTY_BOOKS);
                self.anchor.store((w as *const Waiter).cast_mut(), Ordering::Relaxed);
            }
            self.with_books(|b| {
                let seq = b.next_seq;
                b.next_seq += 1;
                Waiter::edit(w, |l| *l = Links { seq, patience, ..UNLINKED_LINKS });
                append(b, w, list_of(w.kind, Pool::Fresh));
            });
        }
    }

    /// Wakes to try again up to `limit` fresh waiters of `kind`, oldest
    /// first: moves them to the end of the spent list, marks their wake-up
    /// in flight and returns them as a chain.
    ///
    /// # Safety
    ///
    /// Queue lock held; the lock is patient (no strict batch is running).
    pub(crate) unsafe fn retry(&self, kind: Kind, limit: u64) -> Chain {
        let mut chain = Chain { head: ptr::null(), tail: ptr::null() };
        let (fresh, spent) = (list_of(kind, Pool::Fresh), list_of(kind, Pool::Spent));
        // SAFETY: caller's contract; linked waiters are alive.
        unsafe {
            self.with_books(|b| {
                debug_assert!(b.members.iter().all(|&m| m == 0), "a retry while strict");
                for _ in 0..u64::from(b.count[fresh]).min(limit) {
                    let w = pop_front(b, fresh);
                    append(b, w, spent);
                    Waiter::edit(w, |l| l.pending = true);
                    chain.push(w);
                }
            });
        }
        chain
    }

    /// Unlinks `w` (a waiter leaving on its own, after a timeout).
    ///
    /// # Safety
    ///
    /// Queue lock held; `w` is linked.
    pub(crate) unsafe fn unlink(&self, w: &Waiter) {
        // SAFETY: caller's contract; linked neighbours are alive.
        unsafe {
            let l = Waiter::links(w);
            let list = usize::from(l.list);
            self.with_books(|b| {
                if b.members[list] != 0 && l.seq < b.strict_until {
                    b.members[list] -= 1;
                }
                remove(b, w);
            });
        }
    }

    /// Plans handing the lock to up to `limit` waiters of `kind`, oldest
    /// first: spent, then fresh. Changes nothing.
    ///
    /// # Safety
    ///
    /// Queue lock held.
    pub(crate) unsafe fn plan(&self, kind: Kind, mut limit: u64) -> Take {
        let mut take = Take::default();
        // SAFETY: caller's contract.
        unsafe {
            self.with_books(|b| {
                for (i, pool) in [Pool::Spent, Pool::Fresh].into_iter().enumerate() {
                    let list = list_of(kind, pool);
                    let n = u64::from(b.count[list]).min(limit) as u32;
                    take.parts[i] = (list, n);
                    take.n += u64::from(n);
                    // Members are a prefix of the list.
                    take.members += u64::from(n.min(b.members[list]));
                    limit -= u64::from(n);
                }
            });
        }
        take
    }

    /// Carries out `take` (planned under this same hold of the queue lock):
    /// unlinks the waiters, which now own the lock, and returns those to
    /// wake. A waiter with a wake-up in flight is marked `granted` instead.
    ///
    /// # Safety
    ///
    /// Queue lock held, and the queue unchanged since `take` was planned.
    pub(crate) unsafe fn take(&self, take: Take) -> Chain {
        let mut chain = Chain { head: ptr::null(), tail: ptr::null() };
        // SAFETY: caller's contract; linked waiters are alive.
        unsafe {
            self.with_books(|b| {
                for (list, n) in take.parts {
                    b.members[list] -= n.min(b.members[list]);
                    for _ in 0..n {
                        let w = pop_front(b, list);
                        if Waiter::links(w).pending {
                            Waiter::edit(w, |l| l.granted = true);
                        } else {
                            chain.push(w);
                        }
                    }
                }
            });
        }
        chain
    }

    /// Test hook: how many waiters of `kind` are in `pool`.
    ///
    /// # Safety
    ///
    /// Queue lock held.
    #[cfg(all(test, not(phase_lock_model)))]
    pub(crate) unsafe fn count(&self, kind: Kind, pool: Pool) -> u32 {
        // SAFETY: caller's contract.
        unsafe { self.with_books(|b| b.count[list_of(kind, pool)]) }
    }
}

/// Makes every waiter queued now a member of the strict batch (starting the
/// batch, or extending the running one).
fn start_batch(b: &mut Books) {
    b.strict_until = b.next_seq;
    b.members = b.count;
}

/// Appends the unlinked waiter `w` to `list`.
///
/// # Safety
///
/// Queue lock held; `w` and the list's waiters are alive.
unsafe fn append(b: &mut Books, w: *const Waiter, list: usize) {
    let tail = b.tail[list];
    // SAFETY: caller's contract.
    unsafe {
        Waiter::edit(w, |l| {
            l.prev = tail;
            l.next = ptr::null();
            l.list = list as u8;
        });
        if tail.is_null() {
            b.head[list] = w;
        } else {
            Waiter::edit(tail, |l| l.next = w);
        }
    }
    b.tail[list] = w;
    b.count[list] += 1;
}

/// Unlinks the linked waiter `w` from its list (member counts are the
/// caller's business).
///
/// # Safety
///
/// Queue lock held; `w` is linked.
unsafe fn remove(b: &mut Books, w: *const Waiter) {
    // SAFETY: caller's contract; linked neighbours are alive.
    unsafe {
        let l = Waiter::links(w);
        let list = usize::from(l.list);
        if l.prev.is_null() {
            b.head[list] = l.next;
        } else {
            Waiter::edit(l.prev, |p| p.next = l.next);
        }
        if l.next.is_null() {
            b.tail[list] = l.prev;
        } else {
            Waiter::edit(l.next, |n| n.prev = l.prev);
        }
        b.count[list] -= 1;
        Waiter::edit(w, |l| {
            l.prev = ptr::null();
            l.next = ptr::null();
            l.list = UNLINKED;
        });
    }
}

/// Unlinks and returns the oldest waiter of the non-empty `list`.
///
/// # Safety
///
/// As for [`remove`].
unsafe fn pop_front(b: &mut Books, list: usize) -> *const Waiter {
    let w = b.head[list];
    // SAFETY: caller's contract; the head of a non-empty list is linked.
    unsafe { remove(b, w) };
    w
}

impl Chain {
    /// Adds `w` at the end of the chain.
    ///
    /// # Safety
    ///
    /// Queue lock held; `w` is alive and in no other chain.
    unsafe fn push(&mut self, w: *const Waiter) {
        // Relaxed: only this thread reads the chain (see `Waiter::wake_next`).
        // SAFETY: caller's contract: both waiters are alive.
        unsafe {
            (*w).wake_next.store(ptr::null_mut(), Ordering::Relaxed);
            if self.tail.is_null() {
                self.head = w;
            } else {
                (*self.tail).wake_next.store(w.cast_mut(), Ordering::Relaxed);
            }
        }
        self.tail = w;
    }

    /// Wakes every waiter of the chain: `wake` says whether the lock is
    /// theirs (a handoff) or whether they must try again.
    ///
    /// # Safety
    ///
    /// The chain came from [`WaitQueue::take`] or [`WaitQueue::retry`], its
    /// waiters have not been woken since (a waiter in the chain neither
    /// returns nor joins another chain before its wake-up lands), and the
    /// queue lock has been released.
    pub(crate) unsafe fn wake_all(self, wake: Wake) {
        let mut p = self.head;
        while !p.is_null() {
            // SAFETY: the waiter is alive until woken; read everything we need
            // from it before the wake, after which it may be gone. Its
            // `wake_next` is ours until then: only a chain writes it, and the
            // waiter joins no other chain before this wake-up lands.
            let (next, waker) = unsafe { ((*p).wake_next.load(Ordering::Relaxed), (*p).parker.waker()) };
            // SAFETY: this waiter was never woken since it was taken, and is
            // woken once here.
            unsafe { waker.wake(wake) };
            p = next;
        }
    }
}
