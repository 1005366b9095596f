//! The subcommands, as functions the thin `main.rs` calls.

use crate::attrib::{self, PathAttributions};
use crate::counters::{self, Measurement};
use crate::events::Availability;
use crate::report::{self, Picture, Report};
use crate::{ablation, claims, flame, learning, machine, sim, syscalls};
use microbench::peers;
use microbench::probes::{self, Probe};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Probes in QUICK runs: the two whole paths and the 64 B pair per allocator.
pub const QUICK_PROBES: [&str; 8] = [
    "pool_path",
    "reuse_path",
    "pair64/hakmem",
    "pair64/hakmem-reuse",
    "pair64/hakmem-pool",
    "pair64/system",
    "pair64/mimalloc",
    "pair64/jemalloc",
];

pub fn select(names: &[String], quick: bool) -> Result<Vec<Probe>, String> {
    if names.is_empty() {
        return Ok(if quick {
            QUICK_PROBES
                .iter()
                .filter_map(|n| probes::by_name(n))
                .collect()
        } else {
            probes::all()
        });
    }
    names
        .iter()
        .map(|n| {
            probes::by_name(n)
                .ok_or_else(|| format!("no probe named {n:?}; `hakprof list` shows them"))
        })
        .collect()
}

/// Which allocator serves a probe (after checking it does).
pub fn served_by(p: &Probe) -> String {
    if p.name == "pair64/hakmem-checked" {
        // hakmem with HAKMEM_CHECK's validation: the probe confirms hakmem as it starts.
        return "hakmem, checked mode (confirmed)".into();
    }
    if let Some((_, peer)) = p.name.split_once('/') {
        let peer_def = peers::by_name(peer).expect("probe names a known peer");
        peers::confirm_served(
            &peer_def,
            std::alloc::Layout::from_size_align(64, 8).unwrap(),
        );
        return format!("{peer} (confirmed)");
    }
    match p.name {
        "reuse_path" => {
            peers::confirm_served(
                &peers::by_name("hakmem-reuse").unwrap(),
                std::alloc::Layout::from_size_align(64, 8).unwrap(),
            );
            "hakmem-reuse (confirmed)".into()
        }
        "pool_path" => {
            peers::confirm_served(
                &peers::by_name("hakmem-pool").unwrap(),
                std::alloc::Layout::from_size_align(64, 8).unwrap(),
            );
            "hakmem-pool (confirmed)".into()
        }
        _ => "hakmem (component)".into(),
    }
}

pub struct CounterOptions {
    pub iters: u64,
    pub sim: bool,
    pub sim_iters: u64,
    /// The C-path probes too (`cabi/<pattern>/<allocator>`, under `LD_PRELOAD`).
    pub cabi: bool,
    /// Their patterns (`crate::cabi::PATTERNS` or fewer).
    pub cabi_patterns: Vec<&'static str>,
}

/// Measures each probe; says once which events are missing.
pub fn counters(
    probes: &[Probe],
    o: &CounterOptions,
    tmp: &Path,
    mut progress: impl FnMut(&str),
) -> (Availability, Vec<Measurement>) {
    let avail = counters::host_availability();
    if let Some(n) = avail.notice() {
        eprint!("{n}");
    }
    let pinned = counters::pin_to_current_cpu(); // until the counters are done
    if pinned.is_none() {
        eprintln!("hakprof: could not pin to one CPU; counts may include migrations");
    }
    let tsc = counters::calibrate_tsc();
    let want_sim = o.sim && !avail.hardware_complete();
    let exe = crate::self_exe();
    let mut out = Vec::new();
    for p in probes {
        progress(&format!("counters: {}", p.name));
        let served = served_by(p);
        let raw = counters::measure(p, o.iters, &avail, tsc);
        let sim = if want_sim {
            match sim::simulate(&exe, p.name, o.sim_iters, probes::OPS, tmp) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("hakprof: no simulated cache figures for {}: {e}", p.name);
                    None
                }
            }
        } else {
            None
        };
        out.push(Measurement::from_raw(p.name, &served, &raw, sim));
    }
    if o.cabi {
        if let Err(e) = cabi_counters(o, want_sim, &avail, &mut out, &mut progress) {
            eprintln!("hakprof: no C-path counters: {e}");
        }
    }
    drop(pinned);
    (avail, out)
}

/// The C-path probes: each allocator in its own process, counted from outside; simulated
/// figures from callgrind's counts of the allocator's side (`microbench::cabi::count`).
fn cabi_counters(
    o: &CounterOptions,
    want_sim: bool,
    avail: &Availability,
    out: &mut Vec<Measurement>,
    progress: &mut impl FnMut(&str),
) -> Result<(), String> {
    let program = microbench::native::build(microbench::cabi::SOURCE)?;
    let (allocs, note) = crate::cabi::allocators()?;
    if let Some(n) = note {
        eprintln!("{n}");
    }
    for a in &allocs {
        for &pattern in &o.cabi_patterns {
            let name = microbench::cabi::probe_name(pattern, a.name);
            progress(&format!("counters: {name}"));
            let raw = crate::cabi::measure(a, &program, pattern, avail)?;
            let sim = if want_sim {
                let c = microbench::cabi::count(a, &program, pattern)?;
                Some(sim::SimCounts {
                    ops: 1000,
                    instructions: c.instructions,
                    l1_misses: c.l1_misses,
                    ll_misses: c.ll_misses,
                })
            } else {
                None
            };
            let served = format!("{} (confirmed)", a.expected_library());
            out.push(Measurement::from_raw(&name, &served, &raw, sim));
        }
    }
    Ok(())
}

fn file_name(probe: &str) -> String {
    format!("{}.svg", probe.replace('/', "_"))
}

/// One flamegraph per probe, then the differential one. Returns the pictures and the
/// folded stacks of pool_path and reuse_path.
pub fn flames(
    probes: &[Probe],
    seconds: f64,
    out: &Path,
    tmp: &Path,
    mut progress: impl FnMut(&str),
) -> Vec<Picture> {
    let exe = crate::self_exe();
    let mut pictures = Vec::new();
    let mut folded = std::collections::BTreeMap::new();
    for p in probes {
        progress(&format!("flame: {}", p.name));
        let r = flame::record(&exe, p.name, seconds, tmp).and_then(|f| {
            let svg = flame::svg(&f, &format!("{} — {}", p.name, p.what), "samples")?;
            std::fs::write(out.join(file_name(p.name)), svg).map_err(|e| e.to_string())?;
            folded.insert(p.name.to_string(), f);
            Ok(file_name(p.name))
        });
        if let Err(e) = &r {
            eprintln!("hakprof: flame {}: {e}", p.name);
        }
        pictures.push(Picture {
            title: p.name.to_string(),
            file: r,
        });
    }
    progress("flame: differential reuse_path vs pool_path");
    let diff = match (folded.get("pool_path"), folded.get("reuse_path")) {
        (Some(pool), Some(reuse)) => flame::differential(
            pool,
            reuse,
            "reuse_path vs pool_path (red: more samples in the reuse path)",
            "samples",
        )
        .and_then(|svg| {
            std::fs::write(out.join("diff_reuse_vs_pool.svg"), svg).map_err(|e| e.to_string())?;
            Ok("diff_reuse_vs_pool.svg".to_string())
        }),
        _ => Err("needs the pool_path and reuse_path flamegraphs".to_string()),
    };
    pictures.insert(
        0,
        Picture {
            title: "differential: reuse_path vs pool_path".into(),
            file: diff,
        },
    );
    pictures
}

/// The paths the report splits into steps (`attrib`).
pub const STEP_PATHS: [&str; 3] = ["reuse_path", "pool_path", "cabi/pair64/hakmem"];

/// Each path of `STEP_PATHS` attributed to its steps under callgrind, and their step graph
/// (frame widths: instructions per operation).
pub fn steps(
    exe: &Path,
    out: &Path,
    tmp: &Path,
    progress: impl Fn(&str),
) -> (PathAttributions, Picture) {
    let mut all = Vec::new();
    for path in STEP_PATHS {
        progress(&format!(
            "steps: {path} under callgrind, instruction by instruction"
        ));
        all.push((path.to_string(), attrib::run_path(exe, path, tmp)));
    }
    let by_path: Vec<(&str, Vec<flame::Step>)> = all
        .iter()
        .filter_map(|(p, a)| a.as_ref().ok().map(|a| (p.as_str(), a)))
        .map(|(p, a)| {
            let mut v: Vec<flame::Step> = a
                .steps
                .iter()
                .map(|(s, c)| flame::Step {
                    name: s.clone(),
                    cost: c.ir,
                })
                .collect();
            v.push(flame::Step {
                name: "residual".into(),
                cost: a.residual.ir,
            });
            (p, v)
        })
        .collect();
    let pic = flame::svg(
        &flame::step_folded(&by_path, 100.0),
        "Instructions per operation of each step (exact, callgrind): reuse (hakmem) model vs pool model",
        "Ir/100",
    )
    .and_then(|svg| {
        std::fs::write(out.join("steps.svg"), svg).map_err(|e| e.to_string())?;
        Ok("steps.svg".to_string())
    });
    (
        all,
        Picture {
            title: "steps".into(),
            file: pic,
        },
    )
}

pub struct ReportOptions {
    pub quick: bool,
    pub out: PathBuf,
}

/// Step probes a QUICK report adds for its step graph (cheap).
const QUICK_STEP_PROBES: [&str; 6] = [
    "site_hash",
    "learner_decide",
    "header_write",
    "header_verify",
    "freelist_pop",
    "freelist_push",
];

/// Probes whose flamegraphs a QUICK report draws.
const QUICK_FLAME_PROBES: [&str; 4] = [
    "pool_path",
    "reuse_path",
    "pair64/hakmem",
    "pair64/mimalloc",
];

fn by_names(names: &[&str]) -> Vec<Probe> {
    names.iter().filter_map(|n| probes::by_name(n)).collect()
}

/// Runs everything with a progress line per step and writes the report.
pub fn report(o: &ReportOptions) -> Result<PathBuf, String> {
    let t0 = Instant::now();
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let tmp = std::env::temp_dir().join(format!("hakprof-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let progress = |s: &str| eprintln!("[{:>5.1}s] {s}", t0.elapsed().as_secs_f64());
    let machine = machine::describe(); // before counters() pins us to one CPU
    let (availability, ms) = counters_and_bars(o, &tmp, progress)?;
    let exe = crate::self_exe();
    let (step_rows, step_pic) = steps(&exe, &o.out, &tmp, progress);
    progress("steps: time by subtraction (reuse path without each of its own steps)");
    let step_times: Vec<(String, crate::subtract::StepTime)> =
        crate::subtract::reuse_steps(if o.quick { 21 } else { 61 }, 100)
            .into_iter()
            .map(|t| ("reuse_path".to_string(), t))
            .collect();
    if let Err(e) = &step_pic.file {
        eprintln!("hakprof: step flamegraph not drawn: {e}");
    }
    let flame_probes = if o.quick {
        by_names(&QUICK_FLAME_PROBES)
    } else {
        probes::all()
    };
    let seconds = if o.quick { 0.4 } else { 1.0 };
    let pictures = flames(&flame_probes, seconds, &o.out, &tmp, progress);
    let ablation = ablation::run(&exe, if o.quick { 3 } else { 9 }, progress);
    let syscalls = syscalls::run(&exe, &tmp, progress);
    progress("claims: vm under hakmem and mimalloc, alternated, and under strace");
    let vm = claims::compare_vm(&exe, &tmp, if o.quick { 3 } else { 7 }, 5);
    let attributed = |p: &str| {
        step_rows
            .iter()
            .find(|(n, _)| n == p)
            .and_then(|(_, a)| a.as_ref().ok())
    };
    let ns_of = |p: &str| ms.iter().find(|m| m.probe == p).map(|m| m.ns);
    let claims = claims::claims(&claims::Inputs {
        ns_of: &ns_of,
        reuse: attributed("reuse_path"),
        pool: attributed("pool_path"),
        ablation: &ablation,
        vm: &vm,
    });
    let timeline = report::timeline_chart(
        &[
            ("original hakmem (hand-drawn)", Some(31.0)),
            ("original mimalloc-style", Some(9.0)),
            ("reuse_path (hakmem model)", ns_of("reuse_path")),
            ("pool_path (pool model)", ns_of("pool_path")),
        ],
        &["reuse_path", "pool_path", "cabi/pair64/hakmem"]
            .iter()
            .filter_map(|p| attributed(p).map(|a| (*p, a)))
            .collect::<Vec<_>>(),
    );
    std::fs::write(o.out.join("timeline.svg"), timeline).map_err(|e| e.to_string())?;
    let learning = learning::run(&exe, progress);
    let cost_bars: Vec<(String, f64)> = learning
        .runs
        .iter()
        .map(|r| (r.config.clone(), r.cost))
        .collect();
    for (file, svg) in [
        (
            "learning_cost.svg",
            report::bar_chart_in(
                &cost_bars,
                "composite cost per configuration (1.0 = best on CPU, faults and RSS)",
                "",
                3,
            ),
        ),
        ("learning_elo.svg", learning.elo_chart()),
        ("learning_thresholds.svg", learning.threshold_chart()),
    ] {
        std::fs::write(o.out.join(file), svg).map_err(|e| e.to_string())?;
    }
    let sites = sites_section(&o.out, progress);
    let scaling = scaling_section(o, progress);
    let footprint = crate::footprint::run(if o.quick { 1 } else { 3 }, progress);
    let r = Report {
        machine,
        quick: o.quick,
        availability,
        counters: ms,
        steps: step_rows,
        step_times,
        claims,
        learning: Some(learning),
        pictures,
        ablation,
        syscalls,
        sites,
        scaling,
        footprint: Some(footprint),
    };
    std::fs::write(o.out.join("report.md"), r.markdown()).map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&r.json()).map_err(|e| e.to_string())?;
    std::fs::write(o.out.join("report.json"), json).map_err(|e| e.to_string())?;
    let index = o.out.join("index.html");
    std::fs::write(&index, r.html()).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&tmp);
    progress(&format!("report: wrote {}", index.display()));
    Ok(index)
}

/// Thread scaling (`microbench::scaling`, as `make bench-scaling` runs it): up to
/// max(16, 2 × cores) threads, 3 rounds of 0.2 s; QUICK: up to the core count, one round of
/// 0.1 s. A chart per program into `out/scaling-<program>.svg`.
fn scaling_section(
    o: &ReportOptions,
    progress: impl Fn(&str),
) -> Result<microbench::scaling::Sweep, String> {
    use microbench::{machine, native, scaling};
    let cores = machine::cores();
    let (max, rounds, seconds) = if o.quick {
        (cores, 1, 0.1)
    } else {
        (16.max(2 * cores), 3, 0.2)
    };
    progress(&format!(
        "scaling: {} programs at 1..{max} threads, {rounds} round(s) of {seconds} s",
        scaling::PROGRAMS.len()
    ));
    let allocs = native::allocators()?;
    let sweep = scaling::run(
        &allocs,
        &scaling::thread_counts(cores, max),
        rounds,
        seconds,
        |m| progress(&format!("scaling: {m}")),
    )?;
    for program in sweep.programs() {
        let file = o.out.join(format!("scaling-{program}.svg"));
        std::fs::write(&file, sweep.chart(program)).map_err(|e| e.to_string())?;
    }
    Ok(sweep)
}

/// The C programs the report's call-site section runs `hakprof sites` on.
pub const SITES_PROGRAMS: [&str; 3] = ["larson", "mixed", "bigchurn"];

/// `hakprof sites` on each of `SITES_PROGRAMS`, into `out/sites/<program>/`.
fn sites_section(
    out: &Path,
    progress: impl Fn(&str),
) -> Vec<(String, Result<crate::sites::SitesReport, String>)> {
    SITES_PROGRAMS
        .iter()
        .map(|&name| {
            progress(&format!("sites: {name}"));
            let src = microbench::programs::PROGRAMS
                .iter()
                .find(|p| p.0 == name)
                .map(|p| p.1)
                .expect("a program of the benchmarks");
            let run = microbench::native::build(&format!("programs/{src}")).and_then(|bin| {
                let dir = out.join("sites").join(name);
                let opts = crate::sites::RunOptions {
                    top: 20,
                    ..Default::default()
                };
                crate::sites::run(&bin.to_string_lossy(), &[], &dir, &opts).map_err(|e| e.message)
            });
            (name.to_string(), run)
        })
        .collect()
}

/// The counters of every probe of the report (`counters.json`), and their bar chart.
fn counters_and_bars(
    o: &ReportOptions,
    tmp: &Path,
    progress: impl Fn(&str),
) -> Result<(Availability, Vec<Measurement>), String> {
    let mut probes = select(&[], o.quick)?;
    if o.quick {
        probes.extend(by_names(&QUICK_STEP_PROBES)); // the step graph needs them
    }
    let copts = CounterOptions {
        iters: if o.quick { 200 } else { 2000 },
        sim: true,
        sim_iters: if o.quick { 5 } else { 20 },
        cabi: true,
        cabi_patterns: if o.quick {
            vec!["pair64"]
        } else {
            crate::cabi::PATTERNS.to_vec()
        },
    };
    let (availability, ms) = counters(&probes, &copts, tmp, progress);
    let _ = std::fs::write(o.out.join("counters.json"), counters::to_json(&ms));
    let bars: Vec<(String, f64)> = ms
        .iter()
        .filter(|m| m.probe.contains('/') || m.probe.ends_with("_path"))
        .map(|m| (m.probe.clone(), m.ns))
        .collect();
    let title = "ns per operation (64 B), by path and allocator — measured here";
    std::fs::write(o.out.join("bars.svg"), report::bar_chart(&bars, title))
        .map_err(|e| e.to_string())?;
    Ok((availability, ms))
}
