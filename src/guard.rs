//! The safe face of the intent mode: an extension trait for
//! `lock_api::RwLock` and the intent guards.

use core::fmt;
use core::marker::PhantomData;
use core::mem::{self, ManuallyDrop};
use core::ops::Deref;
use core::ptr::NonNull;

use lock_api::{GuardSend, RwLock, RwLockWriteGuard};

use crate::{RawIntent, RawIntentDowngrade, RawIntentTimed};

/// The intent-mode methods of a `lock_api::RwLock` whose raw lock implements
/// [`RawIntent`] — in particular of every [`PhaseLock`](crate::PhaseLock).
///
/// Intent holders get shared (`&T`) access, like readers, but exclude readers
/// instead of each other: they are expected to mutate disjoint parts of `T`
/// under finer-grained locks of their own (interior mutability).
///
/// ```
/// use phase_lock::*;
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// // Generic code over any lock_api rwlock with an intent mode.
/// fn bump<R: RawIntent>(lock: &lock_api::RwLock<R, [AtomicU32; 2]>, i: usize) {
///     lock.intent()[i].fetch_add(1, Ordering::Relaxed);
/// }
///
/// let lock = PhaseLock::new([AtomicU32::new(0), AtomicU32::new(0)]);
/// std::thread::scope(|s| {
///     s.spawn(|| bump(&lock, 0));
///     s.spawn(|| bump(&lock, 1));
/// });
/// assert_eq!(lock.read().iter().map(|c| c.load(Ordering::Relaxed)).sum::<u32>(), 2);
/// ```
pub trait RwLockIntentExt<R: RawIntent, T: ?Sized> {
    /// Locks in intent mode, blocking the current thread until it can.
    ///
    /// Returns at once if intent holders hold the lock and nobody waits;
    /// otherwise waits for the intent kind's turn (see the
    /// [fairness contract](crate#fairness)).
    ///
    /// # Panics
    ///
    /// Panics if the raw lock's count of intent holders would overflow (for
    /// the crate's lock, more than 2^25 at once), before the lock is touched.
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// let lock = PhaseLock::new(1);
    /// let a = lock.intent();
    /// let b = lock.intent(); // does not wait for `a`
    /// assert_eq!(*a + *b, 2);
    /// ```
    fn intent(&self) -> RwLockIntentGuard<'_, R, T>;

    /// Attempts to lock in intent mode without blocking; `None` if the
    /// request cannot enter at once (it never queues).
    ///
    /// # Panics
    ///
    /// As [`intent`](Self::intent).
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// let lock = PhaseLock::new(1);
    /// let r = lock.read();
    /// assert!(lock.try_intent().is_none()); // readers exclude intent holders
    /// drop(r);
    /// assert_eq!(lock.try_intent().map(|g| *g), Some(1));
    /// ```
    fn try_intent(&self) -> Option<RwLockIntentGuard<'_, R, T>>;

    /// Attempts to lock in intent mode, waiting at most `timeout`.
    ///
    /// # Panics
    ///
    /// As [`intent`](Self::intent).
    ///
    /// ```
    /// use phase_lock::*;
    /// use std::time::Duration;
    ///
    /// let lock = PhaseLock::new(1);
    /// let w = lock.write();
    /// assert!(lock.try_intent_for(Duration::from_millis(5)).is_none());
    /// drop(w);
    /// assert!(lock.try_intent_for(Duration::from_millis(5)).is_some());
    /// ```
    fn try_intent_for(&self, timeout: R::Duration) -> Option<RwLockIntentGuard<'_, R, T>>
    where
        R: RawIntentTimed;

    /// Attempts to lock in intent mode, waiting until `timeout` at most.
    ///
    /// # Panics
    ///
    /// As [`intent`](Self::intent).
    ///
    /// ```
    /// use phase_lock::*;
    /// use std::time::{Duration, Instant};
    ///
    /// let lock = PhaseLock::new(1);
    /// let r = lock.read();
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// assert!(lock.try_intent_until(deadline).is_none());
    /// assert!(Instant::now() >= deadline);
    /// drop(r);
    /// assert!(lock.try_intent_until(Instant::now() + Duration::from_millis(5)).is_some());
    /// ```
    fn try_intent_until(&self, timeout: R::Instant) -> Option<RwLockIntentGuard<'_, R, T>>
    where
        R: RawIntentTimed;

    /// Whether the lock is held in intent mode (a momentary snapshot).
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// let lock = PhaseLock::new(());
    /// assert!(!lock.is_locked_intent());
    /// let g = lock.intent();
    /// assert!(lock.is_locked_intent() && !lock.is_locked_exclusive());
    /// drop(g);
    /// assert!(!lock.is_locked_intent());
    /// ```
    fn is_locked_intent(&self) -> bool;
}

impl<R: RawIntent, T: ?Sized> RwLockIntentExt<R, T> for RwLock<R, T> {
    #[inline]
    fn intent(&self) -> RwLockIntentGuard<'_, R, T> {
        // SAFETY: `raw` is only used to lock; the guard keeps the state.
        let guard = unsafe { self.raw() }.lock_intent();
        RwLockIntentGuard::new(self, guard)
    }

    #[inline]
    fn try_intent(&self) -> Option<RwLockIntentGuard<'_, R, T>> {
        // SAFETY: as in `intent`.
        let guard = unsafe { self.raw() }.try_lock_intent()?;
        Some(RwLockIntentGuard::new(self, guard))
    }

    #[inline]
    fn try_intent_for(&self, timeout: R::Duration) -> Option<RwLockIntentGuard<'_, R, T>>
    where
        R: RawIntentTimed,
    {
        // SAFETY: as in `intent`.
        let guard = unsafe { self.raw() }.try_lock_intent_for(timeout)?;
        Some(RwLockIntentGuard::new(self, guard))
    }

    #[inline]
    fn try_intent_until(&self, timeout: R::Instant) -> Option<RwLockIntentGuard<'_, R, T>>
    where
        R: RawIntentTimed,
    {
        // SAFETY: as in `intent`.
        let guard = unsafe { self.raw() }.try_lock_intent_until(timeout)?;
        Some(RwLockIntentGuard::new(self, guard))
    }

    #[inline]
    fn is_locked_intent(&self) -> bool {
        // SAFETY: a read-only query of the raw lock.
        unsafe { self.raw() }.is_locked_intent()
    }
}

/// An RAII guard of an intent acquisition; releases it when dropped.
///
/// Dereferences to `&T`. Made by [`RwLockIntentExt::intent`] and its `try_`
/// variants, or by [`WriteGuardIntentExt::downgrade_to_intent`].
///
/// ```
/// use phase_lock::*;
///
/// let lock = PhaseLock::new(vec![1, 2]);
/// let guard: RwLockIntentGuard<'_, RawPhaseLock, Vec<i32>> = lock.intent();
/// assert_eq!(guard.len(), 2);
/// assert!(lock.try_write().is_none());
/// drop(guard); // releases
/// assert!(lock.try_write().is_some());
/// ```
#[clippy::has_significant_drop]
#[must_use = "if unused the lock will immediately unlock"]
pub struct RwLockIntentGuard<'a, R: RawIntent, T: ?Sized> {
    rwlock: &'a RwLock<R, T>,
    marker: PhantomData<&'a T>,
    guard: ManuallyDrop<R::IntentGuard>,
}

impl<'a, R: RawIntent + 'a, T: ?Sized + 'a> RwLockIntentGuard<'a, R, T> {
    fn new(rwlock: &'a RwLock<R, T>, guard: R::IntentGuard) -> Self {
        RwLockIntentGuard { rwlock, marker: PhantomData, guard: ManuallyDrop::new(guard) }
    }

    /// The lock this guard holds.
    ///
    /// An associated function (`RwLockIntentGuard::rwlock(&guard)`), so that
    /// it cannot shadow a method of `T`.
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// let lock = PhaseLock::new(0);
    /// let guard = lock.intent();
    /// assert!(std::ptr::eq(RwLockIntentGuard::rwlock(&guard), &lock));
    /// ```
    pub fn rwlock(s: &Self) -> &'a RwLock<R, T> {
        s.rwlock
    }

    /// Narrows the guard to a component of the locked data.
    ///
    /// An associated function (`RwLockIntentGuard::map(guard, f)`), so that
    /// it cannot shadow a method of `T`. If `f` panics, the guard is dropped
    /// and the lock released.
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// let lock = PhaseLock::new((7, "seven"));
    /// let name = RwLockIntentGuard::map(lock.intent(), |p| &p.1);
    /// assert_eq!(*name, "seven");
    /// assert!(lock.try_read().is_none()); // the intent acquisition is kept
    /// ```
    #[inline]
    pub fn map<U: ?Sized, F>(s: Self, f: F) -> MappedRwLockIntentGuard<'a, R, U>
    where
        F: FnOnce(&T) -> &U,
    {
        narrow_always(s, f)
    }

    /// Narrows the guard to a component of the locked data, or gives the
    /// guard back if `f` returns `None`.
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// let lock = PhaseLock::new(vec![10, 20]);
    /// let guard = RwLockIntentGuard::try_map(lock.intent(), |v| v.get(5)).unwrap_err();
    /// let second = RwLockIntentGuard::try_map(guard, |v| v.get(1)).unwrap();
    /// assert_eq!(*second, 20);
    /// ```
    #[inline]
    pub fn try_map<U: ?Sized, F>(s: Self, f: F) -> Result<MappedRwLockIntentGuard<'a, R, U>, Self>
    where
        F: FnOnce(&T) -> Option<&U>,
    {
        narrow(s, f)
    }
}

impl<'a, R: RawIntent + 'a, T: ?Sized + 'a> Deref for RwLockIntentGuard<'a, R, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the intent acquisition excludes writers, so no `&mut T`
        // exists while this guard lives.
        unsafe { &*self.rwlock.data_ptr() }
    }
}

impl<'a, R: RawIntent + 'a, T: ?Sized + 'a> Drop for RwLockIntentGuard<'a, R, T> {
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

impl<'a, R: RawIntent + 'a, T: fmt::Debug + ?Sized + 'a> fmt::Debug for RwLockIntentGuard<'a, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<'a, R: RawIntent + 'a, T: fmt::Display + ?Sized + 'a> fmt::Display for RwLockIntentGuard<'a, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// An intent guard narrowed to a component of the locked data by
/// [`RwLockIntentGuard::map`]. Releases the intent acquisition when dropped.
///
/// ```
/// use phase_lock::*;
///
/// let lock = PhaseLock::new([1, 2, 3]);
/// let tail: MappedRwLockIntentGuard<'_, RawPhaseLock, [i32]> =
///     RwLockIntentGuard::map(lock.intent(), |a| &a[1..]);
/// assert_eq!(*tail, [2, 3]);
/// drop(tail); // releases
/// assert!(lock.try_write().is_some());
/// ```
#[clippy::has_significant_drop]
#[must_use = "if unused the lock will immediately unlock"]
pub struct MappedRwLockIntentGuard<'a, R: RawIntent, T: ?Sized> {
    raw: &'a R,
    data: NonNull<T>,
    marker: PhantomData<&'a T>,
    guard: ManuallyDrop<R::IntentGuard>,
}

// SAFETY: the guard hands out only `&T`, so moving it to another thread needs
// `T: Sync`; it unlocks through `&R`, which needs `R: Sync`, with state that
// must itself be sendable.
unsafe impl<'a, R: RawIntent + Sync + 'a, T: ?Sized + Sync + 'a> Send for MappedRwLockIntentGuard<'a, R, T> where
    R::IntentGuard: Send
{
}
// SAFETY: sharing the guard shares `&T` and `&R` only.
unsafe impl<'a, R: RawIntent + Sync + 'a, T: ?Sized + Sync + 'a> Sync for MappedRwLockIntentGuard<'a, R, T> where
    R::IntentGuard: Sync
{
}

impl<'a, R: RawIntent + 'a, T: ?Sized + 'a> MappedRwLockIntentGuard<'a, R, T> {
    /// Narrows the guard further.
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// let lock = PhaseLock::new(((1, 2), 3));
    /// let inner = RwLockIntentGuard::map(lock.intent(), |p| &p.0);
    /// let two = MappedRwLockIntentGuard::map(inner, |p| &p.1);
    /// assert_eq!(*two, 2);
    /// ```
    #[inline]
    pub fn map<U: ?Sized, F>(s: Self, f: F) -> MappedRwLockIntentGuard<'a, R, U>
    where
        F: FnOnce(&T) -> &U,
    {
        narrow_always(s, f)
    }

    /// Narrows the guard further, or gives it back if `f` returns `None`.
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// let lock = PhaseLock::new(vec![Some(1), None]);
    /// let v = RwLockIntentGuard::map(lock.intent(), |v| v.as_slice());
    /// let v = MappedRwLockIntentGuard::try_map(v, |v| v[1].as_ref()).unwrap_err();
    /// let one = MappedRwLockIntentGuard::try_map(v, |v| v[0].as_ref()).unwrap();
    /// assert_eq!(*one, 1);
    /// ```
    #[inline]
    pub fn try_map<U: ?Sized, F>(s: Self, f: F) -> Result<MappedRwLockIntentGuard<'a, R, U>, Self>
    where
        F: FnOnce(&T) -> Option<&U>,
    {
        narrow(s, f)
    }
}

impl<'a, R: RawIntent + 'a, T: ?Sized + 'a> Deref for MappedRwLockIntentGuard<'a, R, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: `data` was derived from the locked data while the intent
        // acquisition, which excludes writers, was (and still is) held.
        unsafe { self.data.as_ref() }
    }
}

impl<'a, R: RawIntent + 'a, T: ?Sized + 'a> Drop for MappedRwLockIntentGuard<'a, R, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard owns this intent acquisition and is being dropped.
        unsafe {
            let guard = ManuallyDrop::take(&mut self.guard);
            self.raw.unlock_intent(guard);
        }
    }
}

impl<'a, R: RawIntent + 'a, T: fmt::Debug + ?Sized + 'a> fmt::Debug for MappedRwLockIntentGuard<'a, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// An intent guard that can give up its raw lock and acquisition without
/// releasing them: the one thing `narrow` needs from either guard type.
trait IntoParts<'a, R: RawIntent>: Deref {
    fn into_parts(self) -> (&'a R, R::IntentGuard);
}

impl<'a, R: RawIntent + 'a, T: ?Sized + 'a> IntoParts<'a, R> for RwLockIntentGuard<'a, R, T> {
    fn into_parts(self) -> (&'a R, R::IntentGuard) {
        let mut s = ManuallyDrop::new(self);
        // SAFETY: `s` is never dropped, so the state is taken exactly once.
        let guard = unsafe { ManuallyDrop::take(&mut s.guard) };
        // SAFETY: only used to unlock the acquisition this guard owns.
        (unsafe { s.rwlock.raw() }, guard)
    }
}

impl<'a, R: RawIntent + 'a, T: ?Sized + 'a> IntoParts<'a, R> for MappedRwLockIntentGuard<'a, R, T> {
    fn into_parts(self) -> (&'a R, R::IntentGuard) {
        let mut s = ManuallyDrop::new(self);
        // SAFETY: `s` is never dropped, so the state is taken exactly once.
        (s.raw, unsafe { ManuallyDrop::take(&mut s.guard) })
    }
}

/// The body of both guards' `try_map`: narrow `s` to what `f` picks, keeping
/// the acquisition, or give `s` back.
#[inline]
fn narrow<'a, R, G, U, F>(s: G, f: F) -> Result<MappedRwLockIntentGuard<'a, R, U>, G>
where
    R: RawIntent + 'a,
    G: IntoParts<'a, R>,
    U: ?Sized,
    F: FnOnce(&G::Target) -> Option<&U>,
{
    let Some(data) = f(&*s).map(NonNull::from) else {
        return Err(s);
    };
    let (raw, guard) = s.into_parts();
    Ok(MappedRwLockIntentGuard { raw, data, marker: PhantomData, guard: ManuallyDrop::new(guard) })
}

/// The body of both guards' `map`.
#[inline]
fn narrow_always<'a, R, G, U, F>(s: G, f: F) -> MappedRwLockIntentGuard<'a, R, U>
where
    R: RawIntent + 'a,
    G: IntoParts<'a, R>,
    U: ?Sized,
    F: FnOnce(&G::Target) -> &U,
{
    let data = NonNull::from(f(&*s));
    let (raw, guard) = s.into_parts();
    MappedRwLockIntentGuard { raw, data, marker: PhantomData, guard: ManuallyDrop::new(guard) }
}

/// Downgrading a [`WriteGuard`](crate::WriteGuard) to an intent guard.
///
/// (Downgrading to a read guard is lock_api's `WriteGuard::downgrade`.)
///
/// Implemented for the write guards of every lock whose raw lock has
/// stateless exclusive guards and implements [`RawIntentDowngrade`]: in
/// particular [`PhaseLock`](crate::PhaseLock), [`StrictPhaseLock`](crate::StrictPhaseLock)
/// and every [`PatientLock`](crate::PatientLock).
///
/// ```
/// use phase_lock::*;
///
/// let lock = StrictPhaseLock::new(0);
/// let mut w = lock.write();
/// *w = 7;
/// let i = w.downgrade_to_intent(); // still no reader can enter
/// assert!(lock.try_read().is_none() && lock.try_intent().is_some());
/// assert_eq!(*i, 7);
/// ```
pub trait WriteGuardIntentExt<'a, R: RawIntent, T: ?Sized> {
    /// Atomically turns the write lock into an intent lock: no reader or
    /// writer can enter in between. Waiting intent requests join it unless
    /// readers are waiting too (then it is the readers' turn next, and the
    /// downgraded holder finishes the write phase's turn alone).
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// let lock = PhaseLock::new(0);
    /// let mut w = lock.write();
    /// *w = 1;
    /// let i = WriteGuardIntentExt::downgrade_to_intent(w);
    /// assert_eq!(*i, 1);
    /// assert!(lock.try_write().is_none()); // still held, now in intent mode
    /// assert!(lock.is_locked_intent());
    /// ```
    fn downgrade_to_intent(self) -> RwLockIntentGuard<'a, R, T>;
}

impl<'a, R, T> WriteGuardIntentExt<'a, R, T> for RwLockWriteGuard<'a, R, T>
where
    R: RawIntentDowngrade<ExclusiveGuard = GuardSend> + 'a,
    T: ?Sized + 'a,
{
    #[inline]
    fn downgrade_to_intent(self) -> RwLockIntentGuard<'a, R, T> {
        let rwlock = RwLockWriteGuard::rwlock(&self);
        // The write acquisition moves into the intent guard: the old guard
        // must not release it. Its state is the stateless `GuardSend`.
        mem::forget(self);
        // SAFETY: we own the write acquisition just taken out of the guard.
        let guard = unsafe { rwlock.raw().downgrade_to_intent(GuardSend::new()) };
        RwLockIntentGuard::new(rwlock, guard)
    }
}
