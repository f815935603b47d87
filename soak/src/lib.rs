//! The pieces of the soak (`src/main.rs`) that the stress tests share: an
//! exclusion checker kept beside the lock ([`Holders`]), a seedable
//! generator ([`Rng`]), a busy loop ([`work`]) and one random acquisition
//! of every kind ([`mixed_op`]; [`mixed_op_with`] for the model checkers).

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use phase_lock::{PatientLock, RwLockIntentExt, WriteGuardIntentExt};

/// Holder counts per kind, kept by the checker itself, not read from the
/// lock: every entry asserts that no holder of another kind is inside, and
/// that a writer is alone.
///
/// ```
/// use phase_lock_soak::Holders;
/// let h = Holders::default();
/// h.enter(&h.read, "read");
/// h.enter(&h.read, "a second read"); // readers share
/// h.read.fetch_sub(2, std::sync::atomic::Ordering::SeqCst);
/// h.enter(&h.write, "write");
/// ```
#[derive(Default, Debug)]
pub struct Holders {
    /// Readers inside.
    pub read: AtomicI64,
    /// Intent holders inside.
    pub intent: AtomicI64,
    /// Writers inside.
    pub write: AtomicI64,
}

impl Holders {
    /// Enters as `mine` (one of the three counters), asserting that no
    /// other kind is inside and, for write, that nobody else is.
    ///
    /// # Panics
    ///
    /// When the lock let in a holder it excludes: the bug the checker is
    /// for.
    pub fn enter(&self, mine: &AtomicI64, what: &str) {
        let before = mine.fetch_add(1, SeqCst);
        let (r, i, w) = (self.read.load(SeqCst), self.intent.load(SeqCst), self.write.load(SeqCst));
        let others = [("read", r, &self.read), ("intent", i, &self.intent), ("write", w, &self.write)]
            .into_iter()
            .filter(|(_, n, c)| *n != 0 && !std::ptr::eq(mine, *c))
            .map(|(name, n, _)| (name, n))
            .collect::<Vec<_>>();
        assert!(others.is_empty(), "{what} entered while {others:?} held the lock");
        if std::ptr::eq(mine, &self.write) {
            assert_eq!(before, 0, "two writers at once");
        }
    }
}

/// A small, fast, seedable generator (xorshift64*), so runs are
/// reproducible.
///
/// ```
/// use phase_lock_soak::Rng;
/// let (mut a, mut b) = (Rng::new(7), Rng::new(7));
/// assert_eq!(a.next(), b.next());
/// assert!(a.below(10) < 10);
/// ```
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Burns a little CPU so that critical sections overlap.
pub fn work(iterations: u32) {
    for i in 0..iterations {
        std::hint::black_box(i);
    }
}

/// The kinds of acquisition [`mixed_op`] makes, in the order of
/// [`OP_NAMES`].
pub const OPS: usize = 13;

/// A name for each of [`mixed_op`]'s acquisitions.
pub const OP_NAMES: [&str; OPS] = [
    "read",
    "read",
    "intent",
    "intent",
    "write",
    "try_read",
    "try_intent",
    "try_write",
    "try_read_for",
    "try_intent_for",
    "try_write_for",
    "write→read",
    "write→intent",
];

/// One random acquisition of `lock`, of any kind (blocking, try, timed,
/// downgrades), checked by `holders`; every write adds one to the value
/// and to `writes`, so that a lost write shows. Returns which kind ran
/// (an index into [`OP_NAMES`]) and whether it got the lock.
///
/// # Panics
///
/// When `holders` sees the lock let in a holder it excludes, or a
/// downgrade let another kind in.
///
/// ```
/// use phase_lock::*;
/// use phase_lock_soak::*;
/// use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
/// let (lock, holders, writes) = (PhaseLock::new(0u64), Holders::default(), AtomicU64::new(0));
/// let mut rng = Rng::new(1);
/// for _ in 0..100 {
///     mixed_op(&lock, &holders, &writes, &mut rng);
/// }
/// assert_eq!(*lock.read(), writes.load(SeqCst));
/// ```
pub fn mixed_op<const P: u32, const B: bool>(
    lock: &PatientLock<u64, P, B>,
    holders: &Holders,
    writes: &AtomicU64,
    rng: &mut Rng,
) -> (usize, bool) {
    mixed_op_with(lock, holders, writes, rng, work)
}

/// [`mixed_op`], with `inside(n)` run inside every critical section in
/// place of `work(n)`: a model checker's tests pass a yield, so that the
/// other threads run while the lock is held, where the checker can see them.
///
/// # Panics
///
/// As [`mixed_op`].
pub fn mixed_op_with<const P: u32, const B: bool>(
    lock: &PatientLock<u64, P, B>,
    holders: &Holders,
    writes: &AtomicU64,
    rng: &mut Rng,
    inside: impl Fn(u32),
) -> (usize, bool) {
    let hold = rng.below(40) as u32;
    let timeout = Duration::from_micros(rng.below(300));
    let op = rng.below(OPS as u64) as usize;
    let got = match op {
        0 | 1 => {
            let g = lock.read();
            holders.enter(&holders.read, "read");
            std::hint::black_box(*g);
            inside(hold);
            holders.read.fetch_sub(1, SeqCst);
            true
        }
        2 | 3 => {
            let g = lock.intent();
            holders.enter(&holders.intent, "intent");
            std::hint::black_box(*g);
            inside(hold);
            holders.intent.fetch_sub(1, SeqCst);
            true
        }
        4 => {
            let mut g = lock.write();
            holders.enter(&holders.write, "write");
            *g += 1;
            writes.fetch_add(1, SeqCst);
            inside(hold);
            holders.write.fetch_sub(1, SeqCst);
            true
        }
        5 => lock
            .try_read()
            .map(|g| {
                holders.enter(&holders.read, "try_read");
                std::hint::black_box(*g);
                inside(hold);
                holders.read.fetch_sub(1, SeqCst);
            })
            .is_some(),
        6 => lock
            .try_intent()
            .map(|g| {
                holders.enter(&holders.intent, "try_intent");
                std::hint::black_box(*g);
                inside(hold);
                holders.intent.fetch_sub(1, SeqCst);
            })
            .is_some(),
        7 => lock
            .try_write()
            .map(|mut g| {
                holders.enter(&holders.write, "try_write");
                *g += 1;
                writes.fetch_add(1, SeqCst);
                inside(hold);
                holders.write.fetch_sub(1, SeqCst);
            })
            .is_some(),
        8 => lock
            .try_read_for(timeout)
            .map(|g| {
                holders.enter(&holders.read, "try_read_for");
                inside(hold);
                holders.read.fetch_sub(1, SeqCst);
                drop(g);
            })
            .is_some(),
        9 => lock
            .try_intent_for(timeout)
            .map(|g| {
                holders.enter(&holders.intent, "try_intent_for");
                inside(hold);
                holders.intent.fetch_sub(1, SeqCst);
                drop(g);
            })
            .is_some(),
        10 => lock
            .try_write_for(timeout)
            .map(|mut g| {
                holders.enter(&holders.write, "try_write_for");
                *g += 1;
                writes.fetch_add(1, SeqCst);
                inside(hold);
                holders.write.fetch_sub(1, SeqCst);
            })
            .is_some(),
        11 => {
            let mut g = lock.write();
            holders.enter(&holders.write, "write before downgrade");
            *g += 1;
            writes.fetch_add(1, SeqCst);
            holders.write.fetch_sub(1, SeqCst);
            holders.read.fetch_add(1, SeqCst);
            let g = lock_api::RwLockWriteGuard::downgrade(g);
            assert_eq!(holders.write.load(SeqCst), 0);
            assert_eq!(holders.intent.load(SeqCst), 0);
            inside(hold);
            holders.read.fetch_sub(1, SeqCst);
            drop(g);
            true
        }
        _ => {
            let mut g = lock.write();
            holders.enter(&holders.write, "write before downgrade_to_intent");
            *g += 1;
            writes.fetch_add(1, SeqCst);
            holders.write.fetch_sub(1, SeqCst);
            holders.intent.fetch_add(1, SeqCst);
            let g = g.downgrade_to_intent();
            assert_eq!(holders.write.load(SeqCst), 0);
            assert_eq!(holders.read.load(SeqCst), 0);
            inside(hold);
            holders.intent.fetch_sub(1, SeqCst);
            drop(g);
            true
        }
    };
    (op, got)
}
