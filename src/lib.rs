//! A phase-fair lock with **two shared modes that exclude each other**, plus
//! an exclusive mode.
//!
//! ```
//! use phase_lock::*;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! let table = PhaseLock::new([AtomicU64::new(0), AtomicU64::new(0)]);
//! table.intent()[0].fetch_add(1, Ordering::Relaxed); // many intent holders, finer locks of their own
//! let sum: u64 = table.read().iter().map(|e| e.load(Ordering::Relaxed)).sum(); // many readers, a stable view
//! let mut w = table.write(); // one writer, nobody else
//! *w = [AtomicU64::new(sum), AtomicU64::new(0)];
//! let i = w.downgrade_to_intent(); // no reader or writer slips in between
//! assert_eq!(i[0].load(Ordering::Relaxed), 1);
//! ```
//!
//! # The modes
//!
//! | mode     | holders at once | excludes        | meant for |
//! |----------|-----------------|-----------------|-----------|
//! | `read`   | many            | intent, write   | readers that need the whole structure stable and take no finer locks |
//! | `intent` | many            | read, write     | holders that change parts of the structure under finer locks of their own |
//! | `write`  | one             | everything      | changes to the structure's shape |
//!
//! `intent` is Gray's intention-exclusive (IX) mode. The lock is the "special
//! rwsem which allows either concurrent read access OR concurrent PTL access,
//! but not both" proposed for splitting the Linux mmap lock: page-table
//! walkers that take no per-table locks hold it for read, walkers that take
//! the per-table locks (PTLs) hold it for intent, and changes of the tables'
//! shape take it for write. The workspace crate `phase-lock-mm` builds that
//! design as a userspace model of an address space, on this crate's public
//! API alone.
//!
//! # Fairness
//!
//! A *phase* is a maximal stretch of time in which the lock is held by one
//! kind: any number of readers, or any number of intent holders, or one
//! writer. Every lock has a **patience** `P`, fixed at compile time:
//! [`PhaseLock`] has [`DEFAULT_PATIENCE_US`] (1 ms), [`StrictPhaseLock`] has
//! 0, [`PatientLock<T, P>`](PatientLock) has `P` microseconds. The lock
//! guarantees:
//!
//! 1. **Concurrent entering.** A read or intent request that finds its own
//!    kind holding the lock and nobody waiting enters at once; it never waits
//!    for another holder of its own kind.
//! 2. **Patient, then strict.** While every queued request has waited less
//!    than `P`, a request enters whenever it is compatible with the current
//!    holders, queued requests or not: it may join a running phase of its own
//!    kind, or take a free lock before a woken waiter gets there (*patient*).
//!    Once the oldest queued request has waited `P`, the lock is *strict*
//!    until every request queued at that moment has entered (or timed out):
//!    no arrival enters, whatever kind holds the lock. With `P = 0` the lock
//!    is always strict once anybody waits (no barging).
//! 3. **Handoff.** In the strict rules, when a phase ends the next phase goes
//!    to the waiting kinds in the fixed round robin read → intent → write →
//!    read …, skipping kinds with no waiter; every waiter of a shared kind
//!    enters together at the start of its phase, and a write phase is one
//!    writer. In the patient rules, the end of a phase wakes the next kind's
//!    waiters that have not been woken yet to *try* (they stay queued, with
//!    their age, if they lose).
//! 4. **Bound.** From the moment a read or intent request is queued to the
//!    moment it enters, at most `P` passes plus at most **two** other phases
//!    begin after it. Writers are queued FIFO; a writer with `k` writers
//!    queued ahead enters after at most `P` plus `3k + 2` other phases. (`P`
//!    is measured by the waiter's timer and by running threads that check
//!    the oldest deadline: on a machine with more runnable threads than
//!    processors the switch can come late by a scheduler time slice. The
//!    phase count holds regardless.) A request is queued when the lock
//!    publishes its waiting bit, under a short internal queue lock, right
//!    after its fast path fails (and, for a patient lock, a spin of a few
//!    hundred nanoseconds); the time before that is not ordered.
//! 5. **Leaving.** try-locks never wait and never queue (they may barge like
//!    any patient arrival). A request that times out leaves no trace — also
//!    when its patience ran out first and the lock turned strict for it: it
//!    either leaves the queue (clearing its kind's waiting flag and the strict
//!    period if it was the last to end them, and letting in the waiters that
//!    only queued because of it) or, if the lock was handed to it in the
//!    meantime, returns the lock.
//! 6. **Fair unlocking.** lock_api's `unlock_*_fair` and `bump_*` hand off at
//!    once as if the lock were strict, whatever the patience.
//!
//! A downgrade (write → read, write → intent) changes the kind of the running
//! phase without beginning a new one. Downgrading to read admits the waiting
//! readers (it is their turn after a write); downgrading to intent admits the
//! waiting intent holders only if no reader waits.
//!
//! **Why the default patience is 1 ms**, and what other patiences measure:
//! `docs/design.md` in the repository, with the patience sweep of the
//! fairness report (`cargo run --release -p phase-lock-reports --bin
//! fairness -- --sweep`). In short: any patience from 10 µs up runs at the
//! stock locks' throughput there, and 1 ms leaves room for timer slack and
//! wake-up latency. The bound is in time and phases once a request is
//! queued; longest waits measured from the call on an oversubscribed
//! machine are set by the scheduler (`docs/results/fairness.md`).
//!
//! This section is the contract's one statement; `src/fairness.rs` gives the
//! argument for why the implementation meets it, rule by rule;
//! `src/tests/contract.rs` (strict) and `src/tests/patience.rs` (patient)
//! check the rules with deterministic schedules, and the fairness report
//! measures waits and phases from outside the lock.
//!
//! # Costs
//!
//! * Uncontended acquire: one compare-and-swap (after one load, for the
//!   shared modes); uncontended release: one `fetch_sub`. Both inlined, the
//!   same for every patience; everything else is `#[cold]`.
//! * Waiting: a short bounded spin, then a Linux futex private to the
//!   waiter, so a wake-up reaches exactly the threads being admitted (other
//!   Unix targets park the thread through `std`).
//! * Reads that scale: once a shared phase has seen concurrency (two holders
//!   of its kind, a lost race on the state word), it is *biased*: its kind
//!   enters by publishing in a slot of a process-wide table (8 KiB, 1024
//!   slots hashed from thread and lock) instead of writing the lock, so
//!   holders on different CPUs share no written cache line. The guard
//!   carries the slot ([`SharedHold`]). Another kind ends the bias by one
//!   scan of the table that moves the published holders into the count and
//!   never waits for them; the lock then stays unbiased for at least 9× the scan's
//!   duration. A lock used by one thread is never biased. [`UnbiasedPhaseLock`]
//!   turns the mechanism off; `src/bias.rs` has the design and its costs.
//! * Size: 16 bytes ([`RawPhaseLock`] explains why stock 8-byte rwlocks
//!   cannot give these guarantees). No heap allocation anywhere.
//!
//! # Panics and poisoning
//!
//! Like every `lock_api` lock, a `PhaseLock` is never poisoned: a panic
//! inside a critical section drops the guard, which releases the lock, and
//! other threads go on. Acquiring more than 2^25 read (or intent) holds at
//! once panics, before the lock's state is touched.
//!
//! # lock_api
//!
//! [`PhaseLock<T>`] is `lock_api::RwLock<RawPhaseLock, T>`, so it drops in
//! wherever a `lock_api::RwLock` is used: shared is read, exclusive is
//! write, and timeouts, downgrade and fair unlocking come from lock_api's
//! wrappers. The intent mode is added by the [`RwLockIntentExt`] extension
//! trait over any raw lock that implements [`RawIntent`].
//!
//! Feature `arc_lock` adds lock_api's owned guards (`read_arc`, `write_arc`)
//! and the intent mode's (`intent_arc`, from `ArcRwLockIntentExt`); feature
//! `serde` makes a `PhaseLock<T>` serialize and deserialize as its `T`.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// In dependency order: each module uses only those above it.
mod sync; // the one place that names std's or loom's atomics and threads
mod state; // the state word's layout
mod fairness; // who may enter: the policy, as pure functions of the word
mod park; // parking and waking one waiter
mod queue; // the wait queue and the strict batch
mod bias; // the process-wide slot table of biased shared phases
mod intent; // the intent mode's raw traits
mod raw; // RawPatientLock, the state machine
mod guard; // the intent mode's safe guards
#[cfg(feature = "arc_lock")]
mod arc_guard; // owned guards

#[cfg(all(test, not(phase_lock_model)))]
mod tests;

pub use bias::SharedHold;
pub use guard::{MappedRwLockIntentGuard, RwLockIntentExt, RwLockIntentGuard, WriteGuardIntentExt};
pub use intent::{RawIntent, RawIntentDowngrade, RawIntentTimed};
pub use raw::{DEFAULT_PATIENCE_US, RawPatientLock, RawPhaseLock, RawStrictPhaseLock, RawUnbiasedPhaseLock};

#[cfg(feature = "arc_lock")]
#[cfg_attr(docsrs, doc(cfg(feature = "arc_lock")))]
pub use arc_guard::{ArcIntentGuard, ArcReadGuard, ArcRwLockIntentExt, ArcRwLockIntentGuard, ArcWriteGuard};

pub use lock_api;
pub use lock_api::{RawRwLock, RawRwLockDowngrade, RawRwLockFair, RawRwLockTimed};
#[cfg(phase_lock_shuttle)]
#[doc(hidden)]
pub use sync::set_queued_hook_for_model;

/// A phase-fair lock with read, intent and write modes, protecting a `T`,
/// with the default patience ([`DEFAULT_PATIENCE_US`]).
///
/// `read`, `write`, their `try_`/timed variants, `get_mut` and `into_inner`
/// come from [`lock_api::RwLock`]; `intent` and its variants from
/// [`RwLockIntentExt`].
///
/// ```
/// use phase_lock::*;
///
/// let lock = PhaseLock::new(vec![1, 2]);
/// lock.write().push(3);
/// assert_eq!(lock.intent().len(), 3);
/// assert_eq!(lock.into_inner(), [1, 2, 3]);
/// ```
pub type PhaseLock<T> = lock_api::RwLock<RawPhaseLock, T>;

/// A phase-fair lock with patience 0: once anybody waits, nobody barges, and
/// every change of kind is a handoff (the strict contract, rules 1–5 without
/// the patient rule).
///
/// ```
/// use phase_lock::*;
///
/// let lock = StrictPhaseLock::new(vec![1, 2]);
/// assert_eq!(lock.read().len(), 2);
/// assert!(lock.try_intent().is_some());
/// ```
pub type StrictPhaseLock<T> = lock_api::RwLock<RawStrictPhaseLock, T>;

/// A phase-fair lock with a patience of `PATIENCE_US` microseconds, chosen at
/// compile time. `PatientLock<T, 0>` is [`StrictPhaseLock<T>`];
/// `PatientLock<T, DEFAULT_PATIENCE_US>` is [`PhaseLock<T>`].
///
/// ```
/// use phase_lock::*;
///
/// static TABLE: PatientLock<[u8; 4], 50> = PatientLock::new([0; 4]);
/// TABLE.write()[0] = 1;
/// assert_eq!(TABLE.intent()[0], 1);
/// ```
///
/// The third parameter turns the biased shared path off (see
/// [`UnbiasedPhaseLock`]); it is on by default.
pub type PatientLock<T, const PATIENCE_US: u32, const BIAS: bool = true> =
    lock_api::RwLock<RawPatientLock<PATIENCE_US, BIAS>, T>;

/// [`PhaseLock`] without the biased shared path: every read and intent
/// acquisition is counted in the lock's state word, as before 0.2.
///
/// The biased path (see the crate docs, "Reads that scale") makes shared
/// acquisitions on different CPUs touch no common cache line once the lock
/// has seen concurrency, at the price of an 8 KiB process-wide table and a
/// table scan whenever another kind ends a biased phase. Choose this type
/// where shared holders rarely overlap in time and kinds alternate quickly,
/// or to measure what the bias buys.
///
/// ```
/// use phase_lock::*;
///
/// let lock = UnbiasedPhaseLock::new(1);
/// *lock.write() += 1;
/// assert_eq!(*lock.read(), 2);
/// assert_eq!(*lock.intent(), 2);
/// ```
pub type UnbiasedPhaseLock<T> = lock_api::RwLock<RawUnbiasedPhaseLock, T>;

/// A read guard of a [`PhaseLock`]; dereferences to `&T`.
///
/// ```
/// use phase_lock::*;
///
/// let lock = PhaseLock::new(5);
/// let a: ReadGuard<'_, i32> = lock.read();
/// let b = lock.read(); // readers share the lock
/// assert!(lock.try_intent().is_none()); // but exclude intent holders
/// assert_eq!(*a + *b, 10);
/// ```
pub type ReadGuard<'a, T> = lock_api::RwLockReadGuard<'a, RawPhaseLock, T>;

/// An intent guard of a [`PhaseLock`]; dereferences to `&T`.
///
/// ```
/// use phase_lock::*;
/// use std::sync::Mutex;
///
/// let lock = PhaseLock::new([Mutex::new(0), Mutex::new(0)]);
/// let a: IntentGuard<'_, _> = lock.intent();
/// let b = lock.intent(); // intent holders share the lock…
/// *a[0].lock().unwrap() += 1; // …and change parts of it under finer locks
/// *b[1].lock().unwrap() += 2;
/// assert!(lock.try_read().is_none()); // readers wait for a stable view
/// ```
pub type IntentGuard<'a, T> = RwLockIntentGuard<'a, RawPhaseLock, T>;

/// The write guard of a [`PhaseLock`]; dereferences to `&mut T`.
///
/// ```
/// use phase_lock::*;
///
/// let lock = PhaseLock::new(String::from("a"));
/// let mut w: WriteGuard<'_, String> = lock.write();
/// w.push('b');
/// assert!(lock.try_read().is_none() && lock.try_intent().is_none());
/// drop(w);
/// assert_eq!(*lock.read(), "ab");
/// ```
pub type WriteGuard<'a, T> = lock_api::RwLockWriteGuard<'a, RawPhaseLock, T>;

/// A read guard narrowed by `ReadGuard::map`.
///
/// ```
/// use phase_lock::*;
///
/// let lock = PhaseLock::new((1, String::from("one")));
/// let name: MappedReadGuard<'_, str> = ReadGuard::map(lock.read(), |p| p.1.as_str());
/// assert_eq!(&*name, "one");
/// ```
pub type MappedReadGuard<'a, T> = lock_api::MappedRwLockReadGuard<'a, RawPhaseLock, T>;

/// An intent guard narrowed by `IntentGuard::map`.
///
/// ```
/// use phase_lock::*;
///
/// let lock = PhaseLock::new((1, String::from("one")));
/// let name: MappedIntentGuard<'_, str> = IntentGuard::map(lock.intent(), |p| p.1.as_str());
/// assert_eq!(&*name, "one");
/// assert!(lock.try_read().is_none()); // still an intent acquisition
/// ```
pub type MappedIntentGuard<'a, T> = MappedRwLockIntentGuard<'a, RawPhaseLock, T>;

/// A write guard narrowed by `WriteGuard::map`.
///
/// ```
/// use phase_lock::*;
///
/// let lock = PhaseLock::new((1, String::from("one")));
/// let mut name: MappedWriteGuard<'_, String> = WriteGuard::map(lock.write(), |p| &mut p.1);
/// name.push('!');
/// drop(name);
/// assert_eq!(lock.read().1, "one!");
/// ```
pub type MappedWriteGuard<'a, T> = lock_api::MappedRwLockWriteGuard<'a, RawPhaseLock, T>;
