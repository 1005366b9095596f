//! `make bench-report`: criterion's results (target/criterion) as Markdown tables of
//! medians, with each hakmem front's ratio to the fastest production peer in the same
//! group, and the performance targets with their measured ratios.

use crate::table::Table;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

pub use crate::peers::{HAKMEM_FRONTS as HAKMEM, PRODUCTION as PEERS};

/// One benchmark's median, per element (operation) of its throughput.
#[derive(Clone, Debug, PartialEq)]
pub struct Median {
    pub ns_per_iter: f64,
    pub elements: f64,
}

impl Median {
    pub fn ns_per_op(&self) -> f64 {
        self.ns_per_iter / self.elements.max(1.0)
    }
}

/// group id → member (allocator or probe) → median.
pub type Results = BTreeMap<String, BTreeMap<String, Median>>;

/// Reads every `new/benchmark.json` + `new/estimates.json` under `dir`.
pub fn load(dir: &Path) -> Result<Results, String> {
    let mut out = Results::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "benchmark.json")
                && p.parent().is_some_and(|q| q.ends_with("new"))
            {
                let read = |f: &Path| -> Result<Value, String> {
                    let text =
                        std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
                    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))
                };
                let b = read(&p)?;
                let est = read(&p.with_file_name("estimates.json"))?;
                let group = b["group_id"].as_str().unwrap_or("?").to_string();
                let member = b["value_str"]
                    .as_str()
                    .or_else(|| b["function_id"].as_str())
                    .unwrap_or("?")
                    .to_string();
                let elements = b["throughput"]["Elements"].as_f64().unwrap_or(1.0);
                let ns = est["median"]["point_estimate"]
                    .as_f64()
                    .ok_or("estimates without median")?;
                out.entry(group).or_default().insert(
                    member,
                    Median {
                        ns_per_iter: ns,
                        elements,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// The fastest production peer of a group: (name, ns/op).
pub fn fastest_peer(g: &BTreeMap<String, Median>) -> Option<(&'static str, f64)> {
    PEERS
        .iter()
        .filter_map(|&p| g.get(p).map(|m| (p, m.ns_per_op())))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// hakmem (default front) time per op ÷ the fastest peer's, in one group.
pub fn ratio(r: &Results, group: &str) -> Option<f64> {
    let g = r.get(group)?;
    Some(g.get("hakmem")?.ns_per_op() / fastest_peer(g)?.1)
}

/// hakmem (default front) ÷ one named peer.
pub fn ratio_to(r: &Results, group: &str, peer: &str) -> Option<f64> {
    let g = r.get(group)?;
    Some(g.get("hakmem")?.ns_per_op() / g.get(peer)?.ns_per_op())
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.2} ns")
    }
}

/// A target row: what, target, the measured value (None: not measured), whether met.
pub struct Target {
    pub what: String,
    pub target: String,
    pub measured: Option<f64>,
    pub met: Option<bool>,
    pub unit: &'static str,
}

/// Peak RSS added by each scenario, hakmem ÷ mimalloc, worst scenario (None: not measured).
pub type RssRatio = Option<f64>;

/// The performance targets, measured from `r` (and `iai_pair64`, gungraun's instructions
/// per 64 B pair through hakmem, when a gungraun run is at hand; `rss`, the worst peak-RSS
/// ratio to mimalloc over the scenarios).
pub fn targets(r: &Results, iai_pair64: Option<f64>, rss: RssRatio) -> Vec<Target> {
    let worst = |groups: &[&str]| -> Option<f64> {
        let v: Vec<f64> = groups.iter().filter_map(|g| ratio(r, g)).collect();
        if v.len() == groups.len() {
            v.into_iter().reduce(f64::max)
        } else {
            None
        }
    };
    let le = |what: &str, target: f64, m: Option<f64>, unit: &'static str| Target {
        what: what.into(),
        target: format!("≤ {target}{unit}"),
        measured: m,
        met: m.map(|x| x <= target),
        unit,
    };
    let ge = |what: &str, target: f64, m: Option<f64>| Target {
        what: what.into(),
        target: format!("≥ {target}×"),
        measured: m,
        met: m.map(|x| x >= target),
        unit: "×",
    };
    let reuse_vs_pool = r
        .get("probe")
        .and_then(|g| Some(g.get("reuse_path")?.ns_per_op() / g.get("pool_path")?.ns_per_op()));
    let ops_ratio = |g: &str| ratio(r, g).map(|x| 1.0 / x);
    vec![
        le(
            "malloc+free pair, 16–1024 B (worst size), default front",
            1.0,
            worst(&["pair/16", "pair/64", "pair/256", "pair/1024"]),
            "×",
        ),
        le(
            "batch of 1000, 16–1024 B (worst size)",
            1.0,
            worst(&[
                "batch1000/16",
                "batch1000/64",
                "batch1000/256",
                "batch1000/1024",
            ]),
            "×",
        ),
        le(
            "4 KiB and 32 KiB batches (worst)",
            1.0,
            worst(&["batch1000/4096", "batch1000/32768"]),
            "×",
        ),
        le(
            "instructions per 64 B pair through GlobalAlloc (gungraun)",
            50.0,
            iai_pair64,
            " Ir",
        ),
        le(
            "reuse path ÷ pool path, per operation",
            1.25,
            reuse_vs_pool,
            "×",
        ),
        le(
            "vm scenario (2 MiB) ÷ mimalloc",
            1.0,
            ratio_to(r, "scenario/vm", "mimalloc"),
            "×",
        ),
        le(
            "json, mir, mixed scenarios (worst)",
            1.0,
            worst(&["scenario/json", "scenario/mir", "scenario/mixed"]),
            "×",
        ),
        ge("larson-style, 1 thread, ops/s", 1.0, ops_ratio("larson/1t")),
        ge(
            "larson-style, 2 threads, ops/s",
            1.0,
            ops_ratio("larson/2t"),
        ),
        ge(
            "producer/consumer, ops/s vs mimalloc",
            1.0,
            ratio_to(r, "prodcons", "mimalloc").map(|x| 1.0 / x),
        ),
        le(
            "peak RSS on the scenarios ÷ mimalloc (worst)",
            1.1,
            rss,
            "×",
        ),
    ]
}

/// The medians of every group, each hakmem front beside the peers, with the ratio.
pub fn groups_table(r: &Results) -> Table {
    let mut t = Table::new(&[
        "group",
        "hakmem",
        "hakmem-reuse",
        "hakmem-pool",
        "system",
        "mimalloc",
        "jemalloc",
        "hakmem ÷ fastest peer",
    ]);
    for (group, g) in r.iter().filter(|(k, _)| k.as_str() != "probe") {
        let cell = |m: &str| g.get(m).map_or("–".into(), |x| fmt_ns(x.ns_per_op()));
        let ratio = match (g.get("hakmem"), fastest_peer(g)) {
            (Some(h), Some((name, ns))) => format!("{:.2}× ({name})", h.ns_per_op() / ns),
            _ => "–".into(),
        };
        let mut row = vec![format!("{group} (per op)")];
        row.extend(HAKMEM.iter().chain(PEERS.iter()).map(|m| cell(m)));
        row.push(ratio);
        t.push(row);
    }
    t
}

/// The performance targets with their measured values.
pub fn targets_table(r: &Results, iai_pair64: Option<f64>, rss: RssRatio) -> Table {
    let mut t = Table::new(&["target", "goal", "measured", "met"]);
    for x in targets(r, iai_pair64, rss) {
        let measured = x
            .measured
            .map_or("not measured".into(), |m| format!("{m:.2}{}", x.unit));
        let met = match x.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        t.push(vec![x.what, x.target, measured, met.into()]);
    }
    t
}

/// The whole report as Markdown.
pub fn markdown(
    r: &Results,
    iai_pair64: Option<f64>,
    rss: RssRatio,
    machine: &str,
    date: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Machine: {machine}. Date: {date}. Medians from one `make bench` run (criterion); ratios are hakmem (default front) ÷ the fastest of system, mimalloc and jemalloc in the same group (< 1: hakmem faster).\n");
    s.push_str(&groups_table(r).markdown());
    if let Some(p) = r.get("probe") {
        let mut t = Table::new(&["probe", "median per operation"]);
        for (name, m) in p {
            t.push(vec![name.clone(), fmt_ns(m.ns_per_op())]);
        }
        let _ = write!(s, "\n{}", t.markdown());
    }
    let _ = write!(s, "\n{}", targets_table(r, iai_pair64, rss).markdown());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ns: f64, el: f64) -> Median {
        Median {
            ns_per_iter: ns,
            elements: el,
        }
    }

    #[test]
    fn ratios_use_the_fastest_peer_of_the_group_and_targets_follow() {
        let mut r = Results::new();
        let g = r.entry("pair/64".into()).or_default();
        g.insert("hakmem".into(), m(6.0, 1.0));
        g.insert("system".into(), m(12.0, 1.0));
        g.insert("mimalloc".into(), m(7.5, 1.0));
        g.insert("jemalloc".into(), m(6.5, 1.0));
        let g = r.entry("larson/1t".into()).or_default();
        g.insert("hakmem".into(), m(2000.0, 1000.0)); // 2 ns/op
        g.insert("mimalloc".into(), m(1000.0, 1000.0)); // 1 ns/op
        assert_eq!(fastest_peer(&r["pair/64"]), Some(("jemalloc", 6.5)));
        assert!((ratio(&r, "pair/64").unwrap() - 6.0 / 6.5).abs() < 1e-12);
        let t = targets(&r, Some(48.0), Some(1.2));
        let larson = t.iter().find(|t| t.what.contains("1 thread")).unwrap();
        assert_eq!((larson.measured, larson.met), (Some(0.5), Some(false)));
        let iai = t.iter().find(|t| t.what.contains("instructions")).unwrap();
        assert_eq!(iai.met, Some(true));
        assert!(
            t.iter()
                .find(|t| t.what.contains("16–1024"))
                .unwrap()
                .measured
                .is_none(),
            "missing sizes: not measured"
        );
        assert_eq!(t.last().unwrap().met, Some(false), "RSS 1.2× > 1.1×");
        let md = markdown(&r, None, None, "test box", "2026-01-01");
        assert!(
            md.contains("| pair/64 (per op) | 6.00 ns |") && md.contains("0.92× (jemalloc)"),
            "{md}"
        );
    }
}
