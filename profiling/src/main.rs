//! hakprof: hardware counters, flamegraphs, ablation and syscalls for every measured path
//! of hakmem and its peers, and the report that gathers them (`make profile`). A thin
//! binary: each subcommand is one call into the `profiling` library.

use clap::{Args, Parser, Subcommand, ValueEnum};
use profiling::{ablation, attrib, child, counters, learning, run, syscalls};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hakprof",
    about = "Where an allocator's time goes: counters, flamegraphs, ablation and syscalls per measured path",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the probes (measured paths)
    List,
    /// perf-event counters per operation (hardware where the host has them; TSC cycles and
    /// simulated cache misses where not)
    Counters(CountersArgs),
    /// Flamegraphs from perf record (one SVG per probe, plus reuse-vs-pool differential)
    Flame(FlameArgs),
    /// The feature-isolation study: reuse path, vm, mixed and the big-block workloads under default and each kill switch
    Ablation(AblationArgs),
    /// mmap/munmap/madvise/mremap per scenario, cross-checked with strace
    Syscalls,
    /// A path's instructions and simulated cache misses split into steps, exactly (callgrind,
    /// line level): the steps plus the residual add up to the path
    Steps(StepsArgs),
    /// Does learning pay? The learner against each fixed policy (threshold, huge pages) and
    /// the peers on four workloads where per-site policy matters (composite cost: CPU, page
    /// faults, RSS)
    Learning,
    /// Who allocates what: runs PROGRAM (and its children) under the preload in the sites
    /// mode; writes sites.html, .md, .json and a flamegraph per cost (bytes, allocations,
    /// leaked, temporary, live at the peak; default folder flamegraphs/sites/).
    /// `sites diff A B` compares two sites.json
    Sites(SitesArgs),
    /// What each allocator keeps resident for almost nothing (no allocation, one, per
    /// thread), and hakmem's resident memory by holder (mincore on its own regions)
    Footprint(FootprintArgs),
    /// Run everything and write flamegraphs/{index.html,report.md,*.svg}
    Report(ReportArgs),
    /// child process: run one probe
    #[command(hide = true)]
    RunProbe(RunProbeArgs),
    /// child process: run one workload under the environment's configuration
    #[command(hide = true)]
    RunWorkload(RunWorkloadArgs),
}

#[derive(Args)]
struct CountersArgs {
    /// a probe to run (repeatable; default: all). `hakprof list` shows them
    #[arg(long = "probe", value_name = "NAME")]
    probes: Vec<String>,
    /// runs of each probe (each run is 1000 operations)
    #[arg(long, default_value_t = 2000)]
    iters: u64,
    /// output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// skip the valgrind cache simulation
    #[arg(long)]
    no_sim: bool,
    /// skip the C-path probes (cabi/pair64 and cabi/batch64 of hakmem, glibc, mimalloc,
    /// jemalloc and tcmalloc under LD_PRELOAD; also skipped when --probe names probes)
    #[arg(long)]
    no_cabi: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Args)]
struct FlameArgs {
    /// a probe to run (repeatable; default: all). `hakprof list` shows them
    #[arg(long = "probe", value_name = "NAME")]
    probes: Vec<String>,
    /// sampling time per probe
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// output folder (default: flamegraphs/)
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct StepsArgs {
    /// a path to attribute: a probe, or cabi/<pattern>/hakmem for the C path under the
    /// preload (repeatable; default: reuse_path, pool_path and cabi/pair64/hakmem)
    #[arg(long = "probe", value_name = "NAME")]
    probes: Vec<String>,
    /// output format (table: Markdown)
    #[arg(long, value_enum, default_value_t = StepsFormat::Table)]
    format: StepsFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum StepsFormat {
    Table,
    Json,
}

#[derive(Args)]
struct FootprintArgs {
    /// runs of each case under each allocator (medians)
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct SitesArgs {
    #[command(subcommand)]
    diff: Option<SitesCmd>,
    /// output folder (default: flamegraphs/sites/)
    #[arg(long)]
    out: Option<PathBuf>,
    /// sites listed before the "other" row
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// keep only the processes of this name (comm or executable file name); by default
    /// every process the command starts is counted and merged
    #[arg(long, value_name = "NAME")]
    process: Option<String>,
    /// mean bytes allocated between two sampled stacks (default 262144); 1 unwinds every
    /// allocation's stack, which makes each stack's figures exact at heaptrack's cost
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    sample_bytes: Option<u64>,
    /// the program and its arguments (after --)
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    command: Vec<String>,
}

#[derive(Subcommand)]
enum SitesCmd {
    /// Compare two sites.json (A, then B) per site and per stack, sorted by the change;
    /// writes sites-diff.md, .json and a differential flamegraph sites-diff.svg
    Diff(SitesDiffArgs),
}

#[derive(Args)]
struct SitesDiffArgs {
    /// the earlier run's sites.json
    a: PathBuf,
    /// the later run's sites.json
    b: PathBuf,
    /// output folder (default: the folder of B)
    #[arg(long)]
    out: Option<PathBuf>,
    /// rows per table
    #[arg(long, default_value_t = 20)]
    top: usize,
}

#[derive(Args)]
struct AblationArgs {
    /// timed repetitions per cell
    #[arg(long, default_value_t = 9)]
    reps: usize,
}

#[derive(Args)]
struct ReportArgs {
    /// fewer probes and iterations (about a minute)
    #[arg(long)]
    quick: bool,
    /// output folder (default: flamegraphs/)
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct RunProbeArgs {
    #[arg(long)]
    probe: String,
    #[arg(long, default_value_t = 100)]
    iters: u64,
    #[arg(long)]
    seconds: Option<f64>,
}

#[derive(Args)]
struct RunWorkloadArgs {
    #[arg(long)]
    workload: String,
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// no warm-up run: count the first mappings too
    #[arg(long)]
    cold: bool,
    /// the allocator of a scenario (hakmem, system, mimalloc, jemalloc)
    #[arg(long, default_value = "hakmem")]
    alloc: String,
}

fn progress(s: &str) {
    eprintln!("{s}");
}

fn counters_cmd(a: CountersArgs) -> Result<(), String> {
    let probes = run::select(&a.probes, false)?;
    let o = run::CounterOptions {
        iters: a.iters,
        sim: !a.no_sim,
        sim_iters: 20,
        cabi: !a.no_cabi && a.probes.is_empty(),
        cabi_patterns: profiling::cabi::PATTERNS.to_vec(),
    };
    let (_, ms) = run::counters(&probes, &o, &std::env::temp_dir(), progress);
    match a.format {
        Format::Json => println!("{}", counters::to_json(&ms)),
        Format::Csv => print!("{}", counters::to_csv(&ms)),
        Format::Table => print!("{}", counters::table(&ms).markdown()),
    }
    Ok(())
}

fn flame_cmd(a: FlameArgs) -> Result<(), String> {
    let probes = run::select(&a.probes, false)?;
    let out = a.out.unwrap_or_else(profiling::out_dir);
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let pics = run::flames(&probes, a.seconds, &out, &std::env::temp_dir(), progress);
    for p in &pics {
        match &p.file {
            Ok(f) => println!("{}: {}", p.title, out.join(f).display()),
            Err(e) => println!("{}: not drawn: {e}", p.title),
        }
    }
    if pics.iter().all(|p| p.file.is_err()) {
        return Err("no flamegraph could be drawn".into());
    }
    Ok(())
}

fn steps_cmd(a: StepsArgs) -> Result<(), String> {
    let names: Vec<String> = if a.probes.is_empty() {
        run::STEP_PATHS.iter().map(|s| s.to_string()).collect()
    } else {
        a.probes
    };
    let exe = profiling::self_exe();
    let mut all = Vec::new();
    for n in names {
        progress(&format!("steps: {n} under callgrind"));
        let r = attrib::run_path(&exe, &n, &std::env::temp_dir());
        all.push((n, r));
    }
    match a.format {
        StepsFormat::Json => {
            let v: Vec<_> = all
                .iter()
                .map(|(n, r)| match r {
                    Ok(a) => serde_json::to_value(a).unwrap_or_default(),
                    Err(e) => serde_json::json!({ "path": n, "error": e }),
                })
                .collect();
            println!("{}", serde_json::Value::Array(v));
        }
        StepsFormat::Table => {
            let times = if all.iter().any(|(n, _)| n == "reuse_path") {
                progress("steps: time by subtraction");
                profiling::subtract::reuse_steps(41, 200)
            } else {
                vec![]
            };
            let step_ns = |p: &str, s: &str| {
                times
                    .iter()
                    .find(|t| p == "reuse_path" && t.step == s)
                    .map(|t| (t.ns, t.ns_ci))
            };
            print!("{}", attrib::table(&all, |_| None, step_ns).markdown())
        }
    }
    if all.iter().any(|(_, r)| r.is_err()) {
        return Err("a path could not be attributed".into());
    }
    Ok(())
}

/// `hakprof sites`: the report goes to stderr (the program's own output stays on stdout,
/// unchanged); hakprof exits as the command did (its status, or 128 + the signal).
fn sites_cmd(a: SitesArgs) -> ExitCode {
    use std::io::Write;
    if let Some(SitesCmd::Diff(d)) = a.diff {
        return sites_diff_cmd(d);
    }
    let out = a.out.unwrap_or_else(|| profiling::out_dir().join("sites"));
    let opts = profiling::sites::RunOptions {
        top: a.top,
        only: a.process,
        sample_bytes: a.sample_bytes,
    };
    let r = match profiling::sites::run(&a.command[0], &a.command[1..], &out, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hakprof: {}", e.message);
            return ExitCode::from(e.exit_code);
        }
    };
    let out = std::path::absolute(&out).unwrap_or(out);
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut err = std::io::stderr().lock();
    // A closed stderr is no reason to fail: the files are written.
    let _ = write!(
        err,
        "{}\n{}",
        r.process_table().markdown(),
        r.table(a.top).markdown()
    );
    for n in &r.notes {
        let _ = writeln!(err, "hakprof: {n}");
    }
    let _ = writeln!(
        err,
        "hakprof: {} in {}; {} (also sites.md, sites.json and a flamegraph per cost: sites.svg, sites-allocations.svg, sites-leaked.svg, sites-temporary.svg, sites-peak.svg)",
        plural(r.sites.len(), "site", "sites"),
        plural(r.processes.len(), "process", "processes"),
        out.join("sites.html").display()
    );
    match (r.exit_status, r.signal) {
        (Some(0), _) => ExitCode::SUCCESS,
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(sig)) => ExitCode::from(128u8.wrapping_add(sig as u8)),
        (None, None) => ExitCode::FAILURE,
    }
}

/// `hakprof sites diff A B`: the tables on stdout, the files beside B (or in `--out`).
fn sites_diff_cmd(d: SitesDiffArgs) -> ExitCode {
    let out = d.out.unwrap_or_else(|| {
        d.b.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or(PathBuf::from("."), PathBuf::from)
    });
    match profiling::sites_diff::run(&d.a, &d.b, &out, d.top) {
        Ok(diff) => {
            print!("{}", diff.markdown(d.top));
            eprintln!(
                "hakprof: {} (also sites-diff.md, sites-diff.json)",
                std::path::absolute(out.join("sites-diff.svg"))
                    .unwrap_or_default()
                    .display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hakprof: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let r = match Cli::parse().command {
        Cmd::List => {
            for p in microbench::probes::all() {
                println!("{:24} {}", p.name, p.what);
            }
            Ok(())
        }
        Cmd::Counters(a) => counters_cmd(a),
        Cmd::Flame(a) => flame_cmd(a),
        Cmd::Ablation(a) => {
            let cells = ablation::run(&profiling::self_exe(), a.reps, progress);
            print!("{}", ablation::table(&cells).markdown());
            Ok(())
        }
        Cmd::Steps(a) => steps_cmd(a),
        Cmd::Sites(a) => return sites_cmd(a),
        Cmd::Footprint(a) => {
            let study = profiling::footprint::run(a.rounds.max(1), progress);
            print!("{}", study.markdown());
            if study.cells.is_empty() {
                Err(study.errors.join("; "))
            } else {
                Ok(())
            }
        }
        Cmd::Learning => {
            let study = learning::run(&profiling::self_exe(), progress);
            print!("{}", study.table().markdown());
            println!("\n{}", study.verdict());
            for (title, text, table) in study.sections() {
                print!("\n### {title}\n\n{text}\n\n{}", table.markdown());
            }
            if study.runs.is_empty() {
                Err(study.errors.join("; "))
            } else {
                Ok(())
            }
        }
        Cmd::Syscalls => syscalls::run(&profiling::self_exe(), &std::env::temp_dir(), progress)
            .map(|c| print!("{}", syscalls::table(&c).markdown())),
        Cmd::Report(a) => run::report(&run::ReportOptions {
            quick: a.quick,
            out: a.out.unwrap_or_else(profiling::out_dir),
        })
        .map(|p| println!("hakprof: report at {}", p.display())),
        Cmd::RunProbe(a) => child::run_probe(&a.probe, a.iters, a.seconds),
        Cmd::RunWorkload(a) => child::run_workload(&a.workload, a.reps, !a.cold, &a.alloc)
            .map(|line| println!("{line}")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hakprof: {e}");
            ExitCode::FAILURE
        }
    }
}
