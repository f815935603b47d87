//! What the measured threads do: the critical-section [`work`] and its
//! calibration ([`Work`]), the operation [`Mix`]es and the per-thread random
//! source ([`Rng`]), and the thread driver with a barrier start
//! ([`run_threads`]).

use std::hint::black_box;
use std::sync::{Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::locks::{Class, Comparator};

/// Real work: `units` rounds of a xorshift generator, a dependent chain the
/// compiler can neither fold nor vectorise. About one nanosecond a unit;
/// [`Work::ns`] calibrates it.
#[inline]
pub fn work(units: u32) -> u64 {
    let mut x = black_box(0x9E37_79B9_7F4A_7C15u64);
    for _ in 0..black_box(units) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}

/// An amount of [`work`], chosen by its duration on this machine.
#[derive(Clone, Copy, Debug)]
pub struct Work {
    /// The nominal duration, for labels.
    pub nominal_ns: u32,
    /// Work units that take about `nominal_ns` here.
    pub units: u32,
}

impl Work {
    /// Work that takes about `ns` nanoseconds on this machine (0: none).
    pub fn ns(ns: u32) -> Work {
        let per_unit = ns_per_unit();
        Work { nominal_ns: ns, units: (f64::from(ns) / per_unit).round() as u32 }
    }

    /// Does the work.
    #[inline]
    pub fn run(self) -> u64 {
        if self.units == 0 { 0 } else { work(self.units) }
    }

    /// A label: `0ns`, `100ns`, `1us`.
    pub fn label(self) -> String {
        match self.nominal_ns {
            n if n >= 1000 && n % 1000 == 0 => format!("{}us", n / 1000),
            n => format!("{n}ns"),
        }
    }
}

/// Nanoseconds per unit of [`work`], measured once per process (the fastest
/// of several runs of 100 000 units, so that a preemption does not inflate
/// it).
pub fn ns_per_unit() -> f64 {
    static CAL: OnceLock<f64> = OnceLock::new();
    *CAL.get_or_init(|| {
        const UNITS: u32 = 100_000;
        (0..15)
            .map(|_| {
                let t = Instant::now();
                work(UNITS);
                t.elapsed().as_secs_f64() * 1e9 / f64::from(UNITS)
            })
            .fold(f64::INFINITY, f64::min)
    })
}

/// A small, fast per-thread random source (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number in `0..100`.
    #[inline]
    pub fn percent(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % 100) as u32
    }
}

/// A workload mix: the percentage of read, intent and write requests. Each
/// request draws its class independently.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    /// A short label, used in benchmark ids.
    pub name: &'static str,
    /// Percent of read, intent and write requests (sums to 100).
    pub pct: [u32; 3],
}

impl Mix {
    /// Draws the class of the next request.
    #[inline]
    pub fn pick(&self, rng: &mut Rng) -> Class {
        if self.pct[0] == 100 {
            return Class::Read;
        }
        if self.pct[1] == 100 {
            return Class::Intent;
        }
        let p = rng.percent();
        if p < self.pct[0] {
            Class::Read
        } else if p < self.pct[0] + self.pct[1] {
            Class::Intent
        } else {
            Class::Write
        }
    }

    /// Whether the mix has intent requests (then the two-class lock set runs
    /// it; otherwise the plain rwlock set).
    pub fn has_intent(&self) -> bool {
        self.pct[1] != 0
    }
}

/// The mixes the `contended` benchmark runs. Labels are read/intent/write
/// percentages.
pub const MIXES: [Mix; 6] = [
    Mix { name: "read-only", pct: [100, 0, 0] },
    Mix { name: "rw-90-0-10", pct: [90, 0, 10] },
    Mix { name: "intent-only", pct: [0, 100, 0] },
    Mix { name: "ri-50-50-0", pct: [50, 50, 0] },
    Mix { name: "riw-45-45-10", pct: [45, 45, 10] },
    Mix { name: "ri-90-10-0", pct: [90, 10, 0] },
];

/// Runs `body(i)` on `threads` new threads, `i` in `0..threads`, all
/// released together by a barrier, and `main` on the calling thread once
/// they are released. Returns the time from the first thread's start to the
/// last thread's end, and what each thread returned, in order.
///
/// Each thread reads the clock itself, right after the barrier and right
/// after `body`: on an oversubscribed machine the calling thread may not run
/// again for milliseconds after the release, so a clock read there could
/// start after the work is done.
///
/// # Panics
///
/// If a worker panics (its panic is passed on).
pub fn run_threads<T: Send>(
    threads: usize,
    body: impl Fn(usize) -> T + Sync,
    main: impl FnOnce(),
) -> (Duration, Vec<T>) {
    let barrier = Barrier::new(threads + 1);
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (body, barrier) = (&body, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let out = body(i);
                    (start, Instant::now(), out)
                })
            })
            .collect();
        barrier.wait();
        main();
        let mut span: Option<(Instant, Instant)> = None;
        let mut outs = Vec::with_capacity(threads);
        for h in handles {
            let (start, end, out) = h.join().expect("a worker panicked");
            span = Some(span.map_or((start, end), |(s, e)| (s.min(start), e.max(end))));
            outs.push(out);
        }
        (span.map_or(Duration::ZERO, |(s, e)| e - s), outs)
    })
}

/// One contended benchmark thread: `ops` requests drawn from `mix`, each
/// holding the lock for `inside` and then doing `outside` before the next.
#[inline]
pub fn contended_ops<L: Comparator>(lock: &L, mix: &Mix, inside: Work, outside: Work, ops: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    for _ in 0..ops {
        let class = mix.pick(&mut rng);
        lock.with(class, || inside.run());
        outside.run();
    }
}
