//! The locks under comparison and the one trait they are measured through.
//!
//! [`Comparator`] is implemented by [`Ours`] (`PatientLock`: `PhaseLock`,
//! `StrictPhaseLock`, `UnbiasedPhaseLock` and the patiences of the sweep),
//! [`StdRw`] (`std::sync::RwLock`), [`ParkingLotRw`] (`parking_lot::RwLock`
//! 0.13), [`Sharded`] (`crossbeam_utils::sync::ShardedLock`) and
//! [`GroupMutex`], a textbook group-mutual-exclusion lock built from
//! `std::sync::Mutex` + `Condvar`. The lock sets ([`visit_two_class`],
//! [`visit_plain`], [`visit_patience_sweep`], [`visit_all`]) run a
//! [`LockVisitor`] once per lock type.
//!
//! Stock rwlocks have no intent mode. Where a workload has an intent class,
//! the stock adapters give it the **write** lock: what a user would pick
//! today. That is correct (intent holders never overlap readers) but the
//! intent class loses its concurrency. [`Comparator::NATIVE_INTENT`] says
//! which adapters do this.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use phase_lock::{DEFAULT_PATIENCE_US, PatientLock, RwLockIntentExt};

/// The class of a request: which mode it asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Many holders at once; excludes intent and write.
    Read = 0,
    /// Many holders at once; excludes read and write.
    Intent = 1,
    /// One holder; excludes everything.
    Write = 2,
}

impl Class {
    /// The three classes, in round-robin order.
    pub const ALL: [Class; 3] = [Class::Read, Class::Intent, Class::Write];

    /// A short lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Intent => "intent",
            Class::Write => "write",
        }
    }

    /// The index of the class in [`Class::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// One lock under comparison.
///
/// `with` runs `f` holding the lock in the mode `class` asks for and releases
/// it afterwards. The method is generic (not object-safe) on purpose: every
/// lock is monomorphised and inlined into the measured loop, so no adapter
/// pays for a virtual call that the others do not.
pub trait Comparator: Send + Sync + Sized + 'static {
    /// The name printed in tables and plots, and used in benchmark ids
    /// (letters, digits, `-` and `_` only).
    const NAME: &'static str;
    /// `true` if intent requests get a mode of their own; `false` if the
    /// adapter gives them the write lock (a stock rwlock).
    const NATIVE_INTENT: bool;
    /// A new, unlocked lock.
    fn new() -> Self;
    /// Runs `f` holding the lock for `class`.
    fn with<R>(&self, class: Class, f: impl FnOnce() -> R) -> R;
}

/// This crate's lock with a patience of `P` µs and the biased shared path
/// on or off, `PatientLock<(), P, B>`: read, intent and write natively.
/// `Ours` is `PhaseLock<()>` (the default patience, biased), `Ours<0>` is
/// `StrictPhaseLock<()>`, `Ours<DEFAULT_PATIENCE_US, false>` is
/// `UnbiasedPhaseLock<()>`.
pub struct Ours<const P: u32 = DEFAULT_PATIENCE_US, const B: bool = true>(PatientLock<(), P, B>);

/// `UnbiasedPhaseLock<()>`.
pub type OursUnbiased = Ours<DEFAULT_PATIENCE_US, false>;

impl<const P: u32, const B: bool> Comparator for Ours<P, B> {
    const NAME: &'static str = match P {
        _ if !B => "phase-lock-unbiased",
        DEFAULT_PATIENCE_US => "phase-lock",
        0 => "phase-lock-strict",
        10 => "patience-10us",
        50 => "patience-50us",
        200 => "patience-200us",
        4000 => "patience-4ms",
        _ => "phase-lock-other-patience",
    };
    const NATIVE_INTENT: bool = true;

    fn new() -> Self {
        Ours(PatientLock::new(()))
    }

    #[inline]
    fn with<R>(&self, class: Class, f: impl FnOnce() -> R) -> R {
        match class {
            Class::Read => {
                let _g = self.0.read();
                f()
            }
            Class::Intent => {
                let _g = self.0.intent();
                f()
            }
            Class::Write => {
                let _g = self.0.write();
                f()
            }
        }
    }
}

/// Defines the adapter `$name` over the stock rwlock `$lock` (with `()`
/// inside), which has no intent mode: with `$l` bound to the lock, `$read`
/// takes its read guard, for read requests, and `$write` its write guard,
/// for intent and write requests; the guard is held while `f` runs.
macro_rules! stock_adapter {
    ($(#[$doc:meta])* $name:ident($lock:ty), $label:literal, |$l:ident| $read:expr, $write:expr $(,)?) => {
        $(#[$doc])*
        pub struct $name($lock);

        impl Comparator for $name {
            const NAME: &'static str = $label;
            const NATIVE_INTENT: bool = false;

            fn new() -> Self {
                $name(<$lock>::new(()))
            }

            #[inline]
            fn with<R>(&self, class: Class, f: impl FnOnce() -> R) -> R {
                let $l = &self.0;
                match class {
                    Class::Read => {
                        let _g = $read;
                        f()
                    }
                    Class::Intent | Class::Write => {
                        let _g = $write;
                        f()
                    }
                }
            }
        }
    };
}

stock_adapter!(
    /// `std::sync::RwLock<()>`; intent requests take the write lock.
    StdRw(std::sync::RwLock<()>),
    "std",
    |l| l.read().unwrap_or_else(PoisonError::into_inner),
    l.write().unwrap_or_else(PoisonError::into_inner),
);

stock_adapter!(
    /// `parking_lot::RwLock<()>` (0.13); intent requests take the write lock.
    ParkingLotRw(parking_lot::RwLock<()>),
    "parking_lot",
    |l| l.read(),
    l.write(),
);

stock_adapter!(
    /// `crossbeam_utils::sync::ShardedLock<()>`; intent requests take the
    /// write lock. Compared on plain read/write workloads only.
    Sharded(crossbeam_utils::sync::ShardedLock<()>),
    "ShardedLock",
    |l| l.read().unwrap_or_else(PoisonError::into_inner),
    l.write().unwrap_or_else(PoisonError::into_inner),
);

/// The textbook hand-rolled group-mutual-exclusion lock: a `Mutex` over
/// per-class holder and waiter counts plus a turn variable, and one
/// `Condvar` that every waiter sleeps on.
///
/// * A request enters an empty lock if it is its class's turn or the class
///   whose turn it is has nobody waiting.
/// * A read or intent request joins holders of its own class only while no
///   other class waits (so a flood cannot starve the others).
/// * The last holder to leave passes the turn to the next class, in the order
///   read → intent → write, that has a waiter, and wakes everybody
///   (`notify_all`): the herd re-checks and the turn's class goes in.
pub struct GroupMutex {
    state: Mutex<GroupState>,
    changed: Condvar,
}

/// The state protected by [`GroupMutex`]'s mutex.
struct GroupState {
    /// The class of the current holders (meaningful while `holders > 0`).
    active: Class,
    /// How many requests hold the lock.
    holders: u32,
    /// Waiting requests per class.
    waiting: [u32; 3],
    /// The class that goes first when the lock empties.
    turn: Class,
}

impl GroupState {
    /// Whether a request of `class` may enter now.
    fn may_enter(&self, class: Class) -> bool {
        if self.holders == 0 {
            return self.turn == class || self.waiting[self.turn.index()] == 0;
        }
        let others_wait = Class::ALL.iter().any(|&c| c != class && self.waiting[c.index()] != 0);
        class != Class::Write && self.active == class && !others_wait
    }
}

impl GroupMutex {
    fn lock_state(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enter(&self, class: Class) {
        let mut s = self.lock_state();
        if !s.may_enter(class) {
            s.waiting[class.index()] += 1;
            while !s.may_enter(class) {
                s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            s.waiting[class.index()] -= 1;
        }
        s.active = class;
        s.holders += 1;
    }

    fn leave(&self, class: Class) {
        let mut s = self.lock_state();
        s.holders -= 1;
        if s.holders == 0 && s.waiting.iter().any(|&w| w != 0) {
            let next = (1..=3).map(|d| Class::ALL[(class.index() + d) % 3]).find(|c| s.waiting[c.index()] != 0);
            s.turn = next.unwrap_or(class);
            drop(s);
            self.changed.notify_all();
        }
    }
}

impl Comparator for GroupMutex {
    const NAME: &'static str = "group-mutex";
    const NATIVE_INTENT: bool = true;

    fn new() -> Self {
        GroupMutex {
            state: Mutex::new(GroupState { active: Class::Read, holders: 0, waiting: [0; 3], turn: Class::Read }),
            changed: Condvar::new(),
        }
    }

    #[inline]
    fn with<R>(&self, class: Class, f: impl FnOnce() -> R) -> R {
        /// Leaves the group lock even if `f` panics.
        struct Leave<'a>(&'a GroupMutex, Class);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.leave(self.1);
            }
        }
        self.enter(class);
        let _leave = Leave(self, class);
        f()
    }
}

/// Something that is run once per lock of a lock set, with the lock's type.
pub trait LockVisitor {
    /// Called once per lock type of the set.
    fn visit<L: Comparator>(&mut self);
}

/// The two-class comparison: ours against what a user would pick today for a
/// workload with an intent class (std and parking_lot with intent = write,
/// and the hand-rolled group lock).
pub fn visit_two_class(v: &mut impl LockVisitor) {
    v.visit::<Ours>();
    v.visit::<Ours<0>>();
    v.visit::<StdRw>();
    v.visit::<ParkingLotRw>();
    v.visit::<GroupMutex>();
}

/// The plain rwlock comparison (read and write only): ours as a
/// `lock_api::RwLock` against std, parking_lot and `ShardedLock`.
pub fn visit_plain(v: &mut impl LockVisitor) {
    v.visit::<Ours>();
    v.visit::<Ours<0>>();
    v.visit::<StdRw>();
    v.visit::<ParkingLotRw>();
    v.visit::<Sharded>();
}

/// The patience sweep: ours at every patience of the Pareto plot (0, 10 µs,
/// 50 µs, 200 µs, 1 ms, 4 ms), and std and parking_lot as single points.
pub fn visit_patience_sweep(v: &mut impl LockVisitor) {
    v.visit::<Ours<0>>();
    v.visit::<Ours<10>>();
    v.visit::<Ours<50>>();
    v.visit::<Ours<200>>();
    v.visit::<Ours<1000>>();
    v.visit::<Ours<4000>>();
    v.visit::<StdRw>();
    v.visit::<ParkingLotRw>();
}

/// Every lock once.
pub fn visit_all(v: &mut impl LockVisitor) {
    v.visit::<Ours>();
    v.visit::<Ours<0>>();
    v.visit::<StdRw>();
    v.visit::<ParkingLotRw>();
    v.visit::<Sharded>();
    v.visit::<GroupMutex>();
}
