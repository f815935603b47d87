//! [`RawPhaseLock`]: the raw three-mode lock.
//!
//! The lock is two words: the state word (layout in `state.rs`) and the tail
//! of a FIFO queue of waiters. Waiters live on their own stacks; the queue is
//! a circular singly linked list (`tail.next` is the oldest waiter), changed
//! only by the thread that holds the `QUEUE_LOCKED` bit of the state word.
//!
//! * **Fast paths** (`try_enter`, `release`) touch only the state word: one
//!   compare-and-swap to enter (from `0` for a writer; after one load and one
//!   mask test for the shared kinds), one `fetch_sub` and a bit test to leave.
//! * **Slow paths** take the queue lock, then either enter (if the fairness
//!   predicate allows it by then) or link a waiter, publish its kind's waiting
//!   bit, and park. Whoever ends a phase while waiting bits are set takes the
//!   queue lock and runs `RawPhaseLock::settle`, which asks `fairness.rs`
//!   who is next, gives them the lock *in the state word* (so admitted waiters
//!   already own it when they wake) and wakes exactly them.
//!
//! Every decision taken under the queue lock is validated by a
//! compare-and-swap of the whole state word, because fast paths keep changing
//! the holder counts while the queue lock is held.

use core::ptr;
use std::time::{Duration, Instant};

use lock_api::GuardSend;

use crate::fairness::{admits_into_running_phase, downgrade_admits, may_enter, next_phase};
use crate::park::{Parker, WaitResult};
use crate::state::{
    HOLDERS_MASK, Kind, QUEUE_LOCKED, WAITING_MASK, WRITER, holders, holding_kind, last_kind, with_holders, with_last,
};
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use crate::{RawIntent, RawIntentDowngrade, RawIntentTimed};

/// The raw phase-fair lock: read (S), intent (IX) and write (X) modes.
///
/// This is the state machine behind [`PhaseLock`](crate::PhaseLock). Use it
/// directly only to build your own lock types: `lock_api::RwLock<RawPhaseLock,
/// T>` *is* `PhaseLock<T>`, and the lock_api shared/exclusive modes are read
/// and write.
///
/// # Compatibility
///
/// | held \ requested | read | intent | write |
/// |------------------|------|--------|-------|
/// | read             | yes  | no     | no    |
/// | intent           | no   | yes    | no    |
/// | write            | no   | no     | no    |
///
/// The fairness contract is stated in the [crate documentation](crate#fairness).
///
/// # Size
///
/// 16 bytes on 64-bit targets: the 8-byte state word plus the 8-byte queue
/// tail. Stock futex rwlocks are 4–8 bytes because their waiters share one
/// futex word and are woken as a herd; a per-lock FIFO of waiter records is
/// what lets this lock admit exactly one kind, and writers in order.
///
/// # Under loom
///
/// loom's atomics cannot be built in a `const` context, so with
/// `--cfg loom` the `INIT` constant panics when used; build the lock with
/// [`RawPhaseLock::new`] and `lock_api::RwLock::from_raw`.
pub struct RawPhaseLock {
    /// The state word (`state.rs`).
    state: AtomicU64,
    /// The newest waiter; its `next` is the oldest. Null when nobody waits.
    /// Read and written only under `QUEUE_LOCKED`.
    queue: AtomicPtr<Waiter>,
}

/// A queued request. Lives on the waiting thread's stack; it is linked into
/// the queue and unlinked again only under the queue lock, and the waiting
/// thread does not return before it is unlinked and (if admitted) woken.
struct Waiter {
    kind: Kind,
    /// The next waiter in the circular queue, or in a chain of admitted
    /// waiters being woken. Under `QUEUE_LOCKED` while linked.
    next: AtomicPtr<Waiter>,
    /// Whether the waiter is in the queue. Under `QUEUE_LOCKED`.
    linked: AtomicBool,
    parker: Parker,
}

/// Why [`RawPhaseLock::settle`] runs, which decides what it may do.
#[derive(Clone, Copy)]
enum Settle {
    /// The caller's release emptied the lock while waiters were queued: it
    /// owns the pending handoff.
    Released,
    /// A timed-out waiter has unlinked itself.
    Left,
    /// A writer downgraded; `Some(kind)` when that kind's waiters join.
    Downgraded(Option<Kind>),
}

/// How many waiters of each kind the queue holds.
#[derive(Default)]
struct Census {
    counts: [u64; 3],
}

impl Census {
    fn count(&self, kind: Kind) -> u64 {
        self.counts[kind as usize - 1]
    }

    /// The waiting bits that mirror these counts.
    fn waiting_bits(&self) -> u64 {
        [Kind::Read, Kind::Intent, Kind::Write]
            .into_iter()
            .filter(|&k| self.count(k) != 0)
            .fold(0, |bits, k| bits | k.waiting_bit())
    }
}

impl RawPhaseLock {
    /// A new unlocked lock.
    #[cfg(not(loom))]
    #[inline]
    pub const fn new() -> Self {
        RawPhaseLock { state: crate::sync::const_u64(0), queue: crate::sync::const_ptr() }
    }

    /// A new unlocked lock.
    #[cfg(loom)]
    pub fn new() -> Self {
        RawPhaseLock { state: AtomicU64::new(0), queue: AtomicPtr::new(ptr::null_mut()) }
    }

    // ----------------------------------------------------------------------
    // Fast paths
    // ----------------------------------------------------------------------

    /// Enters in `kind` if the fairness policy lets a new request in now.
    /// Never waits.
    ///
    /// The fast path is one compare-and-swap: from exactly `0` for a writer
    /// (free, nobody queued), from the current word for a shared kind, after
    /// one mask test that checks both the policy and the count's limit.
    #[inline]
    fn try_enter(&self, kind: Kind) -> bool {
        // Acquire on success (here and below): entering the lock must see
        // everything the previous holders wrote before their release.
        let entered = if kind == Kind::Write {
            self.state.compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed).is_ok()
        } else {
            let s = self.state.load(Ordering::Relaxed);
            s & kind.fast_blockers() == 0
                && self.state.compare_exchange(s, s + kind.one(), Ordering::Acquire, Ordering::Relaxed).is_ok()
        };
        entered || self.try_enter_slow(kind)
    }

    /// The fast path failed: decide again with the full policy, retrying as
    /// long as only concurrent changes of the word made the swap fail, and
    /// panic if the count is full.
    #[cold]
    #[inline(never)]
    fn try_enter_slow(&self, kind: Kind) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if !may_enter(kind, s) {
                return false;
            }
            if holders(s, kind) >= kind.max_holders() {
                overflow(kind);
            }
            match self.state.compare_exchange_weak(s, with_holders(s, kind, 1), Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    /// Acquires in `kind`, waiting until `deadline` (`None`: forever).
    #[inline]
    fn acquire(&self, kind: Kind, deadline: Option<Instant>) -> bool {
        self.try_enter(kind) || self.acquire_slow(kind, deadline)
    }

    /// Releases one hold of `kind`.
    ///
    /// # Safety
    ///
    /// The caller holds the lock in `kind`.
    #[inline]
    unsafe fn release(&self, kind: Kind) {
        // Release: the next holder must see this critical section's writes.
        let prev = self.state.fetch_sub(kind.one(), Ordering::Release);
        debug_assert!(holders(prev, kind) != 0, "phase-lock: released a {} hold that was not held", kind.name());
        if prev & WAITING_MASK != 0 {
            self.release_contended(prev, kind);
        }
    }

    /// Somebody waited when we released. If we were the last holder, the
    /// phase is over: hand the lock over.
    #[cold]
    #[inline(never)]
    fn release_contended(&self, prev: u64, kind: Kind) {
        if holders(prev, kind) == 1 {
            let s = self.lock_queue();
            self.settle(s, Settle::Released);
        }
    }

    // ----------------------------------------------------------------------
    // Slow paths
    // ----------------------------------------------------------------------

    /// Queues a request of `kind` and waits for its admission.
    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, kind: Kind, deadline: Option<Instant>) -> bool {
        // A request whose deadline has passed behaves as a try-lock: it must
        // not queue, not even briefly (rule 5).
        if !cfg!(loom) && deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        let waiter = Waiter {
            kind,
            next: AtomicPtr::new(ptr::null_mut()),
            linked: AtomicBool::new(false),
            parker: Parker::new(),
        };
        let me: *const Waiter = &waiter;
        let mut s = self.lock_queue();
        loop {
            if may_enter(kind, s) {
                if holders(s, kind) >= kind.max_holders() {
                    self.unlock_queue();
                    overflow(kind);
                }
                if waiter.linked.load(Ordering::Relaxed) {
                    // SAFETY: we hold the queue lock.
                    unsafe { self.drain(|w| ptr::eq(w, me), u64::MAX) };
                }
                // AcqRel: acquire the lock; release the queue lock.
                match self.state.compare_exchange(
                    s,
                    with_holders(s, kind, 1) & !QUEUE_LOCKED,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return true,
                    Err(now) => s = now,
                }
                continue;
            }
            if !waiter.linked.load(Ordering::Relaxed) {
                // SAFETY: we hold the queue lock, and `waiter` stays on this
                // stack frame until a handoff or our own leave unlinks it.
                unsafe { self.push(me) };
            }
            // Publish the waiting bit and release the queue lock in one step.
            // The first waiter also records the running phase's kind, where
            // the round robin will start (`LAST` is 0 while nobody waits).
            // This fails if a fast path changed the holders meanwhile (for
            // example the last holder left, which it did without seeing our
            // bit): then decide again. Release: the next queue-lock holder
            // sees our link.
            let mut new = s | kind.waiting_bit();
            if s & WAITING_MASK == 0 {
                debug_assert!(holding_kind(s).is_some(), "queued on a free lock with nobody waiting");
                new = with_last(new, holding_kind(s));
            }
            match self.state.compare_exchange(s, new & !QUEUE_LOCKED, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }

        if waiter.parker.wait(deadline) == WaitResult::Admitted {
            return true;
        }
        // Timed out. Leave, unless a handoff has already unlinked us, in which
        // case the lock is ours and the wake-up is on its way.
        let s = self.lock_queue();
        if waiter.linked.load(Ordering::Relaxed) {
            // SAFETY: we hold the queue lock.
            unsafe { self.drain(|w| ptr::eq(w, me), u64::MAX) };
            self.settle(s, Settle::Left);
            return false;
        }
        self.unlock_queue();
        let admitted = waiter.parker.wait(None);
        debug_assert_eq!(admitted, WaitResult::Admitted);
        true
    }

    /// Downgrades a write hold to `target` (read or intent).
    ///
    /// # Safety
    ///
    /// The caller holds the lock in write mode.
    unsafe fn downgrade_to(&self, target: Kind) {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & WAITING_MASK == 0 {
            // Nobody waits: the writer becomes one holder of `target` (and
            // `LAST` stays 0). Release: our writes are published to the
            // holders who join the downgraded phase.
            let new = s - WRITER + target.one();
            match self.state.compare_exchange_weak(s, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
        self.downgrade_slow(target);
    }

    #[cold]
    #[inline(never)]
    fn downgrade_slow(&self, target: Kind) {
        let mut s = self.lock_queue();
        loop {
            let admit = downgrade_admits(target, s);
            let mut new = s - WRITER + target.one();
            if admit.is_some() {
                new = with_last(new, Some(target));
            }
            // Release: as in `downgrade_to`. The queue lock stays held.
            match self.state.compare_exchange(s, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return self.settle(new, Settle::Downgraded(admit)),
                Err(now) => s = now,
            }
        }
    }

    /// With the queue lock held and `s` a recent state, applies the fairness
    /// policy: hands a free lock to the next kind, or lets waiters join the
    /// running phase (rule 5), or — after a downgrade that admits a kind —
    /// admits every waiter of that kind into the running phase. Recomputes
    /// the waiting bits, releases the queue lock and wakes whoever it admitted.
    ///
    /// **Who hands off a free lock.** When the last holder leaves while
    /// waiters are queued, its `fetch_sub` leaves the lock empty with waiting
    /// bits set: *handoff pending*. Only that releaser (`Settle::Released`)
    /// may then hand off. Any other thread that finds the lock empty here
    /// (a waiter leaving on timeout) unlinks itself and touches nothing else:
    /// the waiting bits stay set, so no request can enter until the releaser
    /// arrives, recomputes them and hands off. This keeps the releaser's own
    /// accesses to the lock, after its release, ahead of every later holder —
    /// a lock embedded in memory that its next holder frees stays sound.
    fn settle(&self, mut s: u64, why: Settle) {
        let forced = match why {
            Settle::Downgraded(admit) => admit,
            Settle::Released | Settle::Left => None,
        };
        // SAFETY (for the unsafe queue calls below): we hold the queue lock.
        let census = unsafe { self.census() };
        let queued = census.waiting_bits();
        loop {
            if s & HOLDERS_MASK == 0 && !matches!(why, Settle::Released) {
                // Handoff pending: the releaser is on its way (see above).
                self.unlock_queue();
                return;
            }
            // Who enters, how many, and whether a new phase begins.
            let (kind, n, begins_phase) = match (holding_kind(s), forced) {
                (Some(_), Some(kind)) => (Some(kind), census.count(kind), false),
                (None, _) => match next_phase(last_kind(s), queued) {
                    Some(Kind::Write) => (Some(Kind::Write), 1, true),
                    Some(kind) => (Some(kind), census.count(kind), true),
                    None => (None, 0, false),
                },
                (Some(_), None) => match admits_into_running_phase((s & !WAITING_MASK) | queued) {
                    Some(kind) => (Some(kind), census.count(kind), true),
                    None => (None, 0, false),
                },
            };
            // Never overflow a holder count: admit what fits, the rest stays
            // queued (and keeps its waiting bit).
            let n = match kind {
                Some(kind) => n.min(kind.max_holders() - holders(s, kind)),
                None => 0,
            };
            let mut after = census.counts;
            let mut new = (s & !WAITING_MASK) | queued;
            if let Some(kind) = kind.filter(|_| n != 0) {
                new = with_holders(new, kind, n);
                if begins_phase {
                    new = with_last(new, Some(kind));
                }
                after[kind as usize - 1] -= n;
                new = (new & !WAITING_MASK) | Census { counts: after }.waiting_bits();
            }
            // `LAST` is kept only while somebody waits.
            if new & WAITING_MASK == 0 {
                new = with_last(new, None);
            }
            debug_assert!(new & WAITING_MASK == 0 || last_kind(new).is_some(), "waiters but no LAST: {new:#x}");
            // The queue lock stays held until the admitted waiters are
            // unlinked. Acquire: a handoff must see the writes of every
            // holder whose release emptied the lock (they are earlier in this
            // word's modification order). Release: publishes nothing yet; the
            // wake below carries the handoff to the admitted waiters.
            match self.state.compare_exchange(s, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    let chain = match kind {
                        // SAFETY: we still hold the queue lock.
                        Some(kind) if n != 0 => unsafe { self.drain(|w| w.kind == kind, n) },
                        _ => ptr::null(),
                    };
                    self.unlock_queue();
                    // SAFETY: every waiter in the chain was unlinked by us and
                    // has not been woken, so it is alive.
                    unsafe { wake_chain(chain) };
                    return;
                }
                Err(now) => s = now,
            }
        }
    }

    // ----------------------------------------------------------------------
    // The queue lock and the queue
    // ----------------------------------------------------------------------

    /// Takes the queue lock; returns the state word as of taking it.
    ///
    /// The queue lock is held for a few list operations at a time, but it is
    /// taken at every handoff, so a thread that wants to queue competes with
    /// a stream of short holds. It therefore polls at a constant short
    /// interval instead of backing off exponentially: a thread that backs off
    /// keeps missing the free windows between handoffs and sees phases go by
    /// before it is even queued (the fairness report measured up to 15 on a
    /// lone reader against a write flood). Only after `QUEUE_LOCK_POLLS` polls
    /// (a few microseconds, when the holder has probably been descheduled)
    /// does it yield the processor between polls.
    fn lock_queue(&self) -> u64 {
        const QUEUE_LOCK_POLLS: u32 = 256;
        let mut polls = 0u32;
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & QUEUE_LOCKED == 0 {
                // Acquire: see the queue as the previous queue-lock holder
                // left it.
                match self.state.compare_exchange_weak(s, s | QUEUE_LOCKED, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => return s | QUEUE_LOCKED,
                    Err(now) => s = now,
                }
                continue;
            }
            if polls < QUEUE_LOCK_POLLS {
                polls += 1;
                crate::sync::spin_loop();
            } else {
                crate::sync::yield_now();
            }
            s = self.state.load(Ordering::Relaxed);
        }
    }

    /// Releases the queue lock without changing anything else.
    fn unlock_queue(&self) {
        // Release: the next queue-lock holder sees our queue changes.
        self.state.fetch_and(!QUEUE_LOCKED, Ordering::Release);
    }

    /// Links `w` as the newest waiter.
    ///
    /// # Safety
    ///
    /// Queue lock held; `w` is alive and unlinked, and stays alive until it is
    /// unlinked.
    unsafe fn push(&self, w: *const Waiter) {
        let tail = self.queue.load(Ordering::Relaxed);
        // SAFETY: `w` is alive (caller); `tail` is a linked, hence alive,
        // waiter; the queue lock makes us the only writer of the links.
        unsafe {
            if tail.is_null() {
                (*w).next.store(w.cast_mut(), Ordering::Relaxed);
            } else {
                (*w).next.store((*tail).next.load(Ordering::Relaxed), Ordering::Relaxed);
                (*tail).next.store(w.cast_mut(), Ordering::Relaxed);
            }
            (*w).linked.store(true, Ordering::Relaxed);
        }
        self.queue.store(w.cast_mut(), Ordering::Relaxed);
    }

    /// Counts the queued waiters of each kind.
    ///
    /// # Safety
    ///
    /// Queue lock held.
    unsafe fn census(&self) -> Census {
        let mut census = Census::default();
        let tail = self.queue.load(Ordering::Relaxed);
        if tail.is_null() {
            return census;
        }
        let mut p = tail;
        loop {
            // SAFETY: linked waiters are alive while the queue lock is held.
            let w = unsafe { &*p };
            census.counts[w.kind as usize - 1] += 1;
            p = w.next.load(Ordering::Relaxed);
            if p == tail {
                return census;
            }
        }
    }

    /// Unlinks, oldest first, up to `limit` waiters for which `pick` is true,
    /// keeping the others in order. Returns the unlinked waiters as a
    /// null-terminated chain (oldest first) through their `next` fields.
    ///
    /// # Safety
    ///
    /// Queue lock held.
    unsafe fn drain(&self, mut pick: impl FnMut(&Waiter) -> bool, mut limit: u64) -> *const Waiter {
        let tail = self.queue.load(Ordering::Relaxed);
        if tail.is_null() {
            return ptr::null();
        }
        let (mut kept_head, mut kept_tail) = (ptr::null_mut::<Waiter>(), ptr::null_mut::<Waiter>());
        let (mut out_head, mut out_tail) = (ptr::null_mut::<Waiter>(), ptr::null_mut::<Waiter>());
        // SAFETY: linked waiters are alive under the queue lock; we are the
        // only thread changing links.
        unsafe {
            let mut p = (*tail).next.load(Ordering::Relaxed);
            loop {
                let w = &*p;
                let next = w.next.load(Ordering::Relaxed);
                let last = p == tail;
                let (head, end) = if limit != 0 && pick(w) {
                    limit -= 1;
                    w.linked.store(false, Ordering::Relaxed);
                    (&mut out_head, &mut out_tail)
                } else {
                    (&mut kept_head, &mut kept_tail)
                };
                if end.is_null() {
                    *head = p;
                } else {
                    (**end).next.store(p, Ordering::Relaxed);
                }
                *end = p;
                if last {
                    break;
                }
                p = next;
            }
            if kept_tail.is_null() {
                self.queue.store(ptr::null_mut(), Ordering::Relaxed);
            } else {
                (*kept_tail).next.store(kept_head, Ordering::Relaxed);
                self.queue.store(kept_tail, Ordering::Relaxed);
            }
            if !out_tail.is_null() {
                (*out_tail).next.store(ptr::null_mut(), Ordering::Relaxed);
            }
        }
        out_head
    }

    /// Test hook: the state word.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn state_word(&self) -> u64 {
        self.state.load(Ordering::Relaxed)
    }

    /// Test hook: a lock in a given state.
    #[cfg(all(test, not(loom)))]
    pub(crate) const fn with_state(s: u64) -> Self {
        RawPhaseLock { state: crate::sync::const_u64(s), queue: crate::sync::const_ptr() }
    }

    /// Test hook: how many waiters of each kind are queued.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn queued(&self, kind: Kind) -> u64 {
        self.lock_queue();
        // SAFETY: we hold the queue lock.
        let n = unsafe { self.census() }.count(kind);
        self.unlock_queue();
        n
    }

    /// `true` if any waiter is queued (a snapshot).
    #[inline]
    fn has_waiters(&self) -> bool {
        self.state.load(Ordering::Relaxed) & WAITING_MASK != 0
    }
}

/// Wakes every waiter of a chain built by `drain`.
///
/// # Safety
///
/// Every waiter in the chain is unlinked and not yet woken.
unsafe fn wake_chain(mut p: *const Waiter) {
    while !p.is_null() {
        // SAFETY: the waiter is alive until woken (caller); read everything we
        // need from it before the wake, after which it may be gone.
        let (next, waker) = unsafe { ((*p).next.load(Ordering::Relaxed), (*p).parker.waker()) };
        // SAFETY: this waiter was never woken, and is woken once here.
        unsafe { waker.wake() };
        p = next;
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn overflow(kind: Kind) -> ! {
    panic!("phase-lock: too many {} holders (the maximum is {})", kind.name(), kind.max_holders())
}

fn deadline_after(timeout: Duration) -> Option<Instant> {
    // An unrepresentable deadline means "never".
    Instant::now().checked_add(timeout)
}

impl Default for RawPhaseLock {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for RawPhaseLock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("RawPhaseLock")
            .field("readers", &holders(s, Kind::Read))
            .field("intents", &holders(s, Kind::Intent))
            .field("writer", &(s & WRITER != 0))
            .field("waiting", &(s & WAITING_MASK != 0))
            .finish()
    }
}

// SAFETY: the state word admits either any number of read holders, or any
// number of intent holders, or one writer (the exclusion invariant of
// state.rs, kept by `may_enter` and `settle`); entering is an acquire
// operation on the state word and leaving a release operation. Guard state is
// stateless, so forgetting it is safe, and no operation unwinds with a new
// acquisition (the only panic, on holder-count overflow, happens before the
// state word is changed and after the queue lock is released).
unsafe impl lock_api::RawRwLock for RawPhaseLock {
    #[cfg(not(loom))]
    const INIT: Self = RawPhaseLock::new();
    #[cfg(loom)]
    const INIT: Self = panic!("under loom, build the lock with RawPhaseLock::new()");

    type SharedGuard = GuardSend;
    type ExclusiveGuard = GuardSend;

    #[inline]
    fn lock_shared(&self) -> GuardSend {
        self.acquire(Kind::Read, None);
        GuardSend::new()
    }

    #[inline]
    fn try_lock_shared(&self) -> Option<GuardSend> {
        self.try_enter(Kind::Read).then(GuardSend::new)
    }

    #[inline]
    unsafe fn unlock_shared(&self, _guard: GuardSend) {
        // SAFETY: the caller holds a read acquisition.
        unsafe { self.release(Kind::Read) }
    }

    #[inline]
    fn lock_exclusive(&self) -> GuardSend {
        self.acquire(Kind::Write, None);
        GuardSend::new()
    }

    #[inline]
    fn try_lock_exclusive(&self) -> Option<GuardSend> {
        self.try_enter(Kind::Write).then(GuardSend::new)
    }

    #[inline]
    unsafe fn unlock_exclusive(&self, _guard: GuardSend) {
        // SAFETY: the caller holds the write acquisition.
        unsafe { self.release(Kind::Write) }
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & HOLDERS_MASK != 0
    }

    #[inline]
    fn is_locked_exclusive(&self) -> bool {
        self.state.load(Ordering::Relaxed) & WRITER != 0
    }
}

// SAFETY: every unlock already hands the lock to waiters before new arrivals
// (no barging), so the fair unlocks are the plain unlocks; `bump_*` re-queue
// only when somebody waits, through the same safe paths.
unsafe impl lock_api::RawRwLockFair for RawPhaseLock {
    #[inline]
    unsafe fn unlock_shared_fair(&self, guard: GuardSend) {
        // SAFETY: forwarded caller contract.
        unsafe { lock_api::RawRwLock::unlock_shared(self, guard) }
    }

    #[inline]
    unsafe fn unlock_exclusive_fair(&self, guard: GuardSend) {
        // SAFETY: forwarded caller contract.
        unsafe { lock_api::RawRwLock::unlock_exclusive(self, guard) }
    }

    #[inline]
    unsafe fn bump_shared(&self, _guard: &mut GuardSend) {
        if self.has_waiters() {
            // SAFETY: the caller holds a read acquisition, which we give up
            // and take back (the guard is stateless, so it stays valid).
            unsafe { self.release(Kind::Read) };
            self.acquire(Kind::Read, None);
        }
    }

    #[inline]
    unsafe fn bump_exclusive(&self, _guard: &mut GuardSend) {
        if self.has_waiters() {
            // SAFETY: as in `bump_shared`, for the write acquisition.
            unsafe { self.release(Kind::Write) };
            self.acquire(Kind::Write, None);
        }
    }
}

// SAFETY: `downgrade_to` turns the write hold into a read hold in one atomic
// step: no writer can enter in between.
unsafe impl lock_api::RawRwLockDowngrade for RawPhaseLock {
    #[inline]
    unsafe fn downgrade(&self, _guard: GuardSend) -> GuardSend {
        // SAFETY: the caller holds the write acquisition.
        unsafe { self.downgrade_to(Kind::Read) };
        GuardSend::new()
    }
}

// SAFETY: timed acquisitions use the same queue as untimed ones; a waiter that
// times out either unlinks itself (and owns nothing) or has been admitted
// (and returns the acquisition).
unsafe impl lock_api::RawRwLockTimed for RawPhaseLock {
    type Duration = Duration;
    type Instant = Instant;

    #[inline]
    fn try_lock_shared_for(&self, timeout: Duration) -> Option<GuardSend> {
        self.acquire(Kind::Read, deadline_after(timeout)).then(GuardSend::new)
    }

    #[inline]
    fn try_lock_shared_until(&self, timeout: Instant) -> Option<GuardSend> {
        self.acquire(Kind::Read, Some(timeout)).then(GuardSend::new)
    }

    #[inline]
    fn try_lock_exclusive_for(&self, timeout: Duration) -> Option<GuardSend> {
        self.acquire(Kind::Write, deadline_after(timeout)).then(GuardSend::new)
    }

    #[inline]
    fn try_lock_exclusive_until(&self, timeout: Instant) -> Option<GuardSend> {
        self.acquire(Kind::Write, Some(timeout)).then(GuardSend::new)
    }
}

// SAFETY: intent holders are counted in their own field; `may_enter` and
// `settle` never let them coexist with readers or a writer.
unsafe impl RawIntent for RawPhaseLock {
    type IntentGuard = GuardSend;

    #[inline]
    fn lock_intent(&self) -> GuardSend {
        self.acquire(Kind::Intent, None);
        GuardSend::new()
    }

    #[inline]
    fn try_lock_intent(&self) -> Option<GuardSend> {
        self.try_enter(Kind::Intent).then(GuardSend::new)
    }

    #[inline]
    unsafe fn unlock_intent(&self, _guard: GuardSend) {
        // SAFETY: the caller holds an intent acquisition.
        unsafe { self.release(Kind::Intent) }
    }

    #[inline]
    fn is_locked_intent(&self) -> bool {
        self.state.load(Ordering::Relaxed) & Kind::Intent.holder_mask() != 0
    }
}

// SAFETY: as for `RawRwLockTimed`.
unsafe impl RawIntentTimed for RawPhaseLock {
    #[inline]
    fn try_lock_intent_for(&self, timeout: Duration) -> Option<GuardSend> {
        self.acquire(Kind::Intent, deadline_after(timeout)).then(GuardSend::new)
    }

    #[inline]
    fn try_lock_intent_until(&self, timeout: Instant) -> Option<GuardSend> {
        self.acquire(Kind::Intent, Some(timeout)).then(GuardSend::new)
    }
}

// SAFETY: as for `RawRwLockDowngrade`, into intent.
unsafe impl RawIntentDowngrade for RawPhaseLock {
    #[inline]
    unsafe fn downgrade_to_intent(&self, _guard: GuardSend) -> GuardSend {
        // SAFETY: the caller holds the write acquisition.
        unsafe { self.downgrade_to(Kind::Intent) };
        GuardSend::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use lock_api::RawRwLock;

    #[test]
    fn size_is_two_words() {
        assert!(core::mem::size_of::<RawPhaseLock>() <= 16);
    }

    #[test]
    fn modes_exclude_each_other() {
        let l = RawPhaseLock::new();
        let r = l.try_lock_shared().unwrap();
        // SAFETY: each unlock below releases an acquisition taken just before.
        assert!(l.try_lock_shared().is_some_and(|g| unsafe {
            l.unlock_shared(g);
            true
        }));
        assert!(l.try_lock_intent().is_none());
        assert!(l.try_lock_exclusive().is_none());
        // SAFETY: `r` is the read acquisition taken above.
        unsafe { l.unlock_shared(r) };
        let i = l.try_lock_intent().unwrap();
        assert!(l.try_lock_shared().is_none());
        assert!(l.is_locked() && l.is_locked_intent() && !l.is_locked_exclusive());
        // SAFETY: `i` is the intent acquisition taken above.
        unsafe { l.unlock_intent(i) };
        assert!(!l.is_locked());
    }
}
