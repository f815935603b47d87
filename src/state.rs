//! The lock's state word: its bit layout, its named constants and the pure
//! functions that read it.
//!
//! ```text
//!  63  62   61   60 59  58  57  56  55  54  53  52 ....... 27  26 ....... 1   0
//! +---+----+----+-----+---+---+---+---+---+---+---+--------+---+--------+---+
//! | 0 | ST | NH |LAST |QL |WW |IW |RW |RV |BI | g | intent | g | read   | W |
//! +---+----+----+-----+---+---+---+---+---+---+---+--------+---+--------+---+
//!
//!  W     WRITER          one writer holds the lock
//!  read                  number of read (S) holders, READ_ONE per holder
//!  intent                number of intent (IX) holders, INTENT_ONE per holder
//!  g     *_GUARD         top bit of each count: set only when the count is at
//!                        its maximum, so one mask test on the fast path also
//!                        rejects an entry that would overflow
//!  RW IW WW              READ_WAITING / INTENT_WAITING / WRITE_WAITING: the
//!                        wait queue holds at least one waiter of that kind
//!  QL    QUEUE_LOCKED    a thread is changing the wait queue (see queue.rs)
//!  LAST  LAST_MASK       while waiters are queued: the kind of the running (or
//!                        just ended) phase, where the round robin of
//!                        fairness.rs starts; 0 whenever no waiter is queued
//!  NH    NO_HANDOFF_OWED patient locks only: the waiters queued are owed no
//!                        handoff at the end of this phase, so a releaser
//!                        that empties the lock leaves it to whoever comes
//!                        first, and an arrival may take a free lock (see
//!                        fairness.rs)
//!  ST    STRICT          patient locks only: a queued request has waited out
//!                        the lock's patience; no arrival enters until the
//!                        requests queued at that moment have entered
//!  BI    BIASED          the running shared phase is biased (bias.rs): its
//!                        kind may also enter by publishing in the global
//!                        slot table, without changing this word; the phase
//!                        owns one extra holder of its kind, the *bias hold*
//!  RV    REVOKING        a thread has cleared BIASED and is moving the
//!                        published holders into the count (bias.rs); the
//!                        bias hold is still counted until it is done
//! ```
//!
//! At most one of the three holder fields is non-zero at any time: that is the
//! lock's exclusion invariant. The lock is *free* when all three are zero.
//! The waiting bits always equal the set of kinds present in the wait queue
//! (or, for a moment, a superset: see `settle` in raw/handoff.rs); they, `LAST`,
//! `NO_HANDOFF_OWED` and `STRICT` change only while `QUEUE_LOCKED` is held, and `NO_HANDOFF_OWED`
//! and `STRICT` are set only while a waiting bit is. Because `LAST` is kept
//! only while somebody waits, an uncontended free lock is exactly `0`, and the
//! write fast path is a single compare-and-swap from `0`.
//!
//! `BIASED` and `REVOKING` are set only while a holder count of the bias's
//! kind includes the bias hold, never together, and `BIASED` only while no
//! waiter is queued (see bias.rs for why that keeps the fairness contract).

/// The three lock modes, named after their rwlock roles.
///
/// Their order is the order of the handoff round robin (see `fairness.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// S: many holders, no finer locks, needs the whole structure stable.
    Read = 1,
    /// IX: many holders, each locking parts exclusively with finer locks.
    Intent = 2,
    /// X: one holder, excludes everything.
    Write = 3,
}

/// One writer holds the lock.
pub(crate) const WRITER: u64 = 1;
/// Bit position of the read-holder count.
const READ_SHIFT: u32 = 1;
/// Bit position of the intent-holder count.
const INTENT_SHIFT: u32 = 27;
/// Width of each shared holder count, guard bit included.
const COUNT_BITS: u32 = 26;
/// The largest number of holders of one shared kind (2^25). One more panics.
/// A count at the maximum is exactly the count's guard bit.
pub(crate) const MAX_SHARED: u64 = 1 << (COUNT_BITS - 1);
/// One read holder.
pub(crate) const READ_ONE: u64 = 1 << READ_SHIFT;
/// One intent holder.
pub(crate) const INTENT_ONE: u64 = 1 << INTENT_SHIFT;
/// All read-holder bits.
pub(crate) const READ_MASK: u64 = ((1 << COUNT_BITS) - 1) << READ_SHIFT;
/// All intent-holder bits.
pub(crate) const INTENT_MASK: u64 = ((1 << COUNT_BITS) - 1) << INTENT_SHIFT;
/// The read count is at its maximum.
pub(crate) const READ_GUARD: u64 = MAX_SHARED << READ_SHIFT;
/// The intent count is at its maximum.
pub(crate) const INTENT_GUARD: u64 = MAX_SHARED << INTENT_SHIFT;
/// Every holder bit of every kind.
pub(crate) const HOLDERS_MASK: u64 = WRITER | READ_MASK | INTENT_MASK;
/// The running shared phase is biased: its kind may enter through the slot
/// table (bias.rs), and one holder of the count is the bias hold.
pub(crate) const BIASED: u64 = 1 << 53;
/// A revocation is moving published holders into the count (bias.rs).
pub(crate) const REVOKING: u64 = 1 << 54;
/// Bit position of the first waiting bit (read; then intent, write).
pub(crate) const WAITING_SHIFT: u32 = 55;
/// A read waiter is queued.
pub(crate) const READ_WAITING: u64 = 1 << WAITING_SHIFT;
/// An intent waiter is queued.
pub(crate) const INTENT_WAITING: u64 = 1 << (WAITING_SHIFT + 1);
/// A write waiter is queued.
pub(crate) const WRITE_WAITING: u64 = 1 << (WAITING_SHIFT + 2);
/// All waiting bits.
pub(crate) const WAITING_MASK: u64 = READ_WAITING | INTENT_WAITING | WRITE_WAITING;
/// The wait queue is being changed by one thread.
pub(crate) const QUEUE_LOCKED: u64 = 1 << 58;
/// Bit position of the last phase's kind.
const LAST_SHIFT: u32 = 59;
/// The running or last phase's kind while waiters are queued (a `Kind`
/// discriminant), 0 when none is.
pub(crate) const LAST_MASK: u64 = 3 << LAST_SHIFT;
/// Patient locks: the queued waiters are owed no handoff when this phase
/// ends, so a releaser that empties the lock does not touch it again and an
/// arrival may take the free lock.
pub(crate) const NO_HANDOFF_OWED: u64 = 1 << 61;
/// Patient locks: the strict rules are in force (a queued request has waited
/// out the patience).
pub(crate) const STRICT: u64 = 1 << 62;

impl Kind {
    /// The three kinds, in round-robin order.
    pub(crate) const ALL: [Kind; 3] = [Kind::Read, Kind::Intent, Kind::Write];

    /// 0, 1 or 2: this kind's index into per-kind arrays.
    #[inline]
    pub(crate) const fn index(self) -> usize {
        self as usize - 1
    }

    /// The waiting bit of this kind.
    #[inline]
    pub(crate) const fn waiting_bit(self) -> u64 {
        match self {
            Kind::Read => READ_WAITING,
            Kind::Intent => INTENT_WAITING,
            Kind::Write => WRITE_WAITING,
        }
    }

    /// What one holder of this kind adds to the state word.
    #[inline]
    pub(crate) const fn one(self) -> u64 {
        match self {
            Kind::Read => READ_ONE,
            Kind::Intent => INTENT_ONE,
            Kind::Write => WRITER,
        }
    }

    /// The holder bits of this kind.
    #[inline]
    pub(crate) const fn holder_mask(self) -> u64 {
        match self {
            Kind::Read => READ_MASK,
            Kind::Intent => INTENT_MASK,
            Kind::Write => WRITER,
        }
    }

    /// The bits that stop a new request of this kind from entering on the
    /// fast path: any waiter (no barging), a holder of an incompatible kind,
    /// this kind's count at its maximum, or a bias (whose kind enters through
    /// the slot table, and which every other kind must revoke first). `s & fast_blockers() == 0`
    /// implies `fairness::may_enter(self, s)` and that one more holder fits.
    #[inline]
    pub(crate) const fn fast_blockers(self) -> u64 {
        match self {
            Kind::Read => WAITING_MASK | WRITER | INTENT_MASK | READ_GUARD | BIASED,
            Kind::Intent => WAITING_MASK | WRITER | READ_MASK | INTENT_GUARD | BIASED,
            Kind::Write => WAITING_MASK | HOLDERS_MASK | BIASED,
        }
    }

    /// The `LAST` field value recording that a phase of this kind began.
    #[inline]
    pub(crate) const fn last_bits(self) -> u64 {
        (self as u64) << LAST_SHIFT
    }

    /// The largest number of holders of this kind.
    #[inline]
    pub(crate) const fn max_holders(self) -> u64 {
        match self {
            Kind::Write => 1,
            Kind::Read | Kind::Intent => MAX_SHARED,
        }
    }

    /// The name used in panic messages and docs.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Intent => "intent",
            Kind::Write => "write",
        }
    }
}

/// Number of holders of `kind` in `s`.
#[inline]
pub(crate) const fn holders(s: u64, kind: Kind) -> u64 {
    match kind {
        Kind::Read => (s & READ_MASK) >> READ_SHIFT,
        Kind::Intent => (s & INTENT_MASK) >> INTENT_SHIFT,
        Kind::Write => s & WRITER,
    }
}

/// The kind that holds the lock in `s`, or `None` if it is free.
#[inline]
pub(crate) const fn holding_kind(s: u64) -> Option<Kind> {
    if s & WRITER != 0 {
        Some(Kind::Write)
    } else if s & READ_MASK != 0 {
        Some(Kind::Read)
    } else if s & INTENT_MASK != 0 {
        Some(Kind::Intent)
    } else {
        None
    }
}

/// The kind of the phase that began most recently (`None` before the first).
#[inline]
pub(crate) const fn last_kind(s: u64) -> Option<Kind> {
    match (s & LAST_MASK) >> LAST_SHIFT {
        1 => Some(Kind::Read),
        2 => Some(Kind::Intent),
        3 => Some(Kind::Write),
        _ => None,
    }
}

/// The waiting bits of the kinds whose count in `counts` (read, intent,
/// write) is not zero.
#[inline]
pub(crate) const fn waiting_bits(counts: [u64; 3]) -> u64 {
    let mut bits = 0;
    let mut i = 0;
    while i < 3 {
        if counts[i] != 0 {
            bits |= READ_WAITING << i;
        }
        i += 1;
    }
    bits
}

/// `s` with `n` holders of `kind` added. The caller has checked that the
/// count cannot overflow.
#[inline]
pub(crate) const fn with_holders(s: u64, kind: Kind, n: u64) -> u64 {
    s + n * kind.one()
}

/// `s` with `LAST` set to `kind` (or cleared, for `None`).
#[inline]
pub(crate) const fn with_last(s: u64, kind: Option<Kind>) -> u64 {
    let bits = match kind {
        Some(kind) => kind.last_bits(),
        None => 0,
    };
    (s & !LAST_MASK) | bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_overlap() {
        let fields = [
            WRITER,
            READ_MASK,
            INTENT_MASK,
            READ_WAITING,
            INTENT_WAITING,
            WRITE_WAITING,
            QUEUE_LOCKED,
            LAST_MASK,
            NO_HANDOFF_OWED,
            STRICT,
            BIASED,
            REVOKING,
        ];
        for (i, a) in fields.iter().enumerate() {
            for b in &fields[i + 1..] {
                assert_eq!(a & b, 0, "{a:#x} overlaps {b:#x}");
            }
        }
    }

    #[test]
    fn counts_round_trip() {
        for kind in [Kind::Read, Kind::Intent, Kind::Write] {
            let s = with_last(with_holders(0, kind, kind.max_holders()), Some(kind));
            assert_eq!(holders(s, kind), kind.max_holders());
            assert_eq!(holding_kind(s), Some(kind));
            assert_eq!(last_kind(s), Some(kind));
            assert_eq!(s & !(kind.holder_mask() | LAST_MASK), 0);
            // A full count blocks the fast path; one below does not.
            assert_ne!(s & kind.fast_blockers(), 0);
            if kind != Kind::Write {
                assert_eq!(with_holders(0, kind, kind.max_holders() - 1) & kind.fast_blockers(), 0);
            }
        }
        assert_eq!(holding_kind(LAST_MASK | WAITING_MASK | QUEUE_LOCKED), None);
        for kind in Kind::ALL {
            let mut counts = [0; 3];
            counts[kind.index()] = 5;
            assert_eq!(waiting_bits(counts), kind.waiting_bit());
        }
        assert_eq!(waiting_bits([1, 1, 1]), WAITING_MASK);
    }
}
