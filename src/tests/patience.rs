//! The patient rules and the switch to strict, as deterministic schedules.
//!
//! Like `contract.rs`: actors take the lock in a chosen order, the test
//! waits (by inspecting the state word and the queue) until each is where it
//! should be, then checks who entered and in which order. A patience of a
//! minute stands for "never runs out"; the switch to strict is awaited by
//! watching the `STRICT` bit, never by sleeping for a guessed time.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::queue::Pool;
use crate::state::{Kind, NO_HANDOFF_OWED, STRICT, WAITING_MASK};
use crate::tests::support::{Actor, Log, log_of, raw, wait_for};
use crate::*;

/// A patience that never runs out during a test (60 s).
const NEVER: u32 = 60_000_000;

fn assert_idle<const PATIENCE_US: u32>(lock: &PatientLock<(), PATIENCE_US>) {
    let s = raw(lock).state_word();
    assert_eq!(s, 0, "an idle lock is the all-zero word: {s:#x}");
    for kind in Kind::ALL {
        assert_eq!(raw(lock).queued(kind), 0, "{kind:?} waiters left in the queue");
    }
}

#[test]
fn patient_arrivals_join_a_running_phase_while_another_kind_waits() {
    let lock = Arc::new(PatientLock::<(), NEVER>::new(()));
    let log = Log::default();
    let g = lock.read();
    let i = Actor::queue(&lock, &log, "I", Kind::Intent);
    // A strict lock would queue these; a patient one lets them join.
    let r = Actor::start(&lock, &log, "R", Kind::Read);
    r.wait_entered();
    assert!(lock.try_read().is_some(), "a try-lock may barge too");
    assert!(lock.try_intent().is_none() && lock.try_write().is_none(), "never an incompatible kind");
    r.finish();
    drop(g);
    i.wait_entered();
    i.finish();
    assert_eq!(log_of(&log), ["R", "I"]);
    assert_idle(&lock);
}

#[test]
fn strict_lock_queues_the_same_arrivals() {
    let lock = Arc::new(StrictPhaseLock::new(()));
    let log = Log::default();
    let g = lock.read();
    let i = Actor::queue(&lock, &log, "I", Kind::Intent);
    assert!(lock.try_read().is_none(), "patience 0: no barging once anybody waits");
    let r = Actor::queue(&lock, &log, "R", Kind::Read);
    drop(g);
    i.wait_entered();
    i.finish();
    r.wait_entered();
    r.finish();
    assert_eq!(log_of(&log), ["I", "R"]);
    assert_idle(&lock);
}

#[test]
fn patience_running_out_turns_the_lock_strict() {
    // 2 ms: the intent request's patience runs out while the reader holds.
    let lock = Arc::new(PatientLock::<(), 2000>::new(()));
    let log = Log::default();
    let g = lock.read();
    let i = Actor::queue(&lock, &log, "I", Kind::Intent);
    wait_for("the lock to turn strict", || raw(&lock).state_word() & STRICT != 0);
    // Strict: arrivals queue, even of the running kind.
    assert!(lock.try_read().is_none(), "no barging once strict");
    let r = Actor::queue(&lock, &log, "R", Kind::Read);
    // The phase ends: the round robin after read gives intent its turn; the
    // reader that queued after the switch waits for the next phase.
    drop(g);
    i.wait_entered();
    assert!(!r.has_entered());
    i.finish();
    r.wait_entered();
    r.finish();
    assert_eq!(log_of(&log), ["I", "R"]);
    // The batch (I) has entered: the lock is patient again.
    assert_idle(&lock);
}

#[test]
fn a_waiter_woken_to_try_again_keeps_its_place() {
    // The release wakes the fresh intent waiter to try; a reader that holds
    // the lock when it tries makes it spent, still queued, still first.
    let lock = Arc::new(PatientLock::<(), NEVER>::new(()));
    let log = Log::default();
    let w = lock.write();
    let i = Actor::queue(&lock, &log, "I", Kind::Intent);
    assert_eq!(raw(&lock).queued_in(Kind::Intent, Some(Pool::Fresh)), 1);
    drop(w);
    // Either the woken waiter got in, or it lost and is spent: never lost.
    i.wait_entered();
    i.finish();
    assert_eq!(log_of(&log), ["I"]);
    assert_idle(&lock);
}

#[test]
fn fair_unlock_hands_off_at_once() {
    let lock = Arc::new(PatientLock::<(), NEVER>::new(()));
    let log = Log::default();
    let g = lock.read();
    let i = Actor::queue(&lock, &log, "I", Kind::Intent);
    lock_api::RwLockReadGuard::unlock_fair(g);
    // The handoff gave the lock to the intent waiter in the state word: no
    // reader can barge in before it runs.
    assert!(lock.try_read().is_none(), "the fair unlock handed the lock off");
    i.wait_entered();
    i.finish();
    assert_idle(&lock);
}

#[test]
fn timeout_during_the_switch_to_strict_leaves_no_trace() {
    let lock = Arc::new(PatientLock::<(), 1000>::new(()));
    let w = lock.write();
    let l = lock.clone();
    // Patience (1 ms) runs out before the timeout (200 ms).
    let t = thread::spawn(move || l.try_intent_for(Duration::from_millis(200)).is_some());
    wait_for("the lock to turn strict", || raw(&lock).state_word() & STRICT != 0);
    assert!(!t.join().unwrap(), "the write lock was held throughout");
    let s = raw(&lock).state_word();
    assert_eq!(s & (WAITING_MASK | STRICT | NO_HANDOFF_OWED), 0, "the timed-out request left a trace: {s:#x}");
    drop(w);
    assert_idle(&lock);
    assert!(lock.try_intent().is_some());
}

#[test]
fn strict_lock_has_patience_zero() {
    assert!(RawStrictPhaseLock::PATIENCE.is_zero());
    assert_eq!(RawPhaseLock::PATIENCE, Duration::from_micros(u64::from(DEFAULT_PATIENCE_US)));
    assert_eq!(RawPatientLock::<250>::PATIENCE, Duration::from_micros(250));
}
