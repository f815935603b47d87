//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Runs `f` on its own thread and fails the test with a clear message if it
/// has not finished after `secs` seconds (a hang is a failure, not a CI
/// timeout). Panics inside `f` are propagated.
pub fn watchdog<T: Send + 'static>(name: &str, secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        let out = f();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: `{name}` did not finish within {secs} s: a lost wake-up, a deadlock or starvation")
        }
    }
}

/// The soak's generator and busy loop (one copy, in `soak/src/lib.rs`).
#[allow(unused_imports)] // not every test file uses both
pub use phase_lock_soak::{Rng, work};
