//! Queueing and waiting: what a request of [`RawPatientLock`] does once it
//! could not enter at once (and, on a patient lock, did not get in while it
//! polled): it queues under the queue lock and sleeps until a handoff, a
//! wake-up to try again, its patience or its deadline. The other side of
//! each wake-up, the handoff, is `handoff.rs`.

use std::time::Instant;

use super::*;

impl<const PATIENCE_US: u32, const BIAS: bool> RawPatientLock<PATIENCE_US, BIAS> {
    /// Queues a request of `kind` and waits for its admission.
    #[cold]
    #[inline(never)]
    pub(super) fn acquire_slow(&self, kind: Kind, deadline: Option<Instant>) -> Option<SharedHold> {
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
    pub(super) fn with_strict(&self, new: u64) -> u64 {
        // SAFETY: the caller holds the queue lock.
        if Self::PATIENT && unsafe { self.queue.batch_left() } != 0 { (new | STRICT) & !OPEN } else { new & !STRICT }
    }
}
