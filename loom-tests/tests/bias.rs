//! loom model checks of the biased shared path (bias.rs): a holder
//! publishing while another kind revokes the bias, and a revocation racing a
//! timeout.
//!
//! Run with `RUSTFLAGS="--cfg phase_lock_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p loom-tests --release --test bias`.
//! Under loom the slot table has two slots, so threads also collide.
//! Removing either half of the store→load handshake (`sync::dekker_fence`
//! in `bias::publish` or in `revoke`) makes
//! `a_publishing_reader_races_a_revoking_writer` fail with a data race on
//! the cell: the reader enters unseen beside the writer.
#![cfg(phase_lock_loom)]

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use loom_tests::{assert_idle, bump, model, read_value, reader_races_a_writer};
use phase_lock::*;

type Lock = loom_tests::Lock<RawPhaseLock>;

/// A new lock, biased toward read or intent.
fn biased_lock(intent: bool) -> Arc<Lock> {
    let raw = RawPhaseLock::new();
    raw.bias_for_model(intent);
    loom_tests::new_lock(raw)
}

/// A reader publishes while a writer revokes the bias: either the reader is
/// seen (moved into the count, or published before the scan) or it sees the
/// bias gone and takes the counted path. Never both inside.
#[test]
fn a_publishing_reader_races_a_revoking_writer() {
    model(|| reader_races_a_writer(biased_lock(false)));
}

/// The same race between the two shared kinds: an intent holder (which
/// writes, as intent holders do under their finer locks) publishes while a
/// reader revokes the intent bias.
#[test]
fn a_publishing_intent_holder_races_a_revoking_reader() {
    model(|| {
        let lock = biased_lock(true);
        let l = lock.clone();
        let i = thread::spawn(move || bump(&l.intent()));
        let seen = read_value(&lock.read());
        i.join().unwrap();
        assert!(seen <= 1);
        assert_eq!(read_value(&lock.read()), 1);
        assert_idle(&lock);
    });
}

/// A published reader holds; a timed writer revokes the bias (moving the
/// reader into the count), queues, and its timeout races the reader's
/// release: it gets the lock or leaves no trace, and the moved reader's
/// counted release ends the phase either way.
#[test]
fn a_revocation_races_a_timeout() {
    model(|| {
        let lock = biased_lock(false);
        let g = lock.read();
        let l = lock.clone();
        let w = thread::spawn(move || match l.try_write_for(Duration::from_secs(60)) {
            Some(g) => {
                bump(&g);
                true
            }
            None => false,
        });
        assert_eq!(read_value(&g), 0);
        drop(g);
        let entered = w.join().unwrap();
        assert_eq!(read_value(&lock.read()), u64::from(entered));
        assert_idle(&lock);
    });
}
