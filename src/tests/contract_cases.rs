// The contract tests' cases, included twice by `contract.rs` (once per
// starting state of the lock); each includer defines `new_lock`.

#[test]
fn rule1_shared_kinds_enter_while_their_kind_holds() {
    let (lock, log) = new_lock();
    let g = lock.read();
    let r = Actor::start(&lock, &log, "R", Kind::Read);
    r.wait_entered(); // entered while `g` is still held
    r.finish();
    drop(g);

    let g = lock.intent();
    let i = Actor::start(&lock, &log, "I", Kind::Intent);
    i.wait_entered();
    assert!(lock.try_intent().is_some());
    i.finish();
    drop(g);
    assert_idle(&lock);
}

#[test]
fn rule2_no_barging_once_another_kind_waits() {
    let (lock, log) = new_lock();
    let g = lock.read();
    let w = Actor::queue(&lock, &log, "W", Kind::Write);
    assert!(lock.try_read().is_none(), "a reader barged past a waiting writer");
    let r = Actor::queue(&lock, &log, "R", Kind::Read);
    drop(g);
    w.wait_entered();
    assert!(!r.has_entered());
    w.finish();
    r.wait_entered();
    r.finish();
    assert_eq!(log_of(&log), ["W", "R"]);
    assert_idle(&lock);
}

#[test]
fn rule3_round_robin_admits_whole_kinds_after_write() {
    let (lock, log) = new_lock();
    let g = lock.write();
    let w2 = Actor::queue(&lock, &log, "W2", Kind::Write);
    let i1 = Actor::queue(&lock, &log, "I1", Kind::Intent);
    let r1 = Actor::queue(&lock, &log, "R1", Kind::Read);
    let i2 = Actor::queue(&lock, &log, "I2", Kind::Intent);
    let r2 = Actor::queue(&lock, &log, "R2", Kind::Read);
    drop(g);
    // After write comes read: both readers, together.
    r1.wait_entered();
    r2.wait_entered();
    assert!(!i1.has_entered() && !i2.has_entered() && !w2.has_entered());
    r1.finish();
    assert!(!i1.has_entered(), "intent entered while a reader still held the lock");
    r2.finish();
    // Then intent: both, together.
    i1.wait_entered();
    i2.wait_entered();
    assert!(!w2.has_entered());
    i1.finish();
    i2.finish();
    w2.wait_entered();
    w2.finish();
    let order = log_of(&log);
    assert_eq!(order[4], "W2");
    assert!(order[..2].contains(&"R1") && order[..2].contains(&"R2"), "{order:?}");
    assert!(order[2..4].contains(&"I1") && order[2..4].contains(&"I2"), "{order:?}");
    assert_idle(&lock);
}

#[test]
fn rule4_worst_case_reader_sees_two_phases() {
    // A reader that queues during a read phase (because others wait) is the
    // worst case of the bound: intent and write go first, then read.
    let (lock, log) = new_lock();
    let g = lock.read();
    let w = Actor::queue(&lock, &log, "W", Kind::Write);
    let i = Actor::queue(&lock, &log, "I", Kind::Intent);
    let r = Actor::queue(&lock, &log, "R", Kind::Read);
    drop(g);
    i.wait_entered();
    i.finish();
    w.wait_entered();
    w.finish();
    r.wait_entered();
    r.finish();
    assert_eq!(log_of(&log), ["I", "W", "R"]);
    assert_idle(&lock);
}

#[test]
fn rule4_writers_are_fifo_one_per_phase() {
    let (lock, log) = new_lock();
    let g = lock.intent();
    let ws: Vec<Actor> = ["W1", "W2", "W3"].into_iter().map(|n| Actor::queue(&lock, &log, n, Kind::Write)).collect();
    drop(g);
    for (k, w) in ws.into_iter().enumerate() {
        w.wait_entered();
        assert_eq!(log_of(&log).len(), k + 1, "two writers in one phase");
        w.finish();
    }
    assert_eq!(log_of(&log), ["W1", "W2", "W3"]);
    assert_idle(&lock);
}

#[test]
fn rule5_try_locks_never_queue() {
    let (lock, _log) = new_lock();
    let g = lock.write();
    assert!(lock.try_read().is_none());
    assert!(lock.try_intent().is_none());
    assert!(lock.try_write().is_none());
    assert_eq!(raw(&lock).state_word() & WAITING_MASK, 0);
    drop(g);
    assert_idle(&lock);
}

/// A timed request of `timed` kind queues during a read phase, a reader
/// queues behind it; when the timed request gives up, the reader must join
/// the running read phase at once (rule 1 holds again), and nothing is left.
fn timed_out_waiter_leaves_no_trace(timed: Kind) {
    let (lock, log) = new_lock();
    let g = lock.read();
    let l2 = lock.clone();
    let timed_thread = thread::spawn(move || match timed {
        Kind::Intent => l2.try_intent_for(Duration::from_millis(300)).is_some(),
        Kind::Write => l2.try_write_for(Duration::from_millis(300)).is_some(),
        Kind::Read => unreachable!(),
    });
    wait_for("the timed request to queue", || raw(&lock).queued(timed) == 1);
    let r = Actor::start(&lock, &log, "R", Kind::Read);
    assert!(!timed_thread.join().unwrap(), "the timed request got a held lock");
    r.wait_entered(); // while `g` still holds the read phase
    assert_eq!(holders(raw(&lock).state_word(), Kind::Read), 2);
    r.finish();
    drop(g);
    assert_idle(&lock);
}

#[test]
fn rule5_timed_out_intent_leaves_no_trace() {
    timed_out_waiter_leaves_no_trace(Kind::Intent);
}

#[test]
fn rule5_timed_out_writer_leaves_no_trace() {
    timed_out_waiter_leaves_no_trace(Kind::Write);
}

#[test]
fn timed_request_succeeds_when_handed_the_lock() {
    let (lock, _log) = new_lock();
    let g = lock.write();
    let l2 = lock.clone();
    let t = thread::spawn(move || l2.try_read_for(Duration::from_secs(120)).map(drop).is_some());
    wait_for("the reader to queue", || raw(&lock).queued(Kind::Read) == 1);
    drop(g);
    assert!(t.join().unwrap());
    assert_idle(&lock);
}

#[test]
fn downgrade_to_read_admits_waiting_readers_only() {
    let (lock, log) = new_lock();
    let g = lock.write();
    let i = Actor::queue(&lock, &log, "I", Kind::Intent);
    let r1 = Actor::queue(&lock, &log, "R1", Kind::Read);
    let r2 = Actor::queue(&lock, &log, "R2", Kind::Read);
    let g = lock_api::RwLockWriteGuard::downgrade(g);
    r1.wait_entered();
    r2.wait_entered();
    assert!(!i.has_entered());
    r1.finish();
    r2.finish();
    drop(g);
    i.wait_entered();
    i.finish();
    assert_idle(&lock);
}

#[test]
fn downgrade_to_intent_does_not_jump_waiting_readers() {
    let (lock, log) = new_lock();
    let g = lock.write();
    let r = Actor::queue(&lock, &log, "R", Kind::Read);
    let i = Actor::queue(&lock, &log, "I", Kind::Intent);
    let g = g.downgrade_to_intent();
    assert!(lock.is_locked_intent() && !lock.is_locked_exclusive());
    // It is the readers' turn after the write phase: the waiting intent
    // request must not join the downgraded holder ahead of them.
    assert!(!i.has_entered() && !r.has_entered());
    drop(g);
    r.wait_entered();
    assert!(!i.has_entered());
    r.finish();
    i.wait_entered();
    i.finish();
    assert_eq!(log_of(&log), ["R", "I"]);
    assert_idle(&lock);
}

#[test]
fn downgrade_to_intent_admits_waiting_intents_without_readers() {
    let (lock, log) = new_lock();
    let g = lock.write();
    let w = Actor::queue(&lock, &log, "W", Kind::Write);
    let i = Actor::queue(&lock, &log, "I", Kind::Intent);
    let g = g.downgrade_to_intent();
    i.wait_entered();
    assert!(!w.has_entered());
    i.finish();
    drop(g);
    w.wait_entered();
    w.finish();
    assert_idle(&lock);
}

#[test]
fn holder_overflow_panics_and_leaves_the_state_alone() {
    let full = (MAX_SHARED * READ_ONE) | Kind::Read.last_bits();
    let raw = RawStrictPhaseLock::with_state(full);
    let err = catch_unwind(AssertUnwindSafe(|| raw.lock_shared())).map(drop).expect_err("overflow must panic");
    let msg = err.downcast_ref::<String>().map(String::as_str).unwrap_or("");
    assert!(msg.contains("too many read holders"), "unclear panic message: {msg:?}");
    assert_eq!(raw.state_word(), full, "the state word changed");
    assert!(catch_unwind(AssertUnwindSafe(|| raw.try_lock_shared())).is_err());
    assert_eq!(raw.state_word(), full);
}

#[test]
fn expired_timed_request_does_not_queue() {
    let (lock, _log) = new_lock();
    let g = lock.read();
    assert!(lock.try_write_for(Duration::ZERO).is_none());
    assert!(lock.try_intent_until(Instant::now()).is_none());
    assert_eq!(raw(&lock).state_word() & WAITING_MASK, 0);
    assert!(lock.try_read_for(Duration::ZERO).is_some(), "an expired request left a waiting bit");
    drop(g);
    assert_idle(&lock);
}
