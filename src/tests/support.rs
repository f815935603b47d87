//! What the deterministic schedule tests share (`contract.rs`,
//! `patience.rs`): actors that take a lock in one kind and hold it
//! until told to release, a log of who entered in which order, and a wait
//! with a watchdog, so that a hang fails the test with a message instead of
//! timing CI out. Nothing here depends on timing except the watchdog.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::state::Kind;
use crate::*;

/// How long any single expected event may take before the test fails.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Who entered, in order.
pub(crate) type Log = Arc<Mutex<Vec<&'static str>>>;

/// Waits until `cond` holds; a hang fails the test with `what`.
pub(crate) fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WATCHDOG, "watchdog: gave up waiting for {what}");
        thread::sleep(Duration::from_micros(200));
    }
}

/// The raw lock of `lock`, for inspection.
pub(crate) fn raw<const PATIENCE_US: u32>(lock: &PatientLock<(), PATIENCE_US>) -> &RawPatientLock<PATIENCE_US> {
    // SAFETY: used for read-only inspection only.
    unsafe { lock.raw() }
}

/// The log so far.
pub(crate) fn log_of(log: &Log) -> Vec<&'static str> {
    log.lock().unwrap().clone()
}

/// A thread that takes the lock in one kind, logs its entry, and holds the
/// lock until told to release it.
pub(crate) struct Actor {
    name: &'static str,
    entered: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Actor {
    /// Starts the actor and waits until it is queued (one more waiter of its
    /// kind than before).
    pub(crate) fn queue<const PATIENCE_US: u32>(
        lock: &Arc<PatientLock<(), PATIENCE_US>>,
        log: &Log,
        name: &'static str,
        kind: Kind,
    ) -> Actor {
        let before = raw(lock).queued(kind);
        let actor = Actor::start(lock, log, name, kind);
        wait_for(&format!("{name} to queue"), || raw(lock).queued(kind) == before + 1);
        assert!(!actor.has_entered(), "{name} entered instead of queueing");
        actor
    }

    /// Starts the actor.
    pub(crate) fn start<const PATIENCE_US: u32>(
        lock: &Arc<PatientLock<(), PATIENCE_US>>,
        log: &Log,
        name: &'static str,
        kind: Kind,
    ) -> Actor {
        let entered = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let (lock, log, e, r) = (lock.clone(), log.clone(), entered.clone(), release.clone());
        let handle = thread::spawn(move || {
            let hold = || {
                log.lock().unwrap().push(name);
                e.store(true, Ordering::SeqCst);
                wait_for(&format!("{name} to be released"), || r.load(Ordering::SeqCst));
            };
            match kind {
                Kind::Read => {
                    let _g = lock.read();
                    hold();
                }
                Kind::Intent => {
                    let _g = lock.intent();
                    hold();
                }
                Kind::Write => {
                    let _g = lock.write();
                    hold();
                }
            }
        });
        Actor { name, entered, release, handle }
    }

    /// Whether the actor holds (or held) the lock.
    pub(crate) fn has_entered(&self) -> bool {
        self.entered.load(Ordering::SeqCst)
    }

    /// Waits until the actor has entered.
    pub(crate) fn wait_entered(&self) {
        wait_for(&format!("{} to enter", self.name), || self.has_entered());
    }

    /// Tells the actor to release, and joins it.
    pub(crate) fn finish(self) {
        self.release.store(true, Ordering::SeqCst);
        self.handle.join().expect("actor panicked");
    }
}
