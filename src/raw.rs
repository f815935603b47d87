//! [`RawPatientLock`]: the raw three-mode lock, for every patience.
//!
//! The lock is two words: the state word (layout in `state.rs`) and the wait
//! queue's anchor (`queue.rs`). Waiters live on their own stacks; the queue
//! is changed only by the thread that holds the `QUEUE_LOCKED` bit of the
//! state word.
//!
//! * **Fast paths** (`try_enter`, `release`) touch only the state word: one
//!   compare-and-swap to enter (from `0` for a writer; after one load and one
//!   mask test for the shared kinds), one `fetch_sub` and a bit test to leave.
//!   They run only while nobody waits; the same code serves every patience.
//! * **Slow paths** decide with the full policy of `fairness.rs`. A patient
//!   lock first lets a request in if it is compatible with the holders
//!   (`try_enter_slow`), then polls briefly, then queues (`raw/wait.rs`).
//!   Whoever ends a phase while waiting bits are set takes the queue lock
//!   and runs `RawPatientLock::settle` (`raw/handoff.rs`): in the strict
//!   rules it gives the lock to the
//!   next kind *in the state word* (so admitted waiters already own it when
//!   they wake) and wakes exactly them; in the patient rules it wakes the next
//!   kind's fresh waiters to try again and leaves the lock free (`NO_HANDOFF_OWED`) for
//!   whoever gets there first.
//! * **Patience.** A waiter of a patient lock parks with a deadline: its
//!   queueing time plus the patience. If it is still queued then, it makes
//!   the lock strict (`STRICT`) for every request queued at that moment
//!   (`WaitQueue::expire`), and hands the lock off itself if it is free.
//!
//! lock_api's and the intent traits' implementations are thin wrappers in
//! `raw/api.rs`.
//!
//! Every decision taken under the queue lock is validated by a
//! compare-and-swap of the whole state word, because releases keep changing
//! the holder counts while the queue lock is held.
//!
//! **Who may touch the lock after releasing it.** A lock may live in memory
//! that its next holder frees. So a releaser that leaves the lock free with
//! waiters queued owns the handoff (`NO_HANDOFF_OWED` stays clear: no arrival can enter
//! until it has settled), and every settle finishes its accesses to the lock
//! (the last is releasing the queue lock) before it wakes anybody; an arrival
//! never enters while the queue lock is held with waiters queued.

use std::time::{Duration, Instant};

use crate::bias::SharedHold;
use crate::fairness::may_enter;
use crate::queue::WaitQueue;
use crate::state::{
    BIASED, HOLDERS_MASK, Kind, NO_HANDOFF_OWED, QUEUE_LOCKED, STRICT, WAITING_MASK, WRITER, holders, with_holders,
    with_last,
};
use crate::sync::{AtomicU64, Ordering};

mod api;
mod biased;
mod handoff;
mod wait;

use handoff::Settle;

/// The default patience of [`RawPhaseLock`] and [`PhaseLock`](crate::PhaseLock),
/// in microseconds.
///
/// Any patience from 10 µs up runs at the stock locks' throughput in the
/// patience sweep of the fairness report; 1 ms leaves room for timer slack
/// and wake-up latency and amortizes each strict handoff over a millisecond
/// of barging (`docs/design.md`, "Why the default patience is 1 ms").
pub const DEFAULT_PATIENCE_US: u32 = 1000;

/// The raw phase-fair lock with a patience of `PATIENCE_US` microseconds:
/// read (S), intent (IX) and write (X) modes.
///
/// This is the state machine behind [`PhaseLock`](crate::PhaseLock)
/// ([`RawPhaseLock`], the default patience), [`StrictPhaseLock`](crate::StrictPhaseLock)
/// ([`RawStrictPhaseLock`], patience 0) and [`PatientLock`](crate::PatientLock)
/// (any patience). Use it directly only to build your own lock types:
/// `lock_api::RwLock<RawPatientLock<P>, T>` *is* `PatientLock<T, P>`, and the
/// lock_api shared/exclusive modes are read and write.
///
/// ```
/// use phase_lock::{PatientLock, RwLockIntentExt};
///
/// // A lock that lets compatible arrivals in for up to 200 µs after a
/// // request queued, then hands off strictly.
/// let lock: PatientLock<Vec<u32>, 200> = PatientLock::new(vec![1]);
/// lock.write().push(2);
/// assert_eq!(lock.intent().len(), 2);
/// ```
///
/// # Compatibility
///
/// | held \ requested | read | intent | write |
/// |------------------|------|--------|-------|
/// | read             | yes  | no     | no    |
/// | intent           | no   | yes    | no    |
/// | write            | no   | no     | no    |
///
/// The fairness contract, and what the patience changes in it, is stated in
/// the [crate documentation](crate#fairness).
///
/// # Size
///
/// 16 bytes on 64-bit targets, whatever the patience: the 8-byte state word
/// plus the 8-byte queue word. Stock futex rwlocks are 4–8 bytes because their
/// waiters share one futex word and are woken as a herd; per-lock lists of
/// waiter records are what let this lock admit exactly one kind, and writers
/// in order.
///
/// # Under loom
///
/// loom's atomics cannot be built in a `const` context, so with
/// `--cfg phase_lock_loom` the `INIT` constant panics when used; build the lock with
/// [`RawPatientLock::new`] and `lock_api::RwLock::from_raw`.
pub struct RawPatientLock<const PATIENCE_US: u32, const BIAS: bool = true> {
    /// The state word (`state.rs`).
    pub(crate) state: AtomicU64,
    /// The waiters (`queue.rs`). Read and written only under `QUEUE_LOCKED`.
    queue: WaitQueue,
}

/// The raw lock of [`PhaseLock`](crate::PhaseLock): patience
/// [`DEFAULT_PATIENCE_US`].
///
/// ```
/// use phase_lock::{RawPhaseLock, RwLockIntentExt};
///
/// let lock = lock_api::RwLock::<RawPhaseLock, _>::new(5);
/// assert_eq!(*lock.intent(), 5);
/// assert_eq!(RawPhaseLock::PATIENCE, std::time::Duration::from_millis(1));
/// ```
pub type RawPhaseLock = RawPatientLock<DEFAULT_PATIENCE_US>;

/// The raw lock of [`StrictPhaseLock`](crate::StrictPhaseLock): patience 0,
/// no barging once anybody waits.
///
/// ```
/// use phase_lock::RawStrictPhaseLock;
///
/// let lock = lock_api::RwLock::<RawStrictPhaseLock, _>::new(5);
/// assert_eq!(*lock.read(), 5);
/// assert!(RawStrictPhaseLock::PATIENCE.is_zero());
/// ```
pub type RawStrictPhaseLock = RawPatientLock<0>;

/// The raw lock of [`UnbiasedPhaseLock`](crate::UnbiasedPhaseLock): the
/// default patience, every shared hold counted in the state word (no biased
/// path, no use of the process-wide slot table).
///
/// ```
/// use phase_lock::RawUnbiasedPhaseLock;
///
/// let lock = lock_api::RwLock::<RawUnbiasedPhaseLock, _>::new(5);
/// assert_eq!(*lock.read(), 5);
/// ```
pub type RawUnbiasedPhaseLock = RawPatientLock<DEFAULT_PATIENCE_US, false>;

impl<const PATIENCE_US: u32, const BIAS: bool> RawPatientLock<PATIENCE_US, BIAS> {
    /// This lock's patience: how long a queued request lets compatible
    /// arrivals pass it before the lock turns strict.
    pub const PATIENCE: Duration = Duration::from_micros(PATIENCE_US as u64);

    /// Whether the patient rules apply at all (patience above zero).
    const PATIENT: bool = PATIENCE_US > 0;

    /// A new unlocked lock.
    ///
    /// ```
    /// use phase_lock::RawPhaseLock;
    /// use lock_api::RawRwLock;
    ///
    /// let raw = RawPhaseLock::new();
    /// assert!(!raw.is_locked());
    /// ```
    #[cfg(not(phase_lock_loom))]
    #[inline]
    pub const fn new() -> Self {
        RawPatientLock { state: crate::sync::const_u64(0), queue: WaitQueue::new() }
    }

    /// A new unlocked lock.
    #[cfg(phase_lock_loom)]
    pub fn new() -> Self {
        RawPatientLock { state: AtomicU64::new(0), queue: WaitQueue::new() }
    }

    // ----------------------------------------------------------------------
    // Fast paths
    // ----------------------------------------------------------------------

    /// Enters in `kind` if the fairness policy lets a new request in now.
    /// Never queues.
    ///
    /// The fast path is one compare-and-swap: from exactly `0` for a writer
    /// (free, nobody queued), from the current word for a shared kind, after
    /// one mask test that checks both the policy and the count's limit.
    #[inline]
    fn try_enter(&self, kind: Kind) -> Option<SharedHold> {
        match self.try_enter_fast(kind) {
            Ok(()) => Some(SharedHold::COUNTED),
            Err(s) => {
                self.try_enter_biased(kind, s).or_else(|| self.try_enter_slow(kind).then_some(SharedHold::COUNTED))
            }
        }
    }

    /// The fast path proper: enters counted if nobody waits and the word
    /// allows it at once; else returns the word it saw.
    #[inline]
    fn try_enter_fast(&self, kind: Kind) -> Result<(), u64> {
        // Acquire on success (here and below): entering the lock must see
        // everything the previous holders wrote before their release.
        if kind == Kind::Write {
            self.state.compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed).map(|_| ())
        } else {
            let s = self.state.load(Ordering::Relaxed);
            if s & kind.fast_blockers() != 0 {
                return Err(s);
            }
            self.state.compare_exchange(s, s + kind.one(), Ordering::Acquire, Ordering::Relaxed).map(|_| ())
        }
    }

    /// The fast path failed on the word `s`: if the lock is biased, enter
    /// through the table or revoke the bias (bias.rs). `None`: the counted
    /// paths decide.
    #[inline]
    fn try_enter_biased(&self, kind: Kind, s: u64) -> Option<SharedHold> {
        if BIAS && s & BIASED != 0 { self.enter_biased(kind, s) } else { None }
    }

    /// The fast path failed: decide again with the full policy, retrying as
    /// long as only concurrent changes of the word made the swap fail, and
    /// panic if the count is full. A patient lock whose queue lock is held
    /// (with waiters queued) polls briefly, since the holder may be about to
    /// leave the lock open.
    #[cold]
    #[inline(never)]
    fn try_enter_slow(&self, kind: Kind) -> bool {
        let mut polls = 0;
        let mut s = self.state.load(Ordering::Relaxed);
        if Self::PATIENT && s & WAITING_MASK != 0 && s & STRICT == 0 && patience_check_due(Self::PATIENCE) {
            self.check_patience();
            s = self.state.load(Ordering::Relaxed);
        }
        loop {
            if !may_enter(kind, s, Self::PATIENT) {
                // Allowed but for the queue lock, whose holder may be about to
                // leave the lock open to us.
                // (Not under the model checkers, where each poll is one more branch to
                // explore: the caller then queues, which models the same.)
                let queue_busy = Self::PATIENT
                    && !cfg!(phase_lock_model)
                    && s & (QUEUE_LOCKED | STRICT) == QUEUE_LOCKED
                    && may_enter(kind, s & !QUEUE_LOCKED, true);
                if queue_busy && polls < QUEUE_LOCK_POLLS {
                    polls += 1;
                    crate::sync::spin_loop();
                    s = self.state.load(Ordering::Relaxed);
                    continue;
                }
                return false;
            }
            if holders(s, kind) >= kind.max_holders() {
                overflow(kind);
            }
            match self.state.compare_exchange_weak(s, entered(s, kind), Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => {
                    // Concurrency seen: another holder of our kind, and we
                    // got here by losing a race or a blocker. Maybe bias.
                    if BIAS && kind != Kind::Write && holders(s, kind) != 0 && s & WAITING_MASK == 0 {
                        self.maybe_bias(kind);
                    }
                    return true;
                }
                Err(now) => s = now,
            }
        }
    }

    /// Under the queue lock: if the oldest waiter has waited out its
    /// patience, turns the lock strict (and hands it off if it is free and
    /// nobody owes it a handoff).
    #[cold]
    fn check_patience(&self) {
        let s = self.lock_queue();
        // SAFETY: we hold the queue lock.
        if unsafe { self.queue.expire_overdue(Instant::now()) } {
            return self.settle(s, Settle::Expired);
        }
        self.unlock_queue();
    }

    /// Acquires in `kind`, waiting until `deadline` (`None`: forever).
    #[inline]
    fn acquire(&self, kind: Kind, deadline: Option<Instant>) -> Option<SharedHold> {
        self.try_enter(kind).or_else(|| self.acquire_slow(kind, deadline))
    }

    /// Acquires in `kind`, waiting as long as it takes.
    #[inline]
    fn lock(&self, kind: Kind) -> SharedHold {
        match self.try_enter_fast(kind) {
            Ok(()) => SharedHold::COUNTED,
            Err(s) => self.try_enter_biased(kind, s).unwrap_or_else(|| self.lock_contended(kind)),
        }
    }

    /// `lock` after its fast and biased paths failed.
    #[inline(never)]
    fn lock_contended(&self, kind: Kind) -> SharedHold {
        match self.try_enter_slow(kind).then_some(SharedHold::COUNTED).or_else(|| self.acquire_slow(kind, None)) {
            Some(hold) => hold,
            None => unreachable!("phase-lock: an untimed acquisition gave up"),
        }
    }

    /// Releases one counted hold of `kind`; `fair` hands off as if strict.
    ///
    /// # Safety
    ///
    /// The caller holds the lock in `kind`, counted in the state word.
    #[inline]
    pub(crate) unsafe fn release(&self, kind: Kind, fair: bool) {
        // Release: the next holder must see this critical section's writes.
        let prev = self.state.fetch_sub(kind.one(), Ordering::Release);
        debug_assert!(holders(prev, kind) != 0, "phase-lock: released a {} hold that was not held", kind.name());
        if prev & WAITING_MASK != 0 {
            self.release_contended(prev, kind, fair);
        }
    }

    /// Somebody waited when we released. If we were the last holder, the
    /// phase is over and the handoff is ours.
    #[cold]
    #[inline(never)]
    pub(crate) fn release_contended(&self, prev: u64, kind: Kind, fair: bool) {
        // `NO_HANDOFF_OWED`: a patient lock owes its waiters nothing at the end of this
        // phase; they wait for their patience, and arrivals may take the lock.
        // A fair unlock hands off regardless.
        if holders(prev, kind) == 1 && (fair || !Self::PATIENT || prev & NO_HANDOFF_OWED == 0) {
            let s = self.lock_queue();
            self.settle(s, Settle::Released { fair });
        }
    }

    // ----------------------------------------------------------------------
    // The queue lock
    // ----------------------------------------------------------------------

    /// Takes the queue lock; returns the state word as of taking it.
    ///
    /// The queue lock is held for a few list operations at a time, but it is
    /// taken at every handoff, so a thread that wants to queue competes with
    /// a stream of short holds. It therefore polls at a constant short
    /// interval instead of backing off exponentially: a thread that backs off
    /// keeps missing the free windows between handoffs and sees phases go by
    /// before it is even queued (`docs/design.md`). Only after `QUEUE_LOCK_POLLS` polls
    /// (a few microseconds, when the holder has probably been descheduled)
    /// does it yield the processor between polls.
    fn lock_queue(&self) -> u64 {
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

    /// Test hook: the state word.
    #[cfg(all(test, not(phase_lock_model)))]
    pub(crate) fn state_word(&self) -> u64 {
        self.state.load(Ordering::Relaxed)
    }

    /// Model hook (exists only under `--cfg phase_lock_loom` or `phase_lock_shuttle`): biases this free
    /// lock toward read (`intent == false`) or intent, as a lock that has
    /// seen concurrency would be, so that a model starts from a biased phase.
    #[cfg(phase_lock_model)]
    #[doc(hidden)]
    pub fn bias_for_model(&self, intent: bool) {
        self.force_bias(if intent { Kind::Intent } else { Kind::Read });
    }

    /// Test hook: biases a free or `kind`-held lock toward `kind` (as
    /// `maybe_bias` would once it has seen concurrency), ignoring inhibition.
    #[cfg(any(test, phase_lock_model))]
    pub(crate) fn force_bias(&self, kind: Kind) {
        let s = self.state.load(Ordering::Relaxed);
        assert!(s & !kind.holder_mask() == 0, "force_bias on a lock in state {s:#x}");
        self.state.store(s + kind.one() + BIASED, Ordering::Relaxed);
    }

    /// Test hook: a lock in a given state.
    #[cfg(all(test, not(phase_lock_model)))]
    pub(crate) const fn with_state(s: u64) -> Self {
        RawPatientLock { state: crate::sync::const_u64(s), queue: WaitQueue::new() }
    }

    /// Test hook: how many waiters of `kind` are queued in `pool` (either
    /// pool for `None`).
    #[cfg(all(test, not(phase_lock_model)))]
    pub(crate) fn queued_in(&self, kind: Kind, pool: Option<crate::queue::Pool>) -> u64 {
        self.lock_queue();
        // SAFETY: we hold the queue lock.
        let n = unsafe {
            match pool {
                Some(pool) => u64::from(self.queue.count(kind, pool)),
                None => self.queue.counts()[kind.index()],
            }
        };
        self.unlock_queue();
        n
    }

    /// Test hook: how many waiters of `kind` are queued.
    #[cfg(all(test, not(phase_lock_model)))]
    pub(crate) fn queued(&self, kind: Kind) -> u64 {
        self.queued_in(kind, None)
    }

    /// `true` if any waiter is queued (a snapshot).
    #[inline]
    fn has_waiters(&self) -> bool {
        self.state.load(Ordering::Relaxed) & WAITING_MASK != 0
    }
}

/// How many times `lock_queue` (and a patient arrival waiting for a busy
/// queue lock) polls before it starts yielding.
const QUEUE_LOCK_POLLS: u32 = 256;

/// The state after a request of `kind` enters a lock in state `s` (which the
/// policy allows): one more holder; an arrival that begins a phase on a free
/// lock with waiters queued records its kind in `LAST`.
#[inline]
const fn entered(s: u64, kind: Kind) -> u64 {
    let new = with_holders(s, kind, 1);
    if s & WAITING_MASK != 0 && s & HOLDERS_MASK == 0 { with_last(new, Some(kind)) } else { new }
}

/// Whether this thread should look at a patient lock's deadlines now: on
/// every fourth slow-path entry, if a quarter of the patience has passed
/// since it last did. Running threads do this because a waiter whose
/// patience ran out may wait milliseconds for a processor to say so.
fn patience_check_due(patience: Duration) -> bool {
    use std::cell::Cell;
    if cfg!(phase_lock_model) {
        // The models have no clock; they reach the switch to strict through
        // a waiter's own timed sleep (park.rs).
        return false;
    }
    thread_local! {
        static CALLS: Cell<u32> = const { Cell::new(0) };
        static NEXT: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let calls = CALLS.with(|c| {
        c.set(c.get().wrapping_add(1));
        c.get()
    });
    if !calls.is_multiple_of(4) {
        return false;
    }
    let now = Instant::now();
    NEXT.with(|next| {
        if next.get().is_some_and(|n| now < n) {
            return false;
        }
        next.set(now.checked_add(patience / 4));
        true
    })
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

impl<const PATIENCE_US: u32, const BIAS: bool> Default for RawPatientLock<PATIENCE_US, BIAS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const PATIENCE_US: u32, const BIAS: bool> core::fmt::Debug for RawPatientLock<PATIENCE_US, BIAS> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("RawPatientLock")
            .field("patience_us", &PATIENCE_US)
            .field("readers", &holders(s, Kind::Read))
            .field("intents", &holders(s, Kind::Intent))
            .field("writer", &(s & WRITER != 0))
            .field("waiting", &(s & WAITING_MASK != 0))
            // A biased phase counts one holder more (the bias hold), and its
            // published holders are not in the counts (bias.rs).
            .field("biased", &(s & BIASED != 0))
            .finish()
    }
}

#[cfg(all(test, not(phase_lock_model)))]
mod tests {
    use super::*;
    use crate::RawIntent;
    use lock_api::RawRwLock;

    #[test]
    fn size_is_two_words() {
        assert!(core::mem::size_of::<RawPhaseLock>() <= 16);
        assert!(core::mem::size_of::<RawStrictPhaseLock>() <= 16);
        assert!(core::mem::size_of::<RawPatientLock<7>>() <= 16);
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
