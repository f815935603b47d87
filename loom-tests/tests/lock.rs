//! loom model checks of `RawPhaseLock`.
//!
//! Run with `RUSTFLAGS="--cfg phase_lock_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p loom-tests --release`.
//! The protected data is a `loom::cell::UnsafeCell`, so loom reports any two
//! accesses that the lock fails to order (a broken exclusion or a missing
//! acquire/release), and any schedule where every thread is blocked (a lost
//! wake-up or a deadlock).
//!
//! Four models run on the default lock and, as `*_strict`, on the strict
//! lock (`RawPatientLock<0>`): on the default lock they are too large for
//! three preemptions (the switch to strict, possible at every sleep,
//! multiplies the schedules), on the strict lock CI runs them at three.
#![cfg(phase_lock_loom)]

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use loom_tests::{Freeable, assert_idle, bump, model, read_value};
use phase_lock::*;

type Lock = loom_tests::Lock<RawPhaseLock>;

fn new_lock() -> Arc<Lock> {
    loom_tests::new_lock(RawPhaseLock::new())
}

#[test]
fn read_and_intent_exclude_each_other() {
    model(|| {
        let lock = new_lock();
        let l = lock.clone();
        // The single intent holder writes the cell; a reader overlapping it
        // would be a data race that loom reports.
        let t = thread::spawn(move || bump(&l.intent()));
        let seen = read_value(&lock.read());
        t.join().unwrap();
        assert!(seen <= 1);
        assert_eq!(read_value(&lock.read()), 1);
        assert_idle(&lock);
    });
}

fn writers_exclude_everyone_on<const P: u32>() {
    model(|| {
        let lock = loom_tests::new_lock(RawPatientLock::<P>::new());
        let l1 = lock.clone();
        let l2 = lock.clone();
        let w = thread::spawn(move || bump(&l1.write()));
        let r = thread::spawn(move || read_value(&l2.read()));
        bump(&lock.write());
        w.join().unwrap();
        assert!(r.join().unwrap() <= 2);
        assert_eq!(read_value(&lock.read()), 2);
        assert_idle(&lock);
    });
}

#[test]
fn writers_exclude_everyone() {
    writers_exclude_everyone_on::<DEFAULT_PATIENCE_US>();
}

/// The same on the strict lock, small enough for three preemptions.
#[test]
fn writers_exclude_everyone_strict() {
    writers_exclude_everyone_on::<0>();
}

fn handoffs_between_all_three_kinds_on<const P: u32>() {
    model(|| {
        let lock = loom_tests::new_lock(RawPatientLock::<P>::new());
        let (li, lw) = (lock.clone(), lock.clone());
        let i = thread::spawn(move || bump(&li.intent()));
        let w = thread::spawn(move || bump(&lw.write()));
        let seen = read_value(&lock.read());
        i.join().unwrap();
        w.join().unwrap();
        assert!(seen <= 2);
        assert_eq!(read_value(&lock.read()), 2);
        assert_idle(&lock);
    });
}

#[test]
fn handoffs_between_all_three_kinds() {
    handoffs_between_all_three_kinds_on::<DEFAULT_PATIENCE_US>();
}

/// The same on the strict lock, small enough for three preemptions.
#[test]
fn handoffs_between_all_three_kinds_strict() {
    handoffs_between_all_three_kinds_on::<0>();
}

fn shared_holders_of_one_kind_admitted_together_on<const P: u32>() {
    model(|| {
        let lock = loom_tests::new_lock(RawPatientLock::<P>::new());
        let w = lock.write();
        let (l1, l2) = (lock.clone(), lock.clone());
        let r1 = thread::spawn(move || read_value(&l1.read()));
        let r2 = thread::spawn(move || read_value(&l2.read()));
        bump(&w);
        drop(w);
        assert_eq!(r1.join().unwrap(), 1);
        assert_eq!(r2.join().unwrap(), 1);
        assert_idle(&lock);
    });
}

#[test]
fn shared_holders_of_one_kind_admitted_together() {
    shared_holders_of_one_kind_admitted_together_on::<DEFAULT_PATIENCE_US>();
}

/// The same on the strict lock, small enough for three preemptions.
#[test]
fn shared_holders_of_one_kind_admitted_together_strict() {
    shared_holders_of_one_kind_admitted_together_on::<0>();
}

#[test]
fn try_locks_never_break_exclusion() {
    model(|| {
        let lock = new_lock();
        let l = lock.clone();
        let t = thread::spawn(move || {
            if let Some(g) = l.try_write() {
                bump(&g);
            }
            if let Some(g) = l.try_intent() {
                read_value(&g);
            }
        });
        if let Some(g) = lock.try_read() {
            read_value(&g);
        }
        bump(&lock.write());
        t.join().unwrap();
        assert_idle(&lock);
    });
}

#[test]
fn timed_out_waiter_racing_a_release() {
    model(|| {
        let lock = new_lock();
        let w = lock.write();
        let l = lock.clone();
        // Under loom a timed wait yields once and then times out, so the model
        // explores the timeout both before and after the handoff.
        let t = thread::spawn(move || l.try_read_for(Duration::from_secs(1)).map(|g| read_value(&g)));
        bump(&w);
        drop(w);
        if let Some(seen) = t.join().unwrap() {
            assert_eq!(seen, 1, "a reader handed the lock must see the write");
        }
        assert_idle(&lock);
    });
}

#[test]
fn timed_out_intent_lets_queued_readers_join() {
    model(|| {
        let lock = new_lock();
        let r = lock.read();
        let (li, lr) = (lock.clone(), lock.clone());
        let i = thread::spawn(move || li.try_intent_for(Duration::from_secs(1)).map(|g| bump(&g)));
        let r2 = thread::spawn(move || read_value(&lr.read()));
        read_value(&r);
        let got_intent = i.join().unwrap().is_some();
        // Whether or not intent timed out, the second reader must get in
        // (no stuck waiting bit) once the first reader leaves.
        drop(r);
        let seen = r2.join().unwrap();
        assert!(seen <= 1);
        assert_eq!(read_value(&lock.read()), u64::from(got_intent));
        assert_idle(&lock);
    });
}

fn downgrades_keep_writers_out_on<const P: u32>() {
    model(|| {
        let lock = loom_tests::new_lock(RawPatientLock::<P>::new());
        let w = lock.write();
        let (lr, lw) = (lock.clone(), lock.clone());
        let r = thread::spawn(move || read_value(&lr.read()));
        let w2 = thread::spawn(move || bump(&lw.write()));
        bump(&w);
        let d = lock_api::RwLockWriteGuard::downgrade(w);
        assert_eq!(read_value(&d), 1);
        drop(d);
        let seen = r.join().unwrap();
        w2.join().unwrap();
        assert!((1..=2).contains(&seen));
        assert_idle(&lock);
    });
}

#[test]
fn downgrades_keep_writers_out() {
    downgrades_keep_writers_out_on::<DEFAULT_PATIENCE_US>();
}

/// The same on the strict lock, small enough for three preemptions.
#[test]
fn downgrades_keep_writers_out_strict() {
    downgrades_keep_writers_out_on::<0>();
}

#[test]
fn downgrade_to_intent_keeps_readers_out() {
    model(|| {
        let lock = new_lock();
        let w = lock.write();
        let lr = lock.clone();
        let r = thread::spawn(move || read_value(&lr.read()));
        bump(&w);
        let i = w.downgrade_to_intent();
        // Still the only holder that may touch the cell: readers are excluded.
        bump(&i);
        drop(i);
        assert_eq!(r.join().unwrap(), 2);
        assert_idle(&lock);
    });
}

/// A lock that its next holder frees (the last user of a refcounted object,
/// say): the releasing thread must not touch the lock after another thread
/// can have acquired it, even when a timed-out waiter leaves in between
/// (loom fails the model on any access to the freed lock).
#[test]
fn lock_freed_by_its_next_holder() {
    model(|| {
        let mine = Freeable::new(RawPhaseLock::new());
        let held = mine.get().lock_exclusive();
        let (timed, freer) = (mine.share(), mine.share());
        let t = thread::spawn(move || {
            let l = timed.get();
            if let Some(g) = l.try_lock_exclusive_for(Duration::from_secs(1)) {
                // SAFETY: we hold the acquisition we release.
                unsafe { l.unlock_exclusive(g) };
            }
        });
        let f = thread::spawn(move || {
            let l = freer.get();
            let g = l.lock_exclusive();
            // The last user: wait until the timed waiter has left the lock.
            // A join, not a spin on a flag: if the timed waiter could never
            // leave (a lost wake-up), loom reports a deadlock rather than a
            // spin that runs into its branch limit.
            t.join().unwrap();
            // SAFETY: we hold the acquisition we release.
            unsafe { l.unlock_exclusive(g) };
            freer.free();
        });
        // SAFETY: we hold the write acquisition taken above.
        unsafe { mine.get().unlock_exclusive(held) };
        f.join().unwrap();
    });
}
