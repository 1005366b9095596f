//! Instruction-count results of the gungraun benches, and the CI gate that compares them
//! with the committed baseline (`microbench/iai-baseline.tsv`).

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A probe's counts from one gungraun run (totals over `probes::OPS` operations).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    pub instructions: u64,
    pub l1_misses: u64,
    pub ll_misses: u64,
    pub cycles_est: u64,
}

/// Probe names in gungraun ids use `_` for `/` and `-`; map them back.
pub fn probe_name(id: &str) -> String {
    let peers = crate::peers::ALL
        .iter()
        .map(|p| p.name)
        .chain(["hakmem-checked"]);
    for peer in peers {
        for kind in ["pair64", "batch64"] {
            if id == format!("{kind}_{}", peer.replace('-', "_")) {
                return format!("{kind}/{peer}");
            }
        }
    }
    id.to_string()
}

/// Whether a probe measures our code (gated) or a peer's (reported only: jemalloc's counts
/// even vary between runs).
pub fn gated(probe: &str) -> bool {
    if probe.starts_with("cabi/") {
        return probe.ends_with("/hakmem"); // glibc, mimalloc, jemalloc, tcmalloc: peers
    }
    !crate::peers::PRODUCTION
        .iter()
        .any(|p| probe.ends_with(&format!("/{p}")))
}

/// Reads gungraun's `--output-format=json` lines (one summary per benchmark) and the C-path
/// probes' lines (`cabi::result_line`).
pub fn parse_results(text: &str) -> Result<BTreeMap<String, Counts>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
        let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        if let Some(probe) = v["cabi"].as_str() {
            let get = |k: &str| v[k].as_u64().unwrap_or(0);
            out.insert(
                probe.to_string(),
                Counts {
                    instructions: get("Ir"),
                    l1_misses: get("L1miss"),
                    ll_misses: get("LLmiss"),
                    cycles_est: 0,
                },
            );
            continue;
        }
        let id = v["id"].as_str().ok_or("summary without id")?;
        let m = v
            .pointer("/profiles/0/data/total/metrics")
            .ok_or("no total metrics")?;
        let get = |k: &str| m[k]["values"]["new"].as_f64().unwrap_or(0.0) as u64;
        out.insert(
            probe_name(id),
            Counts {
                instructions: get("Ir"),
                l1_misses: get("I1mr") + get("D1mr") + get("D1mw"),
                ll_misses: get("ILmr") + get("DLmr") + get("DLmw"),
                cycles_est: get("EstimatedCycles"),
            },
        );
    }
    if out.is_empty() {
        return Err("no gungraun summaries in the input".into());
    }
    Ok(out)
}

pub fn parse_baseline(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split('\t');
        let (Some(name), Some(count)) = (f.next(), f.next()) else {
            return Err(format!(
                "baseline line {}: expected `probe<TAB>instructions`",
                n + 1
            ));
        };
        let count = count
            .trim()
            .parse()
            .map_err(|_| format!("baseline line {}: bad count {count:?}", n + 1))?;
        out.insert(name.to_string(), count);
    }
    Ok(out)
}

pub fn format_baseline(results: &BTreeMap<String, Counts>) -> String {
    let mut s = String::from(
        "# Expected gungraun instruction counts per probe (totals over 1000 operations).\n\
         # The CI gate fails when a gated probe rises more than 2 % above its line.\n\
         # Rewrite on purpose with `make iai-bless`.\n",
    );
    for (name, c) in results {
        if gated(name) {
            let _ = writeln!(s, "{name}\t{}", c.instructions);
        }
    }
    s
}

/// The gate's verdict on one probe.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Ok,
    /// Rose more than the tolerance: fails the gate.
    Regressed,
    /// Fell more than 10 %: passes, but the baseline should be refreshed.
    Improved,
    /// Gated but missing from the baseline: fails (bless it).
    New,
    /// A peer allocator: reported only.
    Peer,
}

pub const TOLERANCE: f64 = 0.02;

pub struct Row {
    pub probe: String,
    pub expected: Option<u64>,
    pub counts: Counts,
    pub verdict: Verdict,
}

pub fn compare(baseline: &BTreeMap<String, u64>, results: &BTreeMap<String, Counts>) -> Vec<Row> {
    results
        .iter()
        .map(|(probe, c)| {
            let expected = baseline.get(probe).copied();
            let verdict = if !gated(probe) {
                Verdict::Peer
            } else {
                match expected {
                    None => Verdict::New,
                    Some(e) if c.instructions as f64 > e as f64 * (1.0 + TOLERANCE) => {
                        Verdict::Regressed
                    }
                    Some(e) if (c.instructions as f64) < e as f64 * 0.90 => Verdict::Improved,
                    Some(_) => Verdict::Ok,
                }
            };
            Row {
                probe: probe.clone(),
                expected,
                counts: c.clone(),
                verdict,
            }
        })
        .collect()
}

pub fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| probe | expected Ir | measured Ir | change | Ir/op | L1 miss (sim) | LL miss (sim) | verdict |\n|---|---:|---:|---:|---:|---:|---:|---|"
    );
    for r in rows {
        let change = r
            .expected
            .map(|e| {
                format!(
                    "{:+.2} %",
                    100.0 * (r.counts.instructions as f64 / e as f64 - 1.0)
                )
            })
            .unwrap_or_else(|| "–".into());
        let verdict = match r.verdict {
            Verdict::Ok => "ok",
            Verdict::Regressed => "REGRESSED (> 2 %)",
            Verdict::Improved => "improved: run make iai-bless",
            Verdict::New => "NEW: run make iai-bless",
            Verdict::Peer => "peer (not gated)",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} | {} | {} | {} |",
            r.probe,
            r.expected.map_or("–".into(), |e| e.to_string()),
            r.counts.instructions,
            change,
            r.counts.instructions as f64 / crate::probes::OPS as f64,
            r.counts.l1_misses,
            r.counts.ll_misses,
            verdict
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(n: u64) -> Counts {
        Counts {
            instructions: n,
            ..Default::default()
        }
    }

    #[test]
    fn gate_flags_rises_above_two_percent_new_probes_and_big_drops() {
        let baseline =
            parse_baseline("# c\npool_path\t1000\nreuse_path\t1000\nheader_write\t1000\n").unwrap();
        let mut results = BTreeMap::new();
        results.insert("pool_path".to_string(), counts(1020)); // +2.0 %: ok
        results.insert("reuse_path".to_string(), counts(1021)); // +2.1 %: regressed
        results.insert("header_write".to_string(), counts(800)); // -20 %: improved
        results.insert("site_hash".to_string(), counts(5)); // not in baseline
        results.insert("pair64/jemalloc".to_string(), counts(99_999)); // peer
        let v: BTreeMap<String, Verdict> = compare(&baseline, &results)
            .into_iter()
            .map(|r| (r.probe, r.verdict))
            .collect();
        assert_eq!(v["pool_path"], Verdict::Ok);
        assert_eq!(v["reuse_path"], Verdict::Regressed);
        assert_eq!(v["header_write"], Verdict::Improved);
        assert_eq!(v["site_hash"], Verdict::New);
        assert_eq!(v["pair64/jemalloc"], Verdict::Peer);
        let blessed = parse_baseline(&format_baseline(&results)).unwrap();
        assert_eq!(blessed.get("reuse_path"), Some(&1021));
        assert!(!blessed.contains_key("pair64/jemalloc"));
        assert!(parse_baseline("pool_path 12\n").is_err());
    }

    #[test]
    fn reads_a_gungraun_summary_line() {
        let line = r#"{"id":"pair64_hakmem_reuse","profiles":[{"data":{"total":{"metrics":{"Ir":{"values":{"new":275595}},"D1mr":{"values":{"new":3}},"DLmr":{"values":{"new":1}},"I1mr":{"values":{"new":2}}}}}}]}"#;
        let r = parse_results(line).unwrap();
        let c = &r["pair64/hakmem-reuse"];
        assert_eq!((c.instructions, c.l1_misses, c.ll_misses), (275595, 5, 1));
        assert!(parse_results("").is_err());
        let cabi = crate::cabi::result_line("cabi/pair64/hakmem", &counts(41_000));
        let r = parse_results(&format!("{line}\n{cabi}\n")).unwrap();
        assert_eq!(r["cabi/pair64/hakmem"].instructions, 41_000);
        assert!(gated("cabi/pair64/hakmem") && !gated("cabi/pair64/tcmalloc"));
        assert!(!gated("cabi/batch64/glibc"));
    }
}
