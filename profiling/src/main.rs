//! hakprof: hardware counters, flamegraphs, ablation and syscalls for every measured path
//! of hakmem and its peers, and the report that gathers them (`make profile`).

use clap::{value_parser, Arg, ArgAction, Command};
use profiling::{ablation, child, counters, run, syscalls};
use std::path::PathBuf;
use std::process::ExitCode;

fn probe_arg() -> Arg {
    Arg::new("probe")
        .long("probe")
        .action(ArgAction::Append)
        .value_name("NAME")
        .help("a probe to run (repeatable; default: all). `hakprof list` shows them")
}

fn cli() -> Command {
    Command::new("hakprof")
        .about("Where an allocator's time goes: counters, flamegraphs, ablation and syscalls per measured path")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(Command::new("list").about("List the probes (measured paths)"))
        .subcommand(
            Command::new("counters")
                .about("perf-event counters per operation (hardware where the host has them; TSC cycles and simulated cache misses where not)")
                .arg(probe_arg())
                .arg(Arg::new("iters").long("iters").default_value("2000").value_parser(value_parser!(u64)).help("runs of each probe (each run is 1000 operations)"))
                .arg(Arg::new("format").long("format").default_value("table").value_parser(["table", "json", "csv"]).help("output format"))
                .arg(Arg::new("no-sim").long("no-sim").action(ArgAction::SetTrue).help("skip the valgrind cache simulation")),
        )
        .subcommand(
            Command::new("flame")
                .about("Flamegraphs from perf record (one SVG per probe, plus reuse-vs-pool differential)")
                .arg(probe_arg())
                .arg(Arg::new("seconds").long("seconds").default_value("1.0").value_parser(value_parser!(f64)).help("sampling time per probe"))
                .arg(Arg::new("out").long("out").value_parser(value_parser!(PathBuf)).help("output folder (default: flamegraphs/)")),
        )
        .subcommand(
            Command::new("ablation")
                .about("The feature-isolation study: reuse path, vm and mixed under default and each kill switch")
                .arg(Arg::new("reps").long("reps").default_value("9").value_parser(value_parser!(usize)).help("timed repetitions per cell")),
        )
        .subcommand(Command::new("syscalls").about("mmap/munmap/madvise/mremap per scenario, cross-checked with strace"))
        .subcommand(
            Command::new("report")
                .about("Run everything and write flamegraphs/{index.html,report.md,*.svg}")
                .arg(Arg::new("quick").long("quick").action(ArgAction::SetTrue).help("fewer probes and iterations (about a minute)"))
                .arg(Arg::new("out").long("out").value_parser(value_parser!(PathBuf)).help("output folder (default: flamegraphs/)")),
        )
        .subcommand(
            Command::new("run-probe")
                .hide(true)
                .about("child process: run one probe")
                .arg(Arg::new("probe").long("probe").required(true))
                .arg(Arg::new("iters").long("iters").default_value("100").value_parser(value_parser!(u64)))
                .arg(Arg::new("seconds").long("seconds").value_parser(value_parser!(f64))),
        )
        .subcommand(
            Command::new("run-workload")
                .hide(true)
                .about("child process: run one workload under the environment's configuration")
                .arg(Arg::new("workload").long("workload").required(true))
                .arg(Arg::new("reps").long("reps").default_value("5").value_parser(value_parser!(usize)))
                .arg(Arg::new("cold").long("cold").action(ArgAction::SetTrue).help("no warm-up run: count the first mappings too")),
        )
}

fn main() -> ExitCode {
    let m = cli().get_matches();
    let tmp = std::env::temp_dir();
    let progress = |s: &str| eprintln!("{s}");
    let r: Result<(), String> = match m.subcommand() {
        Some(("list", _)) => {
            for p in microbench::probes::all() {
                println!("{:24} {}", p.name, p.what);
            }
            Ok(())
        }
        Some(("counters", a)) => {
            let names: Vec<String> = a
                .get_many::<String>("probe")
                .map(|v| v.cloned().collect())
                .unwrap_or_default();
            run::select(&names, false).map(|probes| {
                let o = run::CounterOptions {
                    iters: *a.get_one("iters").unwrap(),
                    sim: !a.get_flag("no-sim"),
                    sim_iters: 20,
                };
                let (_, ms) = run::counters(&probes, &o, &tmp, progress);
                match a.get_one::<String>("format").unwrap().as_str() {
                    "json" => println!("{}", counters::to_json(&ms)),
                    "csv" => print!("{}", counters::to_csv(&ms)),
                    _ => print!("{}", counters::to_table(&ms)),
                }
            })
        }
        Some(("flame", a)) => {
            let names: Vec<String> = a
                .get_many::<String>("probe")
                .map(|v| v.cloned().collect())
                .unwrap_or_default();
            let out = a
                .get_one::<PathBuf>("out")
                .cloned()
                .unwrap_or_else(profiling::out_dir);
            run::select(&names, false).and_then(|probes| {
                std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
                let pics = run::flames(
                    &probes,
                    *a.get_one("seconds").unwrap(),
                    &out,
                    &tmp,
                    progress,
                );
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
            })
        }
        Some(("ablation", a)) => {
            let cells = ablation::run(
                &profiling::self_exe(),
                *a.get_one("reps").unwrap(),
                progress,
            );
            print!("{}", ablation::table(&cells));
            Ok(())
        }
        Some(("syscalls", _)) => syscalls::run(&profiling::self_exe(), &tmp, progress)
            .map(|c| print!("{}", syscalls::table(&c))),
        Some(("report", a)) => {
            let out = a
                .get_one::<PathBuf>("out")
                .cloned()
                .unwrap_or_else(profiling::out_dir);
            run::report(&run::ReportOptions {
                quick: a.get_flag("quick"),
                out,
            })
            .map(|p| println!("hakprof: report at {}", p.display()))
        }
        Some(("run-probe", a)) => child::run_probe(
            a.get_one::<String>("probe").unwrap(),
            *a.get_one("iters").unwrap(),
            a.get_one::<f64>("seconds").copied(),
        ),
        Some(("run-workload", a)) => child::run_workload(
            a.get_one::<String>("workload").unwrap(),
            *a.get_one("reps").unwrap(),
            !a.get_flag("cold"),
        )
        .map(|line| println!("{line}")),
        _ => Err("unknown subcommand".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hakprof: {e}");
            ExitCode::FAILURE
        }
    }
}
