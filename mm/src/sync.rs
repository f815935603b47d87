//! The one place in this crate that names `core::sync::atomic` or `loom`
//! (the pattern of the lock crate's own shim): building with
//! `RUSTFLAGS="--cfg loom"` swaps every atomic of the model onto loom's.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// A hint inside a busy-wait loop; under loom a spin must yield, or the
/// model checker would explore an unbounded number of identical iterations.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}
