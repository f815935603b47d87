//! The README's "Coming from std / parking_lot" table, row by row: each call
//! it names for this crate compiles and behaves as the row says.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use phase_lock::*;

#[test]
fn construction_is_const() {
    static LOCK: PhaseLock<Vec<u32>> = PhaseLock::new(Vec::new());
    LOCK.write().push(1);
    assert_eq!(*LOCK.read(), [1]);
}

#[test]
fn no_unwrap_no_result() {
    let mut lock = PhaseLock::new(1);
    let r: ReadGuard<'_, i32> = lock.read();
    assert_eq!(*r, 1);
    let none: Option<WriteGuard<'_, i32>> = lock.try_write();
    assert!(none.is_none(), "try_* answer None, not Err(WouldBlock)");
    drop(none);
    assert!(lock.try_write_for(Duration::from_millis(1)).is_none());
    assert!(lock.try_write_until(Instant::now() + Duration::from_millis(1)).is_none());
    drop(r);
    *lock.get_mut() += 1;
    assert_eq!(lock.into_inner(), 2);
}

#[test]
fn a_panic_does_not_poison() {
    let lock = PhaseLock::new(0);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut w = lock.write();
        *w = 1;
        panic!("half-way");
    }));
    assert!(result.is_err());
    // No PoisonError: the next caller just gets the lock (and the data as left).
    assert_eq!(*lock.read(), 1);
}

#[test]
fn parking_lot_calls_are_the_same_calls() {
    let lock = PhaseLock::new((1, 2));
    let first = ReadGuard::map(lock.read(), |p| &p.0);
    assert_eq!(*first, 1);
    drop(first);
    let mut w = lock.write();
    w.1 = 3;
    let r = WriteGuard::downgrade(w);
    assert_eq!(r.1, 3);
    assert!(lock.try_read().is_some(), "downgraded: readers share again");
}

#[test]
fn check_then_modify_without_an_upgradable_read() {
    // What `upgradable_read` + `upgrade` is used for: write, then downgrade.
    let lock = PhaseLock::new(Vec::<u32>::new());
    let mut w = lock.write();
    if w.is_empty() {
        w.push(7);
    }
    let i = w.downgrade_to_intent();
    assert_eq!(*i, [7]);
    assert!(lock.try_read().is_none() && lock.try_intent().is_some());
}

#[test]
fn fair_unlock_and_bump_compile_and_release() {
    let lock = PhaseLock::new(0);
    let mut r = lock.read();
    ReadGuard::bump(&mut r);
    ReadGuard::unlock_fair(r);
    let mut w = lock.write();
    WriteGuard::bump(&mut w);
    WriteGuard::unlock_fair(w);
    assert!(lock.try_write().is_some(), "a fair unlock releases like a plain one");
}

#[cfg(feature = "arc_lock")]
#[test]
fn owned_guards_of_every_kind() {
    use std::sync::Arc;

    let lock = Arc::new(PhaseLock::new(0));
    let w: ArcWriteGuard<i32> = lock.write_arc();
    drop(w);
    let r: ArcReadGuard<i32> = lock.read_arc();
    assert!(lock.try_intent_arc().is_none());
    drop(r);
    let i: ArcIntentGuard<i32> = lock.intent_arc();
    assert!(lock.try_read_arc().is_none());
    drop(i);
}
