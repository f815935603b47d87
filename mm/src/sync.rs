//! The one place in this crate that names `core::sync::atomic` or `loom`
//! (the pattern of the lock crate's own shim): building with
//! `RUSTFLAGS="--cfg phase_lock_loom"` swaps every atomic of the model onto loom's.

#[cfg(not(phase_lock_loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
#[cfg(phase_lock_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// A `PhaseLock` with the default patience: the model's own small locks
/// (deferred lists, page cache, rmap).
pub(crate) fn new_lock<T>(v: T) -> phase_lock::PhaseLock<T> {
    lock_api::RwLock::from_raw(phase_lock::RawPhaseLock::new(), v)
}

/// A hint inside a busy-wait loop; under loom a spin must yield, or the
/// model checker would explore an unbounded number of identical iterations.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(phase_lock_loom))]
    core::hint::spin_loop();
    #[cfg(phase_lock_loom)]
    loom::thread::yield_now();
}

#[cfg(not(phase_lock_loom))]
pub(crate) use core::sync::atomic::AtomicPtr;
#[cfg(phase_lock_loom)]
pub(crate) use loom::sync::atomic::AtomicPtr;

/// A callback queued behind a grace period.
pub(crate) type RcuCallback = Box<dyn FnOnce() + Send>;

/// RCU for [`Strategy::PerVma`](crate::Strategy::PerVma): read-side sections
/// ([`Rcu::read`]) and callbacks ([`Rcu::call`]) that run only after every
/// section that had begun when they were queued has ended.
///
/// Outside loom it is crossbeam-epoch's global collector: a section is a
/// pinned epoch, a callback deferred garbage, flushed to the global queue
/// at once so that any thread can run it. Under loom, whose threads share
/// one OS thread (crossbeam-epoch keeps its state in thread locals), a
/// stand-in with the same contract: a count of readers, and callbacks run
/// when a collector, after taking them, sees the count at zero (Dekker:
/// SeqCst fences on both sides).
pub(crate) struct Rcu {
    #[cfg(phase_lock_loom)]
    readers: AtomicU64,
    #[cfg(phase_lock_loom)]
    queued: loom::sync::Mutex<Vec<RcuCallback>>,
}

/// A read-side section of an [`Rcu`]: what a callback queued while it lasts
/// waits for.
pub(crate) struct RcuRead<'a> {
    #[cfg(not(phase_lock_loom))]
    _pin: crossbeam_epoch::Guard,
    #[cfg(not(phase_lock_loom))]
    _rcu: core::marker::PhantomData<&'a Rcu>,
    #[cfg(phase_lock_loom)]
    rcu: &'a Rcu,
}

impl Rcu {
    pub(crate) fn new() -> Rcu {
        Rcu {
            #[cfg(phase_lock_loom)]
            readers: AtomicU64::new(0),
            #[cfg(phase_lock_loom)]
            queued: loom::sync::Mutex::new(Vec::new()),
        }
    }

    /// Enters a read-side section (`rcu_read_lock`).
    #[inline]
    pub(crate) fn read(&self) -> RcuRead<'_> {
        #[cfg(not(phase_lock_loom))]
        {
            RcuRead { _pin: crossbeam_epoch::pin(), _rcu: core::marker::PhantomData }
        }
        #[cfg(phase_lock_loom)]
        {
            // SeqCst RMW and fence: Dekker with `collect` (the reader's
            // loads of page-table entries come after this).
            self.readers.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            RcuRead { rcu: self }
        }
    }

    /// Queues `f` to run after a grace period (`call_rcu`).
    pub(crate) fn call(&self, f: RcuCallback) {
        #[cfg(not(phase_lock_loom))]
        {
            let pin = crossbeam_epoch::pin();
            pin.defer(f);
            // Into the global queue now: a thread that goes idle must not
            // keep its callbacks in its local bag.
            pin.flush();
        }
        #[cfg(phase_lock_loom)]
        {
            self.queued.lock().unwrap().push(f);
            self.collect();
        }
    }

    /// Runs what callbacks it can now, trying up to `rounds` times while
    /// `more()` says some are still queued. Never waits for a reader.
    pub(crate) fn expedite(&self, rounds: u32, more: impl Fn() -> bool) {
        for round in 0..rounds {
            if !more() {
                return;
            }
            #[cfg(not(phase_lock_loom))]
            {
                // Each flush tries to advance the global epoch once and runs
                // a few sealed bags; a bag runs two advances after it sealed.
                crossbeam_epoch::pin().flush();
                if round >= 8 {
                    std::thread::yield_now();
                }
            }
            #[cfg(phase_lock_loom)]
            {
                let _ = round;
                self.collect();
            }
        }
    }

    #[cfg(phase_lock_loom)]
    fn collect(&self) {
        let taken = core::mem::take(&mut *self.queued.lock().unwrap());
        if taken.is_empty() {
            return;
        }
        // SeqCst fence and load: Dekker with `read`. Taken first, then the
        // count: a callback queued after the count was read is not run.
        fence(Ordering::SeqCst);
        if self.readers.load(Ordering::SeqCst) == 0 {
            for f in taken {
                f();
            }
        } else {
            self.queued.lock().unwrap().extend(taken);
        }
    }
}

#[cfg(phase_lock_loom)]
impl Drop for RcuRead<'_> {
    fn drop(&mut self) {
        // Release: the section's accesses happen before a collector that
        // sees the count drop.
        self.rcu.readers.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(phase_lock_loom)]
impl Drop for Rcu {
    fn drop(&mut self) {
        // `&mut self`: no section is open.
        for f in core::mem::take(&mut *self.queued.lock().unwrap()) {
            f();
        }
    }
}
