//! Does learning pay? A workload where per-site policy matters, run with the learner, with
//! each of the ELO's 12 thresholds as a fixed policy (`HAKMEM_THRESHOLD_KB`), without and
//! with transparent huge pages (`HAKMEM_THP=0|1`; the learner once as users get it, once
//! picking them per site, `HAKMEM_THP=site`), and with
//! the peers, each in its own child process, 3 times alternated (medians), on one
//! composite cost.
//!
//! The workload (`run-workload --workload learning`): three call sites, two phases.
//! - phase 1, 60 rounds: site A reuses a 1 MiB buffer (allocate, write every page, free,
//!   10 times a round); site B makes one-shot 1 MiB buffers (10 a round, each freed 50
//!   buffers later); site C grows a block from 64 KiB to 8 MiB by doubling (allocate,
//!   write, free) once a round.
//! - phase 2: A and B swap roles; C grows again. About 3 400 big allocations in all.
//!
//! Cost of a run: the child's CPU time (user + system), minor page faults and peak RSS,
//! each divided by the best hakmem run's, weighted 0.4 / 0.3 / 0.3 (the learner's own
//! weights).
//! The learner runs twice: as users get it (`balanced`: 1 big allocation in 8 timed, a
//! new choice every 100) and in `research` mode (every one timed, a choice every 10).
//! The first learned run also samples the ELO ratings and each site's chosen threshold every
//! round, for the learning curves.
//!
//! Each run also counts its page faults by site and by what the allocator did (a fresh
//! mapping, a BigCache hit, one resized by `mremap`, a pool block, a free): where the
//! faults come from, beside the peers' faults per site. Two more workloads run the same
//! way (learned, every fixed policy, the peers): a server (`learning-server`), a compiler
//! (`learning-compiler`) and a proxy whose two big sites want opposite pages
//! (`learning-proxy`), whose shapes `child.rs` describes.

use crate::ablation::run_child;
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// One configuration's run.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub config: String,
    pub cpu_ms: f64,
    pub page_faults: f64,
    /// Of `page_faults`, those that brought in a transparent huge page (2 MiB).
    pub huge_page_faults: f64,
    pub peak_rss_kib: f64,
    /// 0.4·cpu + 0.3·faults + 0.3·RSS, each over the best hakmem run's (1.0 = best on all
    /// three; a peer can go below 1). Faults in small-page equivalents (`fault_pages`).
    pub cost: f64,
    /// Page faults by site and by what the allocator did (a peer: "allocation" / "free").
    pub faults_by_decision: Vec<FaultRow>,
}

/// Faults of one (site, decision) in one run.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct FaultRow {
    pub site: String,
    pub decision: String,
    pub calls: u64,
    pub faults: u64,
}

/// How the fault table is made.
pub const FAULT_NOTE: &str = "Each allocation's page faults are counted around the call and the first touch of its pages (getrusage), each free's around the free; for hakmem they are filed by what its counters say it did (a fresh mapping, a BigCache hit, one split from a larger block or another site's, one resized by mremap, a pool block). Shown: the learned run, the best fixed policy, glibc and mimalloc (the peers only by site). A fresh mapping or an mremap growth faults once per page written; a resident block reused does not.";

/// The other workloads of the study (`learning-server`, `learning-compiler`).
pub const OTHER_WORKLOADS: [(&str, &str); 3] = [
    (
        "learning-server",
        "a server: 3000 requests, each a 256–832 KiB request buffer and a 1.5–2 MiB response buffer (allocated, written, freed), every tenth a 2 MiB entry of a long-lived cache of 24",
    ),
    (
        "learning-compiler",
        "a compiler: 12 units, each 40 tree blocks of 384–640 KiB kept for the unit, 8 passes over a 3 MiB scratch buffer, 6 output chunks of 1 MiB, all freed at the unit's end",
    ),
    (
        "learning-proxy",
        "a proxy: 48 connections, each a 4 MiB receive buffer filled to each request's 64–512 KiB and replaced every 30 of its requests; a 1 MiB response per request; a response cache of 2 MiB entries, written whole, growing to 48 (6000 requests)",
    ),
];

/// One more workload's runs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Workload {
    pub name: String,
    pub what: String,
    pub runs: Vec<Run>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Study {
    pub runs: Vec<Run>,
    /// The server and the compiler, run the same way.
    pub others: Vec<Workload>,
    /// The learned run's samples: per round, each ELO strategy's rating (by threshold)
    /// and each site's threshold.
    pub elo: Vec<(usize, Vec<(usize, f64)>)>,
    pub site_thresholds: Vec<(usize, [usize; 3])>,
    pub errors: Vec<String>,
}

/// The fixed thresholds: the ELO's, in KiB. Each runs as a fixed policy twice: without
/// transparent huge pages (`HAKMEM_THP=0`, the default) and with them for every big block
/// that spans one (`HAKMEM_THP=1`); the learner runs as users get it (no huge pages) and
/// choosing them per site (`HAKMEM_THP=site`).
pub fn fixed_thresholds_kib() -> Vec<usize> {
    hakmem::learn::elo::THRESHOLDS
        .iter()
        .map(|t| t >> 10)
        .collect()
}

/// Runs of each configuration; the study reports the median of each figure (CPU time
/// moves by a third between runs of one configuration on a shared machine).
pub const REPS: usize = 3;

/// A configuration of the study: its name, its environment, its allocator.
type Config = (String, Vec<(&'static str, String)>, &'static str);

/// Runs every configuration of `workload` `REPS` times (learned, in research mode too when
/// `research`; the 12 fixed thresholds without and with transparent huge pages; the peers):
/// the raw JSON of each, by name, its figures the medians of its runs.
fn run_workload(
    exe: &Path,
    workload: &str,
    research: bool,
    errors: &mut Vec<String>,
    progress: &mut impl FnMut(&str),
) -> Vec<(String, Value)> {
    let mut configs: Vec<Config> = vec![
        ("learned (ELO)".into(), vec![], "hakmem"),
        (
            "learned (ELO), huge pages per site".into(),
            vec![("HAKMEM_THP", "site".to_string())],
            "hakmem",
        ),
    ];
    if research {
        configs.push((
            "learned (research mode)".into(),
            vec![("HAKMEM_MODE", "research".to_string())],
            "hakmem",
        ));
    }
    for (thp, suffix) in [("0", ""), ("1", " + THP")] {
        for kb in fixed_thresholds_kib() {
            configs.push((
                format!("fixed {}{suffix}", human_kib(kb)),
                vec![
                    ("HAKMEM_THRESHOLD_KB", kb.to_string()),
                    ("HAKMEM_THP", thp.to_string()),
                ],
                "hakmem",
            ));
        }
    }
    for peer in ["system", "mimalloc", "jemalloc"] {
        configs.push((peer.into(), vec![], peer));
    }
    let mut runs: Vec<Vec<Value>> = vec![Vec::new(); configs.len()];
    // Alternated: each round runs every configuration once, so that a slow spell of the
    // machine lands on all of them alike.
    for rep in 0..REPS {
        for ((name, env, alloc), got) in configs.iter().zip(&mut runs) {
            progress(&format!("{workload}: {name} ({}/{REPS})", rep + 1));
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            match run_child(exe, workload, 1, true, &env, alloc) {
                Ok(v) => got.push(v),
                Err(e) => errors.push(format!("{workload}, {name}: {e}")),
            }
        }
    }
    configs
        .into_iter()
        .zip(runs)
        .filter_map(|((name, _, _), got)| median_run(got).map(|v| (name, v)))
        .collect()
}

/// The run of `got` with the median CPU time (its fault table and learning curves), its
/// CPU time, page faults and peak RSS each replaced by the median of all of `got`.
fn median_run(mut got: Vec<Value>) -> Option<Value> {
    let median = |got: &[Value], k: &str| {
        let mut xs: Vec<f64> = got.iter().filter_map(|v| v[k].as_f64()).collect();
        xs.sort_by(f64::total_cmp);
        xs.get(xs.len() / 2).copied()
    };
    let fields =
        ["cpu_ms", "page_faults", "huge_page_faults", "peak_rss_kib"].map(|k| (k, median(&got, k)));
    let cpu = fields[0].1?;
    let at = got.iter().position(|v| v["cpu_ms"].as_f64() == Some(cpu))?;
    let mut v = got.swap_remove(at);
    for (k, m) in fields {
        if let Some(m) = m {
            v[k] = m.into();
        }
    }
    Some(v)
}

/// Runs the study: the three-site workload and the others, every configuration `REPS` times.
pub fn run(exe: &Path, mut progress: impl FnMut(&str)) -> Study {
    let mut study = Study::default();
    let raw = run_workload(exe, "learning", true, &mut study.errors, &mut progress);
    if let Some((_, v)) = raw.first() {
        study.elo = serde_json::from_value(v["elo_samples"].clone()).unwrap_or_default();
        study.site_thresholds =
            serde_json::from_value(v["site_thresholds"].clone()).unwrap_or_default();
    }
    study.runs = costs(&raw);
    for (name, what) in OTHER_WORKLOADS {
        let raw = run_workload(exe, name, false, &mut study.errors, &mut progress);
        study.others.push(Workload {
            name: name.into(),
            what: what.into(),
            runs: costs(&raw),
        });
    }
    study
}

fn human_kib(kb: usize) -> String {
    if kb >= 1024 && kb.is_multiple_of(1024) {
        format!("{} MiB", kb >> 10)
    } else {
        format!("{kb} KiB")
    }
}

/// The composite cost of each run against the best of all runs.
pub fn costs(raw: &[(String, Value)]) -> Vec<Run> {
    let get = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let mut runs: Vec<Run> = raw
        .iter()
        .map(|(name, v)| Run {
            config: name.clone(),
            cpu_ms: get(v, "cpu_ms"),
            page_faults: get(v, "page_faults"),
            huge_page_faults: v["huge_page_faults"].as_f64().unwrap_or(0.0),
            peak_rss_kib: get(v, "peak_rss_kib"),
            cost: 0.0,
            faults_by_decision: serde_json::from_value(v["faults_by_decision"].clone())
                .unwrap_or_default(),
        })
        .collect();
    // The best of hakmem's runs (learned and fixed) sets each unit: a peer's page faults may
    // be counted in 2 MiB pages (transparent huge pages: mimalloc faults 48 times where
    // hakmem faults 139 000), which would otherwise swamp every other difference.
    let hakmem_runs: Vec<&Run> = runs
        .iter()
        .filter(|r| r.config.starts_with("learned") || r.config.starts_with("fixed"))
        .collect();
    let pool: Vec<&Run> = if hakmem_runs.is_empty() {
        runs.iter().collect()
    } else {
        hakmem_runs
    };
    let best = |f: fn(&Run) -> f64| {
        pool.iter()
            .map(|r| f(r))
            .filter(|x| x.is_finite() && *x > 0.0)
            .fold(f64::INFINITY, f64::min)
    };
    let (c, p, r) = (
        best(|r| r.cpu_ms),
        best(fault_pages),
        best(|r| r.peak_rss_kib),
    );
    for run in &mut runs {
        run.cost = 0.4 * run.cpu_ms / c
            + 0.3 * fault_pages(run).max(1.0) / p.max(1.0)
            + 0.3 * run.peak_rss_kib / r;
    }
    runs
}

/// A run's page faults in small-page equivalents: a huge-page fault writes 2 MiB, the work
/// of the 512 small-page faults it replaces. Counted as one, it would make any run with huge
/// pages (mimalloc's arenas, hakmem's `HAKMEM_THP`) look 500 times cheaper in faults while
/// its CPU time already holds what the fault cost; counted this way, the fault term
/// measures the memory first-touched, and the CPU term what touching it took.
pub fn fault_pages(r: &Run) -> f64 {
    r.page_faults + 511.0 * r.huge_page_faults
}

/// The learned run of `runs` (the first, as users get it).
fn learned(runs: &[Run]) -> Option<&Run> {
    runs.iter().find(|r| r.config.starts_with("learned"))
}

fn is_peer(r: &Run) -> bool {
    !r.config.starts_with("learned") && !r.config.starts_with("fixed")
}

/// The cheapest run of `runs` that `keep` keeps.
fn cheapest(runs: &[Run], keep: fn(&Run) -> bool) -> Option<&Run> {
    runs.iter()
        .filter(|r| keep(r) && r.cost.is_finite())
        .min_by(|a, b| a.cost.total_cmp(&b.cost))
}

/// The verdict on one workload in one sentence, naming the best fixed policy and the
/// best peer with their costs: the learner is compared with both, never only with its own
/// options.
pub fn verdict_of(runs: &[Run]) -> String {
    let Some(l) = learned(runs) else {
        return "not measured: the learned run failed".into();
    };
    let fixed = cheapest(runs, |r| r.config.starts_with("fixed"));
    let peer = cheapest(runs, is_peer);
    let (Some(f), Some(p)) = (fixed, peer) else {
        return format!(
            "the learner costs {:.3}; no fixed policy or peer ran to compare",
            l.cost
        );
    };
    let vs = |other: &Run| {
        let pct = 100.0 * (l.cost / other.cost - 1.0);
        if l.cost <= other.cost {
            format!(
                "beats {} ({:.3}, {:.1} % cheaper)",
                other.config, other.cost, -pct
            )
        } else {
            format!(
                "loses to {} ({:.3}, {:.1} % dearer)",
                other.config, other.cost, pct
            )
        }
    };
    format!(
        "the learner costs {:.3}: it {} — the best fixed policy — and {} — the best peer",
        l.cost,
        vs(f),
        vs(p)
    )
}

impl Study {
    fn learned(&self) -> Option<&Run> {
        learned(&self.runs)
    }
    fn fixed(&self) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(|r| r.config.starts_with("fixed"))
    }

    /// The verdict on the three-site workload in one sentence, naming the best fixed
    /// threshold and the best peer (`verdict_of`).
    pub fn verdict(&self) -> String {
        if self.learned().is_none() {
            return format!("not measured: {}", self.errors.join("; "));
        }
        verdict_of(&self.runs)
    }

    /// Where the faults come from: per site and per decision for the learned run and the
    /// best fixed policy, per site for the peers (which say nothing of their decisions).
    pub fn fault_table(runs: &[Run]) -> microbench::table::Table {
        let mut t = microbench::table::Table::new(&[
            "configuration",
            "site",
            "what the allocator did",
            "calls",
            "page faults",
            "faults per call",
        ]);
        let best_fixed =
            cheapest(runs, |r| r.config.starts_with("fixed")).map(|r| r.config.clone());
        for r in runs {
            let shown = r.config == "learned (ELO)"
                || Some(&r.config) == best_fixed.as_ref()
                || r.config == "system"
                || r.config == "mimalloc";
            if !shown {
                continue;
            }
            let mut rows = r.faults_by_decision.clone();
            rows.sort_by(|a, b| {
                (&a.site, std::cmp::Reverse(a.faults)).cmp(&(&b.site, std::cmp::Reverse(b.faults)))
            });
            for f in rows
                .iter()
                .filter(|f| f.faults > 0 || f.calls > 0 && !f.decision.starts_with("free"))
            {
                t.push(vec![
                    r.config.clone(),
                    f.site.clone(),
                    f.decision.clone(),
                    f.calls.to_string(),
                    f.faults.to_string(),
                    format!("{:.1}", f.faults as f64 / f.calls.max(1) as f64),
                ]);
            }
        }
        t
    }

    /// A workload's runs as the study's table.
    pub fn runs_table(runs: &[Run]) -> microbench::table::Table {
        let mut t = microbench::table::Table::new(&[
            "configuration",
            "CPU ms",
            "page faults",
            "of which huge pages",
            "faults in 4 KiB pages",
            "peak RSS MiB",
            "composite cost (1.0 = best on all three)",
        ]);
        for r in runs {
            t.push(vec![
                r.config.clone(),
                format!("{:.1}", r.cpu_ms),
                format!("{:.0}", r.page_faults),
                format!("{:.0}", r.huge_page_faults),
                format!("{:.0}", fault_pages(r)),
                format!("{:.1}", r.peak_rss_kib / 1024.0),
                format!("{:.3}", r.cost),
            ]);
        }
        t
    }

    pub fn table(&self) -> microbench::table::Table {
        Self::runs_table(&self.runs)
    }

    /// The parts of the study after its main table: where the faults come from, then
    /// each other workload with its verdict, its table and its faults. (title, text, table)
    pub fn sections(&self) -> Vec<(String, String, microbench::table::Table)> {
        let mut out = vec![(
            "Where the page faults come from".to_string(),
            FAULT_NOTE.to_string(),
            Self::fault_table(&self.runs),
        )];
        for w in &self.others {
            out.push((
                format!("{}: {}", w.name, w.what),
                format!("**{}**", verdict_of(&w.runs)),
                Self::runs_table(&w.runs),
            ));
            out.push((
                format!("{}: where the page faults come from", w.name),
                String::new(),
                Self::fault_table(&w.runs),
            ));
        }
        out
    }

    pub fn json(&self) -> Value {
        let best = self.fixed().min_by(|a, b| a.cost.total_cmp(&b.cost));
        let worst = self.fixed().max_by(|a, b| a.cost.total_cmp(&b.cost));
        serde_json::json!({
            "runs": self.runs,
            "learned_cost": self.learned().map(|r| r.cost),
            "best_fixed": best,
            "worst_fixed": worst,
            "verdict": self.verdict(),
            "best_peer": cheapest(&self.runs, is_peer),
            "others": self.others.iter().map(|w| serde_json::json!({
                "name": w.name,
                "what": w.what,
                "runs": w.runs,
                "verdict": verdict_of(&w.runs),
                "best_fixed": cheapest(&w.runs, |r| r.config.starts_with("fixed")),
                "best_peer": cheapest(&w.runs, is_peer),
            })).collect::<Vec<_>>(),
            "elo_samples": self.elo,
            "site_thresholds": self.site_thresholds,
            "errors": self.errors,
        })
    }

    /// ELO ratings over the learned run (one line per threshold).
    pub fn elo_chart(&self) -> String {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for (round, ratings) in &self.elo {
            for (k, (threshold, rating)) in ratings.iter().enumerate() {
                if series.len() <= k {
                    series.push((human_kib(threshold >> 10), Vec::new()));
                }
                series[k].1.push((*round as f64, *rating));
            }
        }
        line_chart(
            "ELO rating of each threshold, by round (learned run)",
            "rating",
            &series,
        )
    }

    /// The threshold each site had chosen, by round (learned run).
    pub fn threshold_chart(&self) -> String {
        let names = [
            "site A (reuse, then one-shot)",
            "site B (one-shot, then reuse)",
            "site C (grows)",
        ];
        let series: Vec<(String, Vec<(f64, f64)>)> = (0..3)
            .map(|s| {
                let pts = self
                    .site_thresholds
                    .iter()
                    .map(|(round, t)| (*round as f64, (t[s] >> 10) as f64))
                    .collect();
                (names[s].to_string(), pts)
            })
            .collect();
        line_chart(
            "threshold chosen per site, KiB, by round (learned run)",
            "KiB",
            &series,
        )
    }
}

/// A line chart (SVG) of `series` (name, points) by round.
pub fn line_chart(title: &str, y_label: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    microbench::chart::LineChart {
        title,
        x_label: "round",
        y_label,
        series,
        shade_above: None,
        y_from_zero: false,
        log2_x: false,
    }
    .svg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn costs_are_relative_to_the_best_and_the_verdict_says_who_won() {
        let raw = vec![
            (
                "learned (ELO)".to_string(),
                json!({ "cpu_ms": 12.0, "page_faults": 100.0, "peak_rss_kib": 2048.0 }),
            ),
            (
                "fixed 1 MiB".to_string(),
                json!({ "cpu_ms": 10.0, "page_faults": 100.0, "peak_rss_kib": 1024.0 }),
            ),
            (
                "fixed 32 MiB".to_string(),
                json!({ "cpu_ms": 20.0, "page_faults": 400.0, "peak_rss_kib": 1024.0 }),
            ),
            (
                "system".to_string(),
                json!({ "cpu_ms": 5.0, "page_faults": 50.0, "peak_rss_kib": 1024.0,
                    "faults_by_decision": [{ "site": "A", "decision": "allocation", "calls": 3, "faults": 50 }] }),
            ),
        ];
        let runs = costs(&raw);
        assert!(
            (runs[1].cost - 1.0).abs() < 1e-9,
            "best on all three: {:?}",
            runs[1]
        );
        assert!((runs[0].cost - (0.4 * 1.2 + 0.3 + 0.3 * 2.0)).abs() < 1e-9);
        let study = Study {
            runs,
            ..Default::default()
        };
        let v = study.verdict();
        assert!(
            v.contains("loses to fixed 1 MiB") && v.contains("the best fixed policy"),
            "{v}"
        );
        // The verdict names the best peer too, so a reader cannot take "beats its own
        // options" for "the idea works".
        assert!(
            v.contains("loses to system") && v.contains("the best peer"),
            "{v}"
        );
        assert_eq!(study.json()["best_fixed"]["config"], "fixed 1 MiB");
        assert_eq!(study.json()["best_peer"]["config"], "system");
        let faults = Study::fault_table(&study.runs).markdown();
        assert!(
            faults.contains("| system | A | allocation | 3 | 50 |"),
            "{faults}"
        );
    }

    #[test]
    fn line_charts_are_svg_with_a_line_per_series() {
        let svg = line_chart(
            "t",
            "y",
            &[
                ("a".into(), vec![(0.0, 1.0), (1.0, 2.0)]),
                ("b".into(), vec![(0.0, 3.0)]),
            ],
        );
        assert!(crate::flame::svg_well_formed(&svg), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(crate::flame::svg_well_formed(&line_chart(
            "empty",
            "y",
            &[]
        )));
    }
}
