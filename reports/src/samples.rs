//! For the criterion benchmarks (`benches/`): a recorder of the samples
//! criterion takes ([`record`], [`estimate_ns`]), so that a benchmark can
//! print ratio tables after criterion has run, and the scratch directory
//! those tables go to ([`bench_dir`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Samples (iterations, elapsed) per benchmark id, in call order.
static SAMPLES: Mutex<BTreeMap<String, Vec<(u64, Duration)>>> = Mutex::new(BTreeMap::new());

/// Records one `iter_custom` call of benchmark `id`.
pub fn record(id: &str, iters: u64, elapsed: Duration) {
    SAMPLES.lock().unwrap_or_else(PoisonError::into_inner).entry(id.to_owned()).or_default().push((iters, elapsed));
}

/// Nanoseconds per iteration of benchmark `id`: total time over total
/// iterations of its last `samples` calls (criterion's measurement samples,
/// which follow its warm-up calls). `None` if the benchmark did not run.
pub fn estimate_ns(id: &str, samples: usize) -> Option<f64> {
    let map = SAMPLES.lock().unwrap_or_else(PoisonError::into_inner);
    let v = map.get(id)?;
    let tail = &v[v.len().saturating_sub(samples)..];
    let iters: u64 = tail.iter().map(|s| s.0).sum();
    let time: Duration = tail.iter().map(|s| s.1).sum();
    (iters != 0).then(|| time.as_secs_f64() * 1e9 / iters as f64)
}

/// Where the benchmarks' summary tables go: `target/phase-lock-report/`
/// under the workspace root, whatever `CARGO_TARGET_DIR` says (scratch
/// output beside criterion's own `target/criterion/`; the report tools'
/// pages go to `docs/results/` instead, see [`crate::page`]). Created if
/// missing.
///
/// # Panics
///
/// If the directory cannot be created.
pub fn bench_dir() -> PathBuf {
    let dir = crate::page::workspace_root().join("target").join("phase-lock-report");
    std::fs::create_dir_all(&dir).expect("cannot create target/phase-lock-report");
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_uses_the_last_samples_only() {
        record("samples-test", 10, Duration::from_nanos(1000)); // a warm-up call
        record("samples-test", 100, Duration::from_nanos(200));
        record("samples-test", 100, Duration::from_nanos(400));
        assert_eq!(estimate_ns("samples-test", 2), Some(3.0));
        assert_eq!(estimate_ns("never-ran", 2), None);
    }
}
