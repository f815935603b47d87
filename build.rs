//! Declares the crate's cfgs, and derives one: `phase_lock_model`, set when
//! the crate is built under either model checker (`--cfg phase_lock_loom` or
//! `--cfg phase_lock_shuttle`, see `src/sync.rs`). Code that both checkers
//! share (no clock, small tables, parking through thread handles) names the
//! derived cfg; only the shim names a checker.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(phase_lock_model)");
    // Cargo passes every `--cfg` in RUSTFLAGS to build scripts as
    // `CARGO_CFG_<NAME>` variables.
    let loom = std::env::var_os("CARGO_CFG_PHASE_LOCK_LOOM").is_some();
    let shuttle = std::env::var_os("CARGO_CFG_PHASE_LOCK_SHUTTLE").is_some();
    if loom || shuttle {
        println!("cargo::rustc-cfg=phase_lock_model");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
