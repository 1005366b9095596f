//! Memory syscalls per scenario from the allocator's own counters, cross-checked against
//! `strace -c -f` where strace is present (strace also sees the process's start-up and the
//! Rust runtime, so its counts are at least ours).

use crate::ablation::run_child;
use microbench::table::Table;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

pub const SCENARIOS: [&str; 7] = [
    "json",
    "mir",
    "vm",
    "mixed",
    "big_batch",
    "big_churn",
    "big_realloc",
];
pub const CALLS: [&str; 4] = ["mmap", "munmap", "madvise", "mremap"];

#[derive(Clone, Debug)]
pub struct Census {
    pub scenario: String,
    /// From hakmem's counters (the measured reps only).
    pub ours: BTreeMap<String, u64>,
    /// From strace over the whole child process; None when strace is missing.
    pub strace: Option<BTreeMap<String, u64>>,
    pub hakmem_allocations: u64,
}

/// Reads the `calls` column of `strace -c` output.
pub fn parse_strace_summary(text: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors,] syscall
        if f.len() >= 5 && f[0].parse::<f64>().is_ok() {
            let name = f[f.len() - 1];
            if let Ok(calls) = f[3].parse::<u64>() {
                m.insert(name.to_string(), calls);
            }
        }
    }
    m
}

/// The seconds of the `total` row of `strace -c` output.
pub fn parse_strace_total_seconds(text: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.last() == Some(&"total")).then(|| f.get(1)?.parse().ok())?
    })
}

/// One cold run of `workload` under `alloc` in a child, under `strace -c -f` (memory calls
/// only): the calls per syscall and the seconds strace measured in them. None when strace
/// failed.
pub fn strace_child(
    exe: &Path,
    tmp: &Path,
    workload: &str,
    alloc: &str,
) -> Option<(BTreeMap<String, u64>, f64)> {
    let file = tmp.join(format!("strace.{workload}.{alloc}.txt"));
    let st = Command::new("strace")
        .args(["-f", "-c", "-e", "trace=mmap,munmap,madvise,mremap", "-o"])
        .arg(&file)
        .arg(exe)
        .args([
            "run-workload",
            "--workload",
            workload,
            "--reps",
            "1",
            "--cold",
        ])
        .args(["--alloc", alloc])
        .stdout(std::process::Stdio::null())
        .status()
        .ok()?;
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let _ = std::fs::remove_file(&file);
    st.success().then(|| {
        (
            parse_strace_summary(&text),
            parse_strace_total_seconds(&text).unwrap_or(0.0),
        )
    })
}

pub fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn run(exe: &Path, tmp: &Path, mut progress: impl FnMut(&str)) -> Result<Vec<Census>, String> {
    let have_strace = strace_available();
    let mut out = Vec::new();
    for sc in SCENARIOS {
        progress(&format!("syscalls: {sc}"));
        let v = run_child(exe, sc, 1, true, &[], "hakmem")?;
        let n = |k: &str| v[k].as_f64().unwrap_or(0.0) as u64;
        let ours: BTreeMap<String, u64> = CALLS.iter().map(|c| (c.to_string(), n(c))).collect();
        let strace = if have_strace {
            strace_child(exe, tmp, sc, "hakmem").map(|(calls, _)| calls)
        } else {
            None
        };
        out.push(Census {
            scenario: sc.into(),
            ours,
            strace,
            hakmem_allocations: n("hakmem_allocations"),
        });
    }
    Ok(out)
}

/// hakmem's columns count one cold run of the scenario; strace's cover the whole child
/// (process start-up too); "ok" means strace saw at least as many calls.
pub fn table(census: &[Census]) -> Table {
    let mut t = Table::new(&[
        "scenario",
        "hakmem allocations",
        "mmap",
        "munmap",
        "madvise",
        "mremap",
        "strace mmap",
        "strace munmap",
        "strace madvise",
        "strace mremap",
        "cross-check",
    ]);
    for c in census {
        let ours: Vec<String> = CALLS.iter().map(|k| c.ours[*k].to_string()).collect();
        let (theirs, check) = match &c.strace {
            Some(m) => {
                let t: Vec<String> = CALLS
                    .iter()
                    .map(|k| m.get(*k).copied().unwrap_or(0).to_string())
                    .collect();
                let ok = CALLS
                    .iter()
                    .all(|k| m.get(*k).copied().unwrap_or(0) >= c.ours[*k]);
                (
                    t,
                    if ok {
                        "ok (strace ≥ hakmem)"
                    } else {
                        "MISMATCH: strace saw fewer"
                    },
                )
            }
            None => (vec!["–".into(); 4], "strace not installed"),
        };
        let mut row = vec![c.scenario.clone(), c.hakmem_allocations.to_string()];
        row.extend(ours);
        row.extend(theirs);
        row.push(check.into());
        t.push(row);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strace_c_summaries() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n------ ----------- ----------- --------- --------- ----------------\n 60.00    0.000300           3       100           munmap\n 40.00    0.000200           1       120         2 mmap\n------ ----------- ----------- --------- --------- ----------------\n100.00    0.000500           2       220         2 total\n";
        let m = parse_strace_summary(text);
        assert_eq!(m.get("munmap"), Some(&100));
        assert_eq!(m.get("mmap"), Some(&120));
        assert_eq!(m.get("total"), Some(&220));
        assert_eq!(parse_strace_total_seconds(text), Some(0.0005));
    }
}
