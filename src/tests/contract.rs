//! The fairness contract, rule by rule, as deterministic schedules.
//!
//! Each test holds the lock on the test thread, starts "actor" threads that
//! request it in a chosen order, waits (by inspecting the state word and the
//! queue) until each actor is queued before starting the next, then releases
//! and checks who entered, in which order and with whom. Nothing depends on
//! timing except the watchdog, which turns a hang into a failure with a
//! message.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::state::{Kind, MAX_SHARED, READ_ONE, WAITING_MASK, holders};
use crate::tests::support::{Actor, Log, log_of, raw, wait_for};
use crate::*;

/// The strict contract is checked on the strict lock; `patience.rs`
/// checks the patient rules.
type Lock = Arc<StrictPhaseLock<()>>;

fn fresh_lock() -> (Lock, Log) {
    (Arc::new(StrictPhaseLock::new(())), Arc::new(Mutex::new(Vec::new())))
}

fn assert_idle(lock: &Lock) {
    let s = raw(lock).state_word();
    assert_eq!(s & WAITING_MASK, 0, "a waiting bit outlived its waiters: {s:#x}");
    assert!(!lock.is_locked(), "lock still held: {s:#x}");
    for kind in [Kind::Read, Kind::Intent, Kind::Write] {
        assert_eq!(raw(lock).queued(kind), 0, "{kind:?} waiters left in the queue");
    }
}

/// Every rule on a fresh lock: all holds counted in the state word.
mod counted {
    use super::*;

    fn new_lock() -> (Lock, Log) {
        fresh_lock()
    }

    include!("contract_cases.rs");
}

/// Every rule again on a lock that starts biased toward read (bias.rs): the
/// first read holds are published, and each test's first request of another
/// kind revokes the bias before the rules under test come into play.
mod biased {
    use super::*;

    fn new_lock() -> (Lock, Log) {
        let (lock, log) = fresh_lock();
        raw(&lock).force_bias(Kind::Read);
        (lock, log)
    }

    include!("contract_cases.rs");
}
