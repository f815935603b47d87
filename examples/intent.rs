//! The intent mode at work: a table of counters that many threads update at
//! once, each slot under a finer lock of its own, while a reader takes
//! consistent snapshots and a writer grows the table.
//!
//! ```sh
//! cargo run --release --example intent    # well under a second
//! ```
//!
//! * **intent** (many holders, excluding readers and writers): each worker
//!   moves units between two slots of its own, locking one slot's `Mutex` at
//!   a time. Between the two steps the table's total is off by one; intent
//!   holders do not mind, since each touches only its own slots.
//! * **read** (many holders, excluding intent holders and writers): a
//!   snapshot sums every slot. No intent holder is inside, so no move is
//!   half done and the sum is always the same.
//! * **write** (one holder, excluding everybody): growing the table changes
//!   its shape, so it needs the whole table.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use phase_lock::{PhaseLock, RwLockIntentExt};

/// Worker threads; worker `i` owns slots `2i` and `2i + 1`.
const WORKERS: usize = 4;
/// Units each worker moves from its first slot to its second.
const MOVES: u64 = 20_000;
/// Snapshots the reader takes at least (it goes on until the workers are
/// done).
const SNAPSHOTS: usize = 200;
/// Times the writer grows the table, and by how many slots.
const GROWTHS: usize = 4;
const GROW_BY: usize = 8;

fn main() {
    // Every worker's first slot starts with all its units.
    let table = PhaseLock::new((0..2 * WORKERS).map(|i| Mutex::new(if i % 2 == 0 { MOVES } else { 0 })).collect());
    let table: &PhaseLock<Vec<Mutex<u64>>> = &table;
    let total = WORKERS as u64 * MOVES;
    let done = &AtomicUsize::new(0);

    thread::scope(|s| {
        for w in 0..WORKERS {
            s.spawn(move || {
                for _ in 0..MOVES {
                    let slots = table.intent();
                    *slots[2 * w].lock().unwrap() -= 1;
                    // Here the table's total is one short: no reader can see it.
                    *slots[2 * w + 1].lock().unwrap() += 1;
                }
                done.fetch_add(1, Ordering::Release);
            });
        }
        let reader = s.spawn(move || {
            let mut taken = 0;
            while taken < SNAPSHOTS || done.load(Ordering::Acquire) < WORKERS {
                let slots = table.read();
                let sum: u64 = slots.iter().map(|slot| *slot.lock().unwrap()).sum();
                assert_eq!(sum, total, "a snapshot saw a move half done");
                drop(slots);
                taken += 1;
            }
            taken
        });
        s.spawn(move || {
            for _ in 0..GROWTHS {
                table.write().extend((0..GROW_BY).map(|_| Mutex::new(0)));
                thread::yield_now();
            }
        });
        let taken = reader.join().unwrap();
        println!("{taken} snapshots under read, each summing to {total}");
    });

    let slots = table.read();
    assert_eq!(slots.len(), 2 * WORKERS + GROWTHS * GROW_BY);
    for w in 0..WORKERS {
        assert_eq!((*slots[2 * w].lock().unwrap(), *slots[2 * w + 1].lock().unwrap()), (0, MOVES));
    }
    println!(
        "{WORKERS} workers moved {total} units under intent, and the table grew to {} slots under write",
        slots.len()
    );
}
