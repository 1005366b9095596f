//! `cabi count [--all]` | `cabi time [ROUNDS SAMPLES]`: the C-path probes under
//! `LD_PRELOAD` (see `microbench::cabi`).
//!
//! - `count`: instructions per 1000 operations of each single-threaded pattern, hakmem only
//!   (`--all`: every allocator), as result lines for the gate (`make iai`, `make iai-check`
//!   append them to gungraun's).
//! - `time`: the timed table (default 3 rounds × 5 samples), saved to
//!   `target/cabi-time.json` for `make bench-report`.

use microbench::{cabi, native};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cabi: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let program = native::build(cabi::SOURCE)?;
    match args.first().map(String::as_str) {
        Some("count") => {
            let allocs = match args.get(1).map(String::as_str) {
                Some("--all") => native::allocators()?,
                _ => vec![native::hakmem()?],
            };
            for a in &allocs {
                for p in cabi::COUNTED {
                    let c = cabi::count(a, &program, p)?;
                    let name = cabi::probe_name(p, a.name);
                    eprintln!(
                        "cabi: {name}: {:.1} instructions per op",
                        c.instructions as f64 / 1000.0
                    );
                    println!("{}", cabi::result_line(&name, &c));
                }
            }
            Ok(())
        }
        Some("time") => {
            let allocs = native::allocators()?;
            let num = |i: usize, d: usize| {
                args.get(i).map_or(Ok(d), |s| {
                    s.parse().map_err(|_| format!("not a count: {s}"))
                })
            };
            let (rounds, samples) = (num(1, 3)?, num(2, 5)?);
            let timings = cabi::time(&allocs, &program, rounds, samples)?;
            let path = native::root().join("target/cabi-time.json");
            let json = serde_json::to_string_pretty(&timings).map_err(|e| e.to_string())?;
            std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
            let names: Vec<&str> = allocs.iter().map(|a| a.name).collect();
            print!("{}", cabi::time_table(&timings, &names).markdown());
            eprintln!("cabi: samples saved to {}", path.display());
            Ok(())
        }
        _ => Err("usage: cabi count [--all] | cabi time [ROUNDS SAMPLES]".into()),
    }
}
