//! `peak-rss <allocator> <scenario>`: runs one scenario (json, mir, vm, mixed) three times
//! through one allocator in a fresh process and prints the process's peak RSS (VmHWM) in
//! KiB: what a user of the program would see. `bench-report` runs it per allocator.

use microbench::peers;
use microbench::scenarios::Scenario;
use std::alloc::Layout;

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(peer), Some(scenario)) = (
        args.get(1).and_then(|n| peers::by_name(n)),
        args.get(2).and_then(|s| Scenario::parse(s)),
    ) else {
        eprintln!("usage: peak-rss <hakmem|hakmem-reuse|hakmem-pool|system|mimalloc|jemalloc> <json|mir|vm|mixed>");
        std::process::exit(2);
    };
    peers::confirm_served(&peer, Layout::from_size_align(64 << 10, 16).unwrap());
    for _ in 0..3 {
        scenario.run(peer.alloc);
    }
    println!("{}", status_kib("VmHWM:"));
}
