//! The program benchmarks (`make bench-programs`): C programs in the spirit of the classic
//! allocator benchmarks (`microbench/c/programs/`), and a start-up row, each run under
//! every allocator with `LD_PRELOAD`, allocators alternated within each round, medians of
//! the rounds for wall time and peak RSS (`/usr/bin/time`'s `%M`: the program's own
//! `ru_maxrss`, which a child of this runner would inherit from the runner's image).
//! Every run proves who served it: the `served_by` line; for hakmem also its stats JSON.

use crate::native::{self, Allocator};
use crate::table::Table;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;

/// (name, source under `microbench/c/programs/`, what it is).
pub const PROGRAMS: [(&str, &str, &str); 17] = [
    (
        "larson",
        "larson.c",
        "server churn: 4 threads, 8–1000 B, blocks handed between threads",
    ),
    (
        "xmalloc",
        "xmalloc.c",
        "2 producers allocate 16–256 B, 2 consumers free",
    ),
    (
        "cache-scratch",
        "cache_scratch.c",
        "passive false sharing, 2 threads",
    ),
    (
        "cache-thrash",
        "cache_thrash.c",
        "active false sharing, 2 threads",
    ),
    (
        "glibc-simple",
        "glibc_simple.c",
        "glibc bench-malloc-simple, 1 thread",
    ),
    (
        "glibc-simple-2t",
        "glibc_simple_2t.c",
        "the same, 2 threads",
    ),
    (
        "glibc-thread",
        "glibc_thread.c",
        "glibc bench-malloc-thread: 2 threads, 4 B–32 KiB",
    ),
    (
        "bigbatch-512k",
        "bigbatch_512k.c",
        "1000 blocks of 512 KiB allocated, then freed; 10 rounds",
    ),
    (
        "bigbatch-2m",
        "bigbatch_2m.c",
        "200 blocks of 2 MiB allocated, then freed; 10 rounds",
    ),
    (
        "bigbatch-8m",
        "bigbatch_8m.c",
        "50 blocks of 8 MiB allocated, then freed; 10 rounds",
    ),
    (
        "bignum",
        "bignum.c",
        "bignum arithmetic: a fresh limb array per result",
    ),
    (
        "bigchurn",
        "bigchurn.c",
        "20 live blocks of 5–25 MiB, one replaced at a time",
    ),
    (
        "alloc-test",
        "alloc_test.c",
        "mimalloc-bench's alloc-test, 1 thread: 2^18 slots, 80/20 skew, 5 B–1 KiB, written and read whole",
    ),
    (
        "malloc-large",
        "malloc_large.c",
        "mimalloc-bench's malloc-large: 5000 × 2 MiB, every byte written",
    ),
    (
        "bigrealloc",
        "bigrealloc.c",
        "a block grown 1 MiB → 64 MiB by doubling, 20 times",
    ),
    ("mixed", "mixed.c", "mixed sizes, 2 % long-lived tail"),
    (
        "cxx-containers",
        "cxx_containers.cpp",
        "C++ new/delete: std::map<int, std::string> churn, unique_ptr vectors, lists",
    ),
];

/// The start-up row: a shell starting `/bin/true` this many times.
pub const STARTS: usize = 300;

/// One run's figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sample {
    pub program: String,
    pub allocator: String,
    pub wall_s: f64,
    pub max_rss_kib: u64,
}

/// `/usr/bin/time`, which reports the peak RSS of the program it runs into `rss_file`.
pub const TIME: &str = "/usr/bin/time";

fn timed(alloc: &Allocator, program: &Path, rss_file: &Path) -> Command {
    let mut c = native::command(alloc, Path::new(TIME));
    c.args(["-f", "%M", "-o"]).arg(rss_file).arg(program);
    c
}

fn read_rss(rss_file: &Path) -> Result<u64, String> {
    let text =
        std::fs::read_to_string(rss_file).map_err(|e| format!("{}: {e}", rss_file.display()))?;
    text.lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("{}: no peak RSS in {text:?}", rss_file.display()))
}

/// Checks hakmem's stats file (written at exit) of the program whose `served_by` line is in
/// `stderr`: it must count pool or big allocations. (`time` writes one too: its own.)
fn check_stats(dir: &Path, stderr: &str) -> Result<(), String> {
    native::hakmem_stats(dir, "stats", stderr).map(|_| ())
}

/// Runs `program` (a built binary, or None for the start-up row) under `alloc` once.
fn run_one(alloc: &Allocator, name: &str, program: Option<&Path>) -> Result<Sample, String> {
    let stats_dir = native::root().join("target/native/stats");
    let rss_file = native::root().join("target/native/rss");
    let mut cmd = timed(alloc, program.unwrap_or(Path::new("/bin/sh")), &rss_file);
    if program.is_none() {
        cmd.args([
            "-c",
            &format!("i=0; while [ $i -lt {STARTS} ]; do /bin/true; i=$((i+1)); done"),
        ]);
    }
    let hakmem_program = alloc.name == "hakmem" && program.is_some();
    if hakmem_program {
        std::fs::create_dir_all(&stats_dir).map_err(|e| e.to_string())?;
        cmd.env("HAKMEM_STATS_JSON", stats_dir.join("stats-%p.json"));
    }
    let run = native::run(cmd)?;
    if program.is_some() {
        native::check_served(alloc, &run.stderr)?;
    }
    if hakmem_program {
        check_stats(&stats_dir, &run.stderr)?;
    }
    Ok(Sample {
        program: name.to_string(),
        allocator: alloc.name.to_string(),
        wall_s: run.wall.as_secs_f64(),
        max_rss_kib: read_rss(&rss_file)?,
    })
}

/// The start-up row cannot print `served_by` (it times `/bin/true`): one unmeasured run of
/// `cabi`'s program under the same preload proves the library loads and serves.
fn check_startup_preload(alloc: &Allocator, probe: &Path) -> Result<(), String> {
    let mut cmd = native::command(alloc, probe);
    cmd.args(["count", "pair64", "1000"]);
    native::check_served(alloc, &native::run(cmd)?.stderr)
}

/// Builds every program and runs `rounds` rounds; in each, every program runs under every
/// allocator, the allocators' order rotated from round to round.
pub fn run(allocs: &[Allocator], rounds: usize) -> Result<Vec<Sample>, String> {
    let mut built = Vec::new();
    for (name, src, _) in PROGRAMS {
        built.push((name, native::build(&format!("programs/{src}"))?));
    }
    let probe = native::build(crate::cabi::SOURCE)?;
    for a in allocs {
        check_startup_preload(a, &probe)?;
    }
    let mut samples = Vec::new();
    for round in 0..rounds {
        eprintln!("bench-programs: round {}/{rounds}", round + 1);
        for i in 0..=built.len() {
            for k in 0..allocs.len() {
                let a = &allocs[(k + round) % allocs.len()];
                samples.push(match built.get(i) {
                    Some((name, bin)) => run_one(a, name, Some(bin))?,
                    None => run_one(a, "startup", None)?,
                });
            }
        }
    }
    Ok(samples)
}

/// The table: median time and peak RSS per program and allocator, hakmem's over the best
/// peer's for each.
pub fn table(samples: &[Sample], allocs: &[&str]) -> Table {
    let mut header = vec!["program (median wall s)".to_string()];
    header.extend(allocs.iter().map(|a| a.to_string()));
    header.extend([
        "time ÷ best".into(),
        "peak RSS hakmem / best (MiB)".into(),
        "RSS ÷ best".into(),
    ]);
    let mut t = Table {
        header,
        rows: Vec::new(),
    };
    let names = PROGRAMS.iter().map(|p| p.0).chain(["startup"]);
    for name in names.filter(|n| samples.iter().any(|s| s.program == *n)) {
        let med = |a: &str, f: &dyn Fn(&Sample) -> f64| -> Option<f64> {
            let v: Vec<f64> = samples
                .iter()
                .filter(|s| s.program == name && s.allocator == a)
                .map(f)
                .collect();
            (!v.is_empty()).then(|| native::median(&v))
        };
        let wall = |a: &str| med(a, &|s| s.wall_s);
        let rss = |a: &str| med(a, &|s| s.max_rss_kib as f64);
        let best = |f: &dyn Fn(&str) -> Option<f64>| {
            allocs
                .iter()
                .filter(|a| **a != "hakmem")
                .filter_map(|a| f(a))
                .min_by(f64::total_cmp)
        };
        let label = if name == "startup" {
            format!("startup ({STARTS} × /bin/true)")
        } else {
            name.to_string()
        };
        let mut row = vec![label];
        row.extend(
            allocs
                .iter()
                .map(|a| wall(a).map_or("–".into(), |v| format!("{v:.3}"))),
        );
        let ratio = |h: Option<f64>, b: Option<f64>| match (h, b) {
            (Some(h), Some(b)) if b > 0.0 => format!("**{:.2}×**", h / b),
            _ => "–".into(),
        };
        row.push(ratio(wall("hakmem"), best(&wall)));
        row.push(match (rss("hakmem"), best(&rss)) {
            (Some(h), Some(b)) => format!("{:.1} / {:.1}", h / 1024.0, b / 1024.0),
            _ => "–".into(),
        });
        row.push(ratio(rss("hakmem"), best(&rss)));
        t.push(row);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_takes_medians_and_divides_by_the_best_peer() {
        let s = |a: &str, w: f64, r: u64| Sample {
            program: "larson".into(),
            allocator: a.into(),
            wall_s: w,
            max_rss_kib: r,
        };
        let samples = [
            s("hakmem", 1.0, 2048),
            s("hakmem", 3.0, 2048),
            s("hakmem", 2.0, 2048),
            s("glibc", 4.0, 1024),
            s("jemalloc", 1.0, 4096),
        ];
        let t = table(&samples, &["hakmem", "glibc", "jemalloc"]);
        assert_eq!(t.rows.len(), 1);
        assert_eq!(
            t.rows[0],
            [
                "larson",
                "2.000",
                "4.000",
                "1.000",
                "**2.00×**",
                "2.0 / 1.0",
                "**2.00×**"
            ]
        );
    }
}
