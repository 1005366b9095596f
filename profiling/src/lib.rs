//! hakprof's library: small modules with a thin binary (`main.rs`) over them.
//!
//! - `events`: which perf events exist here, and the plain-language reason when one does not.
//! - `counters`: perf-event groups (or the software fallback) around a probe's runs.
//! - `cabi`: the same counters around the C-path probes, one process per allocator.
//! - `attrib`: a path's instructions and simulated misses split into steps, exactly (callgrind, line level).
//! - `subtract`: time per step by subtraction (the path without one step, timed interleaved).
//! - `sites`: `hakprof sites`: any program's allocations per call site, symbolized after the run.
//! - `sim`: simulated cache misses from callgrind, for hosts without hardware counters.
//! - `flame`: stacks from `perf record`, folded and drawn by inferno; differential and step graphs.
//! - `ablation`, `syscalls`: the feature-isolation study and the syscall census, per child process.
//! - `claims`: the original's overhead findings beside ours, with verdicts.
//! - `learning`: does learning pay? The learner against each fixed threshold and the peers, with learning curves.
//! - `child`: the entry points those child processes run.
//! - `report`: Markdown, HTML and the SVG bar chart; `machine`: what we ran on.
//! - `run`: the subcommands, which `main.rs` parses and calls.

pub mod ablation;
pub mod attrib;
pub mod cabi;
pub mod child;
pub mod claims;
pub mod counters;
pub mod events;
pub mod flame;
pub mod footprint;
pub mod learning;
pub mod machine;
pub mod report;
pub mod run;
pub mod sim;
pub mod sites;
pub mod sites_diff;
pub mod subtract;
pub mod symbols;
pub mod syscalls;

/// Where generated files go.
pub fn out_dir() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../flamegraphs");
    // `…/profiling/../flamegraphs` printed as `…/flamegraphs`; the folder may not exist yet.
    match dir.parent().and_then(|p| p.canonicalize().ok()) {
        Some(root) => root.join("flamegraphs"),
        None => dir,
    }
}

/// This executable, for re-running itself as a child (under perf, valgrind, strace).
pub fn self_exe() -> std::path::PathBuf {
    std::env::current_exe().expect("current_exe")
}
