//! [`RawPatientLock`]'s trait implementations: lock_api's raw rwlock traits
//! (read is lock_api's shared mode, write its exclusive mode) and the intent
//! traits of `intent.rs`, each a thin wrapper over the state machine in
//! `raw.rs`; and `Drop`, which clears what leaked guards left in the table.

use std::time::{Duration, Instant};

use lock_api::GuardSend;

use crate::bias::SharedHold;
use crate::state::{BIASED, HOLDERS_MASK, Kind, WRITER};
use crate::sync::Ordering;
use crate::{RawIntent, RawIntentDowngrade, RawIntentTimed};

use super::{RawPatientLock, deadline_after};

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
unsafe impl<const PATIENCE_US: u32, const BIAS: bool> lock_api::RawRwLock for RawPatientLock<PATIENCE_US, BIAS> {
    #[cfg(not(phase_lock_loom))]
    const INIT: Self = RawPatientLock::new();
    #[cfg(phase_lock_loom)]
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
        if BIAS && s & BIASED != 0 { self.biased_is_locked(s) } else { s & HOLDERS_MASK != 0 }
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
unsafe impl<const PATIENCE_US: u32, const BIAS: bool> lock_api::RawRwLockFair for RawPatientLock<PATIENCE_US, BIAS> {
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
unsafe impl<const PATIENCE_US: u32, const BIAS: bool> lock_api::RawRwLockDowngrade
    for RawPatientLock<PATIENCE_US, BIAS>
{
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
unsafe impl<const PATIENCE_US: u32, const BIAS: bool> lock_api::RawRwLockTimed for RawPatientLock<PATIENCE_US, BIAS> {
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
unsafe impl<const PATIENCE_US: u32, const BIAS: bool> RawIntent for RawPatientLock<PATIENCE_US, BIAS> {
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
        } else if BIAS && s & BIASED != 0 {
            self.biased_is_locked(s)
        } else {
            true
        }
    }
}

// SAFETY: as for `RawRwLockTimed`.
unsafe impl<const PATIENCE_US: u32, const BIAS: bool> RawIntentTimed for RawPatientLock<PATIENCE_US, BIAS> {
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
unsafe impl<const PATIENCE_US: u32, const BIAS: bool> RawIntentDowngrade for RawPatientLock<PATIENCE_US, BIAS> {
    #[inline]
    unsafe fn downgrade_to_intent(&self, _guard: GuardSend) -> SharedHold {
        // SAFETY: the caller holds the write acquisition.
        unsafe { self.downgrade_to(Kind::Intent) };
        SharedHold::COUNTED
    }
}

impl<const PATIENCE_US: u32, const BIAS: bool> Drop for RawPatientLock<PATIENCE_US, BIAS> {
    fn drop(&mut self) {
        // Only leaked guards can have left published holds behind, and only
        // on a biased lock (a revocation empties the table of a lock's tags):
        // clear them, so that no lock built here later trusts them (bias.rs).
        if BIAS && self.state.load(Ordering::Relaxed) & BIASED != 0 {
            self.forget_published();
        }
    }
}
