//! shuttle PCT models of the strict lock's phase bound: a read or intent
//! request that queues sees at most two phases of other kinds begin before
//! its own (the crate docs' Fairness section; `fairness.rs` argues it).
//!
//! Run with `RUSTFLAGS="--cfg phase_lock_shuttle" cargo test -p shuttle-tests --release --test bound`.
//! The models count phases from outside: every holder, once in, notes its
//! kind, and a phase begins when a holder of another kind than the last
//! one noted comes in (every writer begins one). A request notes the count
//! as it queues (a hook the lock runs under `phase_lock_shuttle`) and again
//! once in. Its own phase counts one, and one more may be the phase that
//! was running when it queued, if that phase's first holder had not yet
//! noted itself: so at most `2 + 1 + 1` from queueing to entry.
#![cfg(phase_lock_shuttle)]

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use phase_lock::*;
use shuttle_tests::{World, check};

/// Phases begun in this execution, and the kind noted last (0: none,
/// 1 + the kind otherwise).
struct Phases {
    begun: AtomicU64,
    last: AtomicU64,
}

shuttle::lazy_static! {
    static ref PHASES: Phases = Phases { begun: AtomicU64::new(0), last: AtomicU64::new(0) };
}

shuttle::thread_local! {
    /// The count when this thread's current request queued (`None`: it
    /// has not queued).
    static QUEUED_AT: Cell<Option<u64>> = const { Cell::new(None) };
}

/// The hook the lock runs as a request of this thread queues.
fn note_queued() {
    QUEUED_AT.with(|q| q.set(Some(PHASES.begun.load(SeqCst))));
}

/// The most phases a shared request may see begin from queueing to its
/// entry, its own included (see the file's header).
const SHARED_BOUND: u64 = 4;

/// One blocking acquisition of `kind` (0 read, 1 intent, 2 write) on the
/// strict lock, checked ([`World::blocking`]): once in, it notes the phase
/// and checks the bound for a shared kind.
fn acquire_and_check(w: &World<0, true>, kind: usize) {
    QUEUED_AT.with(|q| q.set(None));
    w.blocking(kind, || {
        let noted = kind as u64 + 1;
        let previous = PHASES.last.swap(noted, SeqCst);
        if previous != noted || kind == 2 {
            PHASES.begun.fetch_add(1, SeqCst);
        }
        if let (Some(queued), true) = (QUEUED_AT.with(|q| q.get()), kind != 2) {
            let seen = PHASES.begun.load(SeqCst) - queued;
            assert!(seen <= SHARED_BOUND, "a queued request of kind {kind} saw {seen} phases begin before it entered");
        }
    });
}

/// Five threads of `kinds`, three acquisitions each, on the strict lock.
fn flood(kinds: [usize; 5]) {
    World::new(StrictPhaseLock::new(0)).run_kinds(&kinds, |w, kind| {
        set_queued_hook_for_model(Some(note_queued));
        (0..3).for_each(|_| acquire_and_check(w, kind));
    });
}

#[test]
fn a_queued_reader_waits_at_most_two_other_phases() {
    check(|| flood([0, 0, 1, 2, 2]));
}

#[test]
fn a_queued_intent_request_waits_at_most_two_other_phases() {
    check(|| flood([1, 1, 0, 2, 2]));
}

#[test]
fn shared_kinds_and_writers_flooding_together() {
    check(|| flood([0, 0, 1, 1, 2]));
}
