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
    let out = hakprof_sites(&dir, &["--sample-bytes", "4096"], &[&exe]);
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
    // Sampled stacks: their estimated bytes come near the bytes allocated (the three 1 MiB
    // buffers are always sampled: 1 − e^(−256) at the 4 KiB interval this test asks for;
    // the few small blocks are estimates); the heaviest is make_buffers'.
    let samples = json["sampled_stacks"].as_array().unwrap();
    let estimate: u64 = samples.iter().map(|s| s["bytes"].as_u64().unwrap()).sum();
    let total: u64 = sites.iter().map(|s| s["bytes"].as_u64().unwrap()).sum();
    assert_eq!(json["sample_interval"], 4096);
    assert!(
        estimate >= 3 << 20 && estimate.abs_diff(total) <= total / 10,
        "{estimate} vs {total}"
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
    // Killed by a signal: 128 + 9, and the report names the process that wrote nothing.
    let run = sites(&["sh", "-c", "ls / >/dev/null; kill -9 $$"]);
    assert_eq!(run.status.code(), Some(137));
    let j = json();
    let notes = j["notes"].to_string();
    assert!(
        notes.contains("SIGKILL") && notes.contains("wrote no report"),
        "{notes}"
    );
    assert_eq!(j["silent_processes"][0]["name"], "sh", "{j}");
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
    for svg in [
        "sites.svg",
        "sites-allocations.svg",
        "sites-leaked.svg",
        "sites-temporary.svg",
        "sites-peak.svg",
    ] {
        let text = std::fs::read_to_string(dir.join(svg)).unwrap();
        assert!(
            text.contains("true") && !text.contains("kill"),
            "{svg}: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sampled stack of `hakprof sites` JSON whose first frames are `frames`.
fn stack_of<'a>(json: &'a Value, frames: &[&str]) -> &'a Value {
    json["sampled_stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            let names: Vec<&str> = s["stack"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["symbol"].as_str().unwrap())
                .collect();
            names.starts_with(frames)
        })
        .unwrap_or_else(|| panic!("no stack {frames:?} in {}", json["sampled_stacks"]))
}

/// The sampled stack with the most bytes live at the heap's peak.
fn top_at_peak(json: &Value) -> &Value {
    json["sampled_stacks"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|s| s["live_at_peak"].as_i64().unwrap())
        .expect("a sampled stack")
}

/// `hakprof sites` on `truth.c`, whose every allocation goes through a wrapper: the leak,
/// the temporaries and the block live at the heap's peak are charged to the functions that
/// called the wrapper, exactly with every stack unwound (`--sample-bytes 1`), and the 8 MiB
/// peak block by default sampling too; a `realloc` growth loop peaks at its largest block,
/// not two; a crash still writes a (partial) report, and hakprof exits 128 + the signal.
#[test]
fn sites_charges_leaks_peak_and_temporaries_to_the_callers_of_a_wrapper() {
    let dir = std::env::temp_dir().join(format!("hakprof-sites-truth-{}", std::process::id()));
    let (_, exe) = build_test_program("cc", "truth.c", &dir);
    let json = |out: &std::path::Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(out.join("sites.json")).unwrap()).unwrap()
    };
    let exact = dir.join("exact");
    let run = hakprof_sites(&exact, &["--sample-bytes", "1"], &[&exe]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let j = json(&exact);
    assert_eq!(j["stacks_exact"], true);
    let leak = stack_of(&j, &["xmalloc", "leak_buffers", "main"]);
    assert_eq!(
        (&leak["allocations"], &leak["leaked"], &leak["leaked_bytes"]),
        (&Value::from(100), &Value::from(100), &Value::from(20_000)),
        "{leak}"
    );
    let temps = stack_of(&j, &["xmalloc", "temporaries", "main"]);
    assert_eq!(
        (&temps["temporary"], &temps["leaked"]),
        (&Value::from(1000), &Value::from(0))
    );
    // At the heap's peak: the 8 MiB block of hold_peak first, the leak beside it.
    let peak = top_at_peak(&j);
    assert_eq!(peak["stack"][1]["symbol"], "hold_peak", "{peak}");
    assert_eq!(peak["live_at_peak"], 8 << 20);
    // realloc: the old block counts as freed before the new one: the growth loop never
    // holds more than its 1 MiB block, and the heap never more than 8 MiB + the leak + stdio.
    let site = |name: &str| {
        j["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["symbol"] == name)
            .unwrap_or_else(|| panic!("no site {name}"))
            .clone()
    };
    assert_eq!(site("xrealloc")["peak_live_bytes"], 1 << 20);
    let heap_peak = j["processes"][0]["heap_peak_bytes"].as_i64().unwrap();
    assert!(
        (8 << 20..(8 << 20) + (64 << 10)).contains(&heap_peak),
        "{heap_peak}"
    );
    // Both definitions of a temporary, named.
    assert_eq!(site("xmalloc")["temporary"], 1001);
    assert!(j["definitions"]["temporary_heaptrack"]
        .as_str()
        .unwrap()
        .contains("heaptrack"));
    // The flamegraphs of each cost put it under the caller of the wrapper.
    let svg = |name: &str| std::fs::read_to_string(exact.join(name)).unwrap();
    assert!(svg("sites-leaked.svg").contains("leak_buffers"));
    assert!(!svg("sites-leaked.svg").contains("hold_peak"));
    assert!(svg("sites-peak.svg").contains("hold_peak"));
    assert!(!svg("sites-peak.svg").contains("temporaries"));
    assert!(svg("sites-temporary.svg").contains("temporaries"));
    assert!(svg("sites-allocations.svg").contains("temporaries"));
    let md = std::fs::read_to_string(exact.join("sites.md")).unwrap();
    assert!(
        md.contains("Stacks by bytes leaked") && md.contains("leak_buffers"),
        "{md}"
    );

    // `sites diff`: a run that leaks twice as much, compared with this one: the leaking
    // stack first, its leak doubled; a differential flamegraph beside.
    let twice = dir.join("twice");
    let run = hakprof_sites(
        &twice,
        &["--sample-bytes", "1"],
        &[exe.to_str().unwrap(), "twice"],
    );
    assert!(run.status.success());
    let diff = Command::new(env!("CARGO_BIN_EXE_hakprof"))
        .args(["sites", "diff"])
        .arg(exact.join("sites.json"))
        .arg(twice.join("sites.json"))
        .arg("--out")
        .arg(&twice)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    let d: Value =
        serde_json::from_str(&std::fs::read_to_string(twice.join("sites-diff.json")).unwrap())
            .unwrap();
    let top = &d["stacks"][0];
    assert!(
        top["name"]
            .as_str()
            .unwrap()
            .contains("xmalloc ← leak_buffers"),
        "{top}"
    );
    assert_eq!(top["leaked"], serde_json::json!([20_000, 40_000]));
    assert_eq!(top["count"], serde_json::json!([100, 200]));
    assert!(String::from_utf8_lossy(&diff.stdout).contains("+20000 B"));
    let svg = std::fs::read_to_string(twice.join("sites-diff.svg")).unwrap();
    assert!(svg.contains("leak_buffers") && svg.contains("</svg>"));
    let bad = Command::new(env!("CARGO_BIN_EXE_hakprof"))
        .args(["sites", "diff", "/nonexistent/sites.json"])
        .arg(twice.join("sites.json"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent/sites.json"));

    // Sampled (the default): the 8 MiB block is always sampled, so the peak's top stack
    // is still hold_peak's, and its figures say they are estimates.
    let sampled = dir.join("sampled");
    let run = hakprof_sites(&sampled, &[], &[&exe]);
    assert!(run.status.success());
    let j = json(&sampled);
    assert_eq!(j["stacks_exact"], false);
    let peak = top_at_peak(&j);
    assert_eq!(peak["stack"][1]["symbol"], "hold_peak", "{peak}");
    assert!(std::fs::read_to_string(sampled.join("sites.md"))
        .unwrap()
        .contains("est. bytes"));

    // A crash: the report written from the signal handler, partial, and 128 + SIGSEGV.
    let crashed = dir.join("crashed");
    let run = hakprof_sites(&crashed, &[], &[exe.to_str().unwrap(), "crash"]);
    assert_eq!(
        run.status.code(),
        Some(128 + 11),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let j = json(&crashed);
    assert_eq!(j["processes"][0]["signal"], 11);
    assert_eq!(j["signal"], 11);
    let notes = j["notes"].to_string();
    assert!(
        notes.contains("SIGSEGV") && notes.contains("partial"),
        "{notes}"
    );
    let xmalloc = j["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["symbol"] == "xmalloc");
    assert_eq!(
        xmalloc.unwrap()["live_at_exit"],
        20_000,
        "what it counted up to the crash"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// When no process wrote a report, `hakprof sites` says why: a static binary (the loader
/// never reads LD_PRELOAD), a program with its own malloc (the preload serves nothing), a
/// cleared environment (`env -i`: the process that set the preload up was replaced by
/// exec). A relative `--out` holds when the program changes directory.
#[test]
fn sites_says_why_a_program_wrote_nothing_and_keeps_a_relative_out() {
    let dir = std::env::temp_dir().join(format!("hakprof-sites-why-{}", std::process::id()));
    let (_, own) = build_test_program("cc", "own_malloc.c", &dir);
    let out = dir.join("out");
    let err = |run: &std::process::Output| String::from_utf8_lossy(&run.stderr).into_owned();
    let run = hakprof_sites(&out, &[], &[&own]);
    assert!(
        err(&run).contains("defines its own malloc"),
        "{}",
        err(&run)
    );
    let src = format!("{}/tests/data/truth.c", env!("CARGO_MANIFEST_DIR"));
    let stat = dir.join("truth-static");
    let built = Command::new("cc")
        .args(["-static", "-O0", "-o"])
        .arg(&stat)
        .arg(&src)
        .status();
    if built.is_ok_and(|s| s.success()) {
        let run = hakprof_sites(&out, &[], &[&stat]);
        assert!(!run.status.success());
        assert!(err(&run).contains("statically linked"), "{}", err(&run));
    } else {
        eprintln!("no static C library (libc.a): the static case is not checked");
    }
    let truth = dir.join("truth");
    assert!(Command::new("cc")
        .args(["-O0", "-o"])
        .arg(&truth)
        .arg(&src)
        .status()
        .unwrap()
        .success());
    let run = hakprof_sites(
        &out,
        &[],
        &["env".as_ref(), "-i".as_ref(), truth.as_os_str()],
    );
    let e = err(&run);
    assert!(
        !run.status.success() && (e.contains("env -i") || e.contains("replaced by exec")),
        "{e}"
    );
    // A relative --out, and a program that changes directory before it exits.
    let run = Command::new(env!("CARGO_BIN_EXE_hakprof"))
        .current_dir(&dir)
        .args([
            "sites",
            "--out",
            "rel",
            "--",
            "sh",
            "-c",
            "cd / && python3 -c 'x = [0] * 1000'",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", err(&run));
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rel/sites.json")).unwrap())
            .unwrap();
    assert!(j["processes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "python3"));
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
