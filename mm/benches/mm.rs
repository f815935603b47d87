//! `mm`: the page-table workloads of `phase_lock_mm` on all three
//! strategies (Classic, Refcount, Split).
//!
//! ```sh
//! cargo bench -p phase-lock-mm --bench mm                 # about 4 minutes on 2 cores
//! cargo bench -p phase-lock-mm --bench mm -- fault_storm  # criterion's filter works as usual
//! ```
//!
//! * `fault_storm/{disjoint,shared}/<strategy>/<threads>`: 1–8 threads fault
//!   64 MiB of anonymous memory, each in its own PTE tables (disjoint) or
//!   interleaved page by page in the same tables (shared). One iteration is
//!   one fault.
//! * `zap_churn/<strategy>`: fault a 2 MiB chunk page by page, then DONTNEED
//!   it (freeing the table where the strategy can). One iteration is one
//!   chunk.
//! * `semi_walk_during_faults/<strategy>`: a semi-locked walk of a 2 MiB
//!   range, read twice inside one hold, while a second thread faults and
//!   DONTNEEDs the same region.
//! * `punch_during_faults/<strategy>`: an rmap punch-hole of 2 MiB of a file
//!   that two address spaces map, while a thread per address space faults
//!   it.
//!
//! `cargo run --release -p phase-lock-mm --example page_table` runs the same
//! workloads once and prints one table with the ratios.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use phase_lock_mm::*;

const BASE: u64 = 0x10_0000_0000;
const STORM_PAGES: u64 = 64 << 20 >> 12;

fn fault_storm(c: &mut Criterion) {
    for shared in [false, true] {
        let name = if shared { "fault_storm/shared" } else { "fault_storm/disjoint" };
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        for s in Strategy::ALL {
            for threads in [1u64, 2, 4, 8] {
                g.bench_function(BenchmarkId::new(s.name(), threads), |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        let mut left = iters;
                        while left > 0 {
                            let n = left.min(STORM_PAGES) / threads * threads;
                            let n = n.max(threads);
                            left = left.saturating_sub(n);
                            let frames = FrameAllocator::new();
                            let mm = Mm::new(s, &frames);
                            mm.mmap(BASE, STORM_PAGES.max(n) * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
                            let per = n / threads;
                            let start = Instant::now();
                            std::thread::scope(|sc| {
                                for t in 0..threads {
                                    let mm = &mm;
                                    sc.spawn(move || {
                                        for i in 0..per {
                                            let page = if shared { i * threads + t } else { t * per + i };
                                            mm.fault(BASE + page * PAGE_SIZE, true).unwrap();
                                        }
                                    });
                                }
                            });
                            total += start.elapsed();
                        }
                        total
                    })
                });
            }
        }
        g.finish();
    }
}

fn zap_churn(c: &mut Criterion) {
    let mut g = c.benchmark_group("zap_churn");
    for s in Strategy::ALL {
        let frames = FrameAllocator::new();
        let mm = Mm::new(s, &frames);
        mm.mmap(BASE, 64 * PMD_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
        let mut chunk = 0;
        g.bench_function(s.name(), |b| {
            b.iter(|| {
                let a = BASE + (chunk % 64) * PMD_SIZE;
                chunk += 1;
                for p in 0..512 {
                    mm.fault(a + p * PAGE_SIZE, true).unwrap();
                }
                mm.madvise_dontneed(a, PMD_SIZE).unwrap();
            })
        });
    }
    g.finish();
}

/// Runs `f` while `background` loops on other threads.
fn with_background<R>(background: Vec<Box<dyn Fn() + Send + Sync + '_>>, f: impl FnOnce() -> R) -> R {
    let stop = AtomicBool::new(false);
    std::thread::scope(|sc| {
        for job in &background {
            let stop = &stop;
            sc.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    job();
                }
            });
        }
        let r = f();
        stop.store(true, Ordering::Relaxed);
        r
    })
}

fn semi_walk_during_faults(c: &mut Criterion) {
    let mut g = c.benchmark_group("semi_walk_during_faults");
    for s in Strategy::ALL {
        let frames = FrameAllocator::new();
        let mm = Mm::new(s, &frames);
        mm.mmap(BASE, 16 * PMD_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
        let mmr = &mm;
        let faulter: Box<dyn Fn() + Send + Sync> = Box::new(move || {
            for chunk in 0..16 {
                let a = BASE + chunk * PMD_SIZE;
                for p in (0..512).step_by(4) {
                    mmr.fault(a + p * PAGE_SIZE, true).unwrap();
                }
                mmr.madvise_dontneed(a, PMD_SIZE).unwrap();
            }
        });
        with_background(vec![faulter], || {
            let mut i = 0u64;
            g.bench_function(s.name(), |b| {
                b.iter(|| {
                    i += 7;
                    let a = BASE + (i % 16) * PMD_SIZE;
                    let h = mm.semi_locked();
                    let x = h.frames(a, PMD_SIZE).unwrap();
                    let y = h.frames(a, PMD_SIZE).unwrap();
                    x == y
                })
            });
        });
    }
    g.finish();
}

fn punch_during_faults(c: &mut Criterion) {
    let mut g = c.benchmark_group("punch_during_faults");
    for s in Strategy::ALL {
        let frames = FrameAllocator::new();
        let file: Arc<File> = File::new(&frames);
        let mms = [Mm::new(s, &frames), Mm::new(s, &frames)];
        for mm in &mms {
            mm.mmap(BASE, 16 * PMD_SIZE, Prot::ReadWrite, Backing::File { file: file.clone(), pgoff: 0 }).unwrap();
        }
        let jobs: Vec<Box<dyn Fn() + Send + Sync>> = mms
            .iter()
            .map(|mm| -> Box<dyn Fn() + Send + Sync> {
                Box::new(move || {
                    for chunk in 0..16 {
                        for p in (0..512).step_by(8) {
                            mm.fault(BASE + chunk * PMD_SIZE + p * PAGE_SIZE, false).unwrap();
                        }
                    }
                })
            })
            .collect();
        with_background(jobs, || {
            let mut i = 0u64;
            g.bench_function(s.name(), |b| {
                b.iter(|| {
                    i += 5;
                    file.punch_hole((i % 16) * PMD_SIZE, PMD_SIZE).unwrap()
                })
            });
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    fault_storm(&mut c);
    zap_churn(&mut c);
    semi_walk_during_faults(&mut c);
    punch_during_faults(&mut c);
    c.final_summary();
}
