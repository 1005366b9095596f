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

pub const WORKLOADS: [&str; 12] = [
    "learning",
    "learning-server",
    "learning-compiler",
    "learning-proxy",
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

/// Transparent huge pages faulted in, machine-wide (`thp_fault_alloc` of `/proc/vmstat`;
/// the learning study runs one child at a time, so the difference over a run is its own).
/// Each is one fault that wrote 2 MiB: 512 of the small-page faults it replaces.
fn huge_page_faults() -> u64 {
    proc_number("/proc/vmstat", "thp_fault_alloc ")
}

fn peak_rss_kib() -> u64 {
    proc_number("/proc/self/status", "VmHWM:")
}

/// The number after `prefix` on its line of `path` (a `/proc` file; units left out); 0 if
/// unreadable.
fn proc_number(path: &str, prefix: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
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
    let learning = [
        "learning",
        "learning-server",
        "learning-compiler",
        "learning-proxy",
    ];
    if alloc != "hakmem" && Scenario::parse(name).is_none() && !learning.contains(&name) {
        return Err(format!(
            "{name} runs under hakmem only (--alloc is for the scenarios)"
        ));
    }
    microbench::peers::confirm_served(&peer, Layout::from_size_align(64, 8).unwrap());
    match name {
        "learning" => return Ok(learning_phases(alloc, peer.alloc).to_string()),
        "learning-server" => return Ok(learning_server(alloc, peer.alloc).to_string()),
        "learning-compiler" => return Ok(learning_compiler(alloc, peer.alloc).to_string()),
        "learning-proxy" => return Ok(learning_proxy(alloc, peer.alloc).to_string()),
        _ => {}
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

/// The big blocks of the learning workloads: allocated at a call site (every page
/// written) and freed, through hakmem's `alloc_at` (each site its own call site) or a
/// peer's `GlobalAlloc` (the same sizes), with the page faults of each call classified by
/// what hakmem did (`FaultLedger`).
struct SiteHeap {
    hakmem: bool,
    peer: &'static (dyn GlobalAlloc + Sync),
    names: &'static [&'static str],
    faults: FaultLedger,
}

type Block = (*mut u8, Layout, usize);

impl SiteHeap {
    const BASE: u32 = 0x1EA4_0001;

    fn site(k: usize) -> hakmem::site::Site {
        hakmem::site::Site(Self::BASE + k as u32)
    }

    fn get(&mut self, site: usize, size: usize) -> Block {
        self.get_filled(site, size, size)
    }

    /// A block of `size` bytes of which the first `filled` are written (a buffer sized for
    /// the largest message, filled to this one's).
    fn get_filled(&mut self, site: usize, size: usize, filled: usize) -> Block {
        let l = Layout::from_size_align(size, 16).unwrap();
        let (f0, s0) = (minor_faults(), self.hakmem.then(hakmem::stats::snapshot));
        let p = if self.hakmem {
            hakmem::front::api::alloc_at(l, Self::site(site))
        } else {
            // SAFETY: a non-zero layout.
            unsafe { self.peer.alloc(l) }
        };
        assert!(!p.is_null(), "out of memory in a learning workload");
        fill(p, filled.min(size));
        let how = s0.map_or("allocation", |s0| {
            alloc_decision(&s0, &hakmem::stats::snapshot())
        });
        self.faults.add(self.names[site], how, minor_faults() - f0);
        (p, l, site)
    }

    fn put(&mut self, (p, l, site): Block) {
        let (f0, s0) = (minor_faults(), self.hakmem.then(hakmem::stats::snapshot));
        // SAFETY: allocated by `get` with `l` from the same allocator.
        unsafe {
            if self.hakmem {
                hakmem::front::api::free_at(p, l)
            } else {
                self.peer.dealloc(p, l)
            }
        }
        let how = s0.map_or("free", |s0| free_decision(&s0, &hakmem::stats::snapshot()));
        self.faults.add(self.names[site], how, minor_faults() - f0);
    }
}

/// Writes one byte in every page of the first `len` bytes at `p`.
fn fill(p: *mut u8, len: usize) {
    for o in (0..len).step_by(4096) {
        // SAFETY: callers pass a live block of at least `len` bytes.
        unsafe { p.add(o).write_volatile(1) };
    }
}

/// Runs `body` on a `SiteHeap`; its CPU time, page faults, peak RSS and faults by decision.
fn learning_run(
    workload: &str,
    alloc: &str,
    peer: &'static (dyn GlobalAlloc + Sync),
    names: &'static [&'static str],
    body: impl FnOnce(&mut SiteHeap) -> serde_json::Value,
) -> serde_json::Value {
    let mut heap = SiteHeap {
        hakmem: alloc == "hakmem",
        peer,
        names,
        faults: FaultLedger::default(),
    };
    let (cpu0, faults0, huge0) = (cpu_ms(), minor_faults(), huge_page_faults());
    let extra = body(&mut heap);
    let huge = huge_page_faults().saturating_sub(huge0);
    let mut out = serde_json::json!({
        "workload": workload,
        "allocator": alloc,
        "cpu_ms": cpu_ms() - cpu0,
        "page_faults": minor_faults() - faults0,
        "huge_page_faults": huge,
        "peak_rss_kib": peak_rss_kib(),
        "faults_by_decision": heap.faults.rows(),
    });
    if let (Some(o), serde_json::Value::Object(e)) = (out.as_object_mut(), extra) {
        o.extend(e);
    }
    out
}

const MIB: usize = 1 << 20;

/// The learning study's workload (`profiling::learning` says what it is and why): three
/// sites, two phases with A and B swapping roles; the learner's state sampled each round.
fn learning_phases(alloc: &str, peer: &'static (dyn GlobalAlloc + Sync)) -> serde_json::Value {
    use hakmem::learn::sites;
    const ROUNDS: usize = 60;
    // One-shot buffers live this long (in buffers of the site) before they are freed.
    const ONE_SHOT_LIVE: usize = 50;
    learning_run("learning", alloc, peer, &["A", "B", "C"], |h| {
        let mut elo_samples: Vec<(usize, Vec<(usize, f64)>)> = Vec::new();
        let mut site_thresholds: Vec<(usize, [usize; 3])> = Vec::new();
        let mut round = 0;
        for (reuser, one_shot) in [(0, 1), (1, 0)] {
            let mut kept = Vec::new();
            for _ in 0..ROUNDS {
                for _ in 0..10 {
                    let b = h.get(reuser, MIB);
                    h.put(b);
                    kept.push(h.get(one_shot, MIB));
                    if kept.len() > ONE_SHOT_LIVE {
                        h.put(kept.remove(0));
                    }
                }
                let mut size = 64 << 10;
                while size <= 8 * MIB {
                    let b = h.get(2, size);
                    h.put(b);
                    size *= 2;
                }
                if h.hakmem {
                    let elo = hakmem::learn::elo_snapshot().expect("no thread holds the ELO lock");
                    elo_samples.push((
                        round,
                        elo.strategies
                            .iter()
                            .map(|s| (s.threshold, s.rating))
                            .collect(),
                    ));
                    let t = [0, 1, 2].map(|k| {
                        sites::TABLE[sites::slot(SiteHeap::site(k))]
                            .threshold
                            .load(std::sync::atomic::Ordering::Relaxed)
                    });
                    site_thresholds.push((round, t));
                }
                round += 1;
            }
            kept.into_iter().for_each(|b| h.put(b));
        }
        serde_json::json!({ "elo_samples": elo_samples, "site_thresholds": site_thresholds })
    })
}

/// A server (`learning-server`): 3000 requests, each with a request buffer of 256–832 KiB
/// (allocated, filled, freed), a response buffer of 1.5–2 MiB (the same), and every tenth
/// a 2 MiB entry for a long-lived cache that keeps the newest 24.
fn learning_server(alloc: &str, peer: &'static (dyn GlobalAlloc + Sync)) -> serde_json::Value {
    learning_run(
        "learning-server",
        alloc,
        peer,
        &["request", "cache", "response"],
        |h| {
            let mut cache = std::collections::VecDeque::new();
            for req in 0..3000usize {
                let b = h.get(0, (256 << 10) + (req * 7919 % 4) * (192 << 10));
                h.put(b);
                if req % 10 == 0 {
                    cache.push_back(h.get(1, 2 * MIB));
                    if cache.len() > 24 {
                        let old = cache.pop_front().expect("over 24");
                        h.put(old);
                    }
                }
                let b = h.get(2, 3 * MIB / 2 + (req % 3) * (256 << 10));
                h.put(b);
            }
            cache.into_iter().for_each(|b| h.put(b));
            serde_json::json!({})
        },
    )
}

/// A compiler (`learning-compiler`): 12 units, each parsed into 40 tree blocks of
/// 384–640 KiB kept until the unit ends, 8 passes over a 3 MiB scratch buffer (allocated
/// and freed each pass), and 6 output chunks of 1 MiB; everything freed at the unit's end.
fn learning_compiler(alloc: &str, peer: &'static (dyn GlobalAlloc + Sync)) -> serde_json::Value {
    learning_run(
        "learning-compiler",
        alloc,
        peer,
        &["tree", "scratch", "output"],
        |h| {
            for _unit in 0..12 {
                let tree: Vec<Block> = (0..40usize)
                    .map(|k| h.get(0, (384 << 10) + (k % 5) * (64 << 10)))
                    .collect();
                for _pass in 0..8 {
                    let s = h.get(1, 3 * MIB);
                    h.put(s);
                }
                let out: Vec<Block> = (0..6).map(|_| h.get(2, MIB)).collect();
                tree.into_iter().chain(out).for_each(|b| h.put(b));
            }
            serde_json::json!({})
        },
    )
}

/// A proxy (`learning-proxy`): 48 connections, each with a receive buffer of 4 MiB (sized
/// for the largest request) that each request fills to its own size (64–512 KiB), a
/// connection replaced (its buffer freed, a new one allocated) every 30 of its requests;
/// per request a 1 MiB response assembled whole; every 40th request a 2 MiB entry for a
/// response cache that grows to 48 entries, then drops its oldest. The buffers are written
/// in part (a huge page would hold 2 MiB for 64–512 KiB written), the cache entries whole:
/// a site whose blocks want small pages beside one whose blocks want huge ones.
fn learning_proxy(alloc: &str, peer: &'static (dyn GlobalAlloc + Sync)) -> serde_json::Value {
    learning_run(
        "learning-proxy",
        alloc,
        peer,
        &["connection", "response", "cache"],
        |h| {
            const CONNECTIONS: usize = 48;
            let mut conns: Vec<Option<Block>> = vec![None; CONNECTIONS];
            let mut cache = std::collections::VecDeque::new();
            for req in 0..6000usize {
                let c = req % CONNECTIONS;
                let len = (1 + req * 7919 % 8) * (64 << 10);
                if (req / CONNECTIONS).is_multiple_of(30) && req >= CONNECTIONS {
                    if let Some(b) = conns[c].take() {
                        h.put(b);
                    }
                }
                match conns[c] {
                    Some((p, _, _)) => fill(p, len),
                    None => conns[c] = Some(h.get_filled(0, 4 * MIB, len)),
                }
                let b = h.get(1, MIB);
                h.put(b);
                if req % 40 == 0 {
                    cache.push_back(h.get(2, 2 * MIB));
                    if cache.len() > 48 {
                        let old = cache.pop_front().expect("over 48");
                        h.put(old);
                    }
                }
            }
            conns.into_iter().flatten().for_each(|b| h.put(b));
            cache.into_iter().for_each(|b| h.put(b));
            serde_json::json!({})
        },
    )
}

/// (site, decision): what `FaultLedger` counts by.
type SiteDecision = (&'static str, &'static str);

/// Page faults of a learning workload by site and by what the allocator did.
#[derive(Default)]
struct FaultLedger {
    /// (site, decision) → (calls, faults), in first-seen order.
    rows: Vec<(SiteDecision, (u64, u64))>,
}

impl FaultLedger {
    fn add(&mut self, site: &'static str, how: &'static str, faults: u64) {
        match self.rows.iter_mut().find(|(k, _)| *k == (site, how)) {
            Some((_, (n, f))) => {
                *n += 1;
                *f += faults;
            }
            None => self.rows.push(((site, how), (1, faults))),
        }
    }

    fn rows(&self) -> serde_json::Value {
        self.rows
            .iter()
            .map(|((site, how), (calls, faults))| {
                serde_json::json!({ "site": site, "decision": how, "calls": calls, "faults": faults })
            })
            .collect()
    }
}

/// What hakmem did for one allocation, from its counters before and after.
fn alloc_decision(a: &hakmem::stats::Snapshot, b: &hakmem::stats::Snapshot) -> &'static str {
    let d = |f: fn(&hakmem::stats::Snapshot) -> u64| f(b) - f(a);
    let hit = d(|s| s.bigcache.hits) > 0;
    let remapped = d(|s| s.syscalls.mremap) > 0;
    let mapped = d(|s| s.syscalls.mmap) > 0;
    match (hit, remapped, mapped) {
        (true, false, _) if d(|s| s.bigcache.borrowed) > 0 => "BigCache hit, another site's block",
        (true, false, _) if d(|s| s.big.splits) > 0 => "BigCache hit, a larger block split",
        (true, false, _) => "BigCache hit",
        (true, true, _) => "BigCache hit resized by mremap",
        (false, _, true) if d(|s| s.big.allocs) > 0 => "fresh mapping",
        (false, _, _) if d(|s| s.big.allocs) > 0 => "big block",
        _ => "pool block",
    }
}

/// What hakmem did for one free.
fn free_decision(a: &hakmem::stats::Snapshot, b: &hakmem::stats::Snapshot) -> &'static str {
    let d = |f: fn(&hakmem::stats::Snapshot) -> u64| f(b) - f(a);
    if d(|s| s.bigcache.puts) > 0 {
        "free: kept in the BigCache"
    } else if d(|s| s.syscalls.munmap) + d(|s| s.syscalls.madvise) > 0 {
        "free: released"
    } else {
        "free"
    }
}
