//! The fairness policy: every decision about *who may enter* is made here.
//!
//! # The contract
//!
//! The rules are stated once, numbered 1–6, in the crate documentation
//! (`src/lib.rs`, "Fairness"). Their decisions live here: rules 1 and 2 are
//! [`may_enter`] and [`is_strict`], rule 3 is [`next_phase`], rule 5's
//! admission into a running phase is [`admits_into_running_phase`], and a
//! downgrade's admission is [`downgrade_admits`].
//!
//! # Why the implementation meets it
//!
//! * Rules 1 and 2 are the predicate [`may_enter`]. The fast paths run only
//!   while no waiting bit is set (then every lock behaves alike); with waiters
//!   queued every entry goes through the slow path, which evaluates
//!   `may_enter` on the whole word and validates with a compare-and-swap.
//!   `STRICT` is set under the queue lock, in the same word, so no arrival
//!   decides on a stale patient state.
//! * **When the lock turns strict.** Each queued request carries its
//!   deadline: its queueing time + `P`. Three parties check it: the
//!   waiter's own timed sleep; every handoff decision (`settle`), which
//!   looks at the six list heads (the oldest request of each list); and
//!   running threads that enter through the slow path, every fourth entry at
//!   most once per `P/4`. Whoever finds a deadline passed makes every
//!   request queued *now* a member of the strict batch (`WaitQueue::expire`)
//!   and sets `STRICT`. The lock stays strict while a member is still queued.
//! * **In the strict rules** everything is the strict lock's argument: a
//!   phase can end only at a release that empties the lock (or a downgrade);
//!   with waiting bits set and `NO_HANDOFF_OWED` clear that releaser owns the handoff, and
//!   no arrival can start a phase meanwhile. So every phase that begins while
//!   strict begins through [`next_phase`]. Bound for a shared kind K queued
//!   (or made a member) during some phase: the round robin visits each other
//!   kind at most once before K, and K has a waiter, so K's phase is among
//!   the next three to begin: at most two others begin first, whatever kind
//!   `LAST` records (a patient lock's `LAST` can lag behind arrivals that
//!   barged: the count holds from any starting point). All K waiters — fresh
//!   and spent — are admitted together. Writers: the write lists are FIFO
//!   (spent writers, woken once, are older than every fresh one), a write
//!   handoff takes the oldest, so a writer with `k` ahead waits at most `3k +
//!   2` phases.
//! * **Putting it together.** A request queued at `t` is, from `t + P` on,
//!   a member of a strict batch (its own deadline passed, so the batch
//!   running then — or a new one — includes it), and from then on at most two
//!   other phases begin before it enters (`3k + 2` for a writer).
//! * **Patient wake-ups never lose a waiter.** A waiter woken to try stays
//!   linked (moved to its kind's spent list), so its age and membership stay
//!   visible. If a handoff picks it while that wake-up is in flight, the
//!   handoff marks it `granted` instead of waking it again; the waiter sees
//!   the mark under the queue lock. A waiter never returns while a wake-up to
//!   it is on its way (`queue.rs`).
//! * **`NO_HANDOFF_OWED`: who may touch a free lock.** A patient lock whose waiters are
//!   all spent owes them nothing at the end of a phase: `NO_HANDOFF_OWED` says so, and
//!   a releaser that sees it in the word it released skips the queue lock
//!   entirely. Without `NO_HANDOFF_OWED`, the releaser that empties the lock owns the
//!   handoff and no arrival may take the free lock until it has settled — so
//!   a lock embedded in memory that its next holder frees stays sound. A
//!   fresh waiter clears `NO_HANDOFF_OWED` when it queues (it is owed a try), and so
//!   does a strict batch.
//! * **Biased phases** (bias.rs) change none of this. A shared phase may be
//!   biased only while nobody waits, and a request of another kind revokes
//!   the bias before it can queue (queueing fails while `BIASED` is set).
//!   While nobody waits, rule 1 and the patient rule already let every
//!   request of the running kind in, which is all a published entry does.
//!   Revocation moves the published holders into the count: they are the
//!   running phase's holders, and the phase ends when the last leaves,
//!   exactly as if they had been counted all along. The revoking request is
//!   not yet queued while it revokes; the revocation is one scan of the slot
//!   table, a bounded number of steps that waits for nobody, so the bound —
//!   counted from queueing — is unchanged, and the wait from the call grows
//!   by one scan at most.
//! * Timeouts: a waiter that times out takes the queue lock and either finds
//!   itself still linked (it unlinks, recomputes the waiting bits and the
//!   strict batch, and returns `None`) or finds itself unlinked by a handoff,
//!   in which case it owns the lock and returns it. If the lock is empty with
//!   a handoff pending, the leaving waiter only unlinks itself, and the
//!   releaser recomputes the bits a moment later (`settle` in raw/handoff.rs).

use crate::state::{HOLDERS_MASK, Kind, NO_HANDOFF_OWED, QUEUE_LOCKED, STRICT, WAITING_MASK, holding_kind};

/// Rules 1 and 2, and the patient rule: may a request of `kind` enter a lock
/// in state `s` now, without queueing? `patient` is `true` for a lock with a
/// patience above zero.
///
/// A shared request may join a phase of its own kind or start one on a free
/// lock; a write request needs a free lock. If nobody waits, that is all.
/// If somebody waits, a strict lock (or a patient one in its strict period)
/// lets nobody in; a patient lock lets the request in unless the queue lock
/// is held (its holder may be about to hand the lock off, see raw.rs) or the
/// lock is free with a releaser on its way to hand it off (`NO_HANDOFF_OWED` clear).
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
    patient && s & (STRICT | QUEUE_LOCKED) == 0 && (s & HOLDERS_MASK != 0 || s & NO_HANDOFF_OWED != 0)
}

/// Whether the strict rules (2–4) are in force, given how many members of a
/// strict batch are still queued: always for a strict lock; for a patient
/// one, from the moment a queued request has waited out the patience until
/// the batch it started has entered.
#[inline]
pub(crate) const fn is_strict(batch_left: u64, patient: bool) -> bool {
    !patient || batch_left != 0
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
        assert!(!may_enter(Kind::Write, READ_WAITING | NO_HANDOFF_OWED | STRICT, true));
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
        assert!(may_enter(Kind::Write, READ_WAITING | NO_HANDOFF_OWED, true));
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
