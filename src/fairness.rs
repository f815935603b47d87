//! The fairness policy: every decision about *who may enter* is made here.
//!
//! # The contract
//!
//! A **phase** is a maximal stretch of time in which the lock is held by one
//! kind: any number of readers, or any number of intent holders, or one
//! writer. A phase *begins* when a free lock is acquired or when the lock is
//! handed from one kind to the next; a downgrade changes the kind of the
//! running phase without beginning a new one.
//!
//! 1. **Concurrent entering.** A read or intent request that finds its own
//!    kind holding the lock and no waiter queued enters at once; it never waits
//!    for another holder of its own kind. ([`may_enter`])
//! 2. **No barging.** Once any waiter is queued, no new request enters: it
//!    queues behind. ([`may_enter`])
//! 3. **Handoff.** When a phase ends with waiters queued, the next phase goes
//!    to the waiting kinds in the fixed round robin read → intent → write →
//!    read …, starting after the kind of the phase that ended and skipping
//!    kinds with no waiter. A shared kind's phase admits *every* queued waiter
//!    of that kind at once; a write phase admits the oldest queued writer
//!    alone. ([`next_phase`])
//! 4. **Bound.** From the moment a read or intent request is queued to the
//!    moment it enters, at most two other phases begin. Writers are FIFO among
//!    themselves, and each write phase is one writer.
//! 5. **Leaving.** try-locks never queue. A timed-out waiter unlinks itself
//!    under the queue lock and clears its kind's waiting bit if it was the last
//!    of its kind; if that leaves only waiters of the kind now holding a shared
//!    phase, they are admitted into it ([`admits_into_running_phase`]), so rule
//!    1 holds again at once.
//!
//! # Why the implementation meets it
//!
//! * Rules 1 and 2 are the fast-path predicate [`may_enter`]; the slow path
//!   evaluates the same predicate under the queue lock before it queues, and
//!   every transition is a compare-and-swap on the whole state word, so a
//!   decision is never taken on a stale word.
//! * A phase can only end at a release that drops the holder count to zero
//!   (or at a downgrade). If the waiting bits are set at that moment, the
//!   releasing thread takes the queue lock and hands off; no other thread can
//!   start a phase meanwhile, because every entry path requires the waiting
//!   bits to be clear (rule 2). So with waiters queued, *every* phase begins
//!   through [`next_phase`].
//! * Bound for a shared kind K: K is queued during some phase P. If P is of
//!   kind K, another kind was queued (that is why K queued), so P ends with a
//!   handoff. The round robin visits each of the other two kinds at most once
//!   before it reaches K, and K has a waiter, so K's phase is among the next
//!   three to begin: at most two others begin first. If P is of another kind,
//!   at most one other kind lies between P's kind and K in the round robin.
//!   All K waiters are admitted together when K's phase begins.
//! * Writers: the queue is FIFO and a write handoff takes the oldest queued
//!   writer, so writers enter in queue order. A writer with `k` writers ahead
//!   of it waits for at most `3k + 2` other phases.
//! * Timeouts: a waiter that times out takes the queue lock and either finds
//!   itself still linked (it unlinks, recomputes the waiting bits from the
//!   queue, and returns `None`) or finds itself already unlinked by a handoff,
//!   in which case it owns the lock and returns it: ownership is never lost
//!   and never handed to an empty kind, and no waiting bit outlives its
//!   waiters. One exception keeps the lock's memory safe: if the lock is
//!   empty with a handoff pending (its last holder left while waiters were
//!   queued and is on its way to the queue lock), the leaving waiter only
//!   unlinks itself, and the releaser recomputes the bits a moment later
//!   (`RawPhaseLock::settle` in raw.rs).

use crate::state::{HOLDERS_MASK, Kind, OPEN, QUEUE_LOCKED, STRICT, WAITING_MASK, holding_kind};

/// Rules 1 and 2, and the patient rule: may a request of `kind` enter a lock
/// in state `s` now, without queueing? `patient` is `true` for a lock with a
/// patience above zero.
///
/// A shared request may join a phase of its own kind or start one on a free
/// lock; a write request needs a free lock. If nobody waits, that is all.
/// If somebody waits, a strict lock (or a patient one in its strict period)
/// lets nobody in; a patient lock lets the request in unless the queue lock
/// is held (its holder may be about to hand the lock off, see raw.rs) or the
/// lock is free with a releaser on its way to hand it off (`OPEN` clear).
/// The holder-count limit is checked by the caller, which panics.
#[inline]
pub(crate) const fn may_enter(kind: Kind, s: u64, patient: bool) -> bool {
    let compatible = matches!(
        (kind, holding_kind(s)),
        (_, None) | (Kind::Read, Some(Kind::Read)) | (Kind::Intent, Some(Kind::Intent))
    );
    if !compatible {
        return false;
    }
    if s & WAITING_MASK == 0 {
        return true;
    }
    patient && s & (STRICT | QUEUE_LOCKED) == 0 && (s & HOLDERS_MASK != 0 || s & OPEN != 0)
}

/// Whether the strict rules (2–4) are in force for a lock in state `s`:
/// always for a strict lock, from the moment a queued request has waited out
/// the patience for a patient one.
#[inline]
pub(crate) const fn is_strict(s: u64, patient: bool) -> bool {
    !patient || s & STRICT != 0
}

/// Rule 3: the kind whose phase begins after a phase of kind `last` ends,
/// given the kinds that have queued waiters (`waiting`, a mask of the state's
/// waiting bits). `None` when nobody waits.
#[inline]
pub(crate) const fn next_phase(last: Option<Kind>, waiting: u64) -> Option<Kind> {
    // The round robin, starting right after `last` (and at read before the
    // first phase ever).
    let order = match last {
        Some(Kind::Read) => [Kind::Intent, Kind::Write, Kind::Read],
        Some(Kind::Intent) => [Kind::Write, Kind::Read, Kind::Intent],
        Some(Kind::Write) | None => [Kind::Read, Kind::Intent, Kind::Write],
    };
    let mut i = 0;
    while i < order.len() {
        if waiting & order[i].waiting_bit() != 0 {
            return Some(order[i]);
        }
        i += 1;
    }
    None
}

/// Rule 5 (and the downgrade rule): the queued kind that may join the phase
/// running in `s` without a handoff, if any.
///
/// That is the case exactly when the running phase is shared and every queued
/// waiter is of its kind: they only queued because another kind was waiting,
/// and that kind has left.
#[inline]
pub(crate) const fn admits_into_running_phase(s: u64) -> Option<Kind> {
    match holding_kind(s) {
        Some(kind @ (Kind::Read | Kind::Intent)) if s & WAITING_MASK == kind.waiting_bit() => Some(kind),
        _ => None,
    }
}

/// The kind a write guard downgrades into when the writer asks for `target`.
///
/// Downgrading to read is the write phase handing off to read, which is the
/// read kind's turn in the round robin, so waiting readers join the
/// downgraded reader. Downgrading to intent while readers wait must not let
/// intent jump ahead of them: the downgraded intent holder continues the write
/// phase alone (`None`: nobody is admitted and `LAST` stays write). Without
/// waiting readers the round robin would pick intent next anyway, so waiting
/// intent holders join.
#[inline]
pub(crate) const fn downgrade_admits(target: Kind, s: u64) -> Option<Kind> {
    match target {
        Kind::Read => Some(Kind::Read),
        Kind::Intent if s & Kind::Read.waiting_bit() == 0 => Some(Kind::Intent),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::*;

    #[test]
    fn round_robin_order() {
        let all = WAITING_MASK;
        assert_eq!(next_phase(Some(Kind::Read), all), Some(Kind::Intent));
        assert_eq!(next_phase(Some(Kind::Intent), all), Some(Kind::Write));
        assert_eq!(next_phase(Some(Kind::Write), all), Some(Kind::Read));
        assert_eq!(next_phase(None, all), Some(Kind::Read));
        assert_eq!(next_phase(Some(Kind::Read), READ_WAITING), Some(Kind::Read));
        assert_eq!(next_phase(Some(Kind::Read), WRITE_WAITING | READ_WAITING), Some(Kind::Write));
        assert_eq!(next_phase(Some(Kind::Write), 0), None);
    }

    #[test]
    fn no_barging_when_strict() {
        let reading = READ_ONE;
        for patient in [false, true] {
            assert!(may_enter(Kind::Read, reading, patient));
            assert!(!may_enter(Kind::Intent, reading, patient));
            assert!(!may_enter(Kind::Write, reading, patient));
            assert!(may_enter(Kind::Write, LAST_MASK, patient));
        }
        assert!(!may_enter(Kind::Read, reading | INTENT_WAITING, false));
        assert!(!may_enter(Kind::Write, LAST_MASK | READ_WAITING, false));
        assert!(!may_enter(Kind::Read, reading | INTENT_WAITING | STRICT, true));
        assert!(!may_enter(Kind::Write, READ_WAITING | OPEN | STRICT, true));
    }

    #[test]
    fn patient_barging() {
        // Joining a running phase of one's own kind, whoever waits.
        assert!(may_enter(Kind::Read, READ_ONE | INTENT_WAITING | WRITE_WAITING, true));
        assert!(may_enter(Kind::Intent, INTENT_ONE | READ_WAITING, true));
        // Never an incompatible one.
        assert!(!may_enter(Kind::Intent, READ_ONE | READ_WAITING, true));
        // A free lock only once nobody owes it a handoff.
        assert!(!may_enter(Kind::Write, READ_WAITING, true));
        assert!(may_enter(Kind::Write, READ_WAITING | OPEN, true));
        // Not while the queue lock is held.
        assert!(!may_enter(Kind::Read, READ_ONE | INTENT_WAITING | QUEUE_LOCKED, true));
        assert!(may_enter(Kind::Read, READ_ONE | QUEUE_LOCKED, true));
    }

    #[test]
    fn bound_holds_for_every_start() {
        // Exhaustively: a shared kind K queued during a phase of kind P, with
        // any set of other kinds also waiting, gets its phase among the next
        // three that begin.
        for k in [Kind::Read, Kind::Intent] {
            for p in [Kind::Read, Kind::Intent, Kind::Write] {
                for others in 0..8u64 {
                    let mut waiting = (others << WAITING_SHIFT) | k.waiting_bit();
                    let mut last = Some(p);
                    let mut begun = 0;
                    loop {
                        let next = next_phase(last, waiting).expect("someone waits");
                        if next == k {
                            break;
                        }
                        begun += 1;
                        // Worst case: the kind that just ran is waiting again.
                        waiting |= next.waiting_bit();
                        last = Some(next);
                        assert!(begun <= 2, "{k:?} queued in {p:?}: {begun} phases");
                    }
                }
            }
        }
    }
}
