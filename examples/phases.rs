//! The main demonstration: the three modes, the fairness contract in
//! action and, with the `mm` feature, the lock doing the job it was designed
//! for, in well under a minute.
//!
//! ```sh
//! cargo run --release --features mm --example phases
//! ```
//!
//! Part 1 shows which modes share the lock. Part 2 queues requests of every
//! kind behind a writer and prints the phases in which they enter: whole
//! kinds at a time, in the round robin read → intent → write. Part 3 floods
//! the lock with readers and intent holders while one writer competes, and
//! prints what each kind got: every kind keeps getting in. Part 4 (feature
//! `mm`) runs the same page-table workload on the three locking designs of
//! `phase_lock_mm`: page-table memory after MADV_DONTNEED, and whether a
//! semi-locked walker ever sees a page table change under it.
//!
//! (Part 2 uses short sleeps to let each request queue before the next one
//! starts; the deterministic version of this schedule, which inspects the
//! queue instead of sleeping, is `src/tests/contract.rs`.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use phase_lock::*;

fn main() {
    modes();
    handoff_order();
    flood();
    #[cfg(feature = "mm")]
    page_tables();
    #[cfg(not(feature = "mm"))]
    println!("\n(Run with `--features mm` for part 4: the page-table integration.)");
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
/// competes. Every kind keeps getting in, on the default lock (patience
/// 1 ms) and on the strict one (patience 0), shown side by side.
fn flood() {
    const RUN: Duration = Duration::from_secs(2);
    println!("== 3. A flood: 3 readers + 3 intent holders + 1 writer, {} s per lock ==\n", RUN.as_secs());
    let default = flood_on::<DEFAULT_PATIENCE_US>(RUN);
    let strict = flood_on::<0>(RUN);
    println!(
        "{:>8} | {:>14} {:>12} | {:>14} {:>12}",
        "kind", "PhaseLock acq/s", "worst wait", "Strict acq/s", "worst wait"
    );
    for (i, name) in ["read", "intent", "write"].iter().enumerate() {
        let (d, s) = (&default[i], &strict[i]);
        println!(
            "{name:>8} | {:>14.0} {:>9.3} ms | {:>14.0} {:>9.3} ms",
            d.acquisitions.load(Ordering::Relaxed) as f64 / RUN.as_secs_f64(),
            d.worst_wait_ns.load(Ordering::Relaxed) as f64 / 1e6,
            s.acquisitions.load(Ordering::Relaxed) as f64 / RUN.as_secs_f64(),
            s.worst_wait_ns.load(Ordering::Relaxed) as f64 / 1e6
        );
    }
    println!(
        "\n   No kind starves on either lock: the lone writer keeps entering although\n   \
         readers and intent holders alone would keep the lock busy forever. The\n   \
         default lock lets running threads of a compatible kind in for up to 1 ms\n   \
         after somebody queued, then hands off strictly; the strict lock hands off\n   \
         at every change of kind, paying a wake-up each time.\n   \
         Full report against std and parking_lot:\n   cargo run --release -p phase-lock-reports --bin fairness"
    );
}

/// The flood of part 3 on a lock of patience `P`; per-kind results.
fn flood_on<const P: u32>(run: Duration) -> Arc<[Class; 3]> {
    let lock = Arc::new(PatientLock::<u64, P>::new(0u64));
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
    thread::sleep(run);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    classes
}

fn record(class: &Class, t0: Instant) {
    class.acquisitions.fetch_add(1, Ordering::Relaxed);
    class.worst_wait_ns.fetch_max(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// Part 4: the split mmap lock beside the designs it replaces.
#[cfg(feature = "mm")]
fn page_tables() {
    use phase_lock_mm::{Backing, FrameAllocator, Mm, PAGE_SIZE, PMD_SIZE, Prot, Strategy};

    const BASE: u64 = 0x1000_0000;
    const LEN: u64 = 256 << 20;
    println!("\n== 4. The mmap lock split into a VMA lock and a page-table PhaseLock ==\n");
    println!("   Touch {} MiB, then MADV_DONTNEED it in 2 MiB chunks; meanwhile, in a second", LEN >> 20);
    println!("   address space, 2 threads fault and zap while a semi-locked walker reads a");
    println!("   range twice under one hold and counts the reads that differ.\n");
    println!(
        "{:>9} | {:>18} {:>22} | {:>22}",
        "design", "page tables, peak", "after DONTNEED", "walks that saw a change"
    );
    let frames = FrameAllocator::new();
    for strategy in Strategy::ALL {
        let mm = Mm::new(strategy, &frames);
        mm.mmap(BASE, LEN, Prot::ReadWrite, Backing::Anon).expect("mmap");
        for page in 0..LEN / PAGE_SIZE {
            mm.fault(BASE + page * PAGE_SIZE, true).expect("fault");
        }
        let peak = mm.stats().page_table_bytes;
        for chunk in 0..LEN / PMD_SIZE {
            mm.madvise_dontneed(BASE + chunk * PMD_SIZE, PMD_SIZE).expect("madvise");
        }
        let after = mm.stats().page_table_bytes;
        let (changed, walks) = walks_during_faults(strategy, &frames);
        println!(
            "{:>9} | {:>15} kB {:>15} kB ({:>3.0}%) | {:>13} of {:>6}",
            strategy.name(),
            peak >> 10,
            after >> 10,
            100.0 * after as f64 / peak as f64,
            changed,
            walks
        );
    }
    println!(
        "\n   Classic can free empty page tables only under the mmap lock for write, so\n   \
         DONTNEED leaves them; Refcount and Split free them. Only Split's readers\n   \
         exclude the page-table modifiers (read vs intent), so its semi-locked walks\n   \
         never see a change. Full table: cargo run --release -p phase-lock-mm --example page_table"
    );
}

/// Two threads fault and zap 4 MiB of one address space for half a second
/// while this thread walks it semi-locked, reading it twice per hold.
#[cfg(feature = "mm")]
fn walks_during_faults(strategy: phase_lock_mm::Strategy, frames: &Arc<phase_lock_mm::FrameAllocator>) -> (u64, u64) {
    use phase_lock_mm::{Backing, Mm, PAGE_SIZE, Prot};

    const BASE: u64 = 0x4000_0000;
    const LEN: u64 = 4 << 20;
    let mm = Arc::new(Mm::new(strategy, frames));
    mm.mmap(BASE, LEN, Prot::ReadWrite, Backing::Anon).expect("mmap");
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2u64)
        .map(|t| {
            let (mm, stop) = (mm.clone(), stop.clone());
            thread::spawn(move || {
                let half = LEN / 2;
                let mut page = 0;
                while !stop.load(Ordering::Relaxed) {
                    let addr = BASE + t * half + (page % (half / PAGE_SIZE)) * PAGE_SIZE;
                    mm.fault(addr, true).expect("fault");
                    if page % 64 == 63 {
                        mm.madvise_dontneed(BASE + t * half, half).expect("madvise");
                    }
                    page += 1;
                }
            })
        })
        .collect();
    let (mut changed, mut walks) = (0, 0);
    let end = Instant::now() + Duration::from_millis(500);
    while Instant::now() < end {
        let hold = mm.semi_locked();
        let first = hold.frames(BASE, LEN).expect("walk");
        let second = hold.frames(BASE, LEN).expect("walk");
        drop(hold);
        walks += 1;
        changed += u64::from(first != second);
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    (changed, walks)
}
