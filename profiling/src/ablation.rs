//! The original's feature-isolation study: the reuse path, the vm and mixed scenarios and
//! the big-block workloads (batch of 200 × 2 MiB, churn of 20 live 5–25 MiB blocks, realloc
//! growth 1 → 64 MiB) under the default configuration and each kill switch, one child process per cell (the
//! configuration is read once per process).

use microbench::table::Table;
use serde_json::Value;
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
pub const WORKLOADS: [&str; 6] = [
    "reuse_path",
    "vm",
    "mixed",
    "big_batch",
    "big_churn",
    "big_realloc",
];

#[derive(Clone, Debug)]
pub struct Cell {
    pub config: String,
    pub workload: String,
    pub result: Result<Value, String>,
}

/// Runs `hakprof run-workload` with extra environment (`cold`: no warm-up run) under
/// allocator `alloc` (hakmem, or a peer for the scenarios); returns its JSON line.
pub fn run_child(
    exe: &Path,
    workload: &str,
    reps: usize,
    cold: bool,
    env: &[(&str, &str)],
    alloc: &str,
) -> Result<Value, String> {
    let mut c = Command::new(exe);
    c.args([
        "run-workload",
        "--workload",
        workload,
        "--reps",
        &reps.to_string(),
        "--alloc",
        alloc,
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
        "HAKMEM_THRESHOLD_KB",
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
    serde_json::from_str(line).map_err(|e| format!("child's JSON: {e}"))
}

pub fn run(exe: &Path, reps: usize, mut progress: impl FnMut(&str)) -> Vec<Cell> {
    let mut cells = Vec::new();
    for (name, env) in CONFIGS {
        for w in WORKLOADS {
            progress(&format!("ablation: {w} under {name}"));
            cells.push(Cell {
                config: name.into(),
                workload: w.into(),
                result: run_child(exe, w, reps, false, env, "hakmem"),
            });
        }
    }
    cells
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

/// One row per (workload, configuration), with the slowdown against default.
pub fn table(cells: &[Cell]) -> Table {
    let mut t = Table::new(&[
        "workload",
        "configuration",
        "median ns/op",
        "vs default",
        "page faults",
        "mmap",
        "munmap",
        "madvise",
        "BigCache hits",
        "hakmem allocations",
    ]);
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
                    let mut row =
                        vec![w.to_string(), c.config.to_string(), format!("{ns:.1}"), rel];
                    for k in ["page_faults", "mmap", "munmap", "madvise", "bigcache_hits"] {
                        row.push(num(v, k).to_string());
                    }
                    row.push(num(v, "hakmem_allocations").to_string());
                    t.push(row);
                }
                Err(e) => {
                    let mut row = vec![w.to_string(), c.config.to_string(), format!("failed: {e}")];
                    row.resize(10, String::new());
                    t.push(row);
                }
            }
        }
    }
    t
}
