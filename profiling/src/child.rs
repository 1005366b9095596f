//! What hakprof's child processes run: one probe (under perf record or callgrind), or one
//! workload under the configuration its environment sets (ablation, syscall census).

use microbench::probes::{self, Run};
use microbench::scenarios::Scenario;
use microbench::workloads;
use std::alloc::{GlobalAlloc, Layout};
use std::time::{Duration, Instant};

/// The measured region: callgrind collects only inside it, and stacks under it are the
/// probe's. Never inlined, with a stable name.
#[no_mangle]
#[inline(never)]
pub extern "Rust" fn hakprof_measured_region(run: &mut Run, iters: u64) {
    for _ in 0..iters {
        run();
    }
}

/// Runs probe `name` for `iters` iterations, or until `seconds` have passed.
pub fn run_probe(name: &str, iters: u64, seconds: Option<f64>) -> Result<(), String> {
    let probe = probes::by_name(name).ok_or_else(|| format!("no probe named {name:?}"))?;
    let mut run = (probe.make)();
    run();
    match seconds {
        Some(s) => {
            let end = Instant::now() + Duration::from_secs_f64(s);
            while Instant::now() < end {
                hakprof_measured_region(&mut run, 100);
            }
        }
        None => hakprof_measured_region(&mut run, iters),
    }
    Ok(())
}

pub const WORKLOADS: [&str; 9] = [
    "learning",
    "reuse_path",
    "json",
    "mir",
    "vm",
    "mixed",
    "big_batch",
    "big_churn",
    "big_realloc",
];

/// Replacements per run of `big_churn` (20 live blocks of 5–25 MiB).
const CHURN_STEPS: usize = 40;

fn minor_faults() -> u64 {
    // SAFETY: getrusage fills a zeroed struct.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru.ru_minflt as u64
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs workload `name` `reps` times (after one warm-up run when `warm`) through hakmem as
/// configured by the environment and prints one JSON line: median ns per operation, page faults, syscalls, BigCache hits,
/// and how many allocations hakmem served (the proof it ran).
///
/// `alloc` names the allocator of the scenarios (`microbench::peers`: `hakmem`, `mimalloc`,
/// …; confirmed to serve before anything is timed); the other workloads are hakmem's only.
pub fn run_workload(name: &str, reps: usize, warm: bool, alloc: &str) -> Result<String, String> {
    static HAKMEM: hakmem::Hakmem = hakmem::Hakmem;
    static REUSE: hakmem::ReuseFront = hakmem::ReuseFront;
    let peer =
        microbench::peers::by_name(alloc).ok_or_else(|| format!("no allocator named {alloc:?}"))?;
    if alloc != "hakmem" && Scenario::parse(name).is_none() && name != "learning" {
        return Err(format!(
            "{name} runs under hakmem only (--alloc is for the scenarios)"
        ));
    }
    microbench::peers::confirm_served(&peer, Layout::from_size_align(64, 8).unwrap());
    if name == "learning" {
        return Ok(learning_phases(alloc, peer.alloc).to_string());
    }
    let mut one: Box<dyn FnMut() -> usize> = match name {
        "reuse_path" => {
            let l = Layout::from_size_align(64, 8).unwrap();
            Box::new(move || {
                for _ in 0..probes::OPS {
                    // SAFETY: allocated and freed with the same layout and allocator.
                    unsafe {
                        let p = REUSE.alloc(l);
                        std::hint::black_box(p);
                        REUSE.dealloc(p, l);
                    }
                }
                probes::OPS as usize
            })
        }
        // The big-block shapes of the criterion `big/*` groups and the C programs
        // `bigbatch_2m`, `bigchurn` and `bigrealloc` (microbench::workloads); one
        // operation is one block (batch, churn) or one realloc (growth).
        "big_batch" => {
            let (_, size, n) = workloads::BIG_BATCHES[1];
            let l = Layout::from_size_align(size, 16).unwrap();
            let mut slots = vec![std::ptr::null_mut(); n];
            Box::new(move || {
                workloads::big_batch(&HAKMEM, l, &mut slots);
                n
            })
        }
        "big_churn" => {
            let mut churn = workloads::BigChurn::new(&HAKMEM);
            Box::new(move || {
                for _ in 0..CHURN_STEPS {
                    churn.step();
                }
                CHURN_STEPS
            })
        }
        "big_realloc" => Box::new(|| {
            workloads::big_realloc(&HAKMEM);
            6 // 1 MiB -> 64 MiB by doubling
        }),
        s => {
            let sc = Scenario::parse(s)
                .ok_or_else(|| format!("no workload named {s:?} (one of {WORKLOADS:?})"))?;
            // hakmem as configured (`hakmem::Hakmem` reads the front from the environment).
            let a: &'static (dyn GlobalAlloc + Sync) = if alloc == "hakmem" {
                &HAKMEM
            } else {
                peer.alloc
            };
            Box::new(move || sc.run(a))
        }
    };
    if warm {
        one(); // warm-up: first-touch mappings stay out of the timings
    }
    let before = hakmem::stats::snapshot();
    let f0 = minor_faults();
    let mut per_op = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        let n = one();
        per_op.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    let faults = minor_faults() - f0;
    let after = hakmem::stats::snapshot();
    per_op.sort_by(f64::total_cmp);
    let median = per_op[per_op.len() / 2];
    let s = |a: u64, b: u64| a - b;
    Ok(serde_json::json!({
        "workload": name,
        "allocator": alloc,
        "mode": after.config.mode.name(),
        "bigcache": after.config.bigcache,
        "elo": after.config.elo,
        "reps": reps,
        "median_ns_per_op": median,
        "page_faults": faults,
        "mmap": s(after.syscalls.mmap, before.syscalls.mmap),
        "munmap": s(after.syscalls.munmap, before.syscalls.munmap),
        "madvise": s(after.syscalls.madvise, before.syscalls.madvise),
        "mremap": s(after.syscalls.mremap, before.syscalls.mremap),
        "bigcache_hits": s(after.bigcache.hits, before.bigcache.hits),
        "hakmem_allocations": after.allocations() - before.allocations(),
        "peak_rss_kib": peak_rss_kib(),
    })
    .to_string())
}

fn cpu_ms() -> f64 {
    // SAFETY: getrusage fills a zeroed struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(ru.ru_utime) + ms(ru.ru_stime)
}

/// The learning study's workload (`profiling::learning` says what it is and why): three
/// sites, two phases with A and B swapping roles. Under hakmem each site is its own call
/// site (`front::api::alloc_at`); a peer gets the same sizes through `GlobalAlloc`.
fn learning_phases(alloc: &str, peer: &'static (dyn GlobalAlloc + Sync)) -> serde_json::Value {
    use hakmem::learn::sites;
    use hakmem::site::Site;
    const SITES: [Site; 3] = [Site(0x1EA4_0001), Site(0x1EA4_0002), Site(0x1EA4_0003)];
    const ROUNDS: usize = 60;
    // One-shot buffers live this long (in buffers of the site) before they are freed.
    const ONE_SHOT_LIVE: usize = 50;
    const MIB: usize = 1 << 20;
    let hakmem = alloc == "hakmem";
    let get = |site: usize, size: usize| -> (*mut u8, Layout) {
        let l = Layout::from_size_align(size, 16).unwrap();
        let p = if hakmem {
            hakmem::front::api::alloc_at(l, SITES[site])
        } else {
            // SAFETY: a non-zero layout.
            unsafe { peer.alloc(l) }
        };
        assert!(!p.is_null(), "out of memory in the learning workload");
        for o in (0..size).step_by(4096) {
            // SAFETY: inside the block just allocated.
            unsafe { p.add(o).write_volatile(1) };
        }
        (p, l)
    };
    let put = |(p, l): (*mut u8, Layout)| {
        // SAFETY: allocated above by the same allocator with `l`.
        unsafe {
            if hakmem {
                hakmem::front::api::free_at(p, l)
            } else {
                peer.dealloc(p, l)
            }
        }
    };
    let (cpu0, faults0) = (cpu_ms(), minor_faults());
    let mut elo_samples: Vec<(usize, Vec<(usize, f64)>)> = Vec::new();
    let mut site_thresholds: Vec<(usize, [usize; 3])> = Vec::new();
    let mut round = 0;
    for (reuser, one_shot) in [(0, 1), (1, 0)] {
        let mut kept = Vec::new();
        for _ in 0..ROUNDS {
            for _ in 0..10 {
                put(get(reuser, MIB));
                kept.push(get(one_shot, MIB));
                if kept.len() > ONE_SHOT_LIVE {
                    put(kept.remove(0));
                }
            }
            let mut size = 64 << 10;
            while size <= 8 * MIB {
                put(get(2, size));
                size *= 2;
            }
            if hakmem {
                let elo = hakmem::learn::elo_snapshot().expect("no thread holds the ELO lock");
                elo_samples.push((
                    round,
                    elo.strategies
                        .iter()
                        .map(|s| (s.threshold, s.rating))
                        .collect(),
                ));
                let t = SITES.map(|s| {
                    sites::TABLE[sites::slot(s)]
                        .threshold
                        .load(std::sync::atomic::Ordering::Relaxed)
                });
                site_thresholds.push((round, t));
            }
            round += 1;
        }
        kept.into_iter().for_each(put);
    }
    serde_json::json!({
        "workload": "learning",
        "allocator": alloc,
        "cpu_ms": cpu_ms() - cpu0,
        "page_faults": minor_faults() - faults0,
        "peak_rss_kib": peak_rss_kib(),
        "elo_samples": elo_samples,
        "site_thresholds": site_thresholds,
    })
}
