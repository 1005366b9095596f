//! The measured paths, defined once: the criterion benches, the gungraun benches and
//! `hakprof` all run these, so a number in each describes the same code.
//!
//! - `peers`: the allocators compared, and the check of which one served a workload.
//! - `workloads`: malloc+free pairs and batches through any `GlobalAlloc`.
//! - `scenarios`: the original hakmem's four scenarios (json, mir, vm, mixed), larson and
//!   producer/consumer, through any `GlobalAlloc`.
//! - `probes`: every named path (the steps of both models, the whole paths, the peers).
//! - `native`: allocators through the C ABI under `LD_PRELOAD`: C programs built, run,
//!   and checked for which allocator served them.
//! - `cabi`: the C-path probes (instructions under callgrind, time per operation).
//! - `programs`: the program benchmarks (classic allocator benchmarks in C, start-up).
//! - `scaling`: the thread-scaling programs at 1, 2, 4, … threads (`make bench-scaling`).
//! - `hardening`: what each allocator does with a forged free-list link, double frees,
//!   foreign pointers and an overflow (`make hardening`).
//! - `iai`: gungraun results and the instruction-count gate.
//! - `table`: the one table type, as Markdown or HTML; `chart`: the one line chart (SVG).
//! - `report`: criterion results as tables and the performance targets.

pub mod cabi;
pub mod chart;
pub mod hardening;
pub mod iai;
pub mod machine;
pub mod native;
pub mod peers;
pub mod probes;
pub mod programs;
pub mod report;
pub mod scaling;
pub mod scenarios;
pub mod table;
pub mod workloads;
