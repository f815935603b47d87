//! The public API as a user meets it: `lock_api` drop-in use, guards,
//! downgrades, mapping, panics inside critical sections, `Send`/`Sync`.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::watchdog;
use phase_lock::*;

/// Code written against any `lock_api` rwlock, knowing nothing of ours.
fn plain_rwlock_user<R>(lock: &lock_api::RwLock<R, Vec<u32>>)
where
    R: lock_api::RawRwLock + lock_api::RawRwLockDowngrade + lock_api::RawRwLockTimed<Duration = Duration>,
{
    lock.write().push(1);
    {
        let a = lock.read();
        let b = lock.try_read().expect("readers share");
        assert_eq!(a.len() + b.len(), 2);
        assert!(lock.try_write().is_none());
        assert!(lock.try_write_for(Duration::from_millis(5)).is_none());
    }
    let mut w = lock.write();
    w.push(2);
    let r = lock_api::RwLockWriteGuard::downgrade(w);
    assert_eq!(*r, [1, 2]);
    assert!(lock.try_read().is_some());
    drop(r);
    let first = lock_api::RwLockReadGuard::map(lock.read(), |v| &v[0]);
    assert_eq!(*first, 1);
}

#[test]
fn drops_in_as_a_lock_api_rwlock() {
    plain_rwlock_user(&PhaseLock::new(Vec::new()));
    plain_rwlock_user(&lock_api::RwLock::<RawPhaseLock, _>::new(Vec::new()));
}

#[test]
fn const_construction_in_a_static() {
    static LOCK: PhaseLock<u32> = PhaseLock::new(7);
    assert_eq!(*LOCK.intent(), 7);
    *LOCK.write() = 8;
    assert_eq!(*LOCK.read(), 8);
}

#[test]
fn full_surface_from_a_glob_import() {
    let mut lock = PhaseLock::new(String::from("ab"));
    assert!(lock.try_read_for(Duration::from_millis(1)).is_some());
    assert!(lock.try_intent_for(Duration::from_millis(1)).is_some());
    assert!(lock.try_write_for(Duration::from_millis(1)).is_some());
    let soon = Instant::now() + Duration::from_millis(1);
    assert!(lock.try_read_until(soon).is_some());
    assert!(lock.try_intent_until(soon).is_some());
    assert!(lock.try_write_until(soon).is_some());
    {
        let i: IntentGuard<'_, String> = lock.intent();
        assert!(lock.is_locked() && lock.is_locked_intent() && !lock.is_locked_exclusive());
        assert!(lock.try_read().is_none() && lock.try_write().is_none());
        let second = lock.try_intent().expect("intent holders share");
        let b: MappedIntentGuard<'_, str> = IntentGuard::map(second, |s| &s[1..]);
        assert_eq!(&*b, "b");
        let b = MappedIntentGuard::try_map(b, |s| s.strip_prefix('x')).expect_err("no such prefix");
        let b = MappedIntentGuard::map(b, |s| s.as_bytes());
        assert_eq!(&*b, b"b");
        assert!(lock.try_read().is_none(), "a mapped intent guard still holds the lock");
        let none = IntentGuard::try_map(i, |s| s.strip_prefix('x'));
        let i = none.expect_err("no such prefix");
        assert_eq!(format!("{i:?}"), "\"ab\"");
        assert_eq!(format!("{i}"), "ab");
    }
    lock.get_mut().push('c');
    let w = lock.write();
    let i = w.downgrade_to_intent();
    assert!(lock.try_read().is_none());
    assert!(lock.try_intent().is_some());
    assert_eq!(&*i, "abc");
    drop(i);
    assert_eq!(lock.into_inner(), "abc");
}

#[test]
fn timed_requests_give_up_and_leave_the_lock_usable() {
    let lock = Arc::new(PhaseLock::new(0));
    let w = lock.write();
    let started = Instant::now();
    assert!(lock.try_read_for(Duration::from_millis(30)).is_none());
    assert!(lock.try_intent_for(Duration::from_millis(30)).is_none());
    assert!(lock.try_write_until(Instant::now() + Duration::from_millis(30)).is_none());
    assert!(started.elapsed() >= Duration::from_millis(90), "a timed request returned before its deadline");
    drop(w);
    assert!(lock.try_write().is_some(), "a timed-out request left a trace");
    // A timeout too large to represent as a deadline waits like a plain lock.
    assert!(lock.try_intent_for(Duration::MAX).is_some());
}

#[test]
fn panics_release_the_lock_and_poison_nothing() {
    watchdog("panics", 120, || {
        let lock = Arc::new(PhaseLock::new(0u64));
        for mode in 0..3 {
            let l = lock.clone();
            let r = catch_unwind(AssertUnwindSafe(move || match mode {
                0 => {
                    let _g = l.read();
                    panic!("boom in read");
                }
                1 => {
                    let _g = l.intent();
                    panic!("boom in intent");
                }
                _ => {
                    let mut g = l.write();
                    *g += 1;
                    panic!("boom in write");
                }
            }));
            assert!(r.is_err());
            assert!(!lock.is_locked(), "mode {mode}: the guard did not release on unwind");
        }
        // A panicking holder with waiters queued behind it hands off normally.
        let blocker = lock.write();
        let waiters: Vec<_> = (0..4)
            .map(|t| {
                let l = lock.clone();
                std::thread::spawn(move || {
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        let _g = if t % 2 == 0 { Some(l.read()) } else { None };
                        let _h = if t % 2 == 1 { Some(l.intent()) } else { None };
                        panic!("waiter {t} panics while holding");
                    }));
                    assert!(r.is_err());
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        drop(blocker);
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(*lock.write(), 1, "the write before the panic was kept (no poisoning, no rollback)");
    });
}

#[test]
fn send_and_sync_are_exactly_those_of_rwlock() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<RawPhaseLock>();
    send_sync::<PhaseLock<Vec<u8>>>();
    send::<PhaseLock<std::cell::Cell<u8>>>();
    send_sync::<ReadGuard<'static, Vec<u8>>>();
    send_sync::<IntentGuard<'static, Vec<u8>>>();
    send_sync::<MappedIntentGuard<'static, [u8]>>();
    send_sync::<WriteGuard<'static, Vec<u8>>>();
    assert!(std::mem::size_of::<RawPhaseLock>() <= 16);
}
