//! `bench-report [criterion dir] [gungraun results]`: the Markdown table of the last
//! `make bench` run (and the last `make iai` run), with the machine and the date.

use microbench::{cabi, iai, probes, programs, report};
use std::path::{Path, PathBuf};

fn machine() -> String {
    use microbench::machine as m;
    format!(
        "{}, {} cores, Linux {}",
        m::cpu_model(),
        m::cores(),
        m::kernel()
    )
}

/// Runs `peak-rss` (next to this binary) for hakmem and mimalloc on each scenario; the
/// worst hakmem ÷ mimalloc ratio, or None if it cannot run.
fn peak_rss_ratio() -> Option<f64> {
    let exe = std::env::current_exe().ok()?.with_file_name("peak-rss");
    let run = |peer: &str, sc: &str| -> Option<f64> {
        let o = std::process::Command::new(&exe)
            .args([peer, sc])
            .output()
            .ok()?;
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|_| o.status.success())
    };
    let mut worst: Option<f64> = None;
    for sc in ["json", "mir", "vm", "mixed"] {
        let (h, m) = (run("hakmem", sc)?, run("mimalloc", sc)?);
        eprintln!("bench-report: peak RSS {sc}: hakmem {h} KiB, mimalloc {m} KiB");
        let r = h / m.max(1.0);
        worst = Some(worst.map_or(r, |w: f64| w.max(r)));
    }
    worst
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/criterion"));
    let iai_path = args
        .get(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/iai.jsonl"));
    let date = microbench::machine::date("+%Y-%m-%d");
    match report::load(&dir) {
        Ok(results) if !results.is_empty() => {
            let iai_pair64 = std::fs::read_to_string(&iai_path)
                .ok()
                .and_then(|t| iai::parse_results(&t).ok())
                .and_then(|r| {
                    r.get("pair64/hakmem")
                        .map(|c| c.instructions as f64 / probes::OPS as f64)
                });
            print!(
                "{}",
                report::markdown(&results, iai_pair64, peak_rss_ratio(), &machine(), &date)
            );
        }
        Ok(_) => println!(
            "Machine: {}. Date: {date}.\n\n(no criterion results under {}: run make bench)",
            machine(),
            dir.display()
        ),
        Err(e) => {
            eprintln!("bench-report: {e}");
            std::process::exit(2);
        }
    }
    print!("{}", native_sections(&root, &iai_path));
}

/// The C path and the program benchmarks: the last `make bench` (`cabi time`), `make iai`
/// (`cabi count --all`) and `make bench-programs` runs, each where it exists.
fn native_sections(root: &Path, iai_path: &Path) -> String {
    let names = ["hakmem", "glibc", "mimalloc", "jemalloc", "tcmalloc"];
    let mut s = String::from("\n## The C path, under LD_PRELOAD\n\n");
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    match read(&root.join("target/cabi-time.json"))
        .and_then(|t| serde_json::from_str::<Vec<cabi::Timing>>(&t).ok())
    {
        Some(t) => s += &cabi::time_table(&t, &names).markdown(),
        None => s += "(no C-path timings: run make bench)\n",
    }
    s += "\n";
    match read(iai_path).and_then(|t| iai::parse_results(&t).ok()) {
        Some(r) if r.keys().any(|k| k.starts_with("cabi/")) => {
            s += &cabi::count_table(&r, &names).markdown()
        }
        _ => s += "(no C-path instruction counts: run make iai)\n",
    }
    s += "\n## Programs, under LD_PRELOAD\n\n";
    match read(&root.join("target/bench-programs.json"))
        .and_then(|t| serde_json::from_str::<Vec<programs::Sample>>(&t).ok())
    {
        Some(samples) => s += &programs::table(&samples, &names).markdown(),
        None => s += "(no program results: run make bench-programs)\n",
    }
    s
}
