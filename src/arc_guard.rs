//! Owned intent guards (feature `arc_lock`): the intent mode's counterpart of
//! lock_api's `read_arc` / `write_arc`.
//!
//! A guard made here keeps the lock alive through an `Arc` instead of
//! borrowing it, so it has no lifetime: it is `'static` whenever `T` is, and
//! can be stored in a struct, returned from a function or moved into a
//! spawned thread. Everything is generic over the raw lock `R`, so every
//! `lock_api::RwLock<R, T>` whose `R` implements [`RawIntent`] gets it.

use core::fmt;
use core::mem::ManuallyDrop;
use core::ops::Deref;
use std::sync::Arc;

use lock_api::RwLock;

use crate::{RawIntent, RawIntentTimed, RawPhaseLock};

/// An owned intent guard of a [`PhaseLock`](crate::PhaseLock) in an `Arc`;
/// dereferences to `&T`.
///
/// ```
/// use phase_lock::*;
/// use std::sync::Arc;
///
/// let lock = Arc::new(PhaseLock::new(7));
/// let guard: ArcIntentGuard<i32> = lock.intent_arc();
/// assert_eq!(*guard, 7);
/// ```
pub type ArcIntentGuard<T> = ArcRwLockIntentGuard<RawPhaseLock, T>;

/// An owned read guard of a [`PhaseLock`](crate::PhaseLock) in an `Arc`
/// (lock_api's `read_arc`); dereferences to `&T`.
///
/// ```
/// use phase_lock::*;
/// use std::sync::Arc;
///
/// let lock = Arc::new(PhaseLock::new(7));
/// let guard: ArcReadGuard<i32> = lock.read_arc();
/// assert_eq!(*guard, 7);
/// ```
pub type ArcReadGuard<T> = lock_api::ArcRwLockReadGuard<RawPhaseLock, T>;

/// An owned write guard of a [`PhaseLock`](crate::PhaseLock) in an `Arc`
/// (lock_api's `write_arc`); dereferences to `&mut T`.
///
/// ```
/// use phase_lock::*;
/// use std::sync::Arc;
///
/// let lock = Arc::new(PhaseLock::new(7));
/// let mut guard: ArcWriteGuard<i32> = lock.write_arc();
/// *guard += 1;
/// drop(guard);
/// assert_eq!(*lock.read(), 8);
/// ```
pub type ArcWriteGuard<T> = lock_api::ArcRwLockWriteGuard<RawPhaseLock, T>;

/// The intent-mode methods of a `lock_api::RwLock` held in an `Arc`: like
/// [`RwLockIntentExt`](crate::RwLockIntentExt)'s, but the guard owns a clone
/// of the `Arc` instead of borrowing the lock.
///
/// Implemented for `Arc<lock_api::RwLock<R, T>>` for every raw lock `R` that
/// implements [`RawIntent`] (the timed methods where `R` also implements
/// [`RawIntentTimed`]), so every patience of the crate's lock has it.
///
/// ```
/// use phase_lock::*;
/// use std::sync::Arc;
///
/// let lock = Arc::new(PhaseLock::new(vec![1, 2, 3]));
/// let guard = lock.intent_arc(); // no borrow of `lock`…
/// drop(lock); // …so the handle can go; the guard keeps the lock alive
/// let sum = std::thread::spawn(move || guard.iter().sum::<i32>()).join().unwrap();
/// assert_eq!(sum, 6);
/// ```
pub trait ArcRwLockIntentExt<R: RawIntent, T: ?Sized> {
    /// Locks in intent mode, blocking the current thread until it can, and
    /// returns an owned guard.
    ///
    /// Waits exactly as [`RwLockIntentExt::intent`](crate::RwLockIntentExt::intent)
    /// does.
    ///
    /// # Panics
    ///
    /// Panics if the raw lock's count of intent holders would overflow (for
    /// the crate's lock, more than 2^25 at once), before the lock is touched.
    ///
    /// ```
    /// use phase_lock::*;
    /// use std::sync::Arc;
    ///
    /// let lock = Arc::new(PhaseLock::new(1));
    /// let a = lock.intent_arc();
    /// let b = lock.intent_arc(); // intent holders share the lock
    /// assert!(lock.try_read_arc().is_none()); // but exclude readers
    /// assert_eq!(*a + *b, 2);
    /// ```
    fn intent_arc(&self) -> ArcRwLockIntentGuard<R, T>;

    /// Attempts to lock in intent mode without blocking; `None` if the
    /// request cannot enter at once (it never queues).
    ///
    /// # Panics
    ///
    /// As [`intent_arc`](Self::intent_arc).
    ///
    /// ```
    /// use phase_lock::*;
    /// use std::sync::Arc;
    ///
    /// let lock = Arc::new(PhaseLock::new(1));
    /// let w = lock.write_arc();
    /// assert!(lock.try_intent_arc().is_none());
    /// drop(w);
    /// assert_eq!(lock.try_intent_arc().map(|g| *g), Some(1));
    /// ```
    fn try_intent_arc(&self) -> Option<ArcRwLockIntentGuard<R, T>>;

    /// Attempts to lock in intent mode, waiting at most `timeout`.
    ///
    /// # Panics
    ///
    /// As [`intent_arc`](Self::intent_arc).
    ///
    /// ```
    /// use phase_lock::*;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let lock = Arc::new(PhaseLock::new(1));
    /// let r = lock.read_arc();
    /// assert!(lock.try_intent_arc_for(Duration::from_millis(5)).is_none());
    /// drop(r);
    /// assert!(lock.try_intent_arc_for(Duration::from_millis(5)).is_some());
    /// ```
    fn try_intent_arc_for(&self, timeout: R::Duration) -> Option<ArcRwLockIntentGuard<R, T>>
    where
        R: RawIntentTimed;

    /// Attempts to lock in intent mode, waiting until `timeout` at most.
    ///
    /// # Panics
    ///
    /// As [`intent_arc`](Self::intent_arc).
    ///
    /// ```
    /// use phase_lock::*;
    /// use std::{sync::Arc, time::{Duration, Instant}};
    ///
    /// let lock = Arc::new(PhaseLock::new(1));
    /// let w = lock.write_arc();
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// assert!(lock.try_intent_arc_until(deadline).is_none());
    /// assert!(Instant::now() >= deadline);
    /// drop(w);
    /// assert!(lock.try_intent_arc_until(Instant::now() + Duration::from_millis(5)).is_some());
    /// ```
    fn try_intent_arc_until(&self, timeout: R::Instant) -> Option<ArcRwLockIntentGuard<R, T>>
    where
        R: RawIntentTimed;
}

impl<R: RawIntent, T: ?Sized> ArcRwLockIntentExt<R, T> for Arc<RwLock<R, T>> {
    #[inline]
    fn intent_arc(&self) -> ArcRwLockIntentGuard<R, T> {
        // SAFETY: `raw` is only used to lock; the guard keeps the state.
        let guard = unsafe { self.raw() }.lock_intent();
        ArcRwLockIntentGuard::new(Arc::clone(self), guard)
    }

    #[inline]
    fn try_intent_arc(&self) -> Option<ArcRwLockIntentGuard<R, T>> {
        // SAFETY: as in `intent_arc`.
        let guard = unsafe { self.raw() }.try_lock_intent()?;
        Some(ArcRwLockIntentGuard::new(Arc::clone(self), guard))
    }

    #[inline]
    fn try_intent_arc_for(&self, timeout: R::Duration) -> Option<ArcRwLockIntentGuard<R, T>>
    where
        R: RawIntentTimed,
    {
        // SAFETY: as in `intent_arc`.
        let guard = unsafe { self.raw() }.try_lock_intent_for(timeout)?;
        Some(ArcRwLockIntentGuard::new(Arc::clone(self), guard))
    }

    #[inline]
    fn try_intent_arc_until(&self, timeout: R::Instant) -> Option<ArcRwLockIntentGuard<R, T>>
    where
        R: RawIntentTimed,
    {
        // SAFETY: as in `intent_arc`.
        let guard = unsafe { self.raw() }.try_lock_intent_until(timeout)?;
        Some(ArcRwLockIntentGuard::new(Arc::clone(self), guard))
    }
}

/// An owned RAII guard of an intent acquisition; releases it when dropped.
///
/// Made by [`ArcRwLockIntentExt::intent_arc`] and its `try_` variants. It
/// holds a clone of the lock's `Arc`, so it borrows nothing and is `'static`
/// when `T` is. Dereferences to `&T`.
///
/// It is `Send` and `Sync` under the same conditions as lock_api's
/// `ArcRwLockReadGuard`, with the raw lock's
/// [`IntentGuard`](RawIntent::IntentGuard) state type deciding in place of
/// its shared-guard state: for the crate's lock ([`SharedHold`](crate::SharedHold), `Send + Sync`) that means
/// whenever `T: Send + Sync`.
///
/// ```
/// use phase_lock::*;
/// use std::sync::Arc;
///
/// fn keep(g: ArcRwLockIntentGuard<RawPhaseLock, String>) -> impl Send + 'static { g }
///
/// let lock = Arc::new(PhaseLock::new(String::from("held")));
/// let kept = keep(lock.intent_arc());
/// assert!(lock.try_read().is_none());
/// drop(kept);
/// assert!(lock.try_read().is_some());
/// ```
///
/// A guard over data that is not `Sync` cannot cross threads:
///
/// ```compile_fail
/// use phase_lock::*;
/// use std::{cell::Cell, sync::Arc};
///
/// let lock = Arc::new(PhaseLock::new(Cell::new(0)));
/// let guard = lock.intent_arc();
/// std::thread::spawn(move || guard.get()); // error: `Cell<i32>` is not `Sync`
/// ```
#[clippy::has_significant_drop]
#[must_use = "if unused the lock will immediately unlock"]
pub struct ArcRwLockIntentGuard<R: RawIntent, T: ?Sized> {
    // Send/Sync are the auto traits of these two fields: `Arc<RwLock<R, T>>`
    // (R: Send + Sync, T: Send + Sync) and the raw lock's intent state.
    guard: ManuallyDrop<R::IntentGuard>,
    rwlock: Arc<RwLock<R, T>>,
}

impl<R: RawIntent, T: ?Sized> ArcRwLockIntentGuard<R, T> {
    fn new(rwlock: Arc<RwLock<R, T>>, guard: R::IntentGuard) -> Self {
        ArcRwLockIntentGuard { guard: ManuallyDrop::new(guard), rwlock }
    }

    /// The `Arc` of the lock this guard holds.
    ///
    /// An associated function (`ArcRwLockIntentGuard::rwlock(&guard)`), so
    /// that it cannot shadow a method of `T`.
    ///
    /// ```
    /// use phase_lock::*;
    /// use std::sync::Arc;
    ///
    /// let lock = Arc::new(PhaseLock::new(0));
    /// let guard = lock.intent_arc();
    /// assert!(Arc::ptr_eq(ArcRwLockIntentGuard::rwlock(&guard), &lock));
    /// ```
    pub fn rwlock(s: &Self) -> &Arc<RwLock<R, T>> {
        &s.rwlock
    }

    /// Releases the intent acquisition and returns the guard's `Arc`.
    ///
    /// ```
    /// use phase_lock::*;
    /// use std::sync::Arc;
    ///
    /// let guard = Arc::new(PhaseLock::new(0)).intent_arc();
    /// let lock = ArcRwLockIntentGuard::into_arc(guard);
    /// assert!(lock.try_write().is_some());
    /// ```
    #[inline]
    pub fn into_arc(s: Self) -> Arc<RwLock<R, T>> {
        let rwlock = Arc::clone(&s.rwlock);
        drop(s);
        rwlock
    }
}

impl<R: RawIntent, T: ?Sized> Deref for ArcRwLockIntentGuard<R, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the intent acquisition excludes writers, so no `&mut T`
        // exists while this guard lives, and the `Arc` keeps the data alive.
        unsafe { &*self.rwlock.data_ptr() }
    }
}

impl<R: RawIntent, T: ?Sized> Drop for ArcRwLockIntentGuard<R, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard owns this intent acquisition and is being dropped,
        // so the state is taken once.
        unsafe {
            let guard = ManuallyDrop::take(&mut self.guard);
            self.rwlock.raw().unlock_intent(guard);
        }
    }
}

impl<R: RawIntent, T: fmt::Debug + ?Sized> fmt::Debug for ArcRwLockIntentGuard<R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<R: RawIntent, T: fmt::Display + ?Sized> fmt::Display for ArcRwLockIntentGuard<R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
