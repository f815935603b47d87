//! The unit tests that need the crate's internals (the state word, the wait
//! queue): deterministic schedules of the fairness contract, strict
//! (`contract.rs`, whose cases are `contract_cases.rs`) and patient
//! (`patience.rs`), and the biased path (`bias.rs`), with what they share
//! (`support.rs`). Built only for `cargo test`, never under loom.

mod bias;
mod contract;
mod patience;
mod support;
