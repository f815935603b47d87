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
pub unsafe trait RawIntent: RawRwLock {
    /// Per-acquisition state for an intent lock. This type also determines
    /// whether intent guards are `Send` and `Sync`.
    type IntentGuard;

    /// Acquires an intent lock, blocking the current thread until it can.
    fn lock_intent(&self) -> Self::IntentGuard;

    /// Attempts to acquire an intent lock without blocking.
    fn try_lock_intent(&self) -> Option<Self::IntentGuard>;

    /// Releases an intent lock.
    ///
    /// # Safety
    ///
    /// Requires the state of an intent acquisition of this lock held in the
    /// current context.
    unsafe fn unlock_intent(&self, guard: Self::IntentGuard);

    /// Whether the lock is currently held in intent mode (a momentary
    /// snapshot that may be stale when it returns).
    fn is_locked_intent(&self) -> bool;
}

/// Intent locking with timeouts.
///
/// # Safety
///
/// Implementations uphold the [`RawIntent`] contract for these methods.
pub unsafe trait RawIntentTimed: RawIntent + RawRwLockTimed {
    /// Attempts to acquire an intent lock until `timeout` has elapsed.
    ///
    /// A successful call may return early; an unsuccessful one does not
    /// return before the timeout, and may return later.
    fn try_lock_intent_for(&self, timeout: Self::Duration) -> Option<Self::IntentGuard>;

    /// Attempts to acquire an intent lock until `timeout` is reached.
    ///
    /// A successful call may return early; an unsuccessful one does not
    /// return before the timeout, and may return later.
    fn try_lock_intent_until(&self, timeout: Self::Instant) -> Option<Self::IntentGuard>;
}

/// Atomically downgrading a write lock to an intent lock.
///
/// # Safety
///
/// Implementations uphold the [`RawIntent`] contract, and the downgrade lets
/// no reader or writer in between.
pub unsafe trait RawIntentDowngrade: RawIntent + RawRwLockDowngrade {
    /// Turns an exclusive acquisition into an intent acquisition without
    /// letting any reader or writer in meanwhile.
    ///
    /// # Safety
    ///
    /// Requires the state of an exclusive acquisition of this lock held in
    /// the current context.
    unsafe fn downgrade_to_intent(&self, guard: Self::ExclusiveGuard) -> Self::IntentGuard;
}
