//! `hakprof footprint`: what each allocator keeps resident for almost nothing, and where
//! hakmem's resident memory goes. The probe `microbench/c/footprint.c` runs under every
//! allocator (LD_PRELOAD, each run's allocator checked): no allocation of its own, one
//! small allocation, and 1 or 8 threads that each made two small allocations and are still
//! alive; it prints its resident set (VmRSS). Under hakmem it also writes its stats JSON
//! with `HAKMEM_FOOTPRINT=1`, whose footprint (`hakmem::footprint`, measured with
//! `mincore` at exit, the threads still alive) splits hakmem's part by holder. Then three
//! of the program benchmarks (`PEAK_PROGRAMS`) run under every allocator for their peak
//! RSS (`/usr/bin/time`'s `%M`), and under hakmem with the footprint mode, whose
//! `footprint_at_peak` splits hakmem's part at the process's peak.

use microbench::native::{self, Allocator};
use microbench::table::Table;
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// The probe's cases: (name, arguments).
pub const CASES: [(&str, &[&str]); 4] = [
    ("no allocation", &["none"]),
    ("one small allocation", &["one"]),
    ("1 thread, 2 small allocations", &["threads", "1"]),
    ("8 threads, 2 small allocations each", &["threads", "8"]),
];

/// The holders of hakmem's footprint, in the stats JSON's names, with what each is.
pub const HOLDERS: [(&str, &str); 9] = [
    ("statics", "the library's data and .bss (all of it)"),
    ("site_table", "… of which the call-site table"),
    ("segment_map", "… of which the segment map"),
    ("segment_headers", "pool segments' headers (page records)"),
    ("segment_pages", "pool pages (blocks, used or free)"),
    ("heap_bytes", "thread heaps"),
    ("big_live", "big blocks, live"),
    ("big_cached", "big blocks held by the BigCache"),
    ("registry", "the big-block registry"),
];

/// The program benchmarks measured at their peak (names of `microbench::programs`).
pub const PEAK_PROGRAMS: [&str; 3] = ["larson", "glibc-thread", "mixed"];

/// One case under one allocator: the median resident set, and hakmem's footprint.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub case: String,
    pub allocator: String,
    pub rss_kib: f64,
    /// hakmem only: its footprint (bytes by holder) from the median run.
    pub footprint: Option<Value>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Study {
    pub cells: Vec<Cell>,
    /// `PEAK_PROGRAMS` under every allocator: the case is the program, `rss_kib` its peak
    /// RSS, hakmem's `footprint` the one measured at its peak.
    pub peaks: Vec<Cell>,
    pub rounds: usize,
    pub errors: Vec<String>,
}

/// One run of `args` under `alloc`: (VmRSS KiB, hakmem's footprint).
fn run_once(
    exe: &Path,
    alloc: &Allocator,
    args: &[&str],
    tmp: &Path,
) -> Result<(f64, Option<Value>), String> {
    let mut cmd = native::command(alloc, exe);
    cmd.args(args);
    let hakmem = alloc.name == "hakmem";
    if hakmem {
        cmd.env("HAKMEM_STATS_JSON", tmp.join("footprint-%p.json"))
            .env("HAKMEM_FOOTPRINT", "1");
    }
    let run = native::run(cmd)?;
    native::check_served(alloc, &run.stderr)?;
    let rss = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("rss_kib="))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("{}: the probe printed no rss_kib", alloc.name))?;
    let footprint = if hakmem {
        Some(stats_footprint(tmp, "footprint", &run.stderr, "footprint")?)
    } else {
        None
    };
    Ok((rss, footprint))
}

/// `key` of the stats JSON `<tmp>/<prefix>-<pid>.json` that the process whose `pid=` line
/// is in `stderr` wrote at its exit (the file removed once read).
fn stats_footprint(tmp: &Path, prefix: &str, stderr: &str, key: &str) -> Result<Value, String> {
    let pid = stderr
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .ok_or("the program printed no pid")?;
    let path = tmp.join(format!("{prefix}-{pid}.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let _ = std::fs::remove_file(&path);
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    match &v[key] {
        Value::Null => Err(format!("{}: no {key}", path.display())),
        f => Ok(f.clone()),
    }
}

/// One run of program `bin` under `alloc`: (peak RSS KiB, hakmem's footprint at the peak).
fn run_program(bin: &Path, alloc: &Allocator, tmp: &Path) -> Result<(f64, Option<Value>), String> {
    let rss_file = tmp.join("peak-rss");
    let mut cmd = native::command(alloc, Path::new(microbench::programs::TIME));
    cmd.args(["-f", "%M", "-o"]).arg(&rss_file).arg(bin);
    let hakmem = alloc.name == "hakmem";
    if hakmem {
        cmd.env("HAKMEM_STATS_JSON", tmp.join("peak-%p.json"))
            .env("HAKMEM_FOOTPRINT", "1");
    }
    let run = native::run(cmd)?;
    native::check_served(alloc, &run.stderr)?;
    let text = std::fs::read_to_string(&rss_file).map_err(|e| e.to_string())?;
    let rss = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no peak RSS in {text:?}"))?;
    let footprint = if hakmem {
        Some(stats_footprint(
            tmp,
            "peak",
            &run.stderr,
            "footprint_at_peak",
        )?)
    } else {
        None
    };
    Ok((rss, footprint))
}

/// The median (by RSS) of each allocator's runs, as cells of `case`.
fn medians(case: &str, allocs: &[Allocator], runs: Vec<Vec<(f64, Option<Value>)>>) -> Vec<Cell> {
    let mut cells = Vec::new();
    for (a, mut r) in allocs.iter().zip(runs) {
        if r.is_empty() {
            continue;
        }
        r.sort_by(|x, y| x.0.total_cmp(&y.0));
        let (rss_kib, footprint) = r.swap_remove(r.len() / 2);
        cells.push(Cell {
            case: case.to_string(),
            allocator: a.name.to_string(),
            rss_kib,
            footprint,
        });
    }
    cells
}

/// Runs every case under every allocator `rounds` times, alternating allocators.
pub fn run(rounds: usize, mut progress: impl FnMut(&str)) -> Study {
    let mut study = Study {
        rounds,
        ..Study::default()
    };
    let (exe, allocs) =
        match native::build("footprint.c").and_then(|e| Ok((e, native::allocators()?))) {
            Ok(x) => x,
            Err(e) => {
                study.errors.push(e);
                return study;
            }
        };
    let tmp = std::env::temp_dir().join(format!("hakprof-footprint-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&tmp);
    for (case, args) in CASES {
        progress(&format!("footprint: {case}"));
        let mut runs: Vec<Vec<(f64, Option<Value>)>> = vec![Vec::new(); allocs.len()];
        for _ in 0..rounds {
            for (k, a) in allocs.iter().enumerate() {
                match run_once(&exe, a, args, &tmp) {
                    Ok(r) => runs[k].push(r),
                    Err(e) => study.errors.push(format!("{case}, {}: {e}", a.name)),
                }
            }
        }
        study.cells.extend(medians(case, &allocs, runs));
    }
    for name in PEAK_PROGRAMS {
        progress(&format!("footprint: {name} at its peak"));
        let src = microbench::programs::PROGRAMS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, src, _)| format!("programs/{src}"));
        let bin = match src
            .ok_or_else(|| format!("no program {name}"))
            .and_then(|s| native::build(&s))
        {
            Ok(b) => b,
            Err(e) => {
                study.errors.push(e);
                continue;
            }
        };
        let mut runs: Vec<Vec<(f64, Option<Value>)>> = vec![Vec::new(); allocs.len()];
        for _ in 0..rounds {
            for (k, a) in allocs.iter().enumerate() {
                match run_program(&bin, a, &tmp) {
                    Ok(r) => runs[k].push(r),
                    Err(e) => study.errors.push(format!("{name}, {}: {e}", a.name)),
                }
            }
        }
        study.peaks.extend(medians(name, &allocs, runs));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    study
}

impl Study {
    fn rss(&self, case: &str, alloc: &str) -> Option<f64> {
        self.cells
            .iter()
            .find(|c| c.case == case && c.allocator == alloc)
            .map(|c| c.rss_kib)
    }

    fn allocators(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for c in &self.cells {
            if !v.contains(&c.allocator) {
                v.push(c.allocator.clone());
            }
        }
        v
    }

    /// Resident KiB per case and allocator, and per thread: (8 threads − 1 thread) / 7.
    pub fn rss_table(&self) -> Table {
        let allocs = self.allocators();
        let mut head = vec!["resident KiB (VmRSS)".to_string()];
        head.extend(allocs.iter().cloned());
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        let mut t = Table::new(&head);
        for (case, _) in CASES {
            let mut row = vec![case.to_string()];
            row.extend(
                allocs
                    .iter()
                    .map(|a| self.rss(case, a).map_or("–".into(), |v| format!("{v:.0}"))),
            );
            t.push(row);
        }
        let mut row = vec!["per thread: (8 threads − 1 thread) / 7".to_string()];
        row.extend(allocs.iter().map(|a| {
            match (self.rss(CASES[3].0, a), self.rss(CASES[2].0, a)) {
                (Some(b), Some(s)) => format!("{:.1}", (b - s) / 7.0),
                _ => "–".into(),
            }
        }));
        t.push(row);
        t
    }

    /// hakmem's footprint by holder (KiB), one column per case, and what is not hakmem's.
    pub fn split_table(&self) -> Table {
        let mut head = vec!["hakmem's resident KiB, by holder".to_string()];
        head.extend(CASES.iter().map(|(c, _)| c.to_string()));
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        let mut t = Table::new(&head);
        let fp = |case: &str| {
            self.cells
                .iter()
                .find(|c| c.case == case && c.allocator == "hakmem")
                .and_then(|c| c.footprint.clone())
        };
        let kib = |v: &Value, k: &str| v[k].as_f64().map(|b| b / 1024.0);
        for (key, what) in HOLDERS {
            let mut row = vec![what.to_string()];
            row.extend(CASES.iter().map(|(case, _)| {
                fp(case)
                    .and_then(|v| kib(&v, key))
                    .map_or("–".into(), |x| format!("{x:.0}"))
            }));
            t.push(row);
        }
        // What the process holds besides: its code and data, libc, the loader, stacks,
        // hakmem's own code pages (the parts above are its writable ones).
        let mut row = vec!["everything else (program, libc, code pages, stacks)".to_string()];
        row.extend(CASES.iter().map(|(case, _)| {
            fp(case).map_or("–".into(), |v| {
                let total = v["process_rss"].as_f64().unwrap_or(0.0);
                let ours: f64 = [
                    "statics",
                    "segment_headers",
                    "segment_pages",
                    "heap_bytes",
                    "big_live",
                    "big_cached",
                    "registry",
                ]
                .iter()
                .filter_map(|k| v[*k].as_f64())
                .sum();
                format!("{:.0}", (total - ours) / 1024.0)
            })
        }));
        t.push(row);
        t
    }

    /// At the programs' peaks: each allocator's peak RSS, then hakmem's footprint there by
    /// holder (KiB), one column per program.
    pub fn peak_table(&self) -> Table {
        let mut head = vec!["at the peak (KiB)".to_string()];
        head.extend(PEAK_PROGRAMS.iter().map(|p| p.to_string()));
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        let mut t = Table::new(&head);
        let cell = |p: &str, a: &str| self.peaks.iter().find(|c| c.case == p && c.allocator == a);
        let mut allocs: Vec<String> = Vec::new();
        for c in &self.peaks {
            if !allocs.contains(&c.allocator) {
                allocs.push(c.allocator.clone());
            }
        }
        for a in &allocs {
            let mut row = vec![format!("peak RSS, {a}")];
            row.extend(
                PEAK_PROGRAMS
                    .iter()
                    .map(|p| cell(p, a).map_or("–".into(), |c| format!("{:.0}", c.rss_kib))),
            );
            t.push(row);
        }
        let fp = |p: &str| cell(p, "hakmem").and_then(|c| c.footprint.clone());
        let kib = |v: &Value, k: &str| v[k].as_f64().map(|b| b / 1024.0);
        let mut row = vec!["hakmem's measure: the process's RSS then".to_string()];
        row.extend(PEAK_PROGRAMS.iter().map(|p| {
            fp(p)
                .and_then(|v| kib(&v, "process_rss"))
                .map_or("–".into(), |x| format!("{x:.0}"))
        }));
        t.push(row);
        for (key, what) in HOLDERS {
            let mut row = vec![format!("hakmem: {what}")];
            row.extend(PEAK_PROGRAMS.iter().map(|p| {
                fp(p)
                    .and_then(|v| kib(&v, key))
                    .map_or("–".into(), |x| format!("{x:.0}"))
            }));
            t.push(row);
        }
        t
    }

    pub fn markdown(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.rss_table().markdown(),
            self.split_table().markdown(),
            self.peak_table().markdown(),
            self.errors
                .iter()
                .map(|e| format!("- error: {e}\n"))
                .collect::<String>()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn per_thread_is_the_slope_and_everything_else_is_the_rest_of_the_rss() {
        let cell = |case: &str, alloc: &str, rss: f64, fp: Option<Value>| Cell {
            case: case.into(),
            allocator: alloc.into(),
            rss_kib: rss,
            footprint: fp,
        };
        let fp = json!({ "process_rss": 2048 * 1024, "statics": 128 * 1024,
            "segment_headers": 8 * 1024, "segment_pages": 64 * 1024, "heap_bytes": 8 * 1024,
            "big_live": 0, "big_cached": 0, "registry": 0, "site_table": 48 * 1024,
            "segment_map": 12 * 1024 });
        let s = Study {
            peaks: vec![],
            cells: vec![
                cell(CASES[2].0, "hakmem", 1000.0, Some(fp.clone())),
                cell(CASES[3].0, "hakmem", 1700.0, Some(fp)),
                cell(CASES[2].0, "glibc", 900.0, None),
                cell(CASES[3].0, "glibc", 1040.0, None),
            ],
            rounds: 1,
            errors: vec![],
        };
        let rss = s.rss_table().markdown();
        assert!(rss.contains("| 100.0 | 20.0 |"), "{rss}");
        let split = s.split_table().markdown();
        // 2048 − (128 + 8 + 64 + 8) = 1840 KiB not hakmem's.
        assert!(
            split.contains(
                "| everything else (program, libc, code pages, stacks) | – | – | 1840 | 1840 |"
            ),
            "{split}"
        );
        assert!(
            split.contains("| … of which the call-site table | – | – | 48 | 48 |"),
            "{split}"
        );
    }
}
