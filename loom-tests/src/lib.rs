//! loom model checks for phase-lock live in `tests/`; run them with
//! `RUSTFLAGS="--cfg phase_lock_loom" cargo test -p loom-tests --release`.
//!
//! This library holds what the lock models share: the model runner with its
//! default preemption bound, and the accessors of the protected cell through
//! which loom checks every exclusion claim.
#![cfg(phase_lock_loom)]

use loom::cell::UnsafeCell;

/// A lock of any patience over a loom cell, as the lock models use it.
pub type Lock<R> = lock_api::RwLock<R, UnsafeCell<u64>>;

/// A new unlocked lock of raw type `R` over a cell holding 0.
pub fn new_lock<R: lock_api::RawRwLock>(raw: R) -> loom::sync::Arc<Lock<R>> {
    loom::sync::Arc::new(lock_api::RwLock::from_raw(raw, UnsafeCell::new(0)))
}

/// Runs `f` under loom with a bounded number of preemptions (default 2; the
/// `LOOM_MAX_PREEMPTIONS` environment variable overrides it).
///
/// Each spin of the queue lock is a branch under loom; at three preemptions
/// the longest schedules of the lock models take more than loom's default
/// 1,000 branches, so the limit is raised to 20,000 (a model that really
/// livelocks still fails, only later); `LOOM_MAX_BRANCHES` overrides it.
pub fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    if std::env::var_os("LOOM_MAX_BRANCHES").is_none() {
        builder.max_branches = 20_000;
    }
    builder.check(f);
}

/// Reads the cell.
pub fn read_value(cell: &UnsafeCell<u64>) -> u64 {
    // SAFETY: the caller holds the lock in a mode that excludes writers of
    // the cell; loom checks that claim.
    cell.with(|p| unsafe { *p })
}

/// Adds one to the cell.
pub fn bump(cell: &UnsafeCell<u64>) {
    // SAFETY: the caller holds the lock in a mode that excludes every other
    // accessor of the cell in this model; loom checks that claim.
    cell.with_mut(|p| unsafe { *p += 1 })
}

/// The lock is free and no waiting flag was left behind.
pub fn assert_idle<R: lock_api::RawRwLock>(lock: &Lock<R>) {
    assert!(!lock.is_locked());
    assert!(lock.try_write().is_some(), "a waiting flag or a hold was left behind");
}

/// A reader (on a new thread) and a writer race for `lock`, whose cell holds
/// 0: they exclude each other, the reader sees the write or nothing of it,
/// and the lock ends idle. `pairs.rs` runs it on a fresh lock, `bias.rs` on
/// a lock biased toward read (the reader publishes while the writer revokes).
pub fn reader_races_a_writer<R>(lock: loom::sync::Arc<Lock<R>>)
where
    R: lock_api::RawRwLock + Send + Sync + 'static,
{
    let l = lock.clone();
    let r = loom::thread::spawn(move || read_value(&l.read()));
    bump(&lock.write());
    assert!(r.join().unwrap() <= 1);
    assert_eq!(read_value(&lock.read()), 1);
    assert_idle(&lock);
}

/// A raw lock on the heap that a model thread may free: every handle
/// ([`Freeable::share`]) can reach the lock, and whichever thread is its last
/// user frees it. loom fails a model on any access to the lock after that,
/// which is how the lock-freeing models catch a release that touches the
/// lock after its handoff.
pub struct Freeable<R>(*const R);

// SAFETY: a handle is only a pointer; the models use it under the protocol
// they check (nobody touches the lock after its last user freed it).
unsafe impl<R: Sync> Send for Freeable<R> {}

impl<R> Freeable<R> {
    /// Moves `raw` to the heap; returns the first handle to it.
    pub fn new(raw: R) -> Freeable<R> {
        Freeable(Box::into_raw(Box::new(raw)))
    }

    /// Another handle to the same lock.
    pub fn share(&self) -> Freeable<R> {
        Freeable(self.0)
    }

    /// The lock.
    pub fn get(&self) -> &R {
        // SAFETY: the box is alive until the thread that frees it, holding
        // the lock after every other user is done with it, frees it.
        unsafe { &*self.0 }
    }

    /// Frees the lock. The caller is its last user: nobody touches it again.
    pub fn free(self) {
        // SAFETY: the box came from Box::into_raw, and by the caller's
        // contract nobody uses it any more.
        drop(unsafe { Box::from_raw(self.0.cast_mut()) });
    }
}
