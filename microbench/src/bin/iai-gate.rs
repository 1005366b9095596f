//! `iai-gate show|check|bless <baseline.tsv> <results.jsonl>`: prints the instruction-count
//! table of a gungraun run; `check` exits 1 when a gated probe rose more than 2 % above the
//! baseline (or is missing from it); `bless` rewrites the baseline from the run.

use microbench::iai;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(cmd), Some(baseline_path), Some(results_path)) =
        (args.get(1), args.get(2), args.get(3))
    else {
        eprintln!("usage: iai-gate show|check|bless <baseline.tsv> <results.jsonl>");
        return ExitCode::from(2);
    };
    let results = match std::fs::read_to_string(results_path)
        .map_err(|e| e.to_string())
        .and_then(|t| iai::parse_results(&t))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("iai-gate: cannot read gungraun results {results_path}: {e}");
            return ExitCode::from(2);
        }
    };
    if cmd == "bless" {
        if let Err(e) = std::fs::write(baseline_path, iai::format_baseline(&results)) {
            eprintln!("iai-gate: cannot write {baseline_path}: {e}");
            return ExitCode::from(2);
        }
        println!(
            "iai-gate: wrote {} probes to {baseline_path}",
            results.keys().filter(|k| iai::gated(k)).count()
        );
    }
    let baseline = match std::fs::read_to_string(baseline_path) {
        Ok(t) => match iai::parse_baseline(&t) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("iai-gate: {baseline_path}: {e}");
                return ExitCode::from(2);
            }
        },
        Err(_) if cmd == "show" => Default::default(),
        Err(e) => {
            eprintln!("iai-gate: cannot read {baseline_path}: {e} (run make iai-bless)");
            return ExitCode::from(2);
        }
    };
    let rows = iai::compare(&baseline, &results);
    print!("{}", iai::table(&rows));
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| matches!(r.verdict, iai::Verdict::Regressed | iai::Verdict::New))
        .map(|r| r.probe.as_str())
        .collect();
    if cmd == "check" && !failed.is_empty() {
        eprintln!(
            "iai-gate: FAILED: instruction counts rose more than 2 % (or are new) for: {}",
            failed.join(", ")
        );
        eprintln!("iai-gate: if the rise is intended, run `make iai-bless` and commit microbench/iai-baseline.tsv");
        return ExitCode::from(1);
    }
    if cmd == "check" {
        println!(
            "iai-gate: ok ({} gated probes within 2 % of the baseline)",
            rows.iter().filter(|r| iai::gated(&r.probe)).count()
        );
    }
    ExitCode::SUCCESS
}
