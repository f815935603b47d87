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
//!   (`try_enter_slow`), then spins briefly, then queues. Whoever ends a
//!   phase while waiting bits are set takes the queue lock and runs
//!   `RawPatientLock::settle`: in the strict rules it gives the lock to the
//!   next kind *in the state word* (so admitted waiters already own it when
//!   they wake) and wakes exactly them; in the patient rules it wakes the next
//!   kind's fresh waiters to try again and leaves the lock free (`OPEN`) for
//!   whoever gets there first.
//! * **Patience.** A waiter of a patient lock parks with a deadline: its
//!   queueing time plus the patience. If it is still queued then, it makes
//!   the lock strict (`STRICT`) for every request queued at that moment
//!   (`WaitQueue::expire`), and hands the lock off itself if it is free.
//!
//! Every decision taken under the queue lock is validated by a
//! compare-and-swap of the whole state word, because releases keep changing
//! the holder counts while the queue lock is held.
//!
//! **Who may touch the lock after releasing it.** A lock may live in memory
//! that its next holder frees. So a releaser that leaves the lock free with
//! waiters queued owns the handoff (`OPEN` stays clear: no arrival can enter
//! until it has settled), and every settle finishes its accesses to the lock
//! (the last is releasing the queue lock) before it wakes anybody; an arrival
//! never enters while the queue lock is held with waiters queued.

use std::time::{Duration, Instant};

use lock_api::GuardSend;

use crate::bias::SharedHold;
use crate::fairness::{admits_into_running_phase, downgrade_admits, is_strict, may_enter, next_phase};
use crate::park::{SpinWait, WaitResult};
use crate::queue::{Summary, Take, WaitQueue, Waiter};
use crate::state::{
    BIASED, HOLDERS_MASK, Kind, OPEN, QUEUE_LOCKED, STRICT, WAITING_MASK, WRITER, holders, holding_kind, last_kind,
    waiting_bits, with_holders, with_last,
};
use crate::sync::{AtomicU64, Ordering};
use crate::{RawIntent, RawIntentDowngrade, RawIntentTimed};

/// The default patience of [`RawPhaseLock`] and [`PhaseLock`](crate::PhaseLock),
/// in microseconds.
///
/// Chosen from the patience sweep of the fairness report (`cargo run
/// --release --example fairness -- --sweep`, README "Patience"). With
/// arrivals that spin and yield before queueing, every patience from 10 µs
/// to 4 ms runs at the stock locks' throughput in the swept scenarios, and
/// the longest waits there are set by the scheduler rather than by the
/// patience. Without that pre-queue phase, patiences of 10–200 µs collapsed
/// to 3–15 % of stock throughput on 16 threads, and 1 ms did not: strict
/// periods (a few context switches each) came too often. 1 ms keeps that
/// margin, leaves room for timer slack and wake-up latency, and amortizes
/// each strict handoff over a millisecond of barging.
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
/// `--cfg loom` the `INIT` constant panics when used; build the lock with
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

/// Why [`RawPatientLock::settle`] runs, which decides what it may do.
#[derive(Clone, Copy)]
enum Settle {
    /// The caller's release emptied the lock while waiters were queued: it
    /// owns the pending handoff. `fair`: lock_api's fair unlock, which hands
    /// off as if the lock were strict.
    Released { fair: bool },
    /// A timed-out waiter has unlinked itself.
    Left,
    /// A waiter's patience ran out; the strict batch now includes it.
    Expired,
    /// A writer downgraded; `Some(kind)` when that kind's waiters join.
    Downgraded(Option<Kind>),
}

/// The waiters a settle wakes, and what they get.
struct Pick {
    kind: Kind,
    /// `true`: the kind's fresh waiters are woken to try again (a patient
    /// lock left free); `false`: its waiters, spent then fresh, are handed
    /// the lock.
    retry: bool,
    /// Whether a new phase begins (`LAST` is set to `kind`).
    begins_phase: bool,
}

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
    #[cfg(not(loom))]
    #[inline]
    pub const fn new() -> Self {
        RawPatientLock { state: crate::sync::const_u64(0), queue: WaitQueue::new() }
    }

    /// A new unlocked lock.
    #[cfg(loom)]
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
                // (Not under loom, where each poll is one more branch to
                // explore: the caller then queues, which models the same.)
                let queue_busy = Self::PATIENT
                    && !cfg!(loom)
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
        // `OPEN`: a patient lock owes its waiters nothing at the end of this
        // phase; they wait for their patience, and arrivals may take the lock.
        // A fair unlock hands off regardless.
        if holders(prev, kind) == 1 && (fair || !Self::PATIENT || prev & OPEN == 0) {
            let s = self.lock_queue();
            self.settle(s, Settle::Released { fair });
        }
    }

    // ----------------------------------------------------------------------
    // Slow paths
    // ----------------------------------------------------------------------

    /// Queues a request of `kind` and waits for its admission.
    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, kind: Kind, deadline: Option<Instant>) -> Option<SharedHold> {
        // A request whose deadline has passed behaves as a try-lock: it must
        // not queue, not even briefly (rule 5).
        if !cfg!(loom) && deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        if Self::PATIENT && !cfg!(loom) {
            // A patient lock lets compatible arrivals in: before paying for a
            // queue entry and a sleep, give the holders a moment to leave
            // (spin, then yield).
            let mut spin = SpinWait::before_queueing();
            while spin.spin() {
                if let Some(hold) = self.try_enter(kind) {
                    return Some(hold);
                }
            }
        }
        self.queue_and_wait(kind, deadline).then_some(SharedHold::COUNTED)
    }

    /// Queues a request of `kind` and waits for its admission; `false` if
    /// `deadline` passed first. Every hold it returns is counted.
    fn queue_and_wait(&self, kind: Kind, deadline: Option<Instant>) -> bool {
        let w = Waiter::new(kind);
        // When this request's patience runs out (`None` once it has, or for a
        // strict lock), counted from its queueing.
        let mut patience = if Self::PATIENT { Instant::now().checked_add(Self::PATIENCE) } else { None };
        let s = self.lock_queue();
        if self.enter_or_wait(&w, s, &mut patience) {
            return true;
        }
        loop {
            // Sleep until a wake-up or the earlier of the two deadlines.
            let patience_first = patience.is_some_and(|p| deadline.is_none_or(|d| p <= d));
            let woken = w.parker.wait(if patience_first { patience } else { deadline });
            if woken == WaitResult::Admitted {
                // A handoff: the lock is ours, and nobody touches `w` again.
                return true;
            }
            let landed = woken == WaitResult::Retry;
            if landed {
                w.parker.reset();
            }
            let s = self.lock_queue();
            // SAFETY (all queue calls here): we hold the queue lock.
            let (pending, granted) = unsafe { w.flags(landed) };
            let in_flight = pending && !landed;
            if granted || unsafe { !w.is_linked() } {
                // A handoff unlinked us: the lock is ours. Its wake-up (an
                // admission, or the retry wake-up still in flight when the
                // handoff found us) must land before we may return.
                self.unlock_queue();
                if !granted || in_flight {
                    w.parker.wait(None);
                }
                return true;
            }
            match woken {
                // Woken to try again: enter if compatible, else wait on (now
                // spent: no more wake-ups to try, only a handoff).
                WaitResult::Retry => {
                    if self.enter_or_wait(&w, s, &mut patience) {
                        return true;
                    }
                }
                // Our patience ran out while we were still queued.
                _ if patience_first => {
                    patience = None;
                    unsafe { self.queue.expire(&w) };
                    self.settle(s, Settle::Expired);
                }
                // Timed out: leave, and let a wake-up in flight land first.
                _ => {
                    unsafe { self.queue.unlink(&w) };
                    self.settle(s, Settle::Left);
                    if in_flight {
                        w.parker.wait(None);
                    }
                    return false;
                }
            }
        }
    }

    /// With the queue lock held (`s` the state as of taking it): enters if
    /// the policy allows it by now (unlinking `w` if it is queued), or else
    /// queues `w` if it is not queued yet and publishes its waiting bit.
    /// Releases the queue lock either way. Returns whether it entered.
    fn enter_or_wait(&self, w: &Waiter, mut s: u64, patience: &mut Option<Instant>) -> bool {
        let kind = w.kind;
        loop {
            if BIAS && s & BIASED != 0 && holding_kind(s) != Some(kind) {
                // Nobody may queue behind a bias: end it first (bias.rs;
                // allowed with the queue lock held), then decide again.
                self.revoke();
                s = self.state.load(Ordering::Relaxed);
                continue;
            }
            if may_enter(kind, s & !QUEUE_LOCKED, Self::PATIENT) {
                if holders(s, kind) >= kind.max_holders() {
                    self.unlock_queue();
                    overflow(kind);
                }
                // SAFETY (all queue calls here): we hold the queue lock.
                if unsafe { w.is_linked() } {
                    unsafe { self.queue.unlink(w) };
                }
                let mut new = (entered(s, kind) & !WAITING_MASK) | unsafe { self.queue.summary() }.queued;
                new = self.with_strict(new);
                if new & WAITING_MASK == 0 {
                    // `LAST` and `OPEN` are kept only while somebody waits.
                    new = with_last(new, None) & !OPEN;
                }
                // AcqRel: acquire the lock; release the queue lock.
                match self.state.compare_exchange(s, new & !QUEUE_LOCKED, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => return true,
                    Err(now) => s = now,
                }
                continue;
            }
            // SAFETY: as above; `w` stays on its thread's stack until a
            // handoff or its own leaving unlinks it.
            let mut clear = 0;
            if unsafe { !w.is_linked() } {
                unsafe { self.queue.push(w, *patience) };
                // A fresh waiter is owed a try when this phase ends.
                clear = OPEN;
            }
            // Publish the waiting bit and release the queue lock in one step.
            // The first waiter also records the running phase's kind, where
            // the round robin will start (`LAST` is 0 while nobody waits).
            // This fails if a release changed the holders meanwhile (for
            // example the last holder left, which it did without seeing our
            // bit): then decide again. Release: the next queue-lock holder
            // sees our link.
            let mut new = self.with_strict(s | kind.waiting_bit()) & !clear;
            if s & WAITING_MASK == 0 {
                debug_assert!(holding_kind(s).is_some(), "queued on a free lock with nobody waiting");
                new = with_last(new, holding_kind(s));
            }
            match self.state.compare_exchange(s, new & !QUEUE_LOCKED, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return false,
                Err(now) => s = now,
            }
        }
    }

    /// `new` with `STRICT` set exactly when a strict batch is running.
    /// Queue lock held.
    fn with_strict(&self, new: u64) -> u64 {
        // SAFETY: the caller holds the queue lock.
        if Self::PATIENT && unsafe { self.queue.batch_left() } != 0 { (new | STRICT) & !OPEN } else { new & !STRICT }
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
    /// policy and releases the queue lock:
    ///
    /// * a free lock under the strict rules goes to the next kind in the
    ///   round robin (every waiter of a shared kind, or the oldest writer);
    /// * a free lock under the patient rules stays free and `OPEN`, and the
    ///   next kind's fresh waiters are woken to try again;
    /// * a held shared phase admits the waiters of its kind if nobody else
    ///   waits (rule 5); a downgrade may admit a kind into the running phase.
    ///
    /// Then it recomputes the waiting bits, `STRICT`, `OPEN` and `LAST`,
    /// releases the queue lock and wakes whoever it took out of the queue.
    ///
    /// **Who hands off a free lock.** When the last holder leaves while
    /// waiters are queued, its `fetch_sub` leaves the lock empty with waiting
    /// bits set and `OPEN` clear: *handoff pending*. Only that releaser
    /// (`Settle::Released`) may then act. Any other thread that finds the
    /// lock so here (a waiter leaving on timeout, or whose patience ran out)
    /// has done its queue change and touches nothing else: the waiting bits
    /// stay set, so no request can enter until the releaser arrives,
    /// recomputes them and hands off. This keeps the releaser's own accesses
    /// to the lock, after its release, ahead of every later holder — a lock
    /// embedded in memory that its next holder frees stays sound.
    fn settle(&self, mut s: u64, why: Settle) {
        let forced = match why {
            Settle::Downgraded(admit) => admit,
            Settle::Released { .. } | Settle::Left | Settle::Expired => None,
        };
        let fair = matches!(why, Settle::Released { fair: true });
        // A waiter whose patience has run out may not have been scheduled
        // yet to say so (on a busy machine a timer wake-up can wait for a
        // processor for milliseconds): every settle of a patient lock checks
        // the oldest waiters' deadlines itself.
        if Self::PATIENT && !cfg!(loom) {
            // SAFETY: we hold the queue lock.
            unsafe { self.queue.expire_overdue(Instant::now()) };
        }
        // SAFETY (for the queue calls below): we hold the queue lock, and the
        // queue does not change until we release it.
        let Summary { counts, queued, fresh, batch } = unsafe { self.queue.summary() };
        let strict = fair || is_strict(batch, Self::PATIENT);
        loop {
            let free = s & HOLDERS_MASK == 0;
            if free && !matches!(why, Settle::Released { .. }) && s & OPEN == 0 {
                // Handoff pending: the releaser is on its way (see above).
                self.unlock_queue();
                return;
            }
            let pick = match (holding_kind(s), forced) {
                (Some(_), Some(kind)) => Some(Pick { kind, retry: false, begins_phase: false }),
                (None, _) if strict => {
                    next_phase(last_kind(s), queued).map(|kind| Pick { kind, retry: false, begins_phase: true })
                }
                (None, _) => {
                    next_phase(last_kind(s), fresh).map(|kind| Pick { kind, retry: true, begins_phase: false })
                }
                (Some(_), None) => admits_into_running_phase((s & !WAITING_MASK) | queued).map(|kind| Pick {
                    kind,
                    retry: false,
                    begins_phase: true,
                }),
            };
            // How many: one writer; every waiter of a shared kind, but never
            // more than its holder count can take (the rest stays queued).
            let limit = |p: &Pick| match p.kind {
                Kind::Write => 1,
                _ if p.retry => u64::MAX,
                kind => kind.max_holders() - holders(s, kind),
            };
            let grant = match &pick {
                // SAFETY: queue lock held.
                Some(p) if !p.retry => unsafe { self.queue.plan(p.kind, limit(p)) },
                _ => Take::default(),
            };
            let mut after = counts;
            let mut new = s & !(WAITING_MASK | OPEN | STRICT);
            if let Some(p) = pick.as_ref().filter(|_| grant.n != 0) {
                after[p.kind.index()] -= grant.n;
                new = with_holders(new, p.kind, grant.n);
                if p.begins_phase {
                    new = with_last(new, Some(p.kind));
                }
            }
            let waiting = waiting_bits(after);
            new |= waiting;
            if Self::PATIENT && batch - grant.members != 0 {
                new |= STRICT;
            } else if Self::PATIENT && waiting != 0 && (new & HOLDERS_MASK == 0 || s & OPEN != 0) {
                // Patient, and nothing owed: a lock left free is open to
                // arrivals (nobody is on the way to hand it off), and a held
                // one stays open if it was.
                new |= OPEN;
            }
            // `LAST` is kept only while somebody waits.
            if waiting == 0 {
                new = with_last(new, None);
            }
            debug_assert!(waiting == 0 || last_kind(new).is_some(), "waiters but no LAST: {new:#x}");
            // The queue lock stays held until the queue is changed.
            // Acquire: a handoff must see the writes of every holder whose
            // release emptied the lock (they are earlier in this word's
            // modification order). Release: publishes nothing yet; the wake
            // below carries the handoff to the admitted waiters.
            match self.state.compare_exchange(s, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    // SAFETY: queue lock held, queue unchanged since `plan`.
                    let chain = match &pick {
                        Some(p) if p.retry => unsafe { self.queue.retry(p.kind, limit(p)) },
                        _ => unsafe { self.queue.take(grant) },
                    };
                    self.unlock_queue();
                    // SAFETY: every waiter in the chain was picked by us and
                    // has not been woken since, so it is alive; our last
                    // access to the lock was the unlock above.
                    unsafe { chain.wake_all(!pick.is_some_and(|p| p.retry)) };
                    return;
                }
                Err(now) => s = now,
            }
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
    /// before it is even queued (the fairness report measured up to 15 on a
    /// lone reader against a write flood). Only after `QUEUE_LOCK_POLLS` polls
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
    #[cfg(all(test, not(loom)))]
    pub(crate) fn state_word(&self) -> u64 {
        self.state.load(Ordering::Relaxed)
    }

    /// loom model hook (exists only under `--cfg loom`): biases this free
    /// lock toward read (`intent == false`) or intent, as a lock that has
    /// seen concurrency would be, so that a model starts from a biased phase.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn bias_for_model(&self, intent: bool) {
        self.force_bias(if intent { Kind::Intent } else { Kind::Read });
    }

    /// Test hook: biases a free or `kind`-held lock toward `kind` (as
    /// `maybe_bias` would once it has seen concurrency), ignoring inhibition.
    #[cfg(any(test, loom))]
    pub(crate) fn force_bias(&self, kind: Kind) {
        let s = self.state.load(Ordering::Relaxed);
        assert!(s & !kind.holder_mask() == 0, "force_bias on a lock in state {s:#x}");
        self.state.store(s + kind.one() + BIASED, Ordering::Relaxed);
    }

    /// Test hook: a lock in a given state.
    #[cfg(all(test, not(loom)))]
    pub(crate) const fn with_state(s: u64) -> Self {
        RawPatientLock { state: crate::sync::const_u64(s), queue: WaitQueue::new() }
    }

    /// Test hook: how many waiters of `kind` are queued in `pool` (either
    /// pool for `None`).
    #[cfg(all(test, not(loom)))]
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
    #[cfg(all(test, not(loom)))]
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
    thread_local! {
        static CALLS: Cell<u32> = const { Cell::new(0) };
        static NEXT: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let calls = CALLS.with(|c| {
        c.set(c.get().wrapping_add(1));
        c.get()
    });
    if cfg!(loom) || !calls.is_multiple_of(4) {
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

impl<const P: u32, const B: bool> Default for RawPatientLock<P, B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const P: u32, const B: bool> core::fmt::Debug for RawPatientLock<P, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("RawPatientLock")
            .field("patience_us", &P)
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

// SAFETY: the state word admits either any number of read holders, or any
// number of intent holders, or one writer (the exclusion invariant of
// state.rs, kept by `may_enter` and `settle`); a biased phase's published
// holders count as holders of its kind, since every other kind revokes the
// bias (moving them into the count) before it may enter (bias.rs). Entering
// is an acquire operation on the state word and leaving a release operation
// (on the slot, for a published hold). Forgetting a guard leaks its hold,
// which is safe. No operation unwinds with a new acquisition (the only panic,
// on holder-count overflow, happens before the state word is changed and
// after the queue lock is released).
unsafe impl<const P: u32, const B: bool> lock_api::RawRwLock for RawPatientLock<P, B> {
    #[cfg(not(loom))]
    const INIT: Self = RawPatientLock::new();
    #[cfg(loom)]
    const INIT: Self = panic!("under loom, build the lock with RawPatientLock::new()");

    type SharedGuard = SharedHold;
    type ExclusiveGuard = GuardSend;

    #[inline]
    fn lock_shared(&self) -> SharedHold {
        self.lock(Kind::Read)
    }

    #[inline]
    fn try_lock_shared(&self) -> Option<SharedHold> {
        self.try_enter(Kind::Read)
    }

    #[inline]
    unsafe fn unlock_shared(&self, hold: SharedHold) {
        // SAFETY: the caller holds a read acquisition through `hold`.
        unsafe { self.release_shared(Kind::Read, hold, false) }
    }

    #[inline]
    fn lock_exclusive(&self) -> GuardSend {
        self.lock(Kind::Write);
        GuardSend::new()
    }

    #[inline]
    fn try_lock_exclusive(&self) -> Option<GuardSend> {
        self.try_enter(Kind::Write).map(|_| GuardSend::new())
    }

    #[inline]
    unsafe fn unlock_exclusive(&self, _guard: GuardSend) {
        // SAFETY: the caller holds the write acquisition.
        unsafe { self.release(Kind::Write, false) }
    }

    #[inline]
    fn is_locked(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        if B && s & BIASED != 0 { self.biased_is_locked(s) } else { s & HOLDERS_MASK != 0 }
    }

    #[inline]
    fn is_locked_exclusive(&self) -> bool {
        self.state.load(Ordering::Relaxed) & WRITER != 0
    }
}

// SAFETY: a fair unlock is a plain unlock whose handoff, if it ends the
// phase with waiters queued, follows the strict rules whatever the patience;
// `bump_*` give the hold up fairly and queue again only when somebody waits,
// through the same safe paths, and replace the guard's state with the new
// hold's.
unsafe impl<const P: u32, const B: bool> lock_api::RawRwLockFair for RawPatientLock<P, B> {
    #[inline]
    unsafe fn unlock_shared_fair(&self, hold: SharedHold) {
        // SAFETY: the caller holds a read acquisition through `hold`.
        unsafe { self.release_shared(Kind::Read, hold, true) }
    }

    #[inline]
    unsafe fn unlock_exclusive_fair(&self, _guard: GuardSend) {
        // SAFETY: the caller holds the write acquisition.
        unsafe { self.release(Kind::Write, true) }
    }

    #[inline]
    unsafe fn bump_shared(&self, hold: &mut SharedHold) {
        if self.has_waiters() {
            let old = core::mem::replace(hold, SharedHold::COUNTED);
            // SAFETY: the caller holds a read acquisition through `old`,
            // which we give up before taking a new one into `hold`.
            unsafe { self.release_shared(Kind::Read, old, false) };
            *hold = self.lock(Kind::Read);
        }
    }

    #[inline]
    unsafe fn bump_exclusive(&self, _guard: &mut GuardSend) {
        if self.has_waiters() {
            // SAFETY: the caller holds the write acquisition, which we give
            // up and take back (the guard is stateless, so it stays valid).
            unsafe { self.release(Kind::Write, false) };
            self.lock(Kind::Write);
        }
    }
}

// SAFETY: `downgrade_to` turns the write hold into a read hold in one atomic
// step: no writer can enter in between. The new hold is counted.
unsafe impl<const P: u32, const B: bool> lock_api::RawRwLockDowngrade for RawPatientLock<P, B> {
    #[inline]
    unsafe fn downgrade(&self, _guard: GuardSend) -> SharedHold {
        // SAFETY: the caller holds the write acquisition.
        unsafe { self.downgrade_to(Kind::Read) };
        SharedHold::COUNTED
    }
}

// SAFETY: timed acquisitions use the same queue as untimed ones; a waiter that
// times out either unlinks itself (and owns nothing) or has been admitted
// (and returns the acquisition).
unsafe impl<const P: u32, const B: bool> lock_api::RawRwLockTimed for RawPatientLock<P, B> {
    type Duration = Duration;
    type Instant = Instant;

    #[inline]
    fn try_lock_shared_for(&self, timeout: Duration) -> Option<SharedHold> {
        self.acquire(Kind::Read, deadline_after(timeout))
    }

    #[inline]
    fn try_lock_shared_until(&self, timeout: Instant) -> Option<SharedHold> {
        self.acquire(Kind::Read, Some(timeout))
    }

    #[inline]
    fn try_lock_exclusive_for(&self, timeout: Duration) -> Option<GuardSend> {
        self.acquire(Kind::Write, deadline_after(timeout)).map(|_| GuardSend::new())
    }

    #[inline]
    fn try_lock_exclusive_until(&self, timeout: Instant) -> Option<GuardSend> {
        self.acquire(Kind::Write, Some(timeout)).map(|_| GuardSend::new())
    }
}

// SAFETY: intent holders are counted in their own field (or published, as
// read holders are); `may_enter` and `settle` never let them coexist with
// readers or a writer.
unsafe impl<const P: u32, const B: bool> RawIntent for RawPatientLock<P, B> {
    type IntentGuard = SharedHold;

    #[inline]
    fn lock_intent(&self) -> SharedHold {
        self.lock(Kind::Intent)
    }

    #[inline]
    fn try_lock_intent(&self) -> Option<SharedHold> {
        self.try_enter(Kind::Intent)
    }

    #[inline]
    unsafe fn unlock_intent(&self, hold: SharedHold) {
        // SAFETY: the caller holds an intent acquisition through `hold`.
        unsafe { self.release_shared(Kind::Intent, hold, false) }
    }

    #[inline]
    fn is_locked_intent(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        if s & Kind::Intent.holder_mask() == 0 {
            false
        } else if B && s & BIASED != 0 {
            self.biased_is_locked(s)
        } else {
            true
        }
    }
}

// SAFETY: as for `RawRwLockTimed`.
unsafe impl<const P: u32, const B: bool> RawIntentTimed for RawPatientLock<P, B> {
    #[inline]
    fn try_lock_intent_for(&self, timeout: Duration) -> Option<SharedHold> {
        self.acquire(Kind::Intent, deadline_after(timeout))
    }

    #[inline]
    fn try_lock_intent_until(&self, timeout: Instant) -> Option<SharedHold> {
        self.acquire(Kind::Intent, Some(timeout))
    }
}

// SAFETY: as for `RawRwLockDowngrade`, into intent.
unsafe impl<const P: u32, const B: bool> RawIntentDowngrade for RawPatientLock<P, B> {
    #[inline]
    unsafe fn downgrade_to_intent(&self, _guard: GuardSend) -> SharedHold {
        // SAFETY: the caller holds the write acquisition.
        unsafe { self.downgrade_to(Kind::Intent) };
        SharedHold::COUNTED
    }
}

impl<const P: u32, const B: bool> Drop for RawPatientLock<P, B> {
    fn drop(&mut self) {
        // Only leaked guards can have left published holds behind, and only
        // on a biased lock (a revocation empties the table of a lock's tags):
        // clear them, so that no lock built here later trusts them (bias.rs).
        if B && self.state.load(Ordering::Relaxed) & BIASED != 0 {
            self.forget_published();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
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
