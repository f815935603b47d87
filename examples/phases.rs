//! The main demonstration: the three modes, then the fairness contract in
//! action, in well under a minute.
//!
//! ```sh
//! cargo run --release --example phases
//! ```
//!
//! Part 1 shows which modes share the lock. Part 2 queues requests of every
//! kind behind a writer and prints the phases in which they enter: whole
//! kinds at a time, in the round robin read → intent → write. Part 3 floods
//! the lock with readers and intent holders while one writer competes, and
//! prints what each kind got: every kind keeps getting in.
//!
//! (Part 2 uses short sleeps to let each request queue before the next one
//! starts; the deterministic version of this schedule, which inspects the
//! queue instead of sleeping, is `src/contract_tests.rs`.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use phase_lock::*;

fn main() {
    modes();
    handoff_order();
    flood();
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Part 1: the compatibility matrix, asked of the lock itself.
fn modes() {
    println!("== 1. Which modes share the lock (asked with try-locks) ==\n");
    println!("{:>8} | {:>5} {:>7} {:>6}", "held", "read", "intent", "write");
    let lock = PhaseLock::new(());
    let row = |held: &str| {
        println!(
            "{held:>8} | {:>5} {:>7} {:>6}",
            yes(lock.try_read().is_some()),
            yes(lock.try_intent().is_some()),
            yes(lock.try_write().is_some())
        )
    };
    {
        let _r = lock.read();
        row("read");
    }
    {
        let _i = lock.intent();
        row("intent");
    }
    {
        let _w = lock.write();
        row("write");
    }
    println!();
}

/// Part 2: requests of every kind queue behind a writer; record who enters
/// with whom.
fn handoff_order() {
    println!("== 2. Handoff: requests queue behind a writer, in this order ==\n");
    let lock = Arc::new(PhaseLock::new(()));
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let inside = Arc::new(AtomicU64::new(0));
    let held = lock.write();
    let names = ["W2", "I1", "R1", "I2", "R2", "W3", "R3"];
    println!("   queued: {}", names.join(" → "));
    let threads: Vec<_> = names
        .iter()
        .map(|&name| {
            let (lock, log, inside) = (lock.clone(), log.clone(), inside.clone());
            let t = thread::spawn(move || {
                let enter = |log: &Mutex<Vec<String>>| {
                    let others = inside.fetch_add(1, Ordering::SeqCst);
                    log.lock().unwrap().push(format!("{name} (with {others} inside)"));
                    // Hold long enough for a whole kind to be inside together.
                    thread::sleep(Duration::from_millis(30));
                    inside.fetch_sub(1, Ordering::SeqCst);
                };
                match name.as_bytes()[0] {
                    b'R' => {
                        let _g = lock.read();
                        enter(&log)
                    }
                    b'I' => {
                        let _g = lock.intent();
                        enter(&log)
                    }
                    _ => {
                        let _g = lock.write();
                        enter(&log)
                    }
                }
            });
            thread::sleep(Duration::from_millis(20)); // let it queue
            t
        })
        .collect();
    drop(held);
    for t in threads {
        t.join().unwrap();
    }
    println!("   entered, in order:");
    for entry in log.lock().unwrap().iter() {
        println!("     {entry}");
    }
    println!(
        "   After the write phase comes read (R1 R2 R3 together), then intent\n   \
         (I1 I2 together), then one writer per write phase (W2, then W3).\n"
    );
}

/// Per-kind results of the flood.
#[derive(Default)]
struct Class {
    acquisitions: AtomicU64,
    worst_wait_ns: AtomicU64,
}

/// Part 3: three readers and three intent holders flood the lock; one writer
/// competes. Every kind keeps getting in.
fn flood() {
    const RUN: Duration = Duration::from_secs(3);
    println!("== 3. A flood: 3 readers + 3 intent holders + 1 writer, {} s ==\n", RUN.as_secs());
    let lock = Arc::new(PhaseLock::new(0u64));
    let stop = Arc::new(AtomicBool::new(false));
    let classes: Arc<[Class; 3]> = Arc::new(Default::default());
    let plan = [(0usize, 3), (1, 3), (2, 1)];
    let threads: Vec<_> = plan
        .iter()
        .flat_map(|&(class, n)| std::iter::repeat_n(class, n))
        .map(|class| {
            let (lock, stop, classes) = (lock.clone(), stop.clone(), classes.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let busy = |n: u32| {
                        for i in 0..n {
                            std::hint::black_box(i);
                        }
                    };
                    match class {
                        0 => {
                            let g = lock.read();
                            record(&classes[0], t0);
                            std::hint::black_box(*g);
                            busy(2_000);
                        }
                        1 => {
                            let g = lock.intent();
                            record(&classes[1], t0);
                            std::hint::black_box(*g);
                            busy(2_000);
                        }
                        _ => {
                            let mut g = lock.write();
                            record(&classes[2], t0);
                            *g += 1;
                            busy(500);
                        }
                    }
                    busy(500);
                }
            })
        })
        .collect();
    thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    println!("{:>8} | {:>12} {:>14}", "kind", "acquisitions", "worst wait");
    for (name, c) in ["read", "intent", "write"].iter().zip(classes.iter()) {
        println!(
            "{name:>8} | {:>12} {:>11.3} ms",
            c.acquisitions.load(Ordering::Relaxed),
            c.worst_wait_ns.load(Ordering::Relaxed) as f64 / 1e6
        );
    }
    println!(
        "\n   No kind starves: the lone writer enters every few phases although\n   \
         readers and intent holders alone would keep the lock busy forever.\n   \
         Full report against std and parking_lot: cargo run --release --example fairness"
    );
}

fn record(class: &Class, t0: Instant) {
    class.acquisitions.fetch_add(1, Ordering::Relaxed);
    class.worst_wait_ns.fetch_max(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
}
