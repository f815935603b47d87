//! Two-thread loom models of `RawPhaseLock`: each keeps one race of a
//! three-thread model of `lock.rs` or `patience.rs` that is too large for
//! three preemptions on the default lock, small enough to check deeply: CI
//! runs them at `LOOM_MAX_PREEMPTIONS=5` (6 s; they pass at 7 in 61 s).
//! The three-thread models stay, checked at two preemptions (and their
//! strict-lock halves at three); docs/verification.md maps each race.
#![cfg(phase_lock_loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::{Freeable, assert_idle, bump, model, read_value, reader_races_a_writer};
use phase_lock::*;

type Lock = loom_tests::Lock<RawPhaseLock>;

fn new_lock() -> Arc<Lock> {
    loom_tests::new_lock(RawPhaseLock::new())
}

/// From `downgrades_keep_writers_out`: a reader that queued behind a writer
/// joins the phase the writer downgrades to, and sees its write.
#[test]
fn downgrade_admits_a_queued_reader() {
    model(|| {
        let lock = new_lock();
        let w = lock.write();
        let l = lock.clone();
        let r = thread::spawn(move || read_value(&l.read()));
        bump(&w);
        let d = lock_api::RwLockWriteGuard::downgrade(w);
        assert_eq!(read_value(&d), 1);
        drop(d);
        assert_eq!(r.join().unwrap(), 1);
        assert_idle(&lock);
    });
}

/// From `downgrades_keep_writers_out`: a writer that queued behind a writer
/// stays out of the read phase that writer downgrades to.
#[test]
fn downgrade_keeps_a_queued_writer_out() {
    model(|| {
        let lock = new_lock();
        let w = lock.write();
        let l = lock.clone();
        let w2 = thread::spawn(move || bump(&l.write()));
        bump(&w);
        let d = lock_api::RwLockWriteGuard::downgrade(w);
        // The second writer would race this read if it got in.
        assert_eq!(read_value(&d), 1);
        drop(d);
        w2.join().unwrap();
        assert_eq!(read_value(&lock.read()), 2);
        assert_idle(&lock);
    });
}

/// From `handoffs_between_all_three_kinds`: intent and write hand the lock
/// to each other, in either order.
#[test]
fn intent_and_write_hand_off() {
    model(|| {
        let lock = new_lock();
        let l = lock.clone();
        let w = thread::spawn(move || bump(&l.write()));
        bump(&lock.intent());
        w.join().unwrap();
        assert_eq!(read_value(&lock.read()), 2);
        assert_idle(&lock);
    });
}

/// From `writers_exclude_everyone`: two writers exclude each other.
#[test]
fn two_writers_exclude_each_other() {
    model(|| {
        let lock = new_lock();
        let l = lock.clone();
        let w = thread::spawn(move || bump(&l.write()));
        bump(&lock.write());
        w.join().unwrap();
        assert_eq!(read_value(&lock.read()), 2);
        assert_idle(&lock);
    });
}

/// From `writers_exclude_everyone`: a reader and a writer exclude each
/// other, and the reader sees the write or nothing of it.
#[test]
fn reader_and_writer_exclude_each_other() {
    model(|| reader_races_a_writer(new_lock()));
}

/// From `patience_runs_out_while_a_release_and_an_arrival_race` (patience.rs):
/// an intent request queues behind a reader, its patience may run out (the
/// lock turns strict) at any point, and the reader releases. Under loom a
/// patience wait yields once and then runs out, so the model explores the
/// switch to strict before, during and after the release.
#[test]
fn patience_runs_out_while_the_holder_releases() {
    model(|| {
        let lock = new_lock();
        let g = lock.read();
        let l = lock.clone();
        let i = thread::spawn(move || bump(&l.intent()));
        assert_eq!(read_value(&g), 0);
        drop(g);
        i.join().unwrap();
        assert_eq!(read_value(&lock.read()), 1);
        assert_idle(&lock);
    });
}

/// From `patience_runs_out_while_a_release_and_an_arrival_race`
/// (patience.rs): an arrival races the switch to strict. An intent request
/// queues behind a reader; while its patience runs out (or not), the reader
/// tries for a second read hold, which a patient lock lets it barge into
/// and a strict one refuses; then it releases all it holds. (A blocking
/// second read could wait behind the intent request that waits for the
/// first: the arrival is a try-lock.)
#[test]
fn an_arrival_races_the_switch_to_strict() {
    model(|| {
        let lock = new_lock();
        let g = lock.read();
        let l = lock.clone();
        let i = thread::spawn(move || bump(&l.intent()));
        let second = lock.try_read();
        assert_eq!(read_value(&g), 0);
        if let Some(g2) = &second {
            assert_eq!(read_value(g2), 0);
        }
        drop(second);
        drop(g);
        i.join().unwrap();
        assert_eq!(read_value(&lock.read()), 1);
        assert_idle(&lock);
    });
}

/// From `woken_waiters_and_a_handoff_never_wake_twice` (patience.rs): a
/// writer's release wakes a queued intent request to try again; the same
/// thread then asks for the lock again, and its patience running out turns
/// the lock strict and may hand the lock to the intent request while that
/// wake-up is still on its way. The request is woken once, holds the lock
/// once, and both complete.
#[test]
fn a_handoff_races_a_wake_up_in_flight() {
    model(|| {
        let lock = new_lock();
        let w = lock.write();
        let l = lock.clone();
        let i = thread::spawn(move || bump(&l.intent()));
        drop(w);
        bump(&lock.write());
        i.join().unwrap();
        assert_eq!(read_value(&lock.read()), 2);
        assert_idle(&lock);
    });
}

/// From `lock_freed_by_its_next_holder` (lock.rs): a writer queued behind a
/// writer is handed the lock, releases it and frees it at once. The first
/// writer's release must not touch the lock once the handoff has made it
/// the second's (loom fails the model on any access to the freed lock).
#[test]
fn lock_freed_by_the_waiter_it_was_handed_to() {
    model(|| {
        let mine = Freeable::new(RawPhaseLock::new());
        let theirs = mine.share();
        let held = mine.get().lock_exclusive();
        let f = thread::spawn(move || {
            let g = theirs.get().lock_exclusive();
            // SAFETY: we hold the acquisition we release.
            unsafe { theirs.get().unlock_exclusive(g) };
            theirs.free();
        });
        // SAFETY: we hold the write acquisition taken above.
        unsafe { mine.get().unlock_exclusive(held) };
        f.join().unwrap();
    });
}

/// From `lock_freed_by_its_next_holder`: a timed writer races the holder's
/// release. If the handoff reaches it in time, it frees the lock at once;
/// if it times out, the holder frees the lock after it. Either way neither
/// thread touches the lock after the other may have freed it.
#[test]
fn lock_freed_by_a_timed_waiter() {
    model(|| {
        let mine = Freeable::new(RawPhaseLock::new());
        let theirs = mine.share();
        let held = mine.get().lock_exclusive();
        let t = thread::spawn(move || {
            match theirs.get().try_lock_exclusive_for(std::time::Duration::from_secs(1)) {
                Some(g) => {
                    // SAFETY: we hold the acquisition we release.
                    unsafe { theirs.get().unlock_exclusive(g) };
                    theirs.free();
                    None
                }
                // Timed out: the holder is still a user; it frees the lock.
                None => Some(theirs),
            }
        });
        // SAFETY: we hold the write acquisition taken above.
        unsafe { mine.get().unlock_exclusive(held) };
        if let Some(lock) = t.join().unwrap() {
            lock.free();
        }
    });
}
