//! Does learning pay? A workload where per-site policy matters, run with the learner, with
//! each of the ELO's 12 thresholds as a fixed policy (`HAKMEM_THRESHOLD_KB`), and with the
//! peers, each in its own child process, on one composite cost.
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
    pub peak_rss_kib: f64,
    /// 0.4·cpu + 0.3·faults + 0.3·RSS, each over the best hakmem run's (1.0 = best on all
    /// three; a peer can go below 1).
    pub cost: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Study {
    pub runs: Vec<Run>,
    /// The learned run's samples: per round, each ELO strategy's rating (by threshold)
    /// and each site's threshold.
    pub elo: Vec<(usize, Vec<(usize, f64)>)>,
    pub site_thresholds: Vec<(usize, [usize; 3])>,
    pub errors: Vec<String>,
}

/// The fixed policies: the ELO's thresholds, in KiB.
pub fn fixed_thresholds_kib() -> Vec<usize> {
    hakmem::learn::elo::THRESHOLDS
        .iter()
        .map(|t| t >> 10)
        .collect()
}

/// Runs every configuration once (learned, 12 fixed thresholds, the peers).
pub fn run(exe: &Path, mut progress: impl FnMut(&str)) -> Study {
    let mut study = Study::default();
    let mut raw: Vec<(String, Value)> = Vec::new();
    let mut one = |name: String, env: Vec<(&str, String)>, alloc: &str, study: &mut Study| {
        progress(&format!("learning: {name}"));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match run_child(exe, "learning", 1, true, &env, alloc) {
            Ok(v) => raw.push((name, v)),
            Err(e) => study.errors.push(format!("{name}: {e}")),
        }
    };
    one("learned (ELO)".into(), vec![], "hakmem", &mut study);
    one(
        "learned (research mode)".into(),
        vec![("HAKMEM_MODE", "research".to_string())],
        "hakmem",
        &mut study,
    );
    for kb in fixed_thresholds_kib() {
        one(
            format!("fixed {}", human_kib(kb)),
            vec![("HAKMEM_THRESHOLD_KB", kb.to_string())],
            "hakmem",
            &mut study,
        );
    }
    for peer in ["system", "mimalloc", "jemalloc"] {
        one(peer.into(), vec![], peer, &mut study);
    }
    if let Some((_, v)) = raw.first() {
        study.elo = serde_json::from_value(v["elo_samples"].clone()).unwrap_or_default();
        study.site_thresholds =
            serde_json::from_value(v["site_thresholds"].clone()).unwrap_or_default();
    }
    study.runs = costs(&raw);
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
            peak_rss_kib: get(v, "peak_rss_kib"),
            cost: 0.0,
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
        best(|r| r.page_faults),
        best(|r| r.peak_rss_kib),
    );
    for run in &mut runs {
        run.cost = 0.4 * run.cpu_ms / c
            + 0.3 * run.page_faults.max(1.0) / p.max(1.0)
            + 0.3 * run.peak_rss_kib / r;
    }
    runs
}

impl Study {
    fn learned(&self) -> Option<&Run> {
        self.runs.iter().find(|r| r.config.starts_with("learned"))
    }
    fn fixed(&self) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(|r| r.config.starts_with("fixed"))
    }

    /// The verdict in one sentence, with the numbers.
    pub fn verdict(&self) -> String {
        let Some(l) = self.learned() else {
            return format!("not measured: {}", self.errors.join("; "));
        };
        let best = self.fixed().min_by(|a, b| a.cost.total_cmp(&b.cost));
        let worst = self.fixed().max_by(|a, b| a.cost.total_cmp(&b.cost));
        match (best, worst) {
            (Some(b), Some(w)) if l.cost <= b.cost => format!(
                "the learner pays: its cost {:.3} is at or below the best fixed threshold's ({}, {:.3}); the worst fixed one costs {:.3}",
                l.cost, b.config, b.cost, w.cost
            ),
            (Some(b), Some(w)) => format!(
                "the learner does not beat the best fixed threshold: its cost {:.3} against {} at {:.3} ({:+.1} %); it does beat the worst fixed one ({}, {:.3}) by {:.1} %",
                l.cost,
                b.config,
                b.cost,
                100.0 * (l.cost / b.cost - 1.0),
                w.config,
                w.cost,
                100.0 * (1.0 - l.cost / w.cost)
            ),
            _ => "no fixed policy ran".into(),
        }
    }

    pub fn table(&self) -> microbench::table::Table {
        let mut t = microbench::table::Table::new(&[
            "configuration",
            "CPU ms",
            "page faults",
            "peak RSS MiB",
            "composite cost (1.0 = best on all three)",
        ]);
        for r in &self.runs {
            t.push(vec![
                r.config.clone(),
                format!("{:.1}", r.cpu_ms),
                format!("{:.0}", r.page_faults),
                format!("{:.1}", r.peak_rss_kib / 1024.0),
                format!("{:.3}", r.cost),
            ]);
        }
        t
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
            v.starts_with("the learner does not beat the best fixed threshold")
                && v.contains("fixed 1 MiB"),
            "{v}"
        );
        assert_eq!(study.json()["best_fixed"]["config"], "fixed 1 MiB");
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
