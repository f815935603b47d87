//! loom model checks of the patient rules: patience running out while
//! releases, arrivals and a timeout race it.
//!
//! Run with `RUSTFLAGS="--cfg phase_lock_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p loom-tests --release --test patience`.
//! Under loom a timed wait may time out at any point (loom has no clock), so
//! every waiter's patience may run out wherever the model checker likes, and
//! a timeout may land before or after it.
#![cfg(phase_lock_loom)]

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use loom_tests::{assert_idle, bump, model, read_value};
use phase_lock::*;

type Lock = loom_tests::Lock<RawPatientLock<1>>;

fn new_lock() -> Arc<Lock> {
    loom_tests::new_lock(RawPatientLock::new())
}

/// A reader holds; an intent request queues (its patience may run out and
/// turn the lock strict at any point); a second reader arrives and may barge
/// or queue; the first reader releases. Exclusion holds, nobody is lost.
#[test]
fn patience_runs_out_while_a_release_and_an_arrival_race() {
    model(|| {
        let lock = new_lock();
        let g = lock.read();
        let (l1, l2) = (lock.clone(), lock.clone());
        let i = thread::spawn(move || bump(&l1.intent()));
        let r = thread::spawn(move || read_value(&l2.read()));
        drop(g);
        i.join().unwrap();
        assert!(r.join().unwrap() <= 1);
        assert_eq!(read_value(&lock.read()), 1);
        assert_idle(&lock);
    });
}

/// A writer holds; a timed intent request queues, its patience runs out
/// (strict) and then its timeout, racing the writer's release: it either
/// gets the lock or leaves no trace.
#[test]
fn timeout_races_the_switch_to_strict() {
    model(|| {
        let lock = new_lock();
        let w = lock.write();
        let l = lock.clone();
        let t = thread::spawn(move || match l.try_intent_for(Duration::from_secs(60)) {
            Some(g) => {
                bump(&g);
                true
            }
            None => false,
        });
        drop(w);
        let entered = t.join().unwrap();
        assert_eq!(read_value(&lock.read()), u64::from(entered));
        assert_idle(&lock);
    });
}

/// An intent request queues behind a writer, and a reader arrives (it may
/// queue too); the writer's release wakes them to try again (patient) or
/// hands off (if a patience ran out first). Whatever the order, every request completes and
/// the intent holders exclude the reader.
#[test]
fn woken_waiters_and_a_handoff_never_wake_twice() {
    model(|| {
        let lock = new_lock();
        let w = lock.write();
        let (l1, l2) = (lock.clone(), lock.clone());
        let a = thread::spawn(move || bump(&l1.intent()));
        let b = thread::spawn(move || read_value(&l2.read()));
        drop(w);
        a.join().unwrap();
        assert!(b.join().unwrap() <= 1);
        assert_idle(&lock);
    });
}
