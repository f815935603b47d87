//! The one place that names `core::sync::atomic`, `std::thread`, `loom` or
//! `shuttle`.
//!
//! Every atomic, every spin hint and every thread handle used by the lock goes
//! through this module, so that building with
//! `RUSTFLAGS="--cfg phase_lock_loom"` swaps the whole crate onto loom's
//! model-checked primitives, and `RUSTFLAGS="--cfg phase_lock_shuttle"` onto
//! shuttle's randomized scheduler (the pattern crossbeam and tokio use).
//! Nothing else in the crate may import atomics directly. Either cfg also
//! sets `phase_lock_model` (see `build.rs`), which the rest of the crate
//! names for what the two checkers share: no clock, small tables, parking
//! through thread handles. The cfgs are namespaced, as crossbeam's
//! `crossbeam_loom` is: a dependent that builds its own tests with
//! `--cfg loom` (or `--cfg shuttle`) gets this crate unchanged, on std's
//! atomics (CI checks it).

#[cfg(all(phase_lock_loom, phase_lock_shuttle))]
compile_error!("build phase-lock under one model checker at a time: phase_lock_loom or phase_lock_shuttle");

#[cfg(not(phase_lock_model))]
#[allow(unused_imports)]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(phase_lock_loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(phase_lock_shuttle)]
#[allow(unused_imports)]
pub(crate) use shuttle::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

// Thread handles, used by the portable parker and by the models' parker.
#[cfg(phase_lock_loom)]
pub(crate) use loom::thread::{Thread, current as current_thread, park};
#[cfg(phase_lock_shuttle)]
pub(crate) use shuttle::thread::{Thread, current as current_thread, park};
#[cfg(not(phase_lock_model))]
#[allow(unused_imports)]
pub(crate) use std::thread::{Thread, current as current_thread, park_timeout};

/// A hint inside a busy-wait loop.
///
/// Under a model checker a spin must yield, or the checker would explore an
/// unbounded number of identical iterations (or, under shuttle, schedule the
/// spinning thread forever).
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(phase_lock_model))]
    core::hint::spin_loop();
    #[cfg(phase_lock_model)]
    yield_now();
}

/// Gives the rest of this time slice to another runnable thread.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(phase_lock_model))]
    std::thread::yield_now();
    #[cfg(phase_lock_loom)]
    loom::thread::yield_now();
    #[cfg(phase_lock_shuttle)]
    shuttle::thread::yield_now();
}

/// How many more turns (yields) a model's timed sleep lasts before its
/// timer fires (park.rs). loom: none; it explores every schedule around
/// that one turn. shuttle: 0 to 3, drawn from the schedule's own random
/// stream (so a failing schedule replays), so that a deadline or a patience
/// runs out after whatever the other threads do in a few steps.
#[cfg(phase_lock_model)]
pub(crate) fn timer_turns() -> u32 {
    #[cfg(phase_lock_loom)]
    return 0;
    #[cfg(phase_lock_shuttle)]
    {
        use shuttle::rand::Rng;
        shuttle::rand::thread_rng().gen_range(0..4)
    }
}

/// Builds an atomic in a `const` context.
///
/// loom's atomics cannot be built in `const` contexts, so under loom the
/// `RawRwLock::INIT` constant is unavailable and the lock must be built with
/// `RawPhaseLock::new()` instead (see `raw.rs`).
#[cfg(not(phase_lock_loom))]
pub(crate) const fn const_u64(v: u64) -> AtomicU64 {
    AtomicU64::new(v)
}

/// See [`const_u64`].
#[cfg(not(phase_lock_loom))]
pub(crate) const fn const_ptr<T>() -> AtomicPtr<T> {
    AtomicPtr::new(core::ptr::null_mut())
}

/// shuttle model hook (`phase_lock::set_queued_hook_for_model`): the
/// function the calling thread's requests run as they queue, with the queue
/// lock held, so that a model can note what had happened by then (the
/// shuttle models check the phase bound, which counts from queueing).
#[cfg(phase_lock_shuttle)]
mod queued_hook {
    use std::cell::Cell;

    shuttle::thread_local! {
        static HOOK: Cell<Option<fn()>> = const { Cell::new(None) };
    }

    /// Sets (or, with `None`, clears) the calling thread's hook.
    pub fn set_queued_hook_for_model(hook: Option<fn()>) {
        HOOK.with(|h| h.set(hook));
    }

    /// Runs the calling thread's hook, if it set one.
    pub(crate) fn queued() {
        if let Some(f) = HOOK.with(|h| h.get()) {
            f();
        }
    }
}
#[cfg(phase_lock_shuttle)]
pub(crate) use queued_hook::queued;
#[cfg(phase_lock_shuttle)]
pub use queued_hook::set_queued_hook_for_model;

/// A cell for data guarded by the lock's queue lock (see `queue.rs`).
///
/// Outside loom it is a bare `UnsafeCell`; under loom it is loom's, which
/// checks that every access is ordered by the queue lock as claimed.
pub(crate) struct QCell<T> {
    #[cfg(not(phase_lock_loom))]
    cell: core::cell::UnsafeCell<T>,
    #[cfg(phase_lock_loom)]
    cell: loom::cell::UnsafeCell<T>,
}

impl<T> QCell<T> {
    /// A new cell.
    pub(crate) fn new(v: T) -> Self {
        QCell {
            #[cfg(not(phase_lock_loom))]
            cell: core::cell::UnsafeCell::new(v),
            #[cfg(phase_lock_loom)]
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
        #[cfg(not(phase_lock_loom))]
        // SAFETY: exclusive access by the caller's contract.
        return f(unsafe { &mut *self.cell.get() });
        #[cfg(phase_lock_loom)]
        // SAFETY: exclusive access by the caller's contract.
        return self.cell.with_mut(|p| f(unsafe { &mut *p }));
    }
}

/// The store→load fence of the bias handshake (bias.rs): a publishing reader
/// and a revoking thread each run it between their write and their read.
///
/// Outside loom it compiles to nothing: both sides already use `SeqCst` for
/// the write (an RMW) and the read, and sequentially consistent operations
/// alone forbid the outcome in which neither side sees the other's write (on
/// x86 the RMW is a locked instruction, a full barrier). loom treats `SeqCst`
/// *accesses* as acquire/release only, but models `SeqCst` *fences* exactly,
/// so under loom the fence is real: the model checks the handshake in the
/// form loom can reason about, and removing this fence there is a bug the
/// models catch.
#[inline(always)]
pub(crate) fn dekker_fence() {
    #[cfg(phase_lock_loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// A number that tells the calling thread apart from every other live
/// thread, for hashing into the bias slot table.
///
/// Outside the models: the address of a thread-local byte (one `lea` off
/// the thread pointer, no registration, no destructor). Under loom: loom's
/// thread number, so that the slot a thread hashes to is the same in every
/// explored execution. Under shuttle, whose threads share one OS thread (and
/// so its thread-locals): shuttle's thread number.
#[inline]
pub(crate) fn thread_token() -> usize {
    #[cfg(not(phase_lock_model))]
    {
        std::thread_local! { static TOKEN: u8 = const { 0 }; }
        TOKEN.with(|t| t as *const u8 as usize)
    }
    #[cfg(phase_lock_loom)]
    {
        // loom prints thread ids as `ThreadId(n)`; `n` is assigned in spawn
        // order, the same in every execution.
        let id = format!("{:?}", loom::thread::current().id());
        id.trim_start_matches("ThreadId(").trim_end_matches(')').parse().unwrap_or(0)
    }
    #[cfg(phase_lock_shuttle)]
    {
        usize::from(shuttle::thread::current().id())
    }
}

/// The process-wide bias slot table (bias.rs): `N` words, 128-byte aligned.
#[repr(align(128))]
pub(crate) struct SlotTable<const N: usize>(pub(crate) [AtomicUsize; N]);

#[cfg(not(phase_lock_model))]
impl<const N: usize> SlotTable<N> {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        SlotTable([const { AtomicUsize::new(0) }; N])
    }
}

#[cfg(phase_lock_model)]
impl<const N: usize> SlotTable<N> {
    /// An empty table.
    pub(crate) fn new() -> Self {
        SlotTable(core::array::from_fn(|_| AtomicUsize::new(0)))
    }
}

/// Defines `fn $name() -> &'static SlotTable<$n>`: a plain `static` outside
/// the models, the checker's `lazy_static!` (rebuilt for every explored
/// execution) under one.
macro_rules! slot_table {
    ($name:ident, $n:expr) => {
        #[cfg(not(phase_lock_model))]
        #[inline(always)]
        fn $name() -> &'static $crate::sync::SlotTable<{ $n }> {
            static TABLE: $crate::sync::SlotTable<{ $n }> = $crate::sync::SlotTable::new();
            &TABLE
        }
        #[cfg(phase_lock_loom)]
        fn $name() -> &'static $crate::sync::SlotTable<{ $n }> {
            loom::lazy_static! {
                static ref TABLE: $crate::sync::SlotTable<{ $n }> = $crate::sync::SlotTable::new();
            }
            &TABLE
        }
        #[cfg(phase_lock_shuttle)]
        fn $name() -> &'static $crate::sync::SlotTable<{ $n }> {
            shuttle::lazy_static! {
                static ref TABLE: $crate::sync::SlotTable<{ $n }> = $crate::sync::SlotTable::new();
            }
            &TABLE
        }
    };
}
pub(crate) use slot_table;
