//! Thread scaling (`make bench-scaling`): the multi-threaded programs of `c/scaling/`
//! (larson, xmalloc-test, mstress, glibc-thread, cache-scratch and the server pattern)
//! at 1, 2, 4, … threads under every allocator with `LD_PRELOAD`, allocators alternated
//! within each round, the median of the rounds per point. Each program runs for a fixed
//! time and reports its operations (`ops=… seconds=…`): throughput in millions of
//! operations per second. Every run proves who served it (the `served_by` line); hakmem's
//! runs also keep the pool's remote-free counters from its stats JSON, so a sweep shows
//! the cost per remote free beside the throughput.

use crate::chart::LineChart;
use crate::native::{self, Allocator};
use crate::table::Table;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// (name, source under `microbench/c/scaling/`, what an operation is).
pub const PROGRAMS: [(&str, &str, &str); 6] = [
    (
        "xmalloc",
        "xmalloc.c",
        "producer/consumer: each thread allocates 64 B blocks for the next and frees the previous one's (every free remote)",
    ),
    (
        "larson",
        "larson.c",
        "server churn: slot replacements (8–1000 B), slot sets travelling between threads",
    ),
    (
        "mstress",
        "mstress.c",
        "a shared table: each operation swaps a fresh block (16 B–1 KiB, 1 % up to 64 KiB) into a random slot and frees the one it replaced",
    ),
    (
        "glibc-thread",
        "glibc_thread.c",
        "per-thread working sets of 4 B–16 KiB blocks, nothing shared",
    ),
    (
        "cache-scratch",
        "cache_scratch.c",
        "passive false sharing: allocate 8 B, write it 100 times, free",
    ),
    (
        "server",
        "server.c",
        "threads in pairs hand each other 64 B–4 KiB request buffers; the partner frees them",
    ),
];

/// One run: a program under an allocator at a thread count.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sample {
    pub program: String,
    pub allocator: String,
    pub threads: usize,
    /// Millions of operations per second.
    pub mops: f64,
    /// hakmem's pool counters of the run (its stats JSON's `pool`), for hakmem's runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<serde_json::Value>,
}

/// A whole sweep, as `target/bench-scaling.json` holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sweep {
    pub cpu: String,
    pub cores: usize,
    pub date: String,
    pub seconds: f64,
    pub rounds: usize,
    pub threads: Vec<usize>,
    pub allocators: Vec<String>,
    pub samples: Vec<Sample>,
}

/// The thread counts of a sweep: 1, 2, 4, … up to `max`, and the core count itself.
pub fn thread_counts(cores: usize, max: usize) -> Vec<usize> {
    let mut v: Vec<usize> = std::iter::successors(Some(1usize), |t| Some(t * 2))
        .take_while(|&t| t <= max)
        .collect();
    if cores <= max && !v.contains(&cores) {
        v.push(cores);
        v.sort();
    }
    v
}

/// Parses a program's `ops=N seconds=S` line: millions of operations per second.
pub fn parse_mops(stdout: &str) -> Result<f64, String> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ops="))
        .ok_or_else(|| format!("no ops line in {stdout:?}"))?;
    let field = |name: &str| -> Result<f64, String> {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {name} in {line:?}"))
    };
    let (ops, seconds) = (field("ops=")?, field("seconds=")?);
    if seconds <= 0.0 {
        return Err(format!("elapsed time {seconds} in {line:?}"));
    }
    Ok(ops / seconds / 1e6)
}

/// Runs `bin` (program `name`) under `alloc` at `threads` for `seconds` once.
fn run_one(
    alloc: &Allocator,
    name: &str,
    bin: &Path,
    threads: usize,
    seconds: f64,
) -> Result<Sample, String> {
    let stats_dir = native::root().join("target/native/stats");
    let mut cmd = native::command(alloc, bin);
    cmd.arg(threads.to_string()).arg(seconds.to_string());
    let hakmem = alloc.name == "hakmem";
    if hakmem {
        std::fs::create_dir_all(&stats_dir).map_err(|e| e.to_string())?;
        cmd.env("HAKMEM_STATS_JSON", stats_dir.join("scaling-%p.json"));
    }
    let run = native::run(cmd)?;
    native::check_served(alloc, &run.stderr)?;
    let pool = if hakmem {
        Some(native::hakmem_stats(&stats_dir, "scaling", &run.stderr)?["pool"].clone())
    } else {
        None
    };
    Ok(Sample {
        program: name.to_string(),
        allocator: alloc.name.to_string(),
        threads,
        mops: parse_mops(&run.stdout)?,
        pool,
    })
}

/// Builds every program and runs `rounds` rounds; in each, every program at every thread
/// count under every allocator, the allocators' order rotated from round to round.
/// `progress` hears about each round.
pub fn run(
    allocs: &[Allocator],
    threads: &[usize],
    rounds: usize,
    seconds: f64,
    mut progress: impl FnMut(&str),
) -> Result<Sweep, String> {
    let mut built = Vec::new();
    for (name, src, _) in PROGRAMS {
        built.push((name, native::build(&format!("scaling/{src}"))?));
    }
    let mut samples = Vec::new();
    for round in 0..rounds {
        progress(&format!("round {}/{rounds}", round + 1));
        for (name, bin) in &built {
            for &t in threads {
                for k in 0..allocs.len() {
                    let a = &allocs[(k + round) % allocs.len()];
                    samples.push(run_one(a, name, bin, t, seconds)?);
                }
            }
        }
    }
    Ok(Sweep {
        cpu: crate::machine::cpu_model(),
        cores: crate::machine::cores(),
        date: crate::machine::date("+%Y-%m-%d"),
        seconds,
        rounds,
        threads: threads.to_vec(),
        allocators: allocs.iter().map(|a| a.name.to_string()).collect(),
        samples,
    })
}

impl Sweep {
    /// The median throughput of `program` under `alloc` at `threads` (None: not run).
    pub fn median(&self, program: &str, alloc: &str, threads: usize) -> Option<f64> {
        let v: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.program == program && s.allocator == alloc && s.threads == threads)
            .map(|s| s.mops)
            .collect();
        (!v.is_empty()).then(|| native::median(&v))
    }

    /// The best peer's median and its name at a point (hakmem excluded).
    pub fn best_peer(&self, program: &str, threads: usize) -> Option<(f64, &str)> {
        self.allocators
            .iter()
            .filter(|a| *a != "hakmem")
            .filter_map(|a| self.median(program, a, threads).map(|m| (m, a.as_str())))
            .max_by(|x, y| x.0.total_cmp(&y.0))
    }

    /// How far hakmem is behind the best peer at a point: best ÷ hakmem (> 1: behind).
    pub fn behind(&self, program: &str, threads: usize) -> Option<f64> {
        let h = self.median(program, "hakmem", threads)?;
        let (b, _) = self.best_peer(program, threads)?;
        (h > 0.0).then(|| b / h)
    }

    /// The programs the sweep ran, in `PROGRAMS` order.
    pub fn programs(&self) -> Vec<&'static str> {
        PROGRAMS
            .iter()
            .map(|p| p.0)
            .filter(|p| self.samples.iter().any(|s| s.program == *p))
            .collect()
    }

    /// A program's table: a row per thread count, each allocator's median M ops/s, the
    /// best peer over hakmem, and hakmem's remote-free work per operation.
    pub fn table(&self, program: &str) -> Table {
        let mut header = vec!["threads".to_string()];
        header.extend(self.allocators.iter().map(|a| format!("{a} (M ops/s)")));
        header.extend([
            "best peer ÷ hakmem".to_string(),
            "hakmem: remote frees per op, blocks per batch, per collection".to_string(),
        ]);
        let mut t = Table {
            header,
            rows: Vec::new(),
        };
        for &n in &self.threads {
            let mut row = vec![if n > self.cores {
                format!("{n} (oversubscribed)")
            } else {
                n.to_string()
            }];
            row.extend(self.allocators.iter().map(|a| {
                self.median(program, a, n)
                    .map_or("–".into(), |m| format!("{m:.1}"))
            }));
            row.push(
                match (self.behind(program, n), self.best_peer(program, n)) {
                    (Some(r), Some((_, peer))) => format!("**{r:.2}×** ({peer})"),
                    _ => "–".into(),
                },
            );
            row.push(self.remote_work(program, n));
            t.push(row);
        }
        t
    }

    /// hakmem's remote frees per operation, blocks per batch sent and per collection, from
    /// the first of its runs at this point.
    fn remote_work(&self, program: &str, threads: usize) -> String {
        let Some(p) = self
            .samples
            .iter()
            .find(|s| s.program == program && s.allocator == "hakmem" && s.threads == threads)
            .and_then(|s| s.pool.as_ref())
        else {
            return "–".into();
        };
        let n = |k: &str| p[k].as_f64().unwrap_or(0.0);
        let per = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        format!(
            "{:.2}, {:.1}, {:.1}",
            per(n("remote_frees"), n("allocs")),
            per(n("remote_frees"), n("remote_batches")),
            per(n("collected_blocks"), n("collections"))
        )
    }

    /// A program's chart: throughput against threads, a line per allocator, points with
    /// more threads than cores hollow over a shaded band.
    pub fn chart(&self, program: &str) -> String {
        let series: Vec<(String, Vec<(f64, f64)>)> = self
            .allocators
            .iter()
            .map(|a| {
                let pts = self
                    .threads
                    .iter()
                    .filter_map(|&n| self.median(program, a, n).map(|m| (n as f64, m)))
                    .collect();
                (a.clone(), pts)
            })
            .collect();
        let title = format!(
            "{program}: throughput by threads ({} cores, medians of {} rounds of {} s)",
            self.cores, self.rounds, self.seconds
        );
        LineChart {
            title: &title,
            x_label: "threads",
            y_label: "M ops/s",
            series: &series,
            shade_above: Some((self.cores as f64, "more threads than cores")),
            y_from_zero: true,
            log2_x: true,
        }
        .svg()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_double_up_to_the_maximum_and_include_the_cores() {
        assert_eq!(thread_counts(2, 16), [1, 2, 4, 8, 16]);
        assert_eq!(thread_counts(6, 16), [1, 2, 4, 6, 8, 16]);
        assert_eq!(thread_counts(2, 2), [1, 2]);
    }

    #[test]
    fn ops_lines_parse_and_bad_ones_are_errors() {
        assert_eq!(parse_mops("ops=5000000 seconds=0.5\n").unwrap(), 10.0);
        assert!(parse_mops("nothing").is_err());
        assert!(parse_mops("ops=5 seconds=0").is_err());
    }

    #[test]
    fn the_table_takes_medians_and_the_best_peer_over_hakmem() {
        let s = |a: &str, t: usize, m: f64| Sample {
            program: "xmalloc".into(),
            allocator: a.into(),
            threads: t,
            mops: m,
            pool: None,
        };
        let sweep = Sweep {
            cpu: "x".into(),
            cores: 2,
            date: "d".into(),
            seconds: 0.1,
            rounds: 3,
            threads: vec![1, 4],
            allocators: vec!["hakmem".into(), "glibc".into(), "tcmalloc".into()],
            samples: vec![
                s("hakmem", 1, 10.0),
                s("hakmem", 1, 30.0),
                s("hakmem", 1, 20.0),
                s("glibc", 1, 5.0),
                s("tcmalloc", 1, 40.0),
                s("hakmem", 4, 8.0),
                s("tcmalloc", 4, 4.0),
            ],
        };
        assert_eq!(sweep.behind("xmalloc", 1), Some(2.0));
        assert_eq!(sweep.behind("xmalloc", 4), Some(0.5));
        let t = sweep.table("xmalloc");
        assert_eq!(t.rows[0][1], "20.0");
        assert_eq!(t.rows[0][4], "**2.00×** (tcmalloc)");
        assert_eq!(t.rows[1][0], "4 (oversubscribed)");
        let svg = sweep.chart("xmalloc");
        assert_eq!(svg.matches("<polyline").count(), 3);
    }
}
