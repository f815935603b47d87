use phase_lock::*;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
fn work(n: u32) -> u64 { let mut x = std::hint::black_box(0x9E37u64); for _ in 0..n { x ^= x << 13; x ^= x >> 7; x ^= x << 17; } x }
fn main() {
    let threads: usize = std::env::var("T").ok().and_then(|s| s.parse().ok()).unwrap_or(64);
    let wpct: u64 = std::env::var("W").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let total = 1_000_000usize;
    let lock = PhaseLock::new(0u64);
    let t0 = Instant::now();
    std::thread::scope(|sc| {
        for t in 0..threads {
            let lock = &lock;
            sc.spawn(move || {
                let mut r = t as u64 * 7919 + 1;
                for _ in 0..total / threads {
                    r ^= r << 13; r ^= r >> 7; r ^= r << 17;
                    if r % 100 < wpct { let mut g = lock.write(); *g += work(100); } else { let g = lock.read(); std::hint::black_box(*g + work(100)); }
                    std::hint::black_box(work(100));
                }
            });
        }
    });
    let el = t0.elapsed();
    println!("T={threads} W={wpct}: {:.2} M/s; batches {} extended-by {} strict {:.1}% of {:?}", total as f64 / el.as_secs_f64() / 1e6, DBG[0].load(Relaxed), DBG[1].load(Relaxed), DBG[2].load(Relaxed) as f64 / el.as_nanos() as f64 * 100.0, el);
}
