//! The biased shared path (bias.rs), rule by rule: when a lock is biased,
//! what publishing and revoking do to the state word, that revocation never
//! waits, that a dropped lock leaves no slot to trust, and a stress run over
//! many locks that share slots.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use lock_api::{RawRwLock, RawRwLockTimed};

use crate::state::{BIASED, HOLDERS_MASK, Kind, REVOKING, holders};
use crate::*;

/// Releases a read hold.
fn unlock_read(l: &RawPhaseLock, h: SharedHold) {
    // SAFETY: every caller passes a read hold it took on `l`.
    unsafe { l.unlock_shared(h) }
}

#[test]
fn a_lock_used_by_one_thread_is_never_biased() {
    let l = RawPhaseLock::new();
    for i in 0..10_000 {
        let h = if i % 2 == 0 { l.lock_shared() } else { l.lock_intent() };
        assert!(!h.is_published());
        let h2 = if i % 2 == 0 { l.lock_shared() } else { l.lock_intent() };
        assert!(!h2.is_published());
        // SAFETY: the holds taken just above, in the same kind.
        unsafe {
            if i % 2 == 0 {
                l.unlock_shared(h2);
                l.unlock_shared(h);
            } else {
                l.unlock_intent(h2);
                l.unlock_intent(h);
            }
        }
        if i % 11 == 0 {
            let w = l.lock_exclusive();
            // SAFETY: the write hold taken just above.
            unsafe { l.unlock_exclusive(w) };
        }
        assert_eq!(l.state_word() & (BIASED | REVOKING), 0);
    }
    assert_eq!(l.state_word(), 0);
}

#[test]
fn concurrency_seen_biases_the_lock_and_shared_holds_publish() {
    let l = RawPhaseLock::new();
    let a = l.lock_shared();
    // What a counted entry that lost a race with another holder does.
    l.maybe_bias(Kind::Read);
    let s = l.state_word();
    assert_ne!(s & BIASED, 0, "not biased: {s:#x}");
    assert_eq!(holders(s, Kind::Read), 2, "the holder and the bias hold");
    let b = l.lock_shared();
    assert!(b.is_published());
    assert_eq!(l.state_word(), s, "a published entry wrote the state word");
    // The same thread, same lock: its slot is taken, so it counts.
    let c = l.lock_shared();
    assert!(!c.is_published());
    assert_eq!(holders(l.state_word(), Kind::Read), 3);
    assert!(l.try_lock_intent().is_none(), "intent entered beside readers");
    unlock_read(&l, c);
    unlock_read(&l, a);
    unlock_read(&l, b);
    assert!(!l.is_locked());
    // try_write on the idle, biased lock ends the bias and enters at once.
    let w = l.try_lock_exclusive().expect("an idle biased lock refused a writer");
    assert_eq!(l.state_word() & (BIASED | REVOKING | HOLDERS_MASK), crate::state::WRITER);
    // SAFETY: the write hold taken just above.
    unsafe { l.unlock_exclusive(w) };
    assert_eq!(l.state_word(), 0);
}

#[test]
fn revocation_moves_published_holders_into_the_count_without_waiting() {
    for kind in [Kind::Read, Kind::Intent] {
        let l = RawPhaseLock::new();
        l.force_bias(kind);
        let h = if kind == Kind::Read { l.lock_shared() } else { l.lock_intent() };
        assert!(h.is_published());
        // Another kind revokes: the try-lock fails at once (the lock is
        // held), but the published holder is now counted.
        if kind == Kind::Read {
            assert!(l.try_lock_intent().is_none());
        } else {
            assert!(l.try_lock_shared().is_none());
        }
        let s = l.state_word();
        assert_eq!(s & (BIASED | REVOKING), 0, "bias survived a revocation: {s:#x}");
        assert_eq!(holders(s, kind), 1, "the published holder was not moved into the count");
        assert!(l.try_lock_exclusive().is_none());
        // The moved hold leaves by a counted release.
        // SAFETY: `h` is the hold taken above, of `kind`.
        unsafe {
            if kind == Kind::Read {
                l.unlock_shared(h);
            } else {
                l.unlock_intent(h);
            }
        }
        assert_eq!(l.state_word(), 0);
    }
}

#[test]
fn a_timed_writer_revokes_and_is_handed_the_lock() {
    let l = Arc::new(RawPhaseLock::new());
    l.force_bias(Kind::Read);
    let h = l.lock_shared();
    assert!(h.is_published());
    let l2 = l.clone();
    let writer = thread::spawn(move || {
        let w = l2.try_lock_exclusive_for(std::time::Duration::from_secs(60));
        // SAFETY: the write hold just taken.
        w.map(|w| unsafe { l2.unlock_exclusive(w) }).is_some()
    });
    crate::tests::support::wait_for("the writer to queue", || l.queued(Kind::Write) == 1);
    assert_eq!(l.state_word() & BIASED, 0);
    unlock_read(&l, h);
    assert!(writer.join().unwrap(), "the writer timed out");
    assert_eq!(l.state_word(), 0);
}

#[test]
fn a_dropped_lock_leaves_no_slot_that_a_new_lock_at_its_address_trusts() {
    let mut place = MaybeUninit::<RawPhaseLock>::uninit();
    let l = place.write(RawPhaseLock::new());
    l.force_bias(Kind::Read);
    let leaked = l.lock_shared();
    assert!(leaked.is_published());
    // The hold is leaked (never released, as under a forgotten guard), then
    // the lock is dropped.
    let _ = leaked;
    // SAFETY: `place` holds an initialized lock, dropped once here.
    unsafe { place.assume_init_drop() };
    // A new lock at the same address, biased and revoked by a writer: the
    // leaked tag must not come back as a holder of the new lock.
    let l = place.write(RawPhaseLock::new());
    l.force_bias(Kind::Read);
    let w = l.try_lock_exclusive().expect("a stale slot was trusted as a holder");
    // SAFETY: the write hold taken just above.
    unsafe { l.unlock_exclusive(w) };
    // SAFETY: initialized just above, dropped once.
    unsafe { place.assume_init_drop() };
}

#[test]
fn holds_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SharedHold>();
    send_sync::<ReadGuard<'static, u32>>();
    send_sync::<IntentGuard<'static, u32>>();
    // A published hold may be released by another thread.
    let l = Arc::new(RawPhaseLock::new());
    l.force_bias(Kind::Intent);
    let h = l.lock_intent();
    assert!(h.is_published());
    let l2 = l.clone();
    // SAFETY: `h` is the intent hold taken above.
    thread::spawn(move || unsafe { l2.unlock_intent(h) }).join().unwrap();
    assert!(!l.is_locked());
}

/// Many threads over a few locks that share slots (8 threads × 64 locks
/// against a 1024-slot table, and every thread's slots for different locks
/// independent): per lock, writers see no other holder, intent holders see
/// no reader, readers no intent holder, and every increment made under write
/// or intent survives. Biasing is forced at random so that the published
/// paths, revocations and moves all run under contention.
#[test]
fn stress_many_locks_sharing_slots() {
    const LOCKS: usize = 64;
    const THREADS: usize = 8;
    const OPS: usize = 20_000;
    struct Cell {
        lock: RawPhaseLock,
        readers: AtomicUsize,
        intents: AtomicUsize,
        writers: AtomicUsize,
        value: AtomicU64,
    }
    let cells: Arc<Vec<Cell>> = Arc::new(
        (0..LOCKS)
            .map(|_| Cell {
                lock: RawPhaseLock::new(),
                readers: AtomicUsize::new(0),
                intents: AtomicUsize::new(0),
                writers: AtomicUsize::new(0),
                value: AtomicU64::new(0),
            })
            .collect(),
    );
    let barrier = Arc::new(Barrier::new(THREADS));
    let published = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cells, barrier, published) = (cells.clone(), barrier.clone(), published.clone());
            thread::spawn(move || {
                let mut x = t as u64 * 0x9E37_79B9 + 1;
                let mut next = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                let mut writes = 0u64;
                barrier.wait();
                for _ in 0..OPS {
                    let r = next();
                    let c = &cells[(r % LOCKS as u64) as usize];
                    match (r >> 8) % 16 {
                        0 => {
                            let w = c.lock.lock_exclusive();
                            assert_eq!(c.writers.fetch_add(1, Ordering::SeqCst), 0);
                            assert_eq!(c.readers.load(Ordering::SeqCst), 0);
                            assert_eq!(c.intents.load(Ordering::SeqCst), 0);
                            c.value.store(c.value.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                            writes += 1;
                            c.writers.fetch_sub(1, Ordering::SeqCst);
                            // SAFETY: the write hold taken above.
                            unsafe { c.lock.unlock_exclusive(w) };
                        }
                        1..=7 => {
                            let h = c.lock.lock_intent();
                            if h.is_published() {
                                published.fetch_add(1, Ordering::Relaxed);
                            }
                            c.intents.fetch_add(1, Ordering::SeqCst);
                            assert_eq!(c.readers.load(Ordering::SeqCst), 0);
                            assert_eq!(c.writers.load(Ordering::SeqCst), 0);
                            if (r >> 16) % 4 == 0 {
                                c.lock.maybe_bias(Kind::Intent);
                            }
                            c.intents.fetch_sub(1, Ordering::SeqCst);
                            // SAFETY: the intent hold taken above.
                            unsafe { c.lock.unlock_intent(h) };
                        }
                        _ => {
                            let h = c.lock.lock_shared();
                            if h.is_published() {
                                published.fetch_add(1, Ordering::Relaxed);
                            }
                            c.readers.fetch_add(1, Ordering::SeqCst);
                            assert_eq!(c.intents.load(Ordering::SeqCst), 0);
                            assert_eq!(c.writers.load(Ordering::SeqCst), 0);
                            if (r >> 16) % 4 == 0 {
                                c.lock.maybe_bias(Kind::Read);
                            }
                            c.readers.fetch_sub(1, Ordering::SeqCst);
                            unlock_read(&c.lock, h);
                        }
                    }
                }
                writes
            })
        })
        .collect();
    let writes: u64 = handles.into_iter().map(|h| h.join().expect("a stress thread panicked")).sum();
    let total: u64 = cells.iter().map(|c| c.value.load(Ordering::Relaxed)).sum();
    assert_eq!(total, writes, "a write was lost");
    for c in cells.iter() {
        let w = c.lock.try_lock_exclusive().expect("a lock stayed held after the run");
        // SAFETY: the write hold taken just above.
        unsafe { c.lock.unlock_exclusive(w) };
        assert_eq!(c.lock.state_word(), 0);
    }
    assert!(published.load(Ordering::Relaxed) > 0, "no hold went through the table: the test lost its point");
}
