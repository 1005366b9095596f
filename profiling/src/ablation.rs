//! The original's feature-isolation study: the reuse path and the vm and mixed scenarios
//! under the default configuration and each kill switch, one child process per cell (the
//! configuration is read once per process).

use microbench::json::{self, Json};
use std::fmt::Write;
use std::path::Path;
use std::process::Command;

pub const CONFIGS: [(&str, &[(&str, &str)]); 4] = [
    ("default", &[]),
    (
        "HAKMEM_DISABLE_BIGCACHE=1",
        &[("HAKMEM_DISABLE_BIGCACHE", "1")],
    ),
    ("HAKMEM_DISABLE_ELO=1", &[("HAKMEM_DISABLE_ELO", "1")]),
    ("HAKMEM_MINIMAL=1", &[("HAKMEM_MINIMAL", "1")]),
];
pub const WORKLOADS: [&str; 3] = ["reuse_path", "vm", "mixed"];

#[derive(Clone, Debug)]
pub struct Cell {
    pub config: String,
    pub workload: String,
    pub result: Result<Json, String>,
}

/// Runs `hakprof run-workload` with extra environment (`cold`: no warm-up run); returns
/// its JSON line.
pub fn run_child(
    exe: &Path,
    workload: &str,
    reps: usize,
    cold: bool,
    env: &[(&str, &str)],
) -> Result<Json, String> {
    let mut c = Command::new(exe);
    c.args([
        "run-workload",
        "--workload",
        workload,
        "--reps",
        &reps.to_string(),
    ]);
    if cold {
        c.arg("--cold");
    }
    for k in [
        "HAKMEM_MODE",
        "HAKMEM_DISABLE_BIGCACHE",
        "HAKMEM_DISABLE_ELO",
        "HAKMEM_MINIMAL",
        "HAKMEM_FRONT",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or("child printed no JSON")?;
    json::parse(line)
}

pub fn run(exe: &Path, reps: usize, mut progress: impl FnMut(&str)) -> Vec<Cell> {
    let mut cells = Vec::new();
    for (name, env) in CONFIGS {
        for w in WORKLOADS {
            progress(&format!("ablation: {w} under {name}"));
            cells.push(Cell {
                config: name.into(),
                workload: w.into(),
                result: run_child(exe, w, reps, false, env),
            });
        }
    }
    cells
}

fn num(v: &Json, k: &str) -> f64 {
    v.at(&[k]).and_then(Json::num).unwrap_or(f64::NAN)
}

/// Markdown: one row per (workload, configuration), with the slowdown against default.
pub fn table(cells: &[Cell]) -> String {
    let mut s = String::from("| workload | configuration | median ns/op | vs default | page faults | mmap | munmap | madvise | BigCache hits | hakmem allocations |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for w in WORKLOADS {
        let base = cells
            .iter()
            .find(|c| c.workload == w && c.config == "default")
            .and_then(|c| c.result.as_ref().ok())
            .map(|v| num(v, "median_ns_per_op"));
        for c in cells.iter().filter(|c| c.workload == w) {
            match &c.result {
                Ok(v) => {
                    let ns = num(v, "median_ns_per_op");
                    let rel = base.map_or("–".into(), |b| format!("{:.2}×", ns / b));
                    let _ = writeln!(
                        s,
                        "| {w} | {} | {ns:.1} | {rel} | {} | {} | {} | {} | {} | {} |",
                        c.config,
                        num(v, "page_faults"),
                        num(v, "mmap"),
                        num(v, "munmap"),
                        num(v, "madvise"),
                        num(v, "bigcache_hits"),
                        num(v, "hakmem_allocations")
                    );
                }
                Err(e) => {
                    let _ = writeln!(s, "| {w} | {} | failed: {e} | | | | | | | |", c.config);
                }
            }
        }
    }
    s
}
