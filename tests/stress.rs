//! Hostile stress: an oversubscribed random mix of every operation, with the
//! exclusion invariant checked on every entry and nothing allowed to be lost.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use common::{Rng, watchdog, work};
use phase_lock::*;
use phase_lock_soak::{Holders, mixed_op};

const THREADS: u64 = 16;
const OPS_PER_THREAD: u64 = 20_000;

#[test]
fn oversubscribed_random_mix_keeps_exclusion_and_loses_nothing() {
    random_mix::<DEFAULT_PATIENCE_US, true>();
}

#[test]
fn oversubscribed_random_mix_without_bias() {
    random_mix::<DEFAULT_PATIENCE_US, false>();
}

#[test]
fn oversubscribed_random_mix_on_the_strict_lock() {
    random_mix::<0, true>();
}

#[test]
fn oversubscribed_random_mix_with_a_short_patience() {
    // 20 µs: the lock keeps switching between its patient and strict rules.
    random_mix::<20, true>();
}

/// 16 threads on 2 cores, random kinds, timeouts and downgrades, exclusion
/// checked on every entry, on a lock of patience `P` with the biased shared
/// path on or off (`B`). With 16 threads on 2 cores, shared holders overlap
/// and lose races on the state word, so the biased lock keeps biasing and
/// being revoked.
fn random_mix<const P: u32, const B: bool>() {
    watchdog("random mix", 300, || {
        let lock = Arc::new(PatientLock::<u64, P, B>::new(0u64));
        let holders = Arc::new(Holders::default());
        let writes = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (lock, holders, writes) = (lock.clone(), holders.clone(), writes.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng::new(t + 1);
                    for _ in 0..OPS_PER_THREAD {
                        mixed_op(&lock, &holders, &writes, &mut rng);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("a worker panicked");
        }
        assert!(!lock.is_locked(), "the lock is still held after every thread finished");
        assert_eq!(*lock.read(), writes.load(SeqCst), "a write was lost");
        assert!(lock.try_write().is_some(), "a waiting flag outlived its waiters");
    });
}

/// Which modes flood the lock, and which one thread must keep getting in.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Read,
    Intent,
    Write,
}

fn acquire_and_hold<const P: u32, const B: bool>(lock: &PatientLock<u64, P, B>, mode: Mode, hold: u32) {
    match mode {
        Mode::Read => {
            let g = lock.read();
            std::hint::black_box(*g);
            work(hold);
        }
        Mode::Intent => {
            let g = lock.intent();
            std::hint::black_box(*g);
            work(hold);
        }
        Mode::Write => {
            let mut g = lock.write();
            *g += 1;
            work(hold);
        }
    }
}

/// A continuous flood of `flood` kinds (`per_kind` threads each) plus one
/// thread of `lone`, which must complete its acquisitions: on the default
/// lock, on the strict one and on the default lock without bias.
fn lone_thread_gets_in(flood: &[Mode], per_kind: usize, lone: Mode) {
    lone_thread_gets_in_with::<DEFAULT_PATIENCE_US, true>(flood, per_kind, lone);
    lone_thread_gets_in_with::<0, true>(flood, per_kind, lone);
    lone_thread_gets_in_with::<DEFAULT_PATIENCE_US, false>(flood, per_kind, lone);
}

fn lone_thread_gets_in_with<const P: u32, const B: bool>(flood: &[Mode], per_kind: usize, lone: Mode) {
    let name = format!("{lone:?} among a flood of {flood:?}");
    let flood = flood.to_vec();
    watchdog(&name.clone(), 240, move || {
        let lock = Arc::new(PatientLock::<u64, P, B>::new(0u64));
        let stop = Arc::new(AtomicU64::new(0));
        let started = Arc::new(AtomicU64::new(0));
        let flooders: Vec<_> = flood
            .iter()
            .flat_map(|&m| std::iter::repeat_n(m, per_kind))
            .map(|m| {
                let (lock, stop, started) = (lock.clone(), stop.clone(), started.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while stop.load(SeqCst) == 0 {
                        acquire_and_hold(&lock, m, 200);
                        if n == 0 {
                            started.fetch_add(1, SeqCst);
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        // The flood is on once every flooder has been in.
        while started.load(SeqCst) < flooders.len() as u64 {
            std::thread::yield_now();
        }
        for _ in 0..300 {
            acquire_and_hold(&lock, lone, 50);
        }
        stop.store(1, SeqCst);
        let flooded: Vec<u64> = flooders.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(flooded.iter().all(|&n| n > 0), "{name}: a flooding thread never got in: {flooded:?}");
    });
}

#[test]
fn writer_is_not_starved_by_readers() {
    lone_thread_gets_in(&[Mode::Read], 6, Mode::Write);
}

#[test]
fn intent_is_not_starved_by_readers() {
    lone_thread_gets_in(&[Mode::Read], 6, Mode::Intent);
}

#[test]
fn reader_is_not_starved_by_intents() {
    lone_thread_gets_in(&[Mode::Intent], 6, Mode::Read);
}

#[test]
fn writer_is_not_starved_by_intents() {
    lone_thread_gets_in(&[Mode::Intent], 6, Mode::Write);
}

#[test]
fn reader_is_not_starved_by_writers() {
    lone_thread_gets_in(&[Mode::Write], 4, Mode::Read);
}

#[test]
fn intent_is_not_starved_by_writers() {
    lone_thread_gets_in(&[Mode::Write], 4, Mode::Intent);
}

#[test]
fn writer_is_not_starved_by_readers_and_intents() {
    lone_thread_gets_in(&[Mode::Read, Mode::Intent], 3, Mode::Write);
}

#[test]
fn intent_is_not_starved_by_readers_and_writers() {
    lone_thread_gets_in(&[Mode::Read, Mode::Write], 3, Mode::Intent);
}

#[test]
fn reader_is_not_starved_by_intents_and_writers() {
    lone_thread_gets_in(&[Mode::Intent, Mode::Write], 3, Mode::Read);
}
