//! hakprof as a user runs it.

use serde_json::Value;
use std::process::Command;

const FIELDS: [&str; 14] = [
    "ns_per_op",
    "cycles_per_op",
    "tsc_cycles_per_op",
    "instructions_per_op",
    "ipc",
    "branch_misses_per_op",
    "l1d_misses_per_op",
    "llc_misses_per_op",
    "sim_instructions_per_op",
    "sim_l1_misses_per_op",
    "sim_ll_misses_per_op",
    "task_clock_ms",
    "page_faults",
    "context_switches",
];

#[test]
fn counters_json_has_every_field_and_unavailable_ones_are_null() {
    let out = Command::new(env!("CARGO_BIN_EXE_hakprof"))
        .args([
            "counters",
            "--probe",
            "pool_path",
            "--iters",
            "1000",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("valid JSON");
    let row = &v[0];
    assert_eq!(row["probe"].as_str(), Some("pool_path"));
    assert!(row["served_by"].as_str().unwrap().contains("confirmed"));
    for f in FIELDS {
        assert!(row.get(f).is_some(), "field {f} missing");
    }
    assert!(row["ns_per_op"].as_f64().unwrap() > 0.0);
    // Each hardware figure is a number exactly when its event opened; otherwise null, and
    // hakprof said so once on stderr.
    for (field, event) in [
        ("cycles_per_op", "cycles"),
        ("instructions_per_op", "instructions"),
        ("l1d_misses_per_op", "L1-dcache-load-misses"),
    ] {
        let missing = stderr.contains(&format!("  - {event}: "));
        let is_null = row.get(field).is_some_and(Value::is_null);
        assert_eq!(
            missing, is_null,
            "{field}: missing={missing} null={is_null}; stderr: {stderr}"
        );
        if missing {
            assert_eq!(
                stderr.matches(&format!("  - {event}: ")).count(),
                1,
                "said once"
            );
        }
    }
    if stderr.contains("  - cycles: ") {
        // No PMU: simulated cache figures stand in (valgrind is installed by make profile / CI).
        assert!(
            row["sim_l1_misses_per_op"].as_f64().is_some(),
            "simulated columns filled: {stderr}"
        );
    }
}

#[test]
fn every_subcommand_has_help_and_bad_input_is_a_clear_error() {
    for sub in [
        "counters", "flame", "ablation", "syscalls", "report", "list", "steps", "learning", "sites",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hakprof"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "{sub} --help"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_hakprof"))
        .args(["counters", "--probe", "no_such_probe"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no probe named \"no_such_probe\""));
    let out = Command::new(env!("CARGO_BIN_EXE_hakprof"))
        .args(["counters", "--format", "xml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// `hakprof sites OPTIONS --out DIR -- COMMAND…`, run to its end.
fn hakprof_sites<S: AsRef<std::ffi::OsStr>>(
    dir: &std::path::Path,
    options: &[&str],
    command: &[S],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hakprof"))
        .arg("sites")
        .args(options)
        .arg("--out")
        .arg(dir)
        .arg("--")
        .args(command)
        .output()
        .unwrap()
}

/// Builds `tests/data/<file>` with `compiler -O0 -g` into `dir`: (source, executable).
fn build_test_program(
    compiler: &str,
    file: &str,
    dir: &std::path::Path,
) -> (String, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let src = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let stem = std::path::Path::new(file).file_stem().unwrap();
    let exe = dir.join(stem);
    let status = Command::new(compiler)
        .args(["-O0", "-g", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect(compiler);
    assert!(status.success(), "{compiler} {src}");
    (src, exe)
}

/// `hakprof sites` on a C program of the repository with two known allocating functions:
/// `sites.json` names both with their exact counts and bytes, and the leak column shows the
/// one block left live on purpose.
#[test]
fn sites_names_both_allocating_functions_with_exact_counts_and_the_leak() {
    let dir = std::env::temp_dir().join(format!("hakprof-sites-{}", std::process::id()));
    let (src, exe) = build_test_program("cc", "two_sites.c", &dir);
    let out = hakprof_sites(&dir, &[], &[&exe]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sites.json")).unwrap()).unwrap();
    assert!(json["program"].as_str().unwrap().ends_with("two_sites"));
    let sites = json["sites"].as_array().unwrap();
    let find = |name: &str| {
        sites
            .iter()
            .find(|s| s["symbol"] == name)
            .unwrap_or_else(|| panic!("no site {name}: {json}"))
    };
    let buffers = find("make_buffers");
    assert_eq!(buffers["count"], 3);
    assert_eq!(buffers["bytes"], 3 << 20);
    assert_eq!(buffers["live_at_exit"], 1 << 20, "one buffer is left live");
    assert_eq!(buffers["peak_live_bytes"], 3 << 20);
    assert!(buffers["file"].as_str().unwrap().ends_with("two_sites.c"));
    let malloc_line = std::fs::read_to_string(src)
        .unwrap()
        .lines()
        .position(|l| l.contains("b[i] = malloc(1 << 20);"))
        .unwrap()
        + 1;
    assert_eq!(
        buffers["line"], malloc_line,
        "the line of make_buffers' malloc"
    );
    let nodes = find("make_nodes");
    assert_eq!(nodes["count"], 100);
    assert_eq!(nodes["bytes"], 4800);
    assert_eq!(nodes["live_at_exit"], 0);
    assert_eq!(
        nodes["temporary"], 1,
        "the last node is freed before any other allocation"
    );
    assert_eq!(buffers["temporary"], 0);
    assert_eq!(
        nodes["sizes"],
        serde_json::json!([{ "upto": 64, "count": 100 }])
    );
    assert_eq!(
        buffers["live_at_peak"],
        3 << 20,
        "all three buffers at the peak"
    );
    assert!(
        buffers["threshold"].as_u64().unwrap() > 0,
        "a big site's threshold"
    );
    // The aligned family has call sites too.
    // (Two rows: aligned_alloc's line and posix_memalign's.)
    let aligned: Vec<&Value> = sites
        .iter()
        .filter(|s| s["symbol"] == "make_aligned")
        .collect();
    let sum = |key: &str| {
        aligned
            .iter()
            .map(|s| s[key].as_i64().unwrap())
            .sum::<i64>()
    };
    assert_eq!(aligned.len(), 2, "{aligned:?}");
    assert_eq!((sum("count"), sum("bytes")), (6, 5 * 256 + 128));
    assert_eq!(sum("live_at_exit"), 0);
    let scratch = find("make_scratch");
    assert_eq!(
        (&scratch["count"], &scratch["temporary"]),
        (&10.into(), &10.into())
    );
    // The stack: make_scratch, called by build_tree, called by main.
    let stack: Vec<&str> = scratch["stack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(
        stack[..3],
        ["make_scratch", "build_tree", "main"],
        "{stack:?}"
    );
    // Sampled stacks: their weights add up to the bytes allocated, to within the jitter of
    // the intervals; the heaviest is make_buffers' (three 1 MiB buffers, each sampled).
    let samples = json["sampled_stacks"].as_array().unwrap();
    let weight: u64 = samples.iter().map(|s| s["weight"].as_u64().unwrap()).sum();
    let total: u64 = sites.iter().map(|s| s["bytes"].as_u64().unwrap()).sum();
    let interval = json["sample_interval"].as_u64().unwrap();
    assert!(
        weight.abs_diff(total) <= 2 * interval,
        "{weight} vs {total}"
    );
    assert_eq!(samples[0]["stack"][0]["symbol"], "make_buffers");
    // The pages and both flamegraphs.
    let svg = std::fs::read_to_string(dir.join("sites.svg")).unwrap();
    assert!(svg.contains("make_buffers") && svg.contains("main"));
    let peak = std::fs::read_to_string(dir.join("sites-peak.svg")).unwrap();
    assert!(peak.contains("make_buffers") && !peak.contains("make_scratch"));
    let html = std::fs::read_to_string(dir.join("sites.html")).unwrap();
    assert!(html.contains("make_nodes") && html.contains("sites-peak.svg"));
    assert!(std::fs::read_to_string(dir.join("sites.md"))
        .unwrap()
        .contains("make_scratch"));
    assert_eq!(json["processes"].as_array().unwrap().len(), 1);
    for key in [
        "symbol",
        "module",
        "file",
        "line",
        "count",
        "bytes",
        "peak_live_bytes",
        "live_at_exit",
        "temporary",
        "live_at_peak",
        "sizes",
        "stack",
    ] {
        assert!(buffers.get(key).is_some(), "{key} missing");
    }
    // The table goes to stderr; the program's own output alone to stdout.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("make_buffers") && stderr.contains("make_nodes"),
        "{stderr}"
    );
    assert_eq!(stdout, "done 0x1\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hakprof sites` under real programs (what `make test-tools` installs): each runs to its
/// end under the sites mode, and the report names the process and counts its sites, a
/// sampled stack among them where the program allocates past one sample interval.
#[test]
fn sites_runs_under_sqlite3_python3_gcc_and_git() {
    let dir = std::env::temp_dir().join(format!("hakprof-sites-real-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c_file = dir.join("hello.c");
    std::fs::write(&c_file, "int main(void) { return 0; }\n").unwrap();
    let c_file = c_file.to_string_lossy().into_owned();
    let object = dir.join("hello.o").to_string_lossy().into_owned();
    let sql = "create table t(a, b); with recursive n(i) as (select 1 union all select i + 1 from n where i < 20000) insert into t select i, printf('%0100d', i) from n; select count(*), sum(length(b)) from t;";
    let runs: [(&str, Vec<&str>); 4] = [
        ("sqlite3", vec![":memory:", sql]),
        (
            "python3",
            vec![
                "-c",
                "import json; print(len(json.dumps([{'k': i} for i in range(20000)])))",
            ],
        ),
        ("gcc", vec!["-c", &c_file, "-o", &object]),
        (
            "git",
            vec!["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"],
        ),
    ];
    for (program, args) in runs {
        let out = dir.join(program);
        let command: Vec<&str> = std::iter::once(program).chain(args).collect();
        let run = hakprof_sites(&out, &["--top", "3"], &command);
        assert!(
            run.status.success(),
            "{program}: {}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("sites.json")).unwrap())
                .unwrap();
        assert_eq!(json["exit_status"], 0, "{program}");
        let sites = json["sites"].as_array().unwrap();
        assert!(
            !sites.is_empty() && sites[0]["count"].as_u64().unwrap() > 0,
            "{program}: {json}"
        );
        let bytes: u64 = sites.iter().map(|s| s["bytes"].as_u64().unwrap()).sum();
        let interval = json["sample_interval"].as_u64().unwrap();
        if bytes > 4 * interval {
            assert!(
                !json["sampled_stacks"].as_array().unwrap().is_empty(),
                "{program}"
            );
        }
        for page in ["sites.html", "sites.md", "sites.svg", "sites-peak.svg"] {
            assert!(out.join(page).exists(), "{program}: {page}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hakprof sites` under a bounded redis-server: a shell starts it, waits until it answers,
/// drives it with redis-benchmark and shuts it down; `--process` keeps the server.
#[test]
fn sites_runs_a_bounded_redis_server() {
    let dir = std::env::temp_dir().join(format!("hakprof-sites-redis-{}", std::process::id()));
    let port = (21000 + std::process::id() % 20000).to_string();
    let script = format!(
        "redis-server --port {port} --save '' --appendonly no >/dev/null & \
         for i in $(seq 100); do redis-cli -p {port} ping >/dev/null 2>&1 && break; sleep 0.1; done; \
         redis-benchmark -p {port} -n 5000 -q -t set,get,lpush >/dev/null && \
         redis-cli -p {port} shutdown nosave; wait"
    );
    let options = ["--top", "5", "--process", "redis-server"];
    let run = hakprof_sites(&dir, &options, &["sh", "-c", &script]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sites.json")).unwrap()).unwrap();
    let processes = json["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 1, "only the server: {json}");
    assert_eq!(processes[0]["name"], "redis-server");
    // 15 000 requests: the server allocates per request.
    assert!(
        processes[0]["allocations"].as_u64().unwrap() > 15_000,
        "{json}"
    );
    assert!(!json["sampled_stacks"].as_array().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// hakprof exits as the command did, still writes its report, and says what is missing: a
/// process that ends with `_exit` is counted (the preload reports from `_exit` in the sites
/// mode); a command killed by a signal is named as such; a command that allocates nothing
/// gets empty flamegraphs that say so, never a failure or a stale page.
#[test]
fn sites_passes_on_the_exit_status_and_counts_processes_that_end_with_exit() {
    let dir = std::env::temp_dir().join(format!("hakprof-sites-exit-{}", std::process::id()));
    let sites = |args: &[&str]| hakprof_sites(&dir, &[], args);
    let json = || -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("sites.json")).unwrap()).unwrap()
    };
    // A python child that allocates and ends with os._exit(5).
    let script = "import os\nx = [bytes(1000) for i in range(300)]\nos._exit(5)";
    let run = sites(&["python3", "-c", script]);
    assert_eq!(
        run.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let j = json();
    assert_eq!(j["exit_status"], 5);
    let bytes: u64 = j["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["bytes"].as_u64().unwrap())
        .sum();
    assert!(
        bytes >= 300_000,
        "the _exit-ing process was counted: {bytes}"
    );
    // Killed by a signal: 128 + 9, and the report says the process wrote nothing.
    let run = sites(&["sh", "-c", "ls / >/dev/null; kill -9 $$"]);
    assert_eq!(run.status.code(), Some(137));
    let notes = json()["notes"].to_string();
    assert!(
        notes.contains("signal 9") && notes.contains("wrote no stats"),
        "{notes}"
    );
    // A --process that matches nothing names the processes there were.
    let run = hakprof_sites(
        &dir,
        &["--process", "nosuch"],
        &["sh", "-c", "ls / >/dev/null"],
    );
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && err.contains("no process named nosuch") && err.contains("ls"),
        "{err}"
    );
    // Nothing allocated: both graphs written, saying so; no page of the last run remains.
    let run = sites(&["true"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for svg in ["sites.svg", "sites-peak.svg"] {
        let text = std::fs::read_to_string(dir.join(svg)).unwrap();
        assert!(
            text.contains("true") && !text.contains("kill"),
            "{svg}: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// C++: the preload serves `operator new` itself, so each function that calls `new` is its
/// own site (not libstdc++'s wrapper), named demangled with its template argument and
/// namespace; `new` out of memory still throws `std::bad_alloc` and the nothrow form still
/// returns null.
#[test]
fn sites_names_the_cxx_functions_that_call_new() {
    let dir = std::env::temp_dir().join(format!("hakprof-sites-cxx-{}", std::process::id()));
    let (_, exe) = build_test_program("c++", "two_news.cpp", &dir);
    let plain = Command::new(&exe).output().unwrap();
    let run = hakprof_sites(&dir, &[], &[&exe]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        run.stdout, plain.stdout,
        "the same output as without the preload"
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "bad_alloc\nnothrow 1\nkept 1\n"
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sites.json")).unwrap()).unwrap();
    let find = |name: &str| {
        json["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["symbol"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no site {name}: {json}"))
    };
    let make = find("double* shapes::make<double>(int)");
    assert_eq!(
        (&make["count"], &make["bytes"]),
        (&50.into(), &(50 * 64).into())
    );
    let build = find("shapes::build()");
    assert_eq!(
        (&build["count"], &build["bytes"]),
        (&20.into(), &(20 * 64).into())
    );
    assert_eq!(build["live_at_exit"], 64, "one node kept");
    assert_eq!(find("shapes::build_quietly()")["count"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The allocator's reliability programs (`tests/data/` of the `hakmem` crate) under
/// `hakprof sites`, which runs every program it profiles in the sites mode: `_exit` from
/// signal handlers (no child hangs, every child's report merged), a `vfork` child whose
/// `exec` fails (only the parent reports), nothrow `new` with a new-handler, and small
/// aligned blocks (pool blocks: the run keeps a few dozen mappings). Each prints what it
/// prints alone and exits 0.
#[test]
fn sites_runs_the_reliability_programs() {
    let dir = std::env::temp_dir().join(format!("hakprof-reliability-{}", std::process::id()));
    let cases: [(&str, &str, &[&str], &str, usize); 4] = [
        ("cc", "exit_in_handler.c", &["30"], "ok 30\n", 31),
        ("cc", "vfork_exit.c", &[], "parent ", 1),
        (
            "c++",
            "nothrow_handler.cpp",
            &[],
            "nothrow new[] with a handler that frees: served",
            1,
        ),
        ("cc", "aligned_small.c", &[], "aligned ok", 1),
    ];
    for (compiler, file, args, starts, processes) in cases {
        let (_, exe) = build_test_program(compiler, &format!("../../../tests/data/{file}"), &dir);
        let mut command = vec![exe.into_os_string()];
        command.extend(args.iter().map(Into::into));
        let out = hakprof_sites(&dir.join("out"), &[], &command);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with(starts),
            "{file}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("out/sites.json")).unwrap())
                .unwrap();
        assert_eq!(
            json["processes"].as_array().unwrap().len(),
            processes,
            "{file}: {}",
            json["processes"]
        );
        assert!(json["sites"][0]["count"].as_u64().unwrap() > 0, "{file}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
