//! `bench-scaling [ROUNDS [SECONDS [MAX_THREADS]]]`: the thread-scaling programs under every
//! allocator at 1, 2, 4, … threads up to MAX_THREADS (default max(16, 2 × cores)), ROUNDS
//! rounds (default 3) of SECONDS each (default 0.2). Saves `target/bench-scaling.json` and a
//! chart per program (`target/scaling-<program>.svg`), and prints the tables.

use microbench::{machine, native, scaling};

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    match std::env::args().nth(i) {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("usage: bench-scaling [ROUNDS [SECONDS [MAX_THREADS]]]");
            std::process::exit(2);
        }),
    }
}

fn main() {
    let cores = machine::cores();
    let rounds: usize = arg(1, 3).max(1);
    let seconds: f64 = arg(2, 0.2);
    let max: usize = arg(3, 16.max(2 * cores));
    let threads = scaling::thread_counts(cores, max);
    let result = native::allocators().and_then(|allocs| {
        let sweep = scaling::run(&allocs, &threads, rounds, seconds, |m| {
            eprintln!("bench-scaling: {m}")
        })?;
        let dir = native::root().join("target");
        let json = serde_json::to_string_pretty(&sweep).map_err(|e| e.to_string())?;
        let path = dir.join("bench-scaling.json");
        std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "Thread scaling on {} ({} cores), {}: medians of {} rounds of {} s; threads above the cores are oversubscribed.\n",
            sweep.cpu, sweep.cores, sweep.date, sweep.rounds, sweep.seconds
        );
        for program in sweep.programs() {
            let svg = dir.join(format!("scaling-{program}.svg"));
            std::fs::write(&svg, sweep.chart(program)).map_err(|e| e.to_string())?;
            println!("### {program}\n\n{}", sweep.table(program).markdown());
        }
        eprintln!(
            "bench-scaling: saved {} and target/scaling-*.svg",
            path.display()
        );
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("bench-scaling: {e}");
        std::process::exit(2);
    }
}
