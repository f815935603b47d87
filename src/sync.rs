//! The one place that names `core::sync::atomic`, `std::thread` or `loom`.
//!
//! Every atomic, every spin hint and every thread handle used by the lock goes
//! through this module, so that building with `RUSTFLAGS="--cfg loom"` swaps the
//! whole crate onto loom's model-checked primitives (the pattern crossbeam and
//! tokio use). Nothing else in the crate may import atomics directly.

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

// Thread handles, used by the portable parker and by the loom parker.
#[cfg(loom)]
pub(crate) use loom::thread::{Thread, current as current_thread, park};
#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::thread::{Thread, current as current_thread, park_timeout};

/// A hint inside a busy-wait loop.
///
/// Under loom a spin must yield, or the model checker would explore an
/// unbounded number of identical iterations.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Gives the rest of this time slice to another runnable thread.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Builds an atomic in a `const` context.
///
/// loom's atomics cannot be built in `const` contexts, so under loom the
/// `RawRwLock::INIT` constant is unavailable and the lock must be built with
/// `RawPhaseLock::new()` instead (see `raw.rs`).
#[cfg(not(loom))]
pub(crate) const fn const_u64(v: u64) -> AtomicU64 {
    AtomicU64::new(v)
}

/// See [`const_u64`].
#[cfg(not(loom))]
pub(crate) const fn const_ptr<T>() -> AtomicPtr<T> {
    AtomicPtr::new(core::ptr::null_mut())
}

/// A cell for data guarded by the lock's queue lock (see `queue.rs`).
///
/// Outside loom it is a bare `UnsafeCell`; under loom it is loom's, which
/// checks that every access is ordered by the queue lock as claimed.
pub(crate) struct QCell<T> {
    #[cfg(not(loom))]
    cell: core::cell::UnsafeCell<T>,
    #[cfg(loom)]
    cell: loom::cell::UnsafeCell<T>,
}

impl<T> QCell<T> {
    /// A new cell.
    pub(crate) fn new(v: T) -> Self {
        QCell {
            #[cfg(not(loom))]
            cell: core::cell::UnsafeCell::new(v),
            #[cfg(loom)]
            cell: loom::cell::UnsafeCell::new(v),
        }
    }

    /// Runs `f` on the contents.
    ///
    /// # Safety
    ///
    /// The caller holds the lock that guards this cell, and `f` does not
    /// reach this cell again.
    #[inline]
    pub(crate) unsafe fn with_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        #[cfg(not(loom))]
        // SAFETY: exclusive access by the caller's contract.
        return f(unsafe { &mut *self.cell.get() });
        #[cfg(loom)]
        // SAFETY: exclusive access by the caller's contract.
        return self.cell.with_mut(|p| f(unsafe { &mut *p }));
    }
}

/// Memory fences (used by `mm`'s reclamation handshakes).
#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use core::sync::atomic::fence;
#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::fence;
