//! `bench-programs [ROUNDS]`: the program benchmarks under every allocator (default 3
//! rounds), saved to `target/bench-programs.json` for `make bench-report`, and printed.

use microbench::{native, programs};

fn main() {
    let rounds = match std::env::args().nth(1).map(|s| s.parse::<usize>()) {
        None => 3,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: bench-programs [ROUNDS]");
            std::process::exit(2);
        }
    };
    let result = native::allocators().and_then(|allocs| {
        let samples = programs::run(&allocs, rounds)?;
        let path = native::root().join("target/bench-programs.json");
        let json = serde_json::to_string_pretty(&samples).map_err(|e| e.to_string())?;
        std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
        let names: Vec<&str> = allocs.iter().map(|a| a.name).collect();
        print!("{}", programs::table(&samples, &names).markdown());
        eprintln!("bench-programs: samples saved to {}", path.display());
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("bench-programs: {e}");
        std::process::exit(2);
    }
}
