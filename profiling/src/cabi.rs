//! Counters for the C-path probes (`microbench::cabi`): each allocator in its own process
//! under `LD_PRELOAD`, counted from outside with inherited counters. The program runs N
//! and then 2N operations, and the difference over N is the cost per operation, start-up
//! excluded (the same subtraction as the callgrind counts).

use crate::counters::{to_event, RawCounts};
use crate::events::{Availability, EventKind};
use microbench::native::{self, Allocator};
use perf_event::{Builder, Counter};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// The single-threaded patterns `hakprof counters` measures through the C ABI.
pub const PATTERNS: [&str; 2] = ["pair64", "batch64"];
/// N (2N runs too): 20 ms or so per run, so start-up jitter is small beside it.
pub const OPS: u64 = 2_000_000;

/// One run of `program count pattern ops` under `alloc`: each event's scaled total (None
/// where it could not be opened), the wall time, and the served-by check.
///
/// The counters are opened on this thread, disabled, with `inherit`: enabled just before
/// the child is spawned and disabled once it is reaped, they count the child (and its
/// threads) from its first instruction, plus this thread's own fork and wait, which is the
/// same in every run and cancels in the difference. (A child gated until its counters are
/// open would deadlock: `spawn` waits for the `exec`.)
fn run_counted(
    alloc: &Allocator,
    program: &Path,
    pattern: &str,
    ops: u64,
    avail: &Availability,
) -> Result<(BTreeMap<EventKind, f64>, u64), String> {
    let mut cmd = native::command(alloc, program);
    cmd.args(["count", pattern, &ops.to_string()]);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut counters: Vec<(EventKind, Counter)> = Vec::new();
    for &ev in &avail.available {
        let mut b = Builder::new().kind(to_event(ev));
        b.enabled(false).inherit(true);
        if let Ok(c) = b.build() {
            counters.push((ev, c));
        }
    }
    for (_, c) in &mut counters {
        let _ = c.enable();
    }
    let start = Instant::now();
    let out = cmd.output().map_err(|e| format!("{program:?}: {e}"));
    let wall_ns = start.elapsed().as_nanos() as u64;
    for (_, c) in &mut counters {
        let _ = c.disable();
    }
    let out = out?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{}: {pattern} failed: {stderr}", alloc.name));
    }
    native::check_served(alloc, &stderr)?;
    let mut totals = BTreeMap::new();
    for (ev, c) in &mut counters {
        if let Ok(ct) = c.read_count_and_time() {
            if ct.time_running > 0 {
                let scale = ct.time_enabled as f64 / ct.time_running as f64;
                totals.insert(*ev, ct.count as f64 * scale);
            }
        }
    }
    Ok((totals, wall_ns))
}

/// The counts of `OPS` operations of `pattern`: the 2N run less the N run. Time is the
/// child's task clock where it was counted, else the wall clock.
pub fn measure(
    alloc: &Allocator,
    program: &Path,
    pattern: &str,
    avail: &Availability,
) -> Result<RawCounts, String> {
    let (one, wall_one) = run_counted(alloc, program, pattern, OPS, avail)?;
    let (two, wall_two) = run_counted(alloc, program, pattern, 2 * OPS, avail)?;
    let mut values = BTreeMap::new();
    for (ev, t2) in &two {
        if let Some(t1) = one.get(ev) {
            // Already scaled: recorded as fully running.
            values.insert(*ev, ((t2 - t1).max(0.0) as u64, 1, 1));
        }
    }
    let elapsed_ns = match values.get(&EventKind::TaskClock) {
        Some(&(ns, _, _)) => ns,
        None => wall_two.saturating_sub(wall_one),
    };
    Ok(RawCounts {
        ops: OPS,
        elapsed_ns,
        tsc_ticks: None,
        tsc_per_ns: None,
        values,
    })
}

/// The allocators whose libraries are here (hakmem must be), and a line naming the others.
pub fn allocators() -> Result<(Vec<Allocator>, Option<String>), String> {
    let mut all = vec![
        native::hakmem()?,
        Allocator {
            name: "glibc",
            lib: None,
        },
    ];
    let mut missing = Vec::new();
    for (name, package, file) in native::PEER_LIBS {
        match native::find_lib(file) {
            Some(lib) => all.push(Allocator {
                name,
                lib: Some(lib),
            }),
            None => missing.push(format!("{name} ({package})")),
        }
    }
    let note = (!missing.is_empty()).then(|| {
        format!(
            "hakprof: C-path counters without {}: run make peer-libs",
            missing.join(", ")
        )
    });
    Ok((all, note))
}
