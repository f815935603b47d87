//! The intent (IX) mode as raw traits, in the style of `lock_api`'s.
//!
//! `lock_api::RawRwLock` covers read (shared) and write (exclusive). These
//! traits add the third mode: a shared mode that excludes readers and writers
//! but not other intent holders. Implement them for a raw lock, and
//! [`RwLockIntentExt`](crate::RwLockIntentExt) gives every
//! `lock_api::RwLock` over it the `intent` family of methods.

use lock_api::{RawRwLock, RawRwLockDowngrade, RawRwLockTimed};

/// A raw lock with an intent mode beside read and write.
///
/// # Safety
///
/// Implementations must uphold the [`RawRwLock`] contract and additionally:
/// any number of intent acquisitions may be held at once, never together with
/// a shared (read) or an exclusive (write) acquisition. Locking in intent mode
/// has acquire semantics and unlocking release semantics. Guard state follows
/// the same rules as `RawRwLock`'s: each successful lock returns state for
/// that acquisition, unlocking consumes it, forgetting it must be safe, and a
/// lock operation that unwinds must not leave the caller holding a new
/// acquisition.
///
/// Most code uses the safe [`RwLockIntentExt`](crate::RwLockIntentExt)
/// methods instead; the raw methods are for building other lock types.
///
/// ```
/// use phase_lock::*;
///
/// let raw = RawPhaseLock::INIT;
/// let a = raw.lock_intent();
/// let b = raw.try_lock_intent().expect("intent holders share");
/// assert!(raw.try_lock_shared().is_none()); // but exclude readers…
/// assert!(raw.try_lock_exclusive().is_none()); // …and writers
/// // SAFETY: `a` and `b` are intent acquisitions of `raw`, each released once.
/// unsafe {
///     raw.unlock_intent(a);
///     raw.unlock_intent(b);
/// }
/// assert!(!raw.is_locked());
/// ```
pub unsafe trait RawIntent: RawRwLock {
    /// Per-acquisition state for an intent lock. This type also determines
    /// whether intent guards are `Send` and `Sync`.
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// fn is_send<T: Send>() {}
    /// is_send::<<RawPhaseLock as RawIntent>::IntentGuard>(); // so intent guards may move
    /// ```
    type IntentGuard;

    /// Acquires an intent lock, blocking the current thread until it can.
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// let raw = RawPhaseLock::INIT;
    /// let g = raw.lock_intent();
    /// assert!(raw.is_locked_intent());
    /// // SAFETY: `g` is this thread's intent acquisition of `raw`.
    /// unsafe { raw.unlock_intent(g) };
    /// ```
    fn lock_intent(&self) -> Self::IntentGuard;

    /// Attempts to acquire an intent lock without blocking.
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// let raw = RawPhaseLock::INIT;
    /// let w = raw.lock_exclusive();
    /// assert!(raw.try_lock_intent().is_none());
    /// // SAFETY: `w` is this thread's write acquisition of `raw`.
    /// unsafe { raw.unlock_exclusive(w) };
    /// let g = raw.try_lock_intent().expect("unlocked");
    /// // SAFETY: `g` is this thread's intent acquisition of `raw`.
    /// unsafe { raw.unlock_intent(g) };
    /// ```
    fn try_lock_intent(&self) -> Option<Self::IntentGuard>;

    /// Releases an intent lock.
    ///
    /// # Safety
    ///
    /// Requires the state of an intent acquisition of this lock held in the
    /// current context.
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// let raw = RawPhaseLock::INIT;
    /// let g = raw.lock_intent();
    /// // SAFETY: `g` is this thread's intent acquisition of `raw`, released once.
    /// unsafe { raw.unlock_intent(g) };
    /// assert!(raw.try_lock_exclusive().is_some());
    /// ```
    unsafe fn unlock_intent(&self, guard: Self::IntentGuard);

    /// Whether the lock is currently held in intent mode (a momentary
    /// snapshot that may be stale when it returns).
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// let raw = RawPhaseLock::INIT;
    /// assert!(!raw.is_locked_intent());
    /// let g = raw.lock_intent();
    /// assert!(raw.is_locked_intent() && !raw.is_locked_exclusive());
    /// // SAFETY: `g` is this thread's intent acquisition of `raw`.
    /// unsafe { raw.unlock_intent(g) };
    /// ```
    fn is_locked_intent(&self) -> bool;
}

/// Intent locking with timeouts.
///
/// # Safety
///
/// Implementations uphold the [`RawIntent`] contract for these methods.
///
/// ```
/// use phase_lock::*;
/// use std::time::Duration;
///
/// let raw = RawPhaseLock::INIT;
/// let r = raw.lock_shared();
/// assert!(raw.try_lock_intent_for(Duration::from_millis(2)).is_none());
/// // SAFETY: `r` is this thread's read acquisition of `raw`.
/// unsafe { raw.unlock_shared(r) };
/// ```
pub unsafe trait RawIntentTimed: RawIntent + RawRwLockTimed {
    /// Attempts to acquire an intent lock until `timeout` has elapsed.
    ///
    /// A successful call may return early; an unsuccessful one does not
    /// return before the timeout, and may return later.
    ///
    /// ```
    /// use phase_lock::*;
    /// use std::time::{Duration, Instant};
    ///
    /// let raw = RawPhaseLock::INIT;
    /// let w = raw.lock_exclusive();
    /// let start = Instant::now();
    /// assert!(raw.try_lock_intent_for(Duration::from_millis(5)).is_none());
    /// assert!(start.elapsed() >= Duration::from_millis(5));
    /// // SAFETY: `w` is this thread's write acquisition of `raw`.
    /// unsafe { raw.unlock_exclusive(w) };
    /// let g = raw.try_lock_intent_for(Duration::from_millis(5)).expect("unlocked");
    /// // SAFETY: `g` is this thread's intent acquisition of `raw`.
    /// unsafe { raw.unlock_intent(g) };
    /// ```
    fn try_lock_intent_for(&self, timeout: Self::Duration) -> Option<Self::IntentGuard>;

    /// Attempts to acquire an intent lock until `timeout` is reached.
    ///
    /// A successful call may return early; an unsuccessful one does not
    /// return before the timeout, and may return later.
    ///
    /// ```
    /// use phase_lock::*;
    /// use std::time::{Duration, Instant};
    ///
    /// let raw = RawPhaseLock::INIT;
    /// let r = raw.lock_shared();
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// assert!(raw.try_lock_intent_until(deadline).is_none());
    /// assert!(Instant::now() >= deadline);
    /// // SAFETY: `r` is this thread's read acquisition of `raw`.
    /// unsafe { raw.unlock_shared(r) };
    /// ```
    fn try_lock_intent_until(&self, timeout: Self::Instant) -> Option<Self::IntentGuard>;
}

/// Atomically downgrading a write lock to an intent lock.
///
/// # Safety
///
/// Implementations uphold the [`RawIntent`] contract, and the downgrade lets
/// no reader or writer in between.
///
/// ```
/// use phase_lock::*;
///
/// let raw = RawPhaseLock::INIT;
/// let w = raw.lock_exclusive();
/// // SAFETY: `w` is this thread's write acquisition of `raw`.
/// let i = unsafe { raw.downgrade_to_intent(w) };
/// assert!(raw.is_locked_intent() && !raw.is_locked_exclusive());
/// // SAFETY: the downgrade turned it into an intent acquisition.
/// unsafe { raw.unlock_intent(i) };
/// ```
pub unsafe trait RawIntentDowngrade: RawIntent + RawRwLockDowngrade {
    /// Turns an exclusive acquisition into an intent acquisition without
    /// letting any reader or writer in meanwhile.
    ///
    /// # Safety
    ///
    /// Requires the state of an exclusive acquisition of this lock held in
    /// the current context.
    ///
    /// ```
    /// use phase_lock::*;
    ///
    /// let raw = RawPhaseLock::INIT;
    /// let w = raw.lock_exclusive();
    /// // SAFETY: `w` is this thread's write acquisition of `raw`.
    /// let i = unsafe { raw.downgrade_to_intent(w) };
    /// let other = raw.try_lock_intent().expect("intent holders may join"); // readers and writers may not
    /// assert!(raw.try_lock_shared().is_none());
    /// // SAFETY: both are intent acquisitions of `raw`, each released once.
    /// unsafe {
    ///     raw.unlock_intent(i);
    ///     raw.unlock_intent(other);
    /// }
    /// ```
    unsafe fn downgrade_to_intent(&self, guard: Self::ExclusiveGuard) -> Self::IntentGuard;
}
