//! Queueing and waiting: what a request of [`RawPatientLock`] does once it
//! could not enter at once (and, on a patient lock, did not get in while it
//! polled): it queues under the queue lock and sleeps until a handoff, a
//! wake-up to try again, its patience or its deadline. The other side of
//! each wake-up, the handoff, is `handoff.rs`.

use std::time::Instant;

use crate::bias::SharedHold;
use crate::fairness::may_enter;
use crate::park::{SpinWait, WaitResult};
use crate::queue::{Standing, Waiter};
use crate::state::{
    BIASED, Kind, NO_HANDOFF_OWED, QUEUE_LOCKED, STRICT, WAITING_MASK, holders, holding_kind, with_last,
};
use crate::sync::Ordering;

use super::handoff::Settle;
use super::{RawPatientLock, entered, overflow};

impl<const PATIENCE_US: u32, const BIAS: bool> RawPatientLock<PATIENCE_US, BIAS> {
    /// Queues a request of `kind` and waits for its admission.
    #[cold]
    #[inline(never)]
    pub(super) fn acquire_slow(&self, kind: Kind, deadline: Option<Instant>) -> Option<SharedHold> {
        // A request whose deadline has passed behaves as a try-lock: it must
        // not queue, not even briefly (rule 5).
        if !cfg!(phase_lock_model) && deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        if Self::PATIENT && !cfg!(phase_lock_model) {
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
    pub(super) fn queue_and_wait(&self, kind: Kind, deadline: Option<Instant>) -> bool {
        let w = Waiter::new(kind);
        // When this request's patience runs out (`None` once it has, or for a
        // strict lock), counted from its queueing.
        let mut patience = if Self::PATIENT { Instant::now().checked_add(Self::PATIENCE) } else { None };
        let s = self.lock_queue();
        if self.enter_or_wait(&w, s, &mut patience) {
            return true;
        }
        loop {
            // Sleep until a wake-up or the earlier of the two alarms.
            let alarm = Alarm::earlier(patience, deadline);
            let woken = w.parker.wait(alarm.at());
            if woken == WaitResult::Admitted {
                // A handoff: the lock is ours, and nobody touches `w` again.
                return true;
            }
            let retry_landed = woken == WaitResult::Retry;
            if retry_landed {
                w.parker.reset();
            }
            let s = self.lock_queue();
            // SAFETY (all queue calls here): we hold the queue lock.
            let retry_in_flight = match unsafe { w.standing(retry_landed) } {
                Standing::Owner { wake_owed } => {
                    // A handoff unlinked us: the lock is ours. A wake-up still
                    // on its way to us (the admission, or a retry wake-up the
                    // handoff found in flight) must land before we may return.
                    self.unlock_queue();
                    if wake_owed {
                        w.parker.wait(None);
                    }
                    return true;
                }
                Standing::Queued { retry_in_flight } => retry_in_flight,
            };
            match (woken, alarm) {
                // Woken to try again: enter if compatible, else wait on (now
                // spent: no more wake-ups to try, only a handoff).
                (WaitResult::Retry, _) => {
                    if self.enter_or_wait(&w, s, &mut patience) {
                        return true;
                    }
                }
                // Our patience ran out while we were still queued.
                (_, Alarm::Patience(_)) => {
                    patience = None;
                    unsafe { self.queue.expire(&w) };
                    self.settle(s, Settle::Expired);
                }
                // Timed out: leave, and let a wake-up in flight land first.
                (_, Alarm::Deadline(_) | Alarm::Never) => {
                    unsafe { self.queue.unlink(&w) };
                    self.settle(s, Settle::Left);
                    if retry_in_flight {
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
    pub(super) fn enter_or_wait(&self, w: &Waiter, mut s: u64, patience: &mut Option<Instant>) -> bool {
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
                    // `LAST` and `NO_HANDOFF_OWED` are kept only while somebody waits.
                    new = with_last(new, None) & !NO_HANDOFF_OWED;
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
                #[cfg(phase_lock_shuttle)]
                crate::sync::queued();
                // A fresh waiter is owed a try when this phase ends.
                clear = NO_HANDOFF_OWED;
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
    pub(super) fn with_strict(&self, new: u64) -> u64 {
        // SAFETY: the caller holds the queue lock.
        if Self::PATIENT && unsafe { self.queue.batch_left() } != 0 {
            (new | STRICT) & !NO_HANDOFF_OWED
        } else {
            new & !STRICT
        }
    }
}

/// What a queued request's sleep is set to end at: the earlier of its two
/// alarms, or never.
#[derive(Clone, Copy)]
enum Alarm {
    /// Its patience runs out (the lock turns strict for it).
    Patience(Instant),
    /// Its timeout passes (it leaves the queue).
    Deadline(Instant),
    /// Neither: it sleeps until woken.
    Never,
}

impl Alarm {
    /// The earlier of `patience` and `deadline` (patience on a tie).
    fn earlier(patience: Option<Instant>, deadline: Option<Instant>) -> Alarm {
        match (patience, deadline) {
            (Some(p), d) if d.is_none_or(|d| p <= d) => Alarm::Patience(p),
            (_, Some(d)) => Alarm::Deadline(d),
            (_, None) => Alarm::Never,
        }
    }

    /// When the sleep ends by itself.
    fn at(self) -> Option<Instant> {
        match self {
            Alarm::Patience(t) | Alarm::Deadline(t) => Some(t),
            Alarm::Never => None,
        }
    }
}
