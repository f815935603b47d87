//! The handoff: what [`RawPatientLock`] does under its queue lock when a
//! phase ends, a waiter leaves or its patience runs out, or a writer
//! downgrades. `settle` applies the fairness policy (`fairness.rs`) to the
//! queue (`queue.rs`) and wakes whoever it admits.

use std::time::Instant;

use crate::fairness::{admits_into_running_phase, downgrade_admits, is_strict, next_phase};
use crate::park::Wake;
use crate::queue::{Summary, Take};
use crate::state::{
    HOLDERS_MASK, Kind, NO_HANDOFF_OWED, STRICT, WAITING_MASK, WRITER, holders, holding_kind, last_kind, waiting_bits,
    with_holders, with_last,
};
use crate::sync::Ordering;

use super::RawPatientLock;

/// Why [`RawPatientLock::settle`] runs, which decides what it may do.
#[derive(Clone, Copy)]
pub(super) enum Settle {
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
pub(super) struct Pick {
    kind: Kind,
    /// What the picked waiters get.
    wake: Wake,
    /// Whether a new phase begins (`LAST` is set to `kind`).
    begins_phase: bool,
}

impl<const PATIENCE_US: u32, const BIAS: bool> RawPatientLock<PATIENCE_US, BIAS> {
    /// Downgrades a write hold to `target` (read or intent).
    ///
    /// # Safety
    ///
    /// The caller holds the lock in write mode.
    pub(super) unsafe fn downgrade_to(&self, target: Kind) {
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
    pub(super) fn downgrade_slow(&self, target: Kind) {
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
    /// * a free lock under the patient rules stays free and `NO_HANDOFF_OWED`, and the
    ///   next kind's fresh waiters are woken to try again;
    /// * a held shared phase admits the waiters of its kind if nobody else
    ///   waits (rule 5); a downgrade may admit a kind into the running phase.
    ///
    /// Then it recomputes the waiting bits, `STRICT`, `NO_HANDOFF_OWED` and `LAST`,
    /// releases the queue lock and wakes whoever it took out of the queue.
    ///
    /// **Who hands off a free lock.** When the last holder leaves while
    /// waiters are queued, its `fetch_sub` leaves the lock empty with waiting
    /// bits set and `NO_HANDOFF_OWED` clear: *handoff pending*. Only that releaser
    /// (`Settle::Released`) may then act. Any other thread that finds the
    /// lock so here (a waiter leaving on timeout, or whose patience ran out)
    /// has done its queue change and touches nothing else: the waiting bits
    /// stay set, so no request can enter until the releaser arrives,
    /// recomputes them and hands off. This keeps the releaser's own accesses
    /// to the lock, after its release, ahead of every later holder — a lock
    /// embedded in memory that its next holder frees stays sound.
    pub(super) fn settle(&self, mut s: u64, why: Settle) {
        let forced = match why {
            Settle::Downgraded(admit) => admit,
            Settle::Released { .. } | Settle::Left | Settle::Expired => None,
        };
        let fair = matches!(why, Settle::Released { fair: true });
        // A waiter whose patience has run out may not have been scheduled
        // yet to say so (on a busy machine a timer wake-up can wait for a
        // processor for milliseconds): every settle of a patient lock checks
        // the oldest waiters' deadlines itself.
        if Self::PATIENT && !cfg!(phase_lock_model) {
            // SAFETY: we hold the queue lock.
            unsafe { self.queue.expire_overdue(Instant::now()) };
        }
        // SAFETY (for the queue calls below): we hold the queue lock, and the
        // queue does not change until we release it.
        let Summary { counts, queued, fresh, batch } = unsafe { self.queue.summary() };
        let strict = fair || is_strict(batch, Self::PATIENT);
        loop {
            let free = s & HOLDERS_MASK == 0;
            if free && !matches!(why, Settle::Released { .. }) && s & NO_HANDOFF_OWED == 0 {
                // Handoff pending: the releaser is on its way (see above).
                self.unlock_queue();
                return;
            }
            let pick = match (holding_kind(s), forced) {
                (Some(_), Some(kind)) => Some(Pick { kind, wake: Wake::Admitted, begins_phase: false }),
                (None, _) if strict => {
                    next_phase(last_kind(s), queued).map(|kind| Pick { kind, wake: Wake::Admitted, begins_phase: true })
                }
                (None, _) => {
                    next_phase(last_kind(s), fresh).map(|kind| Pick { kind, wake: Wake::Retry, begins_phase: false })
                }
                (Some(_), None) => admits_into_running_phase((s & !WAITING_MASK) | queued).map(|kind| Pick {
                    kind,
                    wake: Wake::Admitted,
                    begins_phase: true,
                }),
            };
            // How many: one writer; every waiter of a shared kind, but never
            // more than its holder count can take (the rest stays queued).
            let limit = |p: &Pick| match p.kind {
                Kind::Write => 1,
                _ if p.wake == Wake::Retry => u64::MAX,
                kind => kind.max_holders() - holders(s, kind),
            };
            let grant = match &pick {
                // SAFETY: queue lock held.
                Some(p) if p.wake == Wake::Admitted => unsafe { self.queue.plan(p.kind, limit(p)) },
                _ => Take::default(),
            };
            let mut after = counts;
            let mut new = s & !(WAITING_MASK | NO_HANDOFF_OWED | STRICT);
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
            } else if Self::PATIENT && waiting != 0 && (new & HOLDERS_MASK == 0 || s & NO_HANDOFF_OWED != 0) {
                // Patient, and nothing owed: a lock left free is open to
                // arrivals (nobody is on the way to hand it off), and a held
                // one stays open if it was.
                new |= NO_HANDOFF_OWED;
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
                        Some(p) if p.wake == Wake::Retry => unsafe { self.queue.retry(p.kind, limit(p)) },
                        _ => unsafe { self.queue.take(grant) },
                    };
                    self.unlock_queue();
                    // SAFETY: every waiter in the chain was picked by us and
                    // has not been woken since, so it is alive; our last
                    // access to the lock was the unlock above.
                    unsafe { chain.wake_all(pick.map_or(Wake::Admitted, |p| p.wake)) };
                    return;
                }
                Err(now) => s = now,
            }
        }
    }
}
