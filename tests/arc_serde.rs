//! The optional features as a user meets them: owned (`Arc`) guards
//! (feature `arc_lock`) and serde (feature `serde`). The README's test
//! command, `cargo test --workspace --all-features`, runs both.

mod common;

#[cfg(feature = "arc_lock")]
mod arc_lock {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    use lock_api::{ArcRwLockReadGuard, ArcRwLockWriteGuard, RwLock};
    use phase_lock::*;

    use crate::common::watchdog;

    fn send_sync_static<G: Send + Sync + 'static>() {}

    #[test]
    fn owned_guards_are_send_sync_and_static() {
        send_sync_static::<ArcIntentGuard<Vec<u32>>>();
        send_sync_static::<ArcReadGuard<Vec<u32>>>();
        send_sync_static::<ArcWriteGuard<Vec<u32>>>();
        send_sync_static::<ArcRwLockIntentGuard<RawPhaseLock, str>>();
    }

    /// Everything the owned intent guard promises, for any raw lock with an
    /// intent mode and timeouts in `std::time`. Called once per patience.
    fn exercise<R>()
    where
        R: RawIntentTimed<Duration = Duration, Instant = Instant>
            + lock_api::RawRwLockDowngrade
            + Send
            + Sync
            + 'static,
        R::IntentGuard: Send,
    {
        let lock = Arc::new(RwLock::<R, Vec<u32>>::new(vec![1, 2, 3]));

        // Intent holders share with each other, exclude readers and writers.
        let a = lock.intent_arc();
        let b = lock.try_intent_arc().expect("intent holders share the lock");
        assert!(lock.is_locked_intent());
        assert!(lock.try_read_arc().is_none());
        assert!(lock.try_write_arc().is_none());
        assert_eq!(a.len() + b.len(), 6);
        assert_eq!(Arc::strong_count(&lock), 3, "each owned guard holds one clone of the Arc");

        // Dropping releases: a writer gets in, and the clones are returned.
        drop((a, b));
        assert!(!lock.is_locked_intent());
        assert_eq!(Arc::strong_count(&lock), 1);
        lock.try_write_arc().expect("released").push(4);

        // An owned read guard excludes intent, for try and timed requests.
        let r = lock.read_arc();
        assert!(lock.try_intent_arc().is_none());
        assert!(lock.try_intent_arc_for(Duration::from_millis(2)).is_none());
        drop(r);

        // into_arc releases and hands back the same lock.
        let g = lock.intent_arc();
        let back = ArcRwLockIntentGuard::into_arc(g);
        assert!(Arc::ptr_eq(&back, &lock));
        assert!(lock.try_write().is_some());
        drop(back);

        // lock_api's owned write guard downgrades to an owned read guard.
        let mut w = lock.write_arc();
        w.push(5);
        let r: ArcRwLockReadGuard<R, Vec<u32>> = ArcRwLockWriteGuard::downgrade(w);
        assert_eq!(*r, [1, 2, 3, 4, 5]);
        assert!(lock.try_intent_arc().is_none());
        drop(r);
        assert_eq!(Arc::strong_count(&lock), 1);
    }

    #[test]
    fn intent_arc_works_for_the_default_lock() {
        exercise::<RawPhaseLock>();
    }

    #[test]
    fn intent_arc_works_for_every_patience() {
        exercise::<RawStrictPhaseLock>();
        exercise::<RawPatientLock<50>>();
    }

    #[test]
    fn guard_moves_into_a_spawned_thread() {
        watchdog("guard_moves_into_a_spawned_thread", 30, || {
            let lock = Arc::new(PhaseLock::new(vec![10u32, 20]));
            let guard = lock.intent_arc();
            let (held, go_on) = (mpsc::channel(), mpsc::channel::<()>());
            let worker = thread::spawn(move || {
                // The guard crossed the thread boundary and still holds the lock.
                let sum: u32 = guard.iter().sum();
                held.0.send(()).unwrap();
                go_on.1.recv().unwrap();
                drop(guard);
                sum
            });
            held.1.recv().unwrap();
            assert!(lock.try_read().is_none(), "the moved guard still holds the lock");
            assert!(lock.try_intent().is_some(), "and still shares it with intent holders");
            go_on.0.send(()).unwrap();
            assert_eq!(worker.join().unwrap(), 30);
            assert!(lock.try_write().is_some(), "dropped on the other thread, released");
        });
    }

    #[test]
    fn guard_outlives_every_other_handle() {
        let guard = {
            let lock = Arc::new(PhaseLock::new(String::from("still here")));
            lock.intent_arc()
        };
        assert_eq!(&*guard, "still here");
        let lock = ArcRwLockIntentGuard::rwlock(&guard).clone();
        assert_eq!(Arc::strong_count(&lock), 2);
        assert!(lock.try_write().is_none());
        drop(guard);
        assert_eq!(Arc::strong_count(&lock), 1);
        assert!(lock.try_write().is_some());
    }

    #[test]
    fn timed_intent_arc_times_out_while_a_write_arc_is_held() {
        let lock = Arc::new(PhaseLock::new(0u64));
        let w = lock.write_arc();

        let timeout = Duration::from_millis(20);
        let start = Instant::now();
        assert!(lock.try_intent_arc_for(timeout).is_none());
        assert!(start.elapsed() >= timeout, "gave up after {:?}, before the timeout", start.elapsed());

        let deadline = Instant::now() + timeout;
        assert!(lock.try_intent_arc_until(deadline).is_none());
        assert!(Instant::now() >= deadline);

        // The timed-out requests left no trace: once the writer leaves,
        // an untimed intent request enters at once.
        assert_eq!(Arc::strong_count(&lock), 2, "only the write guard holds a clone; a failed request keeps none");
        drop(w);
        assert!(lock.try_intent_arc().is_some());
    }

    #[test]
    fn timed_intent_arc_enters_when_the_writer_leaves() {
        watchdog("timed_intent_arc_enters_when_the_writer_leaves", 30, || {
            let lock = Arc::new(PhaseLock::new(0u64));
            let mut w = lock.write_arc();
            let waiter = {
                let lock = Arc::clone(&lock);
                thread::spawn(move || lock.try_intent_arc_for(Duration::from_secs(20)).map(|g| *g))
            };
            thread::sleep(Duration::from_millis(10));
            *w = 42;
            drop(w);
            assert_eq!(waiter.join().unwrap(), Some(42));
        });
    }

    #[test]
    fn a_panic_while_holding_an_owned_guard_releases_it() {
        let lock = Arc::new(PhaseLock::new(1));
        let guard = lock.intent_arc();
        let result = catch_unwind(AssertUnwindSafe(move || {
            let _g = guard;
            panic!("inside the critical section");
        }));
        assert!(result.is_err());
        assert!(lock.try_write().is_some(), "never poisoned, and released by the unwind");
    }

    #[test]
    fn owned_guard_formats_as_its_data() {
        let lock = Arc::new(PhaseLock::new(String::from("x")));
        let g = lock.intent_arc();
        assert_eq!(format!("{g:?} {g}"), "\"x\" x");
    }
}

#[cfg(feature = "serde")]
mod serde_feature {
    use phase_lock::*;

    #[test]
    fn serializes_as_its_data() {
        let data = vec![3u32, 1, 4, 1, 5];
        let lock = PhaseLock::new(data.clone());
        let as_lock = serde_json::to_string(&lock).unwrap();
        assert_eq!(as_lock, serde_json::to_string(&data).unwrap());
        assert_eq!(as_lock, "[3,1,4,1,5]");
    }

    #[test]
    fn serializes_while_readers_hold_it() {
        let lock = PhaseLock::new(vec![1u32]);
        let _r = lock.read();
        assert_eq!(serde_json::to_string(&lock).unwrap(), "[1]");
    }

    #[test]
    fn deserializes_into_an_unlocked_lock() {
        let lock: PhaseLock<Vec<u32>> = serde_json::from_str("[2, 7, 1, 8]").unwrap();
        assert!(lock.try_write().is_some(), "comes out unlocked");
        assert_eq!(lock.into_inner(), [2, 7, 1, 8]);
        assert!(serde_json::from_str::<PhaseLock<Vec<u32>>>("[1, -1]").is_err());
    }

    #[test]
    fn round_trips_inside_other_data() {
        let locks = vec![PhaseLock::new(vec![1u32]), PhaseLock::new(vec![])];
        let json = serde_json::to_string(&locks).unwrap();
        assert_eq!(json, "[[1],[]]");
        let back: Vec<PhaseLock<Vec<u32>>> = serde_json::from_str(&json).unwrap();
        let back: Vec<Vec<u32>> = back.into_iter().map(PhaseLock::into_inner).collect();
        assert_eq!(back, [vec![1], vec![]]);
    }
}
