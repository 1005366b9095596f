//! The C-path probes (`microbench/c/cabi.c`) for every allocator under `LD_PRELOAD`:
//!
//! - **instructions** per operation from callgrind: the program runs N and 2N operations,
//!   and the instructions executed outside the program's own code (in the allocator's
//!   library, libc and the loader) are subtracted, so the harness's loop and its set-up
//!   drop out exactly; simulated cache misses the same way. `cabi/pair64/hakmem` and the
//!   other single-threaded hakmem rows are in the CI gate (`iai::gated`).
//! - **time** per operation: the program's own samples, the allocators alternated round by
//!   round, medians over all samples of all rounds.

use crate::iai::Counts;
use crate::native::{self, Allocator};
use crate::table::Table;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The source of the probes' program.
pub const SOURCE: &str = "cabi.c";
/// The patterns counted under callgrind (single-threaded: exact and repeatable).
pub const COUNTED: [&str; 6] = [
    "pair16",
    "pair64",
    "pair1024",
    "pair4096",
    "batch64",
    "batch4096",
];
/// N for the counts (2N is run too); a multiple of the program's batch of 1000.
pub const COUNT_OPS: u64 = 20_000;

/// Event names (callgrind's order), and each object file's self cost per event.
pub type CostByObject = (Vec<String>, BTreeMap<String, Vec<u64>>);

/// Self cost per object file of a callgrind output (`--compress-strings=no
/// --compress-pos=no`): every cost line is charged to the current `ob=`, except the line
/// after `calls=`, which is the callee's inclusive cost. Events in the file's order.
pub fn cost_by_object(text: &str) -> Result<CostByObject, String> {
    let mut events: Vec<String> = Vec::new();
    let mut by_object: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut object = String::new();
    let mut skip_next = false;
    for line in text.lines() {
        if let Some(e) = line.strip_prefix("events:") {
            events = e.split_whitespace().map(str::to_string).collect();
        } else if let Some(o) = line.strip_prefix("ob=") {
            object = o.to_string();
        } else if line.starts_with("calls=") {
            skip_next = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-') {
            if std::mem::take(&mut skip_next) {
                continue;
            }
            let costs = by_object
                .entry(object.clone())
                .or_insert_with(|| vec![0; events.len()]);
            // The first field is the position (a line number), the rest the events.
            for (slot, v) in costs.iter_mut().zip(line.split_whitespace().skip(1)) {
                *slot += v
                    .parse::<u64>()
                    .map_err(|_| format!("bad cost line {line:?}"))?;
            }
        }
    }
    if events.is_empty() {
        return Err("no `events:` line: not a callgrind output".into());
    }
    Ok((events, by_object))
}

/// The counts of everything outside `program` (the allocator's side of each call).
fn allocator_side(text: &str, program: &Path) -> Result<Counts, String> {
    let (events, by_object) = cost_by_object(text)?;
    let program = program.to_string_lossy();
    let mut sum = vec![0u64; events.len()];
    for (_, costs) in by_object
        .iter()
        .filter(|(o, _)| !o.ends_with(program.as_ref()))
    {
        sum.iter_mut().zip(costs).for_each(|(s, c)| *s += c);
    }
    let get = |names: &[&str]| -> u64 {
        names
            .iter()
            .filter_map(|n| events.iter().position(|e| e == n))
            .map(|i| sum[i])
            .sum()
    };
    Ok(Counts {
        instructions: get(&["Ir"]),
        l1_misses: get(&["I1mr", "D1mr", "D1mw"]),
        ll_misses: get(&["ILmr", "DLmr", "DLmw"]),
        cycles_est: 0,
    })
}

/// One callgrind run of `pattern` for `ops` operations under `alloc`.
fn callgrind(alloc: &Allocator, program: &Path, pattern: &str, ops: u64) -> Result<Counts, String> {
    let out = native::root().join(format!(
        "target/native/callgrind.{}.{pattern}.{ops}",
        alloc.name
    ));
    let mut cmd = native::command(alloc, Path::new("valgrind"));
    // Cache sizes given explicitly: a VM's reported last-level cache is not to be trusted.
    cmd.args([
        "--tool=callgrind",
        "--cache-sim=yes",
        "--I1=32768,8,64",
        "--D1=32768,8,64",
    ])
    .args([
        "--LL=8388608,16,64",
        "--compress-strings=no",
        "--compress-pos=no",
    ])
    .arg(format!("--callgrind-out-file={}", out.display()))
    .arg(program)
    .args(["count", pattern, &ops.to_string()]);
    let run = native::run(cmd)?;
    native::check_served(alloc, &run.stderr)?;
    let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let _ = std::fs::remove_file(&out);
    allocator_side(&text, program)
}

/// Counts per 1000 operations of `pattern` under `alloc`: (2N run − N run) / N × 1000.
pub fn count(alloc: &Allocator, program: &Path, pattern: &str) -> Result<Counts, String> {
    let one = callgrind(alloc, program, pattern, COUNT_OPS)?;
    let two = callgrind(alloc, program, pattern, 2 * COUNT_OPS)?;
    let per_1000 =
        |a: u64, b: u64| (b.saturating_sub(a) as f64 * 1000.0 / COUNT_OPS as f64).round() as u64;
    Ok(Counts {
        instructions: per_1000(one.instructions, two.instructions),
        l1_misses: per_1000(one.l1_misses, two.l1_misses),
        ll_misses: per_1000(one.ll_misses, two.ll_misses),
        cycles_est: 0,
    })
}

/// The probe's name, as the gate and the reports know it.
pub fn probe_name(pattern: &str, alloc: &str) -> String {
    format!("cabi/{pattern}/{alloc}")
}

/// A count as one line of the gate's results file (read by `iai::parse_results`).
pub fn result_line(probe: &str, c: &Counts) -> String {
    serde_json::json!({
        "cabi": probe, "Ir": c.instructions, "L1miss": c.l1_misses, "LLmiss": c.ll_misses,
    })
    .to_string()
}

/// The timed samples of one (pattern, allocator).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Timing {
    pub pattern: String,
    pub allocator: String,
    pub ns_per_op: Vec<f64>,
}

#[derive(Deserialize)]
struct SampleLine {
    pattern: String,
    ns_per_op: Vec<f64>,
}

/// `rounds` rounds; in each, every allocator runs every pattern `samples` times.
pub fn time(
    allocs: &[Allocator],
    program: &Path,
    rounds: usize,
    samples: usize,
) -> Result<Vec<Timing>, String> {
    let mut all: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        for a in allocs {
            eprintln!("cabi: round {}/{rounds}: {}", round + 1, a.name);
            let mut cmd = native::command(a, program);
            cmd.args(["time", &samples.to_string()]);
            let run = native::run(cmd)?;
            native::check_served(a, &run.stderr)?;
            for line in run.stdout.lines() {
                let s: SampleLine =
                    serde_json::from_str(line).map_err(|e| format!("{line:?}: {e}"))?;
                all.entry((s.pattern, a.name.to_string()))
                    .or_default()
                    .extend(s.ns_per_op);
            }
        }
    }
    Ok(all
        .into_iter()
        .map(|((pattern, allocator), ns_per_op)| Timing {
            pattern,
            allocator,
            ns_per_op,
        })
        .collect())
}

/// Patterns in the program's order (the names it printed, first seen first).
fn patterns(t: &[Timing]) -> Vec<String> {
    let order = [
        "pair16",
        "pair64",
        "pair1024",
        "pair4096",
        "batch16",
        "batch64",
        "batch1024",
        "batch4096",
        "server2",
    ];
    let mut p: Vec<String> = order
        .iter()
        .map(|s| s.to_string())
        .filter(|n| t.iter().any(|x| &x.pattern == n))
        .collect();
    for x in t {
        if !p.contains(&x.pattern) {
            p.push(x.pattern.clone());
        }
    }
    p
}

/// The time table: median ns per operation for each allocator, and hakmem's time over the
/// best peer's (for `server2`, the best peer's throughput over hakmem's is the same ratio).
pub fn time_table(t: &[Timing], allocs: &[&str]) -> Table {
    let mut header = vec!["C path, ns per malloc+free (median)"];
    header.extend(allocs);
    header.extend(["hakmem ÷ best peer", "best peer"]);
    let mut table = Table::new(&header);
    for p in patterns(t) {
        let med = |a: &str| {
            t.iter()
                .find(|x| x.pattern == p && x.allocator == a)
                .map(|x| native::median(&x.ns_per_op))
        };
        let mut row = vec![format!("cabi/{p}")];
        row.extend(
            allocs
                .iter()
                .map(|a| med(a).map_or("–".into(), |v| format!("{v:.2}"))),
        );
        let best = allocs
            .iter()
            .filter(|a| **a != "hakmem")
            .filter_map(|a| med(a).map(|v| (*a, v)))
            .min_by(|x, y| x.1.total_cmp(&y.1));
        match (med("hakmem"), best) {
            (Some(h), Some((name, b))) => {
                row.extend([format!("**{:.2}×**", h / b), name.to_string()])
            }
            _ => row.extend(["–".to_string(), "–".to_string()]),
        }
        table.push(row);
    }
    table
}

/// The instruction table from the gate's results: instructions per operation of each
/// counted pattern for each allocator, and hakmem's over the best peer's.
pub fn count_table(results: &BTreeMap<String, Counts>, allocs: &[&str]) -> Table {
    let mut header = vec!["C path, instructions per malloc+free (callgrind)"];
    header.extend(allocs);
    header.extend(["hakmem ÷ best peer", "best peer"]);
    let mut table = Table::new(&header);
    for p in COUNTED {
        let per_op = |a: &str| {
            results
                .get(&probe_name(p, a))
                .map(|c| c.instructions as f64 / 1000.0)
        };
        if per_op("hakmem").is_none() {
            continue;
        }
        let mut row = vec![format!("cabi/{p}")];
        row.extend(
            allocs
                .iter()
                .map(|a| per_op(a).map_or("–".into(), |v| format!("{v:.1}"))),
        );
        let best = allocs
            .iter()
            .filter(|a| **a != "hakmem")
            .filter_map(|a| per_op(a).map(|v| (*a, v)))
            .min_by(|x, y| x.1.total_cmp(&y.1));
        match (per_op("hakmem"), best) {
            (Some(h), Some((name, b))) => {
                row.extend([format!("**{:.2}×**", h / b), name.to_string()])
            }
            _ => row.extend(["–".to_string(), "–".to_string()]),
        }
        table.push(row);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir D1mr\n\
        ob=/tmp/cabi\nfl=/tmp/cabi.c\nfn=main\n16 10 0\ncob=/lib/libhakmem.so\ncfn=malloc\n\
        calls=1 5\n16 40 2\nob=/lib/libhakmem.so\nfl=???\nfn=malloc\n0 35 1\n0 5 1\n";

    #[test]
    fn self_cost_is_charged_to_each_object_and_call_lines_are_not() {
        let (events, by) = cost_by_object(SAMPLE).unwrap();
        assert_eq!(events, ["Ir", "D1mr"]);
        assert_eq!(by["/tmp/cabi"], [10, 0]);
        assert_eq!(by["/lib/libhakmem.so"], [40, 2]);
        let c = allocator_side(SAMPLE, Path::new("/tmp/cabi")).unwrap();
        assert_eq!((c.instructions, c.l1_misses), (40, 2));
        assert!(cost_by_object("nothing").is_err());
    }

    #[test]
    fn time_table_divides_by_the_best_peer() {
        let t = |p: &str, a: &str, v: f64| Timing {
            pattern: p.into(),
            allocator: a.into(),
            ns_per_op: vec![v, v + 1.0, v + 2.0],
        };
        let rows = [
            t("pair64", "hakmem", 10.0),
            t("pair64", "glibc", 20.0),
            t("pair64", "jemalloc", 5.0),
        ];
        let table = time_table(&rows, &["hakmem", "glibc", "jemalloc"]);
        assert_eq!(
            table.rows[0],
            [
                "cabi/pair64",
                "11.00",
                "21.00",
                "6.00",
                "**1.83×**",
                "jemalloc"
            ]
        );
    }
}
