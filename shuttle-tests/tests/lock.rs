//! shuttle PCT models of the lock with four and five threads: every kind of
//! acquisition on every lock, kinds flooding together, bias revocation, the
//! switch to strict under barging readers, and guards released on other
//! threads.
//!
//! Run with `RUSTFLAGS="--cfg phase_lock_shuttle" cargo test -p shuttle-tests --release`
//! (10,000 schedules per model; `SHUTTLE_ITERATIONS=1000000` for a million).
//! shuttle has no clock: at every timed sleep the schedule draws whether the
//! timer fires, so patience and timeouts run out anywhere, or never.
#![cfg(phase_lock_shuttle)]

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

use phase_lock::*;
use shuttle::thread::yield_now;
use shuttle_tests::{World, check, run_threads};

/// `threads` threads, each making `ops` random acquisitions of any kind.
fn mixed<const P: u32, const B: bool>(world: &Arc<World<P, B>>, threads: usize, ops: usize) {
    let bodies = (0..threads)
        .map(|_| {
            let w = world.clone();
            Box::new(move || w.mixed(ops)) as Box<dyn FnOnce() + Send>
        })
        .collect();
    run_threads(bodies);
    world.assert_settled();
}

#[test]
fn every_acquisition_on_the_default_lock() {
    check(|| mixed(&World::new(PhaseLock::new(0)), 4, 4));
}

#[test]
fn every_acquisition_on_the_strict_lock() {
    check(|| mixed(&World::new(StrictPhaseLock::new(0)), 4, 4));
}

#[test]
fn every_acquisition_on_the_unbiased_lock() {
    check(|| mixed(&World::new(UnbiasedPhaseLock::new(0)), 4, 4));
}

/// The lock starts biased toward read or intent (drawn per schedule), as a
/// lock that has seen concurrency is: every other kind's first arrival
/// revokes it while holders of the biased kind publish and leave.
#[test]
fn a_bias_revoked_by_every_kind() {
    check(|| {
        use shuttle::rand::Rng as _;
        let raw = RawPhaseLock::new();
        raw.bias_for_model(shuttle::rand::thread_rng().gen_bool(0.5));
        mixed(&World::new(PhaseLock::from_raw(raw, 0)), 4, 4);
    });
}

/// Five threads of `kinds` (0 read, 1 intent, 2 write), three blocking
/// acquisitions each.
fn flood(kinds: [usize; 5]) {
    World::new(PhaseLock::new(0)).run_kinds(&kinds, |w, kind| (0..3).for_each(|_| w.blocking(kind, || ())));
}

/// Three readers, an intent holder and a writer: batches of three readers
/// admitted by one handoff (more than any loom model queues), the round
/// robin between three kinds, handoffs to woken waiters.
#[test]
fn five_threads_three_of_them_reading() {
    check(|| flood([0, 0, 0, 1, 2]));
}

/// The same with three intent holders, one reader and a writer.
#[test]
fn five_threads_three_of_them_in_intent_mode() {
    check(|| flood([1, 1, 1, 0, 2]));
}

/// Two readers re-enter again and again (barging into the read phase that
/// the other keeps open) while an intent request and a write request queue.
/// Their patience runs out at any sleep, turning the lock strict: the strict
/// batch must admit them and end, and the readers must get back in.
#[test]
fn patience_runs_out_while_readers_barge() {
    check(|| {
        World::new(PhaseLock::new(0)).run_kinds(&[0, 0, 1, 2], |w, kind| {
            let ops = if kind == 0 { 4 } else { 1 };
            (0..ops).for_each(|_| w.blocking(kind, || ()));
        });
    });
}

/// Guards taken on one thread and released on another (the guards are
/// `Send`), while two more threads make random acquisitions.
#[test]
fn guards_released_on_other_threads() {
    check(|| {
        let world = World::new(PhaseLock::new(0));
        let w = world.clone();
        let handoffs = Box::new(move || {
            let h = &w.holders;
            let mut g = w.lock.write();
            h.enter(&h.write, "write handed over");
            *g += 1;
            w.writes.fetch_add(1, SeqCst);
            shuttle::thread::scope(|s| {
                s.spawn(move || {
                    yield_now();
                    h.write.fetch_sub(1, SeqCst);
                    drop(g);
                });
            });
            let g = w.lock.intent();
            h.enter(&h.intent, "intent handed over");
            shuttle::thread::scope(|s| {
                s.spawn(move || {
                    yield_now();
                    h.intent.fetch_sub(1, SeqCst);
                    drop(g);
                });
            });
        }) as Box<dyn FnOnce() + Send>;
        let mut bodies = vec![handoffs];
        for _ in 0..2 {
            let w = world.clone();
            bodies.push(Box::new(move || w.mixed(3)));
        }
        run_threads(bodies);
        world.assert_settled();
    });
}
